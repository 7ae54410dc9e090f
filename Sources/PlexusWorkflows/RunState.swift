import PlexusCore
import PlexusStore
import PlexusTasks

/// One run's progress, owned by the engine's thread: every step and branch
/// in its state, and what advancing it asks for (checkpoints to write,
/// tasks to submit). It does no I/O of its own.
final class RunState {
    enum NodeState: String { case pending, awaiting_approval, approved, running, waiting, done, skipped, failed, cancelled }

    struct Node {
        var state = NodeState.pending
        var output = JSONValue.null
        var error: String?
        var started: Int64 = 0
        var finished: Int64 = 0
        /// for_each: the list, the outputs so far, the items out now, the next to send.
        var items: [JSONValue]?
        var itemOutputs: [Int: JSONValue] = [:]
        var inFlight: Set<Int> = []
        var next = 0
        /// A workflow: step: the run it started.
        var child: String?
        var isFinal: Bool { state == .done || state == .skipped || state == .failed || state == .cancelled }
    }

    /// What an advance asks the engine to do.
    struct Effects {
        var checkpoints: [CheckpointRecord] = []
        var events: [(kind: String, data: [String: JSONValue])] = []
        var tasks: [(spec: TaskSpec, node: String, item: Int)] = []
        var runChanged = false
        /// workflow: steps to start as runs of their own (the engine gives them ids, linkChild).
        var children: [(step: String, workflow: Workflow, input: JSONValue)] = []
        /// Signals that came (to store), and those a wait_for step took (seq, step).
        var newSignals: [SignalRecord] = []
        var taken: [(seq: Int64, step: String)] = []
        /// A cancel: the keys of the tasks to cancel, and the sub-workflow runs.
        var cancelTasks: [String] = []
        var cancelChildren: [String] = []
    }

    var record: RunRecord
    let workflow: Workflow
    let input: JSONValue
    var nodes: [String: Node] = [:]
    /// Signals not taken yet, in the order they came; the last seq given.
    var signals: [SignalRecord] = []
    var signalSeq: Int64 = 0
    /// The parent has been told this (sub-workflow) run ended.
    var toldParent = false

    init(record: RunRecord, workflow: Workflow, input: JSONValue, checkpoints: [CheckpointRecord], signals: [SignalRecord] = []) {
        self.record = record
        self.workflow = workflow
        self.input = input
        self.signals = signals.filter { $0.step == nil }
        signalSeq = signals.map(\.seq).max() ?? 0
        // A failed step of a running run runs again (its run was resumed: the
        // store has none then); a finished run shows it as it ended.
        let keepFailed = record.state != "running"
        for s in workflow.nodes { nodes[s.name] = Node() }
        for c in checkpoints {
            guard var n = nodes[c.step], let state = NodeState(rawValue: c.state) else { continue }
            let output = c.output.flatMap { try? JSONValue.parse(Array($0.utf8)) } ?? .null
            if c.item >= 0 {
                if c.state == "done" { n.itemOutputs[c.item] = output }
            } else if state != .failed || keepFailed {
                n.state = state; n.output = output; n.error = c.error
                n.started = c.started_unix_ns; n.finished = c.finished_unix_ns
                if case .workflow? = workflow.node(c.step)?.kind { n.child = c.task_id }
            }
            nodes[c.step] = n
        }
    }

    var id: String { record.id }
    var isActive: Bool { record.state == "running" || nodes.values.contains { $0.state == .running } }

    /// The key that makes a step's task idempotent: a resumed run submits
    /// the same key and gets the task it had, finished or not.
    func key(_ node: String, _ item: Int) -> String {
        "wf/\(record.id)/\(record.generation)/\(node)" + (item >= 0 ? "/\(item)" : "")
    }

    static func parseKey(_ key: String) -> (run: String, generation: Int, node: String, item: Int)? {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 4, parts[0] == "wf", let g = Int(parts[2]) else { return nil }
        let item = parts.count == 5 ? Int(parts[4]) ?? -1 : -1
        return (parts[1], g, parts[3], item)
    }

    // MARK: the scope expressions see

