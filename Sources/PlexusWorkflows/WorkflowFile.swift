import PlexusConfig
import PlexusCore
import PlexusTasks
import Yams

/// Reads a workflow file. Everything is checked before anything runs:
/// unknown fields, names, expressions, references to steps that do not
/// exist or come later, cycles. A mistake is refused with file, line,
/// column and field.
///
/// ```yaml
/// workflow: weather-report          # the workflow's name
/// description: monthly climate of one city
/// input: { path: data.csv }         # defaults for the run's input
/// steps:                            # names: letters, digits, _
///   collect:
///     call: data.collect            # a capability
///     input: { path: "${input.path}" }
///     retry: { attempts: 3, backoff_ms: 200, backoff_max_ms: 5000 }
///     timeout_ms: 10000
///   clean:
///     call: data.clean
///     for_each: steps.collect.output.chunks   # fan-out: one task per item
///     concurrency: 4                # at most 4 at once; the output is the list of outputs (fan-in)
///     input: "${item.text}"         # item and index: the current element
///   analyse:
///     parallel:                     # branches run at once; outputs stay apart
///       climate: { call: data.climate, input: "${steps.clean.output}" }
///       extremes: { call: data.extremes, input: "${steps.clean.output}" }
///   combine:
///     merge: analyse                # output {climate: ..., extremes: ...}; add call: to combine them with an agent
///   anomalies:
///     when: len(flatten(pluck(steps.clean.output, 'rejected'))) > 0   # otherwise skipped
///     call: data.anomalies
///   publish:
///     call: report.write
///     after: [anomalies]            # order without reading an output
///     approval: check the figures first   # waits for plexus workflow approve RUN publish
///   poll:
///     call: report.status           # runs again until `until` holds, at most max times;
///     repeat: { until: "steps.poll.output.ready", max: 10 }   # it reads its last output (steps.poll.output, .iterations)
///   sub:
///     workflow: lib/notify.yaml     # a run of its own (relative to this file); its outputs are this step's output
///     input: { to: ops }
///   go_ahead:
///     wait_for: release             # waits for `plexus workflow signal RUN release JSON`; the JSON is its output
///     timeout_ms: 3600000           # optional; without it the step waits for ever
/// outputs:                          # files the finished run produces
///   report.html: "${steps.publish.output.html}"
/// ```
public enum WorkflowFile {
    /// The file and every file its `workflow:` steps name, from disk.
    public static func load(path: String) throws(ConfigError) -> Workflow {
        try parse(try ConfigFile.readText(path), file: path, includes: .disk())
    }

    /// The text of `file`; its `workflow:` steps' files come from
    /// `includes` (resolved path -> text), or from disk when it is nil.
    public static func parse(_ text: String, file: String, includes: [String: String]? = nil) throws(ConfigError) -> Workflow {
        try parse(text, file: file, includes: includes.map(WorkflowIncludes.texts) ?? .disk())
    }

    static func parse(_ text: String, file: String, includes: WorkflowIncludes) throws(ConfigError) -> Workflow {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw ConfigFile.syntaxError(error, file: file, text: text) }
        guard let root else { throw ConfigError(file: file, line: 1, column: 1, field: "", problem: "the file is empty; a workflow needs `workflow:` and `steps:`") }
        var inc = includes
        inc.chain.append(WorkflowIncludes.normalize(file))
        return try WorkflowReader(r: Reader(file: file), includes: inc).workflow(root, source: text)
    }
}

struct WorkflowReader {
    let r: Reader
    let includes: WorkflowIncludes
    static let stepKeys = ["call", "input", "after", "when", "for_each", "concurrency", "timeout_ms", "retry", "approval",
                           "parallel", "merge", "description", "repeat", "workflow", "wait_for"]
    /// The most a repeat may run: a bound, so a condition that never holds cannot loop for ever.
    static let repeatLimit: Int64 = 10_000
    static let branchKeys = ["call", "input", "when", "timeout_ms", "retry", "description"]

