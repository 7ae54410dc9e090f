import FoundationEssentials
import Glibc
import Logging
import PlexusConfig
import PlexusCore
import PlexusHost
import PlexusStore
import PlexusTasks
import PlexusThreads
import Synchronization
import GRDB

/// Runs workflows on the task scheduler: each step (each item of a
/// for_each) is a durable task whose idempotency key names the run, the
/// step and the item. A step's completion is checkpointed before anything
/// that depends on it starts, so a host killed at any moment resumes each
/// run from its checkpoints: finished steps are not run again, and a step
/// that was running gets its own task back (finished or still queued)
/// rather than a new one.
///
/// One thread owns every run. Each turn it takes what arrived (new runs,
/// ended tasks, approvals), advances the runs, writes all checkpoints in
/// one transaction, then submits all new tasks in one more.
public final class WorkflowEngine: @unchecked Sendable {
    let store: Store
    private let scheduler: Scheduler
    private let logger = Logger(label: "plexus.workflows")
    private let ids = IDGenerator()
    private let seq: Atomic<Int64>

    private enum Input {
        case adopt(RunState)
        case ended(TaskRecord)
        case approve(String, String, (PlexusError?) -> Void)
        /// run, step: the scheduler refused the step's task.
        case refused(String, String, String)
        case cancel(String, (PlexusError?) -> Void)
        /// run, signal name, its JSON.
        case signal(String, String, JSONValue, (PlexusError?) -> Void)
        /// parent run, its step, the sub-workflow run that ended.
        case childEnded(String, String, RunRecord)
    }

    private let lock = ConditionLock()
    private var inbox: [Input] = []
    private var stopping = false
    private var thread: OwnedThread?
    /// Status of the runs the engine holds, for readers on other threads.
    private var snapshots: [String: JSONValue] = [:]

    // Owned by the engine thread.
    private var runs: [String: RunState] = [:]
    /// When each running step started (monotonic ns), by "run/step": its span's start.
    private var stepStarts: [String: Int64] = [:]
    /// When the next wait_for step times out (monotonic ns): the loop wakes then.
    private var wakeAt: Int64?

    /// Set up before the scheduler starts: the engine hears of every task that ends.
    public init(scheduler: Scheduler) throws {
        self.scheduler = scheduler
        store = scheduler.store
        seq = Atomic(try store.lastRunSeq())
        scheduler.onFinished = { [weak self] t in
            guard let key = t.idempotency_key, key.hasPrefix("wf/") else { return }
            self?.post(.ended(t))
        }
    }

    /// Takes up every run the store holds as running, then starts.
    public func start() throws {
        for r in try store.runningRuns() {
            do throws(PlexusError) {
                post(.adopt(try load(r)))
                logger.info("workflow run resumed after a restart", metadata: ["run": "\(r.id)", "workflow": "\(r.workflow)"])
            } catch {
                logger.error("workflow run cannot resume", metadata: ["run": "\(r.id)", "error": "\(error.detail)"])
            }
        }
        thread = try startThread(name: "plexus-workflows") { [unowned self] in loop() }
    }

    public func stop() {
        let t = lock.withLock { () -> OwnedThread? in stopping = true; lock.signal(); defer { thread = nil }; return thread }
        t?.join()
    }

    // MARK: what callers ask (any thread)

    /// Stores a new run (on disk when this returns) and starts it.
    public func run(_ w: Workflow, input given: JSONValue?) throws(PlexusError) -> RunRecord {
        // Relative paths (a file's defaults too) name files in the host's
        // directory: made absolute here, since a sandboxed agent's is `/`.
        var input = try w.input(merging: given)
        if let cwd = InputPaths.currentDirectory() { input = InputPaths.absolutize(input, cwd: cwd).0 }
        let now = Clock.unixNanos()
        let included = w.includedSources
        let r = RunRecord(id: ids.next().hex, seq: seq.add(1, ordering: .relaxed).newValue, workflow: w.name, file: w.file,
                          source: w.source, input: input.text, state: "running", generation: 0, created_unix_ns: now,
                          includes: included.isEmpty ? nil : JSONValue.object(included.mapValues(JSONValue.string)).text)
        try write { db in
            try r.insert(db)
            try Store.appendEvent(db, kind: "workflow.started", subject: r.id,
                                  data: ["workflow": .string(w.name), "file": .string(w.file), "steps": .int(Int64(w.steps.count))], at: now)
        }
        let state = RunState(record: r, workflow: w, input: input, checkpoints: [])
        lock.withLock { snapshots[r.id] = state.status() }
        post(.adopt(state))
        return r
    }