    func scope() -> [String: JSONValue] {
        var steps: [String: JSONValue] = [:]
        for s in workflow.steps {
            guard let n = nodes[s.name], n.isFinal || s.kind == .parallel else { continue }
            var o: [String: JSONValue] = ["state": .string(n.state.rawValue), "output": n.output]
            for b in s.branches {
                if let bn = nodes[b.name], bn.isFinal {
                    o[String(b.name.split(separator: ".").last!)] = .object(["state": .string(bn.state.rawValue), "output": bn.output])
                }
            }
            if s.kind == .parallel { o["output"] = nil }
            if s.repeatMax > 0 { o["iterations"] = .int(Int64(n.itemOutputs.count)) }
            steps[s.name] = .object(o)
        }
        return ["input": input, "steps": .object(steps)]
    }

    // MARK: advancing

    /// Starts, skips and completes whatever can move, until nothing can.
    func advance(now: Int64) -> Effects {
        var fx = Effects()
        guard record.state == "running" else { return fx }
        var moved = true
        while moved && record.state == "running" {
            moved = false
            for s in workflow.nodes {
                if step(s, now: now, &fx) { moved = true }
            }
        }
        if record.state == "running" && workflow.steps.allSatisfy({ nodes[$0.name]!.isFinal }) { complete(now: now, &fx) }
        return fx
    }

    /// One step's next move, if it has one.
    private func step(_ s: Step, now: Int64, _ fx: inout Effects) -> Bool {
        let n = nodes[s.name]!
        switch n.state {
        case .pending, .approved: break
        case .running: return s.forEach != nil ? fanOut(s, now: now, &fx) : false
        case .waiting:
            guard case .wait(let signal) = s.kind else { return false }
            return takeSignal(s, signal, now: now, &fx) || timedOut(s, signal, now: now, &fx)
        default: return false
        }
        guard ready(s) else { return false }
        let scope = self.scope()
        if let when = s.when, n.state == .pending {
            do throws(ExpressionError) {
                if !Expression.truthy(try when.evaluate(scope)) { finishNode(s.name, .skipped, output: .null, now: now, &fx); skipBranches(s, now: now, &fx); return true }
            } catch { fail(s.name, "its condition `\(s.whenText ?? "")` failed: \(error.message)", now: now, &fx); return true }
        }
        if let message = s.approval, n.state == .pending {
            nodes[s.name]!.state = .awaiting_approval
            fx.checkpoints.append(checkpoint(s.name, -1, .awaiting_approval, now: now))
            fx.events.append(("workflow.step.awaiting_approval", ["step": .string(s.name), "message": .string(message)]))
            return true
        }
        nodes[s.name]!.state = .running
        nodes[s.name]!.started = now
        fx.events.append(("workflow.step.started", ["step": .string(s.name)]))
        switch s.kind {
        case .parallel: return true   // its branches are ready now
        case .merge(let of, let capability):
            let merged = branchOutputs(of)
            guard capability != nil else { finishNode(s.name, .done, output: merged, now: now, &fx); return true }
            submit(s, item: -1, scope: scope, fallback: merged, now: now, &fx)
        case .workflow(let path):
            startChild(s, path, scope: scope, now: now, &fx)
        case .wait(let signal):
            nodes[s.name]!.state = .waiting
            fx.checkpoints.append(checkpoint(s.name, -1, .waiting, now: now))   // its timeout counts from here, across restarts
            fx.events.append(("workflow.step.waiting", ["step": .string(s.name), "signal": .string(signal)]))
            _ = takeSignal(s, signal, now: now, &fx)
        case .call where s.repeatMax > 0:
            nextIteration(s, now: now, &fx)
        case .call:
            if let list = s.forEach {
                do throws(ExpressionError) {
                    let v = try list.evaluate(scope)
                    guard case .array(let items) = v else {
                        fail(s.name, "for_each `\(s.forEachText ?? "")` gave \(v.typeName), not a list", now: now, &fx); return true
                    }
                    nodes[s.name]!.items = items
                } catch { fail(s.name, "for_each `\(s.forEachText ?? "")` failed: \(error.message)", now: now, &fx); return true }
                _ = fanOut(s, now: now, &fx)
            } else {
                submit(s, item: -1, scope: scope, fallback: nil, now: now, &fx)
            }
        }
        return true
    }