    func workflow(_ root: Node, source: String) throws(ConfigError) -> Workflow {
        let top = try r.mapping(root, "", keys: ["workflow", "description", "input", "steps", "outputs"])
        guard let nameNode = top["workflow"] else { throw r.fail(root, "workflow", "missing: name the workflow (workflow: NAME)") }
        let name = try r.string(nameNode, "workflow")
        try checkName(name, nameNode, "workflow", allowDash: true)
        var input: [String: JSONValue] = [:]
        if let n = top["input"] {
            guard case .object(let o) = try r.json(n, "input") else { throw r.fail(n, "input", "expected a mapping of input names to default values") }
            input = o
        }
        guard let stepsNode = top["steps"] else { throw r.fail(root, "steps", "missing: a workflow needs at least one step") }
        let entries: [(String, Node)] = try r.mapping(stepsNode, "steps", keys: nil)
        guard !entries.isEmpty else { throw r.fail(stepsNode, "steps", "a workflow needs at least one step") }
        let names = Set(entries.map(\.0))
        var parallels: [String: Set<String>] = [:]
        for (n, node) in entries {
            if case .mapping(let m) = node, let p = m["parallel"], case .mapping(let b) = p {
                parallels[n] = Set(b.keys.compactMap { if case .scalar(let s) = $0 { s.string } else { nil } })
            }
        }
        let context = Context(names: names, parallels: parallels)
        var steps: [Step] = []
        var subworkflows: [String: Workflow] = [:]
        for (n, node) in entries {
            let s = try step(n, node, context)
            if case .workflow(let path) = s.kind, subworkflows[path] == nil {
                subworkflows[path] = try subworkflow(path, node, "steps.\(n).workflow")
            }
            steps.append(s)
        }
        try checkCycles(steps, stepsNode)
        var outputs: [(String, Template)] = []
        if let o = top["outputs"] {
            for (file, v) in try r.mapping(o, "outputs", keys: nil) as [(String, Node)] {
                guard !file.isEmpty, !file.contains("/"), file != ".", file != ".." else {
                    throw r.fail(v, "outputs.\(file)", "an output is a plain file name, without '/'")
                }
                let t = try template(v, "outputs.\(file)")
                try checkReferences(t.expressions, v, "outputs.\(file)", context, allowItem: false, own: nil)
                outputs.append((file, t))
            }
        }
        var description = ""
        if let d = top["description"] { description = try r.string(d, "description") }
        return Workflow(name: name, description: description, file: r.file, source: source, input: input, steps: steps, outputs: outputs,
                        subworkflows: subworkflows)
    }

    /// A `workflow:` step's file, read and checked; refused when it is one
    /// of the files that lead to it (they would include each other for ever).
    func subworkflow(_ path: String, _ stepNode: Node, _ field: String) throws(ConfigError) -> Workflow {
        guard case .mapping(let m) = stepNode, let node = m["workflow"] else { throw r.fail(stepNode, field, "missing") }
        if let from = includes.chain.firstIndex(of: path) {
            throw r.fail(node, field, "the workflow files include each other in a circle: \((includes.chain[from...] + [path]).joined(separator: " -> "))")
        }
        let text: String
        switch includes.read(path) {
        case .success(let t): text = t
        case .failure(let e): throw r.fail(node, field, e.problem)
        }
        return try WorkflowFile.parse(text, file: path, includes: includes)
    }

    struct Context {
        let names: Set<String>
        let parallels: [String: Set<String>]
    }

