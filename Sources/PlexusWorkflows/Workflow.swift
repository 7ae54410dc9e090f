import PlexusCore

/// A workflow as declared in YAML and checked: its steps in file order,
/// each with the steps it depends on (declared with `after:` or implied by
/// reading their outputs).
public struct Workflow: Sendable {
    public let name: String
    public let description: String
    public let file: String
    /// The YAML text: a run keeps it, so resuming never depends on the file.
    public let source: String
    /// Defaults for the run's input; what the caller gives overrides them.
    public let input: [String: JSONValue]
    public let steps: [Step]
    /// Files a finished run produces: name -> what it holds.
    public let outputs: [(name: String, value: Template)]
    /// The workflows its `workflow:` steps run, by path (resolved against
    /// this file's directory), each checked like this one.
    public let subworkflows: [String: Workflow]

    /// The steps and parallel branches that run as tasks or are decided on,
    /// in order: branch "p.a" follows its parallel step p.
    public let nodes: [Step]
    private let index: [String: Int]

    init(name: String, description: String, file: String, source: String, input: [String: JSONValue], steps: [Step],
         outputs: [(name: String, value: Template)], subworkflows: [String: Workflow] = [:]) {
        self.name = name
        self.description = description
        self.file = file
        self.source = source
        self.input = input
        self.steps = steps
        self.outputs = outputs
        self.subworkflows = subworkflows
        nodes = steps.flatMap { s -> [Step] in [s] + s.branches }
        index = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($1.name, $0) })
    }

    /// The text of every file its sub-workflows (theirs too) read, by
    /// resolved path: what a run keeps so it never rereads them.
    public var includedSources: [String: String] {
        var out: [String: String] = [:]
        for (path, w) in subworkflows {
            out[path] = w.source
            out.merge(w.includedSources) { a, _ in a }
        }
        return out
    }

    /// A step or a branch ("p.a") by name.
    public func node(_ name: String) -> Step? { index[name].map { nodes[$0] } }

    /// A top-level step by name.
    public func step(_ name: String) -> Step? { node(name).flatMap { $0.parent == nil ? $0 : nil } }

    public func input(merging given: JSONValue?) throws(PlexusError) -> JSONValue {
        var merged = input
        switch given {
        case nil, .null?: break
        case .object(let o)?: merged.merge(o) { _, new in new }
        case let v?: throw PlexusError(.INVALID_ARGUMENT, "a workflow's input is a JSON object, got \(v.typeName)")
        }
        return .object(merged)
    }
}

public struct Step: Sendable {
    public enum Kind: Sendable, Equatable {
        /// Calls a capability (once, or once per item of `forEach`).
        case call(String)
        /// Runs its branches at once; each branch's output stays under its name.
        case parallel
        /// Combines a parallel step's branches: their outputs as one object,
        /// or, with a capability, what that capability makes of them.
        case merge(of: String, call: String?)
        /// Runs the workflow file (resolved path) as a run of its own, linked
        /// to this one; its outputs are the step's output.
        case workflow(String)
        /// Waits for the signal of this name (`plexus workflow signal`); its
        /// JSON is the step's output.
        case wait(String)
    }

    public let name: String
    public let line: Int
    public let kind: Kind
    public let description: String
    public let input: Template?
    /// Every step this one waits for: declared and implied.
    public internal(set) var after: [String]
    public let when: Expression?
    public let whenText: String?
    public let forEach: Expression?
    public let forEachText: String?
    public let concurrency: Int
    public let timeoutMs: Int64
    public let attempts: Int
    public let backoffMs: Int64
    public let backoffMaxMs: Int64
    /// Set: the step waits for `plexus workflow approve RUN STEP` first.
    public let approval: String?
    /// Branches of a parallel step, named "STEP.BRANCH".
    public let branches: [Step]
    /// retry.on: the statuses its task's failures are retried on; nil: the
    /// default (all but those no retry can fix, TaskPolicy.final).
    public var retryOn: [String]? = nil
    /// repeat: { until, max }: the step runs again until `until` holds or
    /// it has run `repeatMax` times (0: no repeat).
    public var repeatMax = 0
    public var repeatUntil: Expression? = nil
    public var repeatUntilText: String? = nil
    /// A wait_for step: how long it waits for its signal (nil: for ever).
    public var waitTimeoutMs: Int64? = nil

    /// The same step, also waiting for `more` (those it has already are not repeated).
    func adding(after more: [String]) -> Step {
        var s = self
        for d in more where !s.after.contains(d) { s.after.append(d) }
        return s
    }

    /// For a branch "p.a": p.
    public var parent: String? { name.firstIndex(of: ".").map { String(name[..<$0]) } }
    public var capability: String? {
        switch kind {
        case .call(let c): return c
        case .merge(_, let c): return c
        case .parallel, .workflow, .wait: return nil
        }
    }

    /// What status and the dashboard call its kind.
    public var kindName: String {
        switch kind {
        case .parallel: return "parallel"
        case .merge: return "merge"
        case .workflow: return "workflow"
        case .wait: return "wait_for"
        case .call: return forEach != nil ? "for_each" : (repeatMax > 0 ? "repeat" : "call")
        }
    }
}