    /// Its dependencies ended well (done or skipped); a branch: its parallel step runs.
    private func ready(_ s: Step) -> Bool {
        if let p = s.parent { return nodes[p]!.state == .running }
        return s.after.allSatisfy { d in let st = nodes[d]!.state; return st == .done || st == .skipped }
    }

    /// Sends the next items up to the concurrency limit; ends the step when all are in.
    private func fanOut(_ s: Step, now: Int64, _ fx: inout Effects) -> Bool {
        var n = nodes[s.name]!
        guard let items = n.items else { return false }
        var moved = false
        var base: [String: JSONValue]?   // the same for every item: built once
        while n.inFlight.count < s.concurrency && n.next < items.count {
            let i = n.next
            n.next += 1
            if n.itemOutputs[i] != nil { continue }   // checkpointed before a restart
            n.inFlight.insert(i)
            nodes[s.name] = n
            if base == nil { base = scope() }
            var itemScope = base!
            itemScope["item"] = items[i]
            itemScope["index"] = .int(Int64(i))
            submit(s, item: i, scope: itemScope, fallback: nil, now: now, &fx)
            n = nodes[s.name]!
            if n.state != .running { return true }
            moved = true
        }
        nodes[s.name] = n
        if n.state == .running && n.inFlight.isEmpty && n.next >= items.count {
            finishNode(s.name, .done, output: .array(items.indices.map { n.itemOutputs[$0] ?? .null }), now: now, &fx)
            return true
        }
        return moved
    }

    func submit(_ s: Step, item: Int, scope: [String: JSONValue], fallback: JSONValue?, now: Int64, _ fx: inout Effects) {
        let payload: JSONValue
        do throws(ExpressionError) { payload = try s.input?.render(scope) ?? fallback ?? .null } catch {
            fail(s.name, "its input could not be made: \(error.message)", now: now, &fx); return
        }
        var spec = TaskSpec(capability: s.capability!, payload: [])
        switch payload {
        case .null: spec.payload = []
        case .string(let text): spec.payload = Array(text.utf8); spec.contentType = "text/plain"
        default: spec.payload = Array(payload.text.utf8)
        }
        spec.maxAttempts = s.attempts
        spec.backoffMs = s.backoffMs
        spec.backoffMaxMs = s.backoffMaxMs
        spec.timeoutMs = s.timeoutMs
        spec.retryOn = s.retryOn
        spec.idempotencyKey = key(s.name, item)
        fx.tasks.append((spec, s.name, item))
    }

    // MARK: what tasks report

    /// A step's (or item's) task ended.
    func taskEnded(_ t: TaskRecord, node name: String, item: Int, now: Int64) -> Effects {
        var fx = Effects()
        guard let s = workflow.node(name), nodes[name]!.state == .running else { return fx }
        if item >= 0 && (nodes[name]!.itemOutputs[item] != nil || !nodes[name]!.inFlight.contains(item)) { return fx }
        guard t.state == .completed else {
            let what = item >= 0 ? (s.repeatMax > 0 ? "run \(item + 1) of " : "item \(item) of ") : ""
            // A task cancelled by hand (plexus tasks cancel) cancels its step; the run fails and can be resumed.
            fail(name, "\(what)its task \(t.id) (\(t.capability)) was \(t.state == .dead ? "dead-lettered" : t.state.rawValue) after \(t.attempts) attempt(s): \(t.error ?? "")",
                 as: t.state == .cancelled ? .cancelled : .failed, now: now, &fx)
            return fx
        }
        let output = RunState.output(of: t)
        if item >= 0 {
            nodes[name]!.inFlight.remove(item)
            nodes[name]!.itemOutputs[item] = output
            var c = checkpoint(name, item, .done, now: now)
            c.output = output.text; c.task_id = t.id
            fx.checkpoints.append(c)
            if record.state == "running" {
                if s.repeatMax > 0 { nextIteration(s, now: now, &fx) } else { _ = fanOut(s, now: now, &fx) }
            }
        } else {
            finishNode(name, .done, output: output, taskID: t.id, now: now, &fx)
        }
        return fx
    }