    func step(_ name: String, _ node: Node, _ c: Context) throws(ConfigError) -> Step {
        let field = "steps.\(name)"
        try checkName(name, node, field, allowDash: false)
        let m = try r.mapping(node, field, keys: WorkflowReader.stepKeys)
        let kinds = ["call", "parallel", "merge", "workflow", "wait_for"].filter { m[$0] != nil }
        guard !kinds.isEmpty else {
            throw r.fail(node, field, "a step needs call: (a capability), parallel: (branches), merge: (a parallel step), workflow: (a file) or wait_for: (a signal)")
        }
        if kinds.contains("parallel") && kinds.count > 1 {
            throw r.fail(node, field, "a parallel step cannot also have \(kinds.filter { $0 != "parallel" }.joined(separator: " or ")); its branches call")
        }
        for k in ["workflow", "wait_for"] where kinds.contains(k) && kinds.count > 1 {
            throw r.fail(node, field, "a \(k) step cannot also have \(kinds.filter { $0 != k }.joined(separator: " or "))")
        }
        if kinds == ["workflow"] || kinds == ["wait_for"] {
            // Fields that only mean something for a capability's task.
            let own = kinds == ["workflow"] ? ["retry", "timeout_ms"] : ["retry", "input"]
            for f in own + ["for_each", "concurrency"] where m[f] != nil {
                throw r.fail(m[f]!, "\(field).\(f)", "\(f) goes with call:; a \(kinds[0]) step has none")
            }
        }
        if m["for_each"] != nil && kinds != ["call"] { throw r.fail(m["for_each"]!, "\(field).for_each", "for_each goes with call: alone") }
        if m["concurrency"] != nil && m["for_each"] == nil { throw r.fail(m["concurrency"]!, "\(field).concurrency", "concurrency limits a for_each step; this step has no for_each") }

        var after: [String] = []
        if let a = m["after"] {
            guard case .sequence(let items) = a else { throw r.fail(a, "\(field).after", "expected a list of step names, such as [fetch, clean]") }
            for i in items {
                let d = try r.string(i, "\(field).after")
                guard c.names.contains(d) else { throw r.fail(i, "\(field).after", "no step named '\(d)'; the steps are \(c.names.sorted().joined(separator: ", "))") }
                guard d != name else { throw r.fail(i, "\(field).after", "a step cannot wait for itself") }
                after.append(d)
            }
        }
        var kind = Step.Kind.parallel
        var branches: [Step] = []
        if let capNode = m["call"] { kind = .call(try capability(capNode, "\(field).call")) }
        if let fileNode = m["workflow"] {
            let f = try r.string(fileNode, "\(field).workflow")
            guard !f.isEmpty, f.hasSuffix(".yaml") || f.hasSuffix(".yml") else {
                throw r.fail(fileNode, "\(field).workflow", "expected a workflow file (.yaml), relative to this file, found \"\(f)\"")
            }
            kind = .workflow(WorkflowIncludes.resolve(f, from: r.file))
        }
        if let signalNode = m["wait_for"] {
            let n = try r.string(signalNode, "\(field).wait_for")
            do throws(PlexusError) { try WorkflowReader.checkSignalName(n) } catch { throw r.fail(signalNode, "\(field).wait_for", error.detail) }
            kind = .wait(n)
        }
        if let mergeNode = m["merge"] {
            let of = try r.string(mergeNode, "\(field).merge")
            guard c.parallels[of] != nil else {
                let ps = c.parallels.keys.sorted()
                throw r.fail(mergeNode, "\(field).merge", "'\(of)' is not a parallel step" + (ps.isEmpty ? "; this workflow has none" : "; the parallel steps are \(ps.joined(separator: ", "))"))
            }
            kind = .merge(of: of, call: try m["call"].map { n throws(ConfigError) in try capability(n, "\(field).call") })
            after.append(of)
        }
        if let p = m["parallel"] {
            let entries: [(String, Node)] = try r.mapping(p, "\(field).parallel", keys: nil)
            guard entries.count >= 2 else { throw r.fail(p, "\(field).parallel", "a parallel step needs at least two branches") }
            for (b, bn) in entries {
                let branch = try self.branch("\(name).\(b)", b, bn, c)
                after += branch.after
                branches.append(branch)
            }
        }
        let forEach = try m["for_each"].map { n throws(ConfigError) in try expression(n, "\(field).for_each") }
        if let (e, _) = forEach { after += try checkReferences([e], m["for_each"]!, "\(field).for_each", c, allowItem: false, own: name) }
        let looping = try repeatFields(m, field, c, own: name, kinds: kinds)
        let f = try callFields(m, field, c, own: name, itemInInput: forEach != nil, readsOwn: looping != nil)
        var step = Step(name: name, line: node.mark?.line ?? 0, kind: kind, description: f.description,
                    input: f.input, after: unique(after + f.reads), when: f.when?.0, whenText: f.when?.1, forEach: forEach?.0, forEachText: forEach?.1,
                    concurrency: Int(try m["concurrency"].map { n throws(ConfigError) in try r.integer(n, "\(field).concurrency", in: 1...10_000) } ?? 8),
                    timeoutMs: f.timeoutMs, attempts: f.retry.attempts, backoffMs: f.retry.backoffMs, backoffMaxMs: f.retry.backoffMaxMs,
                    approval: try m["approval"].map { n throws(ConfigError) in try r.string(n, "\(field).approval") }, branches: branches,
                    retryOn: f.retry.on)
        if let looping {
            step.repeatMax = looping.max
            step.repeatUntil = looping.until
            step.repeatUntilText = looping.text
            step = step.adding(after: looping.reads)
        }
        if case .wait = kind, m["timeout_ms"] != nil { step.waitTimeoutMs = f.timeoutMs }
        return step
    }