    /// A failed run goes on from its checkpoints: its failed steps, and
    /// those that never ran, run again (with new task keys).
    public func resume(_ id: String) throws(PlexusError) -> RunRecord {
        guard var r = try read({ try $0.run(id) }) else { throw PlexusError(.INVALID_ARGUMENT, "no workflow run \(id)") }
        if lock.withLock({ snapshots[id] }) != nil && r.state == "running" {
            throw PlexusError(.INVALID_ARGUMENT, "run \(id) is running already; `plexus workflow status \(id)` shows where it is")
        }
        guard r.state != "completed" else { throw PlexusError(.INVALID_ARGUMENT, "run \(id) completed already; there is nothing to resume") }
        guard r.state != "cancelled" else { throw PlexusError(.INVALID_ARGUMENT, "run \(id) was cancelled; a cancelled run is not resumed: start a new one") }
        let now = Clock.unixNanos()
        r.state = "running"; r.generation += 1; r.error = nil; r.finished_unix_ns = 0
        let resumed = r
        try write { db in
            try resumed.update(db)
            try db.execute(sql: "DELETE FROM workflow_steps WHERE run_id = ? AND state IN ('failed', 'cancelled')", arguments: [id])
            try Store.appendEvent(db, kind: "workflow.resumed", subject: id,
                                  data: ["workflow": .string(resumed.workflow), "generation": .int(Int64(resumed.generation))], at: now)
        }
        let state = try load(resumed)
        lock.withLock { snapshots[id] = state.status() }
        post(.adopt(state))
        return resumed
    }

    public func approve(run: String, step: String) throws(PlexusError) {
        try requireRunning(run, "approved")
        try ask { .approve(run, step, $0) }
    }

    /// `plexus workflow cancel`: the run ends cancelled, with its started
    /// steps, their open tasks (cancelled through the scheduler, as
    /// `plexus tasks cancel` does) and its sub-workflow runs. Returns once
    /// that is on disk.
    public func cancel(run: String) throws(PlexusError) {
        try requireRunning(run, "cancelled")
        try ask { .cancel(run, $0) }
    }

    /// `plexus workflow signal`: stored with the run before this returns;
    /// a wait_for step of that name takes it now or when it comes to wait.
    public func signal(run: String, name: String, payload: JSONValue) throws(PlexusError) {
        try WorkflowReader.checkSignalName(name)
        try requireRunning(run, "signalled")
        try ask { .signal(run, name, payload, $0) }
    }

    /// Refuses a run the engine does not hold as running, saying what it is.
    private func requireRunning(_ run: String, _ what: String) throws(PlexusError) {
        guard lock.withLock({ snapshots[run] }) == nil else { return }
        let r = try read { try $0.run(run) }
        throw PlexusError(.INVALID_ARGUMENT, r.map { "run \(run) is \($0.state); only a running run can be \(what)" } ?? "no workflow run \(run)")
    }

    /// Posts what `make` builds and waits for the engine thread's answer.
    private func ask(_ make: (@escaping (PlexusError?) -> Void) -> Input) throws(PlexusError) {
        let outcome = OneShot<PlexusError?>()
        post(make { outcome.set($0) })
        if let e = outcome.wait() { throw e }
    }

    /// A run's status: live if the engine holds it, else from the store.
    public func status(_ id: String) throws(PlexusError) -> JSONValue {
        if let s = lock.withLock({ snapshots[id] }) { return withTrace(withAttempts(withWaitReasons(s), run: id), run: id) }
        guard let r = try read({ try $0.run(id) }) else { throw PlexusError(.INVALID_ARGUMENT, "no workflow run \(id)") }
        return withTrace(withAttempts(try load(r).status(), run: id), run: id)
    }

    /// The run's trace id (WorkflowTrace), for `plexus trace`.
    private func withTrace(_ s: JSONValue, run id: String) -> JSONValue {
        guard case .object(var o) = s else { return s }
        o["trace"] = .string(WorkflowTrace.trace(run: id).hex)
        return .object(o)
    }

    /// Each tried step's attempts and last failure (RunAttempts); the status
    /// without them if the store cannot be read.
    private func withAttempts(_ s: JSONValue, run id: String) -> JSONValue {
        guard let tasks = try? store.stepTasks(of: id) else { return s }
        return RunAttempts.annotate(s, RunAttempts.tally(tasks))
    }