    /// The step's task could not be submitted: the step fails (once, however many items it had).
    func refused(_ name: String, _ why: String, now: Int64) -> Effects {
        var fx = Effects()
        if nodes[name]?.state == .running { fail(name, why, now: now, &fx) }
        return fx
    }

    /// A task's result as a value: JSON when it is JSON, else its text.
    static func output(of t: TaskRecord) -> JSONValue {
        guard let r = t.result, !r.isEmpty else { return .null }
        let type = t.result_type ?? ""
        if type.isEmpty || type.contains("json"), let v = try? JSONValue.parse([UInt8](r)) { return v }
        return .string(String(decoding: r, as: UTF8.self))
    }

    func approve(_ step: String, now: Int64) throws(PlexusError) -> Effects {
        guard let n = nodes[step] else {
            throw PlexusError(.INVALID_ARGUMENT, "run \(id) of \(workflow.name) has no step '\(step)'; its steps are \(workflow.steps.map(\.name).joined(separator: ", "))")
        }
        guard n.state == .awaiting_approval else {
            throw PlexusError(.INVALID_ARGUMENT, "step '\(step)' of run \(id) is \(n.state.rawValue), not awaiting approval")
        }
        var fx = Effects()
        nodes[step]!.state = .approved
        fx.checkpoints.append(checkpoint(step, -1, .approved, now: now))
        fx.events.append(("workflow.step.approved", ["step": .string(step)]))
        return fx
    }

    // MARK: endings

    func finishNode(_ name: String, _ state: NodeState, output: JSONValue, taskID: String? = nil, now: Int64, _ fx: inout Effects) {
        nodes[name]!.state = state
        nodes[name]!.output = output
        nodes[name]!.finished = now
        if nodes[name]!.started == 0 { nodes[name]!.started = now }
        var c = checkpoint(name, -1, state, now: now)
        c.output = output.text
        c.task_id = taskID
        fx.checkpoints.append(c)
        fx.events.append(("workflow.step.finished", ["step": .string(name), "state": .string(state.rawValue),
                                                     "ms": .int((now - nodes[name]!.started) / 1_000_000)]))
        if let p = workflow.node(name)?.parent { parallelMaybeDone(p, now: now, &fx) }
    }

    private func parallelMaybeDone(_ p: String, now: Int64, _ fx: inout Effects) {
        guard let s = workflow.step(p), nodes[p]!.state == .running, s.branches.allSatisfy({ nodes[$0.name]!.isFinal }) else { return }
        if let failed = s.branches.first(where: { nodes[$0.name]!.state == .failed || nodes[$0.name]!.state == .cancelled }) {
            fail(p, "its branch \(failed.name) failed", now: now, &fx)
        } else {
            finishNode(p, .done, output: .null, now: now, &fx)
        }
    }

    private func skipBranches(_ s: Step, now: Int64, _ fx: inout Effects) {
        for b in s.branches { finishNode(b.name, .skipped, output: .null, now: now, &fx) }
    }

    /// A parallel step's branches as one object, each under its own name.
    private func branchOutputs(_ p: String) -> JSONValue {
        guard let s = workflow.step(p) else { return .null }
        var o: [String: JSONValue] = [:]
        for b in s.branches { o[String(b.name.split(separator: ".").last!)] = nodes[b.name]!.output }
        return .object(o)
    }

    func fail(_ name: String, _ why: String, as state: NodeState = .failed, now: Int64, _ fx: inout Effects) {
        nodes[name]!.state = state
        nodes[name]!.error = why
        nodes[name]!.finished = now
        var c = checkpoint(name, -1, state, now: now)
        c.error = why
        fx.checkpoints.append(c)
        fx.events.append(("workflow.step.finished", ["step": .string(name), "state": .string(state.rawValue), "error": .string(why)]))
        if let p = workflow.node(name)?.parent { parallelMaybeDone(p, now: now, &fx); return }
        guard record.state == "running" else { return }
        record.state = "failed"
        record.error = "step \(name): \(why)"
        record.finished_unix_ns = now
        fx.runChanged = true
        fx.events.append(("workflow.failed", ["workflow": .string(workflow.name), "step": .string(name), "error": .string(why)]))
    }