    /// repeat: { until: EXPR, max: N } on a call step: EXPR may read the
    /// step's own last output (steps.NAME.output) and how many times it ran
    /// (steps.NAME.iterations); other steps it reads are waited for.
    func repeatFields(_ m: [String: Node], _ field: String, _ c: Context, own: String, kinds: [String])
        throws(ConfigError) -> (max: Int, until: Expression, text: String, reads: [String])? {
        guard let node = m["repeat"] else { return nil }
        let f = "\(field).repeat"
        guard kinds == ["call"], m["for_each"] == nil else {
            throw r.fail(node, f, "repeat goes with call: alone (not with \((kinds.filter { $0 != "call" } + (m["for_each"] != nil ? ["for_each"] : [])).joined(separator: " or ")))")
        }
        let rm = try r.mapping(node, f, keys: ["until", "max"])
        guard let maxNode = rm["max"] else { throw r.fail(node, "\(f).max", "missing: bound the loop (max: N, 1 to \(WorkflowReader.repeatLimit))") }
        let most = try r.integer(maxNode, "\(f).max", in: 1...WorkflowReader.repeatLimit)
        guard let untilNode = rm["until"] else { throw r.fail(node, "\(f).until", "missing: the condition that ends the loop, such as steps.\(own).output.ready") }
        let (e, text) = try expression(untilNode, "\(f).until")
        let reads = try checkReferences([e], untilNode, "\(f).until", c, allowItem: false, own: nil).filter { $0 != own }
        return (Int(most), e, text, reads)
    }

    /// A signal's name: what `plexus workflow signal RUN NAME` names.
    static func checkSignalName(_ n: String) throws(PlexusError) {
        let ok = !n.isEmpty && n.utf8.count <= 128 && n.unicodeScalars.allSatisfy { c in
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "_" || c == "-" || c == "."
        }
        guard ok else { throw PlexusError(.INVALID_ARGUMENT, "'\(n)' is not a usable signal name: 1 to 128 letters, digits, _, - and .") }
    }

    func branch(_ full: String, _ name: String, _ node: Node, _ c: Context) throws(ConfigError) -> Step {
        let field = "steps.\(full.replacingOccurrences(of: ".", with: ".parallel."))"
        try checkName(name, node, field, allowDash: false)
        let m = try r.mapping(node, field, keys: WorkflowReader.branchKeys)
        guard let capNode = m["call"] else { throw r.fail(node, field, "a branch needs call: (a capability)") }
        let f = try callFields(m, field, c, own: String(full.prefix { $0 != "." }), itemInInput: false, readsOwn: false)
        return Step(name: full, line: node.mark?.line ?? 0, kind: .call(try capability(capNode, "\(field).call")), description: f.description,
                    input: f.input, after: unique(f.reads), when: f.when?.0, whenText: f.when?.1, forEach: nil, forEachText: nil, concurrency: 1,
                    timeoutMs: f.timeoutMs, attempts: f.retry.attempts, backoffMs: f.retry.backoffMs, backoffMaxMs: f.retry.backoffMaxMs,
                    approval: nil, branches: [], retryOn: f.retry.on)
    }