    /// A running step whose capability no active agent provides says why it
    /// waits ("waiting": "no agent provides data.colect"): its task's
    /// timeout_ms and attempts still bound the wait (Scheduler.awaitProvider).
    private func withWaitReasons(_ s: JSONValue) -> JSONValue {
        guard case .object(var run) = s, case .array(let steps)? = run["steps"] else { return s }
        run["steps"] = .array(steps.map { step in
            guard case .object(var o) = step, o["state"] == .string("running"), case .string(let c)? = o["capability"],
                  let why = scheduler.whyUnprovided(c) else { return step }
            o["waiting"] = .string(why)
            return .object(o)
        })
        return .object(run)
    }

    public func list(limit: Int) throws(PlexusError) -> [JSONValue] {
        try read { try $0.runs(limit: limit) }.map { r in
            if let s = lock.withLock({ snapshots[r.id] }) { return s }
            return RunState.summary(r, steps: [])
        }
    }

    /// What a completed run produced: file name -> content.
    public func outputs(_ id: String) throws(PlexusError) -> JSONValue {
        guard let r = try read({ try $0.run(id) }) else { throw PlexusError(.INVALID_ARGUMENT, "no workflow run \(id)") }
        guard r.state == "completed", let o = r.outputs else {
            throw PlexusError(.UNAVAILABLE, "run \(id) is \(r.state); outputs exist once it completes")
        }
        return (try? JSONValue.parse(Array(o.utf8))) ?? .object([:])
    }

    private func load(_ r: RunRecord) throws(PlexusError) -> RunState {
        let w: Workflow
        do throws(ConfigError) { w = try WorkflowFile.parse(run: r) } catch {
            throw PlexusError(.INVALID_ARGUMENT, "run \(r.id): its workflow no longer reads: \(error)")
        }
        let input = (try? JSONValue.parse(Array(r.input.utf8))) ?? .object([:])
        return RunState(record: r, workflow: w, input: input, checkpoints: try read { try $0.checkpoints(of: r.id) },
                        signals: try read { try $0.signals(of: r.id) })
    }

    private func read<T>(_ body: (Store) throws -> T) throws(PlexusError) -> T {
        do { return try body(store) } catch { throw PlexusError(.INTERNAL, "the workflow store failed: \(error)") }
    }

    private func write(_ work: @escaping (Database) throws -> Void) throws(PlexusError) {
        do { try store.commit(work) } catch let e as PlexusError { throw e } catch {
            throw PlexusError(.INTERNAL, "the workflow store failed: \(error)")
        }
    }

    private func post(_ i: Input) {
        lock.withLock { inbox.append(i); lock.signal() }
    }

    // MARK: the engine thread

    private func loop() {
        while true {
            let inputs: [Input]? = lock.withLock {
                while inbox.isEmpty && !stopping {
                    guard let w = wakeAt else { lock.wait(); continue }
                    if Clock.monotonicNanos() >= w { break }   // a wait_for step times out
                    lock.wait(untilMonotonic: w)
                }
                if stopping { return nil }
                defer { inbox.removeAll(keepingCapacity: true) }
                return inbox
            }
            guard let inputs else { return }
            turn(inputs)
        }
    }