    private func complete(now: Int64, _ fx: inout Effects) {
        var files: [String: JSONValue] = [:]
        let scope = self.scope()
        for (name, t) in workflow.outputs {
            do throws(ExpressionError) { files[name] = try t.render(scope) } catch {
                record.state = "failed"
                record.error = "output \(name) could not be made: \(error.message)"
                record.finished_unix_ns = now
                fx.runChanged = true
                fx.events.append(("workflow.failed", ["workflow": .string(workflow.name), "error": .string(record.error!)]))
                return
            }
        }
        record.state = "completed"
        record.outputs = JSONValue.object(files).text
        record.finished_unix_ns = now
        fx.runChanged = true
        fx.events.append(("workflow.completed", ["workflow": .string(workflow.name), "ms": .int((now - record.created_unix_ns) / 1_000_000)]))
    }

    func checkpoint(_ step: String, _ item: Int, _ state: NodeState, now: Int64) -> CheckpointRecord {
        CheckpointRecord(run_id: id, step: step, item: item, state: state.rawValue, output: nil, error: nil, task_id: nil,
                         started_unix_ns: nodes[step]?.started ?? now, finished_unix_ns: now)
    }

    // MARK: what status shows

    func status() -> JSONValue {
        var steps: [JSONValue] = []
        for s in workflow.nodes {
            let n = nodes[s.name]!
            var o: [String: JSONValue] = [
                "name": .string(s.name), "state": .string(n.state.rawValue),
                "kind": .string(s.kindName),
                "started_unix_ns": .int(n.started), "finished_unix_ns": .int(n.finished),
            ]
            if let c = s.capability { o["capability"] = .string(c) }
            if let e = n.error { o["error"] = .string(e) }
            if let a = s.approval { o["approval"] = .string(a) }
            switch s.kind {
            case .workflow(let path):
                o["workflow_file"] = .string(path)
                if let c = n.child { o["run"] = .string(c) }
            case .wait(let signal):
                o["signal"] = .string(signal)
                if let t = s.waitTimeoutMs { o["timeout_ms"] = .int(t) }
            default: break
            }
            if s.repeatMax > 0 {
                o["iterations"] = .int(Int64(n.itemOutputs.count))
                o["max"] = .int(Int64(s.repeatMax))
                o["until"] = .string(s.repeatUntilText ?? "")
            }
            if s.forEach != nil {
                var total = n.items?.count
                if total == nil, n.state == .done, case .array(let outputs) = n.output { total = outputs.count }   // read back from the store
                o["items_done"] = .int(Int64(n.state == .done ? total ?? 0 : n.itemOutputs.count))
                o["items_total"] = total.map { .int(Int64($0)) } ?? .null
                o["items_running"] = .int(Int64(n.inFlight.count))
            }
            steps.append(.object(o))
        }
        var out = RunState.summary(record, steps: steps)
        if !signals.isEmpty, case .object(var o) = out {
            o["signals_pending"] = .array(signals.map { .string($0.name) })   // came, and no step has taken them yet
            out = .object(o)
        }
        return out
    }

    static func summary(_ r: RunRecord, steps: [JSONValue]) -> JSONValue {
        var outputs: [JSONValue] = []
        if let o = r.outputs, case .object(let files)? = try? JSONValue.parse(Array(o.utf8)) { outputs = files.keys.sorted().map(JSONValue.string) }
        return .object([
            "id": .string(r.id), "workflow": .string(r.workflow), "file": .string(r.file), "state": .string(r.state),
            "generation": .int(Int64(r.generation)), "created_unix_ns": .int(r.created_unix_ns), "finished_unix_ns": .int(r.finished_unix_ns),
            "error": r.error.map(JSONValue.string) ?? .null, "steps": .array(steps), "outputs": .array(outputs),
            "parent_run": r.parent_run.map(JSONValue.string) ?? .null, "parent_step": r.parent_step.map(JSONValue.string) ?? .null,
        ])
    }
}