    /// What steps and branches read alike: when, input (with the steps
    /// they read), retry, timeout_ms, description.
    func callFields(_ m: [String: Node], _ field: String, _ c: Context, own: String, itemInInput: Bool, readsOwn: Bool) throws(ConfigError)
        -> (when: (Expression, String)?, input: Template?, reads: [String], retry: (attempts: Int, backoffMs: Int64, backoffMaxMs: Int64, on: [String]?),
            timeoutMs: Int64, description: String) {
        var reads: [String] = []
        let when = try m["when"].map { n throws(ConfigError) in try expression(n, "\(field).when") }
        let input = try m["input"].map { n throws(ConfigError) in try template(n, "\(field).input") }
        if let (e, _) = when { reads += try checkReferences([e], m["when"]!, "\(field).when", c, allowItem: false, own: own) }
        // A repeat step's input may read its own last output (null the first time).
        if let input {
            reads += try checkReferences(input.expressions, m["input"]!, "\(field).input", c, allowItem: itemInInput, own: readsOwn ? nil : own)
                .filter { $0 != own }
        }
        return (when, input, reads, try retry(m["retry"], field),
                try m["timeout_ms"].map { n throws(ConfigError) in try r.integer(n, "\(field).timeout_ms", in: 1...86_400_000) } ?? 30_000,
                try m["description"].map { n throws(ConfigError) in try r.string(n, "\(field).description") } ?? "")
    }

    func retry(_ node: Node?, _ field: String) throws(ConfigError) -> (attempts: Int, backoffMs: Int64, backoffMaxMs: Int64, on: [String]?) {
        guard let node else { return (1, 200, 30_000, nil) }
        let m = try r.mapping(node, "\(field).retry", keys: ["attempts", "backoff_ms", "backoff_max_ms", "on"])
        var on: [String]?
        if let n = m["on"] {
            guard case .sequence(let items) = n else {
                throw r.fail(n, "\(field).retry.on", "expected a list of status names, such as [TIMEOUT, INVALID_ARGUMENT]")
            }
            on = []
            for i in items {
                let name = try r.string(i, "\(field).retry.on")
                if let problem = TaskPolicy.checkRetryOn([name]) { throw r.fail(i, "\(field).retry.on", problem) }
                on!.append(name)
            }
        }
        let attempts = Int(try m["attempts"].map { n throws(ConfigError) in try r.integer(n, "\(field).retry.attempts", in: 1...1000) } ?? 3)
        let backoff = try m["backoff_ms"].map { n throws(ConfigError) in try r.integer(n, "\(field).retry.backoff_ms", in: 0...3_600_000) } ?? 200
        let most = try m["backoff_max_ms"].map { n throws(ConfigError) in try r.integer(n, "\(field).retry.backoff_max_ms", in: 0...86_400_000) } ?? max(30_000, backoff)
        return (attempts, backoff, most, on)
    }

    func capability(_ node: Node, _ field: String) throws(ConfigError) -> String {
        let s = try r.string(node, field)
        do throws(PlexusError) { try Names.check(s, what: "capability") } catch { throw r.fail(node, field, error.detail) }
        return s
    }

    func checkName(_ s: String, _ node: Node, _ field: String, allowDash: Bool) throws(ConfigError) {
        let ok = !s.isEmpty && s.unicodeScalars.allSatisfy { c in
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "_" || (allowDash && c == "-")
        } && !("0"..."9").contains(s.unicodeScalars.first!)
        guard ok else {
            throw r.fail(node, field, "'\(s)' is not a usable name: letters, digits and _\(allowDash ? " and -" : ""), not starting with a digit")
        }
    }

    /// An expression field: `len(x) > 0`, or the same wrapped in ${...}.
    func expression(_ node: Node, _ field: String) throws(ConfigError) -> (Expression, String) {
        var text = try r.string(node, field).trimmingCharacters(in: .whitespaces)
        var shift = 0
        if text.hasPrefix("${") && text.hasSuffix("}") { text = String(text.dropFirst(2).dropLast()); shift = 2 }
        do throws(ExpressionError) { return (try Expression.parse(text), text) } catch {
            throw at(node, field, offset: error.offset + shift, "\(error.message) (in `\(text)`)")
        }
    }