    /// One turn: apply the inputs, advance, checkpoint, submit.
    private func turn(_ inputs: [Input]) {
        let now = Clock.unixNanos()
        var effects: [(RunState, RunState.Effects)] = []
        var replies: [(PlexusError?) -> Void] = []
        var failures: [(PlexusError?) -> Void] = []
        var touched: [String: RunState] = [:]
        for i in inputs {
            switch i {
            case .adopt(let r):
                runs[r.id] = r; touched[r.id] = r
            case .ended(let t):
                guard let k = RunState.parseKey(t.idempotency_key ?? ""), let r = runs[k.run], r.record.generation == k.generation else { continue }
                effects.append((r, r.taskEnded(t, node: k.node, item: k.item, now: now))); touched[r.id] = r
            case .refused(let run, let node, let why):
                guard let r = runs[run] else { continue }
                effects.append((r, r.refused(node, why, now: now))); touched[r.id] = r
            case .approve(let run, let step, let reply):
                guard let r = runs[run] else { failures.append(reply); continue }
                do throws(PlexusError) { effects.append((r, try r.approve(step, now: now))); touched[r.id] = r; replies.append(reply) }
                catch { let e = error; replies.append { _ in reply(e) } }
            case .cancel(let run, let reply):
                guard let r = runs[run] else { failures.append(reply); continue }
                do throws(PlexusError) { effects.append((r, try r.cancel(now: now))); touched[r.id] = r; replies.append(reply) }
                catch { let e = error; replies.append { _ in reply(e) } }
            case .signal(let run, let name, let payload, let reply):
                guard let r = runs[run], r.record.state == "running" else { failures.append(reply); continue }
                do throws(PlexusError) { effects.append((r, try r.signal(name, payload: payload, now: now))); touched[r.id] = r; replies.append(reply) }
                catch { let e = error; replies.append { _ in reply(e) } }
            case .childEnded(let parent, let step, let child):
                guard let r = runs[parent] else { continue }
                effects.append((r, r.childEnded(step, child, now: now))); touched[r.id] = r
            }
        }
        // A cancelled run's sub-workflow runs are cancelled with it (theirs too).
        var cancelling = effects.flatMap { $0.1.cancelChildren }
        while let c = cancelling.popLast() {
            guard let r = runs[c], let fx = try? r.cancel(now: now) else { continue }
            effects.append((r, fx)); touched[r.id] = r
            cancelling += fx.cancelChildren
        }
        // A wait_for step whose timeout has passed.
        for r in runs.values where touched[r.id] == nil { if let d = r.nextDeadline, d <= now { touched[r.id] = r } }
        for r in touched.values { effects.append((r, r.advance(now: now))) }
        let children = makeChildren(&effects, now: now)
        let ok = checkpoint(effects, children: children, now: now)
        cancelTasks(effects.flatMap { $0.1.cancelTasks })
        if scheduler.tracer.enabled { trace(effects) }
        submit(effects.flatMap { r, fx in fx.tasks.map { (r, $0) } })
        // A sub-workflow's run that ended tells its parent's step (next turn).
        for r in touched.values where r.record.state != "running" && !r.toldParent {
            guard let p = r.record.parent_run, let step = r.record.parent_step else { continue }
            r.toldParent = true
            post(.childEnded(p, step, r.record))
        }
        if ok {
            for c in children { post(.adopt(c)) }
        }
        for r in touched.values { checkChildren(r) }
        let next = runs.values.compactMap(\.nextDeadline).min()
        let mono = Clock.monotonicNanos(), unix = Clock.unixNanos()
        lock.withLock {
            for c in children where ok { snapshots[c.id] = c.status() }
            for r in touched.values {
                if r.isActive { snapshots[r.id] = r.status() } else { snapshots[r.id] = nil; runs[r.id] = nil }
            }
            wakeAt = next.map { mono + max(0, $0 - unix) }
        }
        // Answered last: a caller that reads the status next sees what it asked for.
        for f in failures { f(PlexusError(.INVALID_ARGUMENT, "that run is not running")) }
        for reply in replies { reply(ok ? nil : PlexusError(.INTERNAL, "the checkpoint could not be written")) }
    }

    /// Each workflow: step that asked for a run gets one: stored in this
    /// turn's transaction with the step's link to it.
    private func makeChildren(_ effects: inout [(RunState, RunState.Effects)], now: Int64) -> [RunState] {
        var made: [RunState] = []
        for i in effects.indices {
            let parent = effects[i].0
            for c in effects[i].1.children {
                var input = c.input
                if let cwd = InputPaths.currentDirectory() { input = InputPaths.absolutize(input, cwd: cwd).0 }
                let r = RunRecord(id: ids.next().hex, seq: seq.add(1, ordering: .relaxed).newValue, workflow: c.workflow.name, file: c.workflow.file,
                                  source: c.workflow.source, input: input.text, state: "running", generation: 0, created_unix_ns: now,
                                  parent_run: parent.id, parent_step: c.step, includes: parent.record.includes)
                parent.linkChild(c.step, run: r.id, now: now, &effects[i].1)
                made.append(RunState(record: r, workflow: c.workflow, input: input, checkpoints: []))
            }
        }
        return made
    }

    /// A run taken up (after a restart, or resumed) whose workflow: step's
    /// run ended while nobody listened: the step hears it now.
    private func checkChildren(_ r: RunState) {
        guard r.record.state == "running", runs[r.id] != nil else { return }
        for (step, n) in r.nodes where n.state == .running {
            guard let c = n.child, lock.withLock({ snapshots[c] }) == nil, let child = try? store.run(c), child.state != "running" else { continue }
            post(.childEnded(r.id, step, child))
        }
    }