    /// A template: a YAML value whose strings may hold ${...}.
    func template(_ node: Node, _ field: String) throws(ConfigError) -> Template {
        try checkStrings(node, field)
        let value = try r.json(node, field)
        do throws(ExpressionError) { return try Template(value) } catch {
            throw r.fail(node, field, error.message)
        }
    }

    /// Compiles every string on its own, so a mistake names its own line.
    func checkStrings(_ node: Node, _ field: String) throws(ConfigError) {
        switch node {
        case .scalar(let s) where s.string.contains("${"):
            do throws(ExpressionError) { _ = try Template.pieces(s.string) } catch {
                throw at(node, field, offset: error.offset, "\(error.message) (in `\(s.string)`)")
            }
        case .mapping:
            for (k, v) in try r.mapping(node, field, keys: nil) as [(String, Node)] { try checkStrings(v, "\(field).\(k)") }
        case .sequence(let items):
            for (i, v) in items.enumerated() { try checkStrings(v, "\(field)[\(i)]") }
        default: break
        }
    }

    func at(_ node: Node, _ field: String, offset: Int, _ problem: String) -> ConfigError {
        var column = (node.mark?.column ?? 0) + offset
        if case .scalar(let s) = node, s.style != .plain { column += 1 }
        return ConfigError(file: r.file, line: node.mark?.line ?? 0, column: column, field: field, problem: problem)
    }

    /// The steps the expressions read, each checked: it exists, it is not
    /// this step, a parallel step is read one branch at a time. item and
    /// index only where a for_each gives them.
    func checkReferences(_ exprs: [Expression], _ node: Node, _ field: String, _ c: Context, allowItem: Bool, own: String?) throws(ConfigError) -> [String] {
        var deps: [String] = []
        for e in exprs {
            if !allowItem, let n = e.rootNames.first(where: { $0 == "item" || $0 == "index" }) {
                throw r.fail(node, field, "'\(n)' exists only in the input of a for_each step")
            }
            for (s, b) in e.stepReferences {
                guard s != "*" else { throw r.fail(node, field, "name the step: steps.NAME, not steps[...]") }
                guard c.names.contains(s) else { throw r.fail(node, field, "no step named '\(s)'; the steps are \(c.names.sorted().joined(separator: ", "))") }
                guard s != own else { throw r.fail(node, field, "a step cannot read its own output (steps.\(s))") }
                if let branches = c.parallels[s] {
                    guard let b, branches.contains(b) else {
                        throw r.fail(node, field, "steps.\(s) is a parallel step: read one branch (steps.\(s).\(branches.sorted().first!).output) or combine them with a merge step (merge: \(s))")
                    }
                }
                deps.append(s)
            }
        }
        return deps
    }

    func checkCycles(_ steps: [Step], _ node: Node) throws(ConfigError) {
        let byName = Dictionary(uniqueKeysWithValues: steps.map { ($0.name, $0) })
        var state: [String: Int] = [:]   // 1 visiting, 2 done
        func visit(_ n: String, _ path: [String]) -> [String]? {
            if state[n] == 2 { return nil }
            if state[n] == 1 { return path + [n] }
            state[n] = 1
            for d in byName[n]?.after ?? [] { if let cycle = visit(d, path + [n]) { return cycle } }
            state[n] = 2
            return nil
        }
        for s in steps {
            if let cycle = visit(s.name, []) {
                let from = cycle.firstIndex(of: cycle.last!)!
                let loop = cycle[from...].reversed().joined(separator: " -> ")
                let line = byName[cycle.last!]?.line ?? 0
                throw ConfigError(file: r.file, line: line, column: 1, field: "steps.\(cycle.last!)", problem: "the steps wait for each other in a circle: \(loop)")
            }
        }
    }

    func unique(_ xs: [String]) -> [String] {
        var seen = Set<String>()
        return xs.filter { seen.insert($0).inserted }
    }
}