    /// Cancels the open tasks of a cancelled run's steps through the
    /// scheduler (the same path as `plexus tasks cancel`). One that has
    /// already ended, or that the scheduler cannot cancel, is left to end.
    private func cancelTasks(_ keys: [String]) {
        for k in keys {
            guard let t = try? store.task(idempotencyKey: k), t.state.isOpen else { continue }
            do throws(PlexusError) { _ = try scheduler.cancel(t.id) } catch {
                logger.info("a cancelled run's task is left to end", metadata: ["task": "\(t.id)", "why": "\(error.detail)"])
            }
        }
    }

    /// Spans of the run's trace (WorkflowTrace): a step's from its start to
    /// its end, the run's from its creation to its end. The attempts are
    /// the scheduler's.
    private func trace(_ effects: [(RunState, RunState.Effects)]) {
        let tracer = scheduler.tracer
        let mono = Tracer.now(), unix = Clock.unixNanos()
        for (r, fx) in effects {
            let trace = WorkflowTrace.trace(run: r.id), run = WorkflowTrace.runSpan(run: r.id)
            for e in fx.events {
                guard case .string(let step)? = e.data["step"] ?? (e.kind.hasPrefix("workflow.step.") ? nil : .string("")) else { continue }
                switch e.kind {
                case "workflow.step.started":
                    stepStarts["\(r.id)/\(step)"] = mono
                case "workflow.step.finished":
                    let start = stepStarts.removeValue(forKey: "\(r.id)/\(step)") ?? mono
                    let state: String = if case .string(let s)? = e.data["state"] { s } else { "" }
                    tracer.record(trace: trace, span: WorkflowTrace.stepSpan(run: r.id, step: step), parent: run, kind: .step,
                                  name: step, agent: r.id, start: start, end: mono,
                                  status: state == "failed" ? PLEXUS_HANDLER_FAILED.status : 0)
                case "workflow.completed", "workflow.failed":
                    tracer.record(trace: trace, span: run, parent: 0, kind: .run, name: r.workflow.name, agent: r.id,
                                  start: r.record.created_unix_ns - unix + mono, end: mono,
                                  status: e.kind == "workflow.failed" ? PLEXUS_HANDLER_FAILED.status : 0)
                default: break
                }
            }
        }
    }

    /// Every checkpoint, event and run change of the turn in one transaction.
    private func checkpoint(_ effects: [(RunState, RunState.Effects)], children: [RunState], now: Int64) -> Bool {
        let writes = effects.filter { !$0.1.checkpoints.isEmpty || !$0.1.events.isEmpty || $0.1.runChanged || !$0.1.newSignals.isEmpty }
        guard !writes.isEmpty || !children.isEmpty else { return true }
        let batch = writes.map { (r, fx) in (r.record, r.id, fx) }
        let made = children.map { ($0.record, $0.workflow.steps.count) }
        do {
            try store.commit { db in
                for (record, steps) in made {
                    try record.insert(db)
                    try Store.appendEvent(db, kind: "workflow.started", subject: record.id,
                                          data: ["workflow": .string(record.workflow), "file": .string(record.file), "steps": .int(Int64(steps)),
                                                 "parent_run": .string(record.parent_run ?? ""), "parent_step": .string(record.parent_step ?? "")], at: now)
                }
                for (record, id, fx) in batch {
                    for sig in fx.newSignals { try sig.insert(db) }
                    for t in fx.taken {
                        try db.execute(sql: "UPDATE workflow_signals SET step = ? WHERE run_id = ? AND seq = ?", arguments: [t.step, id, t.seq])
                    }
                    for c in fx.checkpoints { try c.save(db) }
                    for e in fx.events { try Store.appendEvent(db, kind: e.kind, subject: id, data: e.data, at: now) }
                    if fx.runChanged { try record.update(db) }
                }
            }
            return true
        } catch {
            logger.error("workflow checkpoint failed", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// All new tasks in one submission. A task the store already holds
    /// under its key (a resumed run) comes back as it is; one that ended
    /// already is taken as ended now.
    private func submit(_ tasks: [(RunState, (spec: TaskSpec, node: String, item: Int))]) {
        guard !tasks.isEmpty else { return }
        do throws(PlexusError) {
            for t in try scheduler.submit(tasks.map(\.1.spec)) where !t.state.isOpen { post(.ended(t)) }
        } catch {
            // The submission is refused as a whole (the store failed): the
            // steps fail, so the run stops and can be resumed later.
            for (r, t) in tasks { post(.refused(r.id, t.node, "its task could not be submitted: \(error.detail)")) }
        }
    }
}
