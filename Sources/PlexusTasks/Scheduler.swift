import FoundationEssentials
import Glibc
import HeapModule
import DequeModule
import Logging
import PlexusCore
import PlexusHost
import PlexusStore
import PlexusThreads
import Synchronization
import GRDB

/// Durable tasks: each names a capability and goes, when its dependencies
/// are done, to the least loaded healthy provider with spare capacity, in
/// priority order with aging; failures are retried with backoff and jitter,
/// a task on an agent that dies goes to another at once, and a task out of
/// attempts is dead-lettered with its history.
///
/// A submission returns only once it is on disk (group commit). A task's
/// messages carry its id as their trace id, and a task interrupted by a
/// crash of the host is sent again with the same id, so a handler that
/// remembers the ids it finished does each task exactly once.
///
/// One thread owns the schedule; submissions and answers reach it through
/// its inbox.
public final class Scheduler: @unchecked Sendable {
    public let store: Store
    private let host: Host
    private let clock: SchedulerClock
    private let agingMs: Int64
    private let logger = Logger(label: "plexus.tasks")
    private let ids = IDGenerator()
    private let seq: Atomic<Int64>
    /// Told of every task that ended (completed, dead-lettered, cancelled)
    /// once that end is on disk; set before start(). Workflows advance on it.
    public var onFinished: (@Sendable (TaskRecord) -> Void)?
    /// The cluster's task exchange (TaskExchange.swift); set before
    /// start(). When set, every ready task goes through it instead of to a
    /// local provider, and outcomes come back through deliver(_:recorded:).
    public var exchange: TaskExchange?
    /// Keyed submissions claim their key cluster-wide one at a time (a
    /// claim and the commit that follows it are one step on this host).
    private let claiming = Mutex(())

    private enum Input {
        case submitted([TaskRecord])
        case answered(String, Envelope, startedNs: Int64)
        case reopened(TaskRecord)
        case remote(RemoteOutcome, recorded: @Sendable () -> Void)
    }

    private let lock = ConditionLock()
    private var inbox: [Input] = []
    /// Set when a pass left ready tasks for want of capacity: the next
    /// agent to finish work wakes the loop (Host.observeCapacity).
    private let starved = Atomic<Bool>(false)
    private var woken = false   // under lock: capacity freed since the loop last looked
    private var stopping = false
    private var thread: OwnedThread?

    // Owned by the scheduler thread.
    private var open: [String: TaskRecord] = [:]
    private var ready: [String: Heap<Ready>] = [:]
    private var delayed = Heap<Delayed>()
    private var dependents: [String: Set<String>] = [:]
    /// How tasks that left the schedule ended, newest 100,000: their final
    /// state may not be on disk yet when a task that depends on them arrives.
    private var ended: [String: TaskState] = [:]
    private var endedOrder = Deque<String>()
    /// In a cluster: why the last offer could not reach NATS/JetStream
    /// ("waiting for NATS: ..."), and when to offer again. Until then ready
    /// tasks wait as for a missing provider, spending no attempt.
    private var exchangeDown: String?
    private var exchangeRetryAt: Int64 = 0

    struct Ready: Comparable {
        let rank: Int64, seq: Int64, id: String
        /// When it became ready for this attempt: a task no agent provides
        /// for waits its timeout from here (awaitProvider).
        var since: Int64 = 0
        static func < (a: Ready, b: Ready) -> Bool { (a.rank, a.seq) < (b.rank, b.seq) }
    }

    struct Delayed: Comparable {
        let at: Int64, id: String
        static func < (a: Delayed, b: Delayed) -> Bool { (a.at, a.id) < (b.at, b.id) }
    }

    public init(host: Host, store: Store, agingMs: Int64 = 5_000,
                clock: SchedulerClock = SchedulerClock(unixNanos: PlexusThreads.Clock.unixNanos, random: { Double.random(in: 0..<1) })) throws {
        self.host = host
        self.store = store
        self.agingMs = agingMs
        self.clock = clock
        seq = Atomic(try store.lastTaskSeq())
        host.observeCapacity { [weak self] in
            guard let self, self.starved.exchange(false, ordering: .relaxed) else { return }
            self.lock.withLock { self.woken = true; self.lock.signal() }
        }
    }

    /// Takes up every task the store holds unfinished (a task that was
    /// running when the host stopped runs again, with the same id), then
    /// starts scheduling.
    public func start() throws {
        for var t in try store.openTasks() {
            // In a cluster a running task's attempt is held by JetStream
            // (or already done there): its outcome still comes, here.
            if t.state == .running && exchange == nil {
                t.state = .queued
                let id = t.id
                store.enqueue { db in
                    try Store.setState(db, id: id, .queued)
                    try Store.appendEvent(db, kind: "task.requeued", subject: id,
                                          data: ["reason": .string("the host stopped while it ran; it runs again with the same id")],
                                          at: PlexusThreads.Clock.unixNanos())
                }
            }
            post(.reopened(t))
        }
        thread = try startThread(name: "plexus-scheduler") { [unowned self] in loop() }
    }

    public func stop() {
        let t = lock.withLock { () -> OwnedThread? in stopping = true; lock.signal(); defer { thread = nil }; return thread }
        t?.join()
    }

    // MARK: submitting

    /// Stores the tasks (one transaction, on disk when this returns) and
    /// schedules them. A task whose idempotency key is known already comes
    /// back as the task first submitted with it.
    public func submit(_ specs: [TaskSpec]) throws(PlexusError) -> [TaskRecord] {
        let now = clock.unixNanos()
        // Records and their events are made here, not on the store's writer thread.
        let made = specs.map { s in
            let r = record(s, now: now)
            let event = JSONValue.object(["capability": .string(r.capability), "priority": .int(Int64(r.priority)),
                                          "key": r.idempotency_key.map(JSONValue.string) ?? .null]).text
            return (spec: s, record: r, event: event)
        }
        if let exchange, made.contains(where: { $0.spec.idempotencyKey != nil }) {
            // The key is claimed cluster-wide (JetStream KV, create-if-absent)
            // before the local commit; a key held by another node's task
            // answers with that task's id, and nothing is stored here.
            return try claiming.withLock { _ throws(PlexusError) -> [TaskRecord] in
                var elsewhere: [String: TaskRecord] = [:]
                let store = self.store, me = exchange.node
                for (s, r, _) in made {
                    guard let key = s.idempotencyKey, elsewhere[key] == nil, (try? store.task(idempotencyKey: key)) == nil else { continue }
                    if let h = try exchange.claim(key: key, taskID: r.id, stale: { h in h.node == me && (try? store.task(h.taskID)) == nil }),
                       h.taskID != r.id {
                        var held = r
                        held.id = h.taskID
                        held.agent = "\(h.node)/"   // where it lives: `plexus tasks show` there
                        elsewhere[key] = held
                    }
                }
                let kept = made.filter { m in m.spec.idempotencyKey.map { elsewhere[$0] == nil } ?? true }
                var stored = try commitSubmitted(kept, now: now)[...]
                return made.map { m in
                    if let key = m.spec.idempotencyKey, let held = elsewhere[key] { return held }
                    return stored.popFirst()!
                }
            }
        }
        return try commitSubmitted(made, now: now)
    }

    /// Stores the records (one transaction) and schedules the fresh ones.
    private func commitSubmitted(_ made: [(spec: TaskSpec, record: TaskRecord, event: String)], now: Int64) throws(PlexusError) -> [TaskRecord] {
        var out: [TaskRecord] = []
        var fresh: [TaskRecord] = []
        do {
            try store.commit { db in
                out = []; fresh = []
                for (s, r, event) in made {
                    if let key = s.idempotencyKey, let first = try TaskRecord.filter(sql: "idempotency_key = ?", arguments: [key]).fetchOne(db) {
                        out.append(first)
                        continue
                    }
                    for d in s.dependsOn where try TaskRecord.fetchOne(db, key: d) == nil {
                        throw PlexusError(.INVALID_ARGUMENT, "task field \"after\": no task \(d)")
                    }
                    try Store.insertTask(db, r)
                    try Store.appendEvent(db, kind: "task.queued", subject: r.id, json: event, at: now)
                    out.append(r)
                    fresh.append(r)
                }
            }
        } catch let e as PlexusError {
            throw e
        } catch {
            throw PlexusError(.INTERNAL, "the task store refused the submission: \(error)")
        }
        if !fresh.isEmpty { post(.submitted(fresh)) }
        return out
    }

    private func record(_ s: TaskSpec, now: Int64) -> TaskRecord {
        TaskRecord(id: ids.next().hex, seq: seq.add(1, ordering: .relaxed).newValue, capability: s.capability, payload: Data(s.payload), content_type: s.contentType,
                   priority: s.priority, deadline_unix_ns: s.deadlineUnixNs, max_attempts: s.maxAttempts, backoff_ms: s.backoffMs,
                   backoff_max_ms: s.backoffMaxMs, timeout_ms: s.timeoutMs, idempotency_key: s.idempotencyKey,
                   depends_on: JSONValue.array(s.dependsOn.map(JSONValue.string)).text,
                   state: s.dependsOn.isEmpty ? .queued : .waiting, attempts: 0, not_before_unix_ns: 0,
                   submitted_unix_ns: now, finished_unix_ns: 0, agent: nil, result: nil, result_type: nil, error: nil,
                   retry_on: s.retryOn.map { JSONValue.array($0.map(JSONValue.string)).text })
    }

    /// A dead-lettered or cancelled task runs again, with fresh attempts.
    public func retry(_ id: String) throws(PlexusError) -> TaskRecord {
        // In a cluster its attempts are offered again from 1: not_before
        // (the moment of the retry, so it still runs at once) tells these
        // offers from the first ones, which JetStream would drop as duplicates.
        let again = exchange == nil ? 0 : PlexusThreads.Clock.unixNanos()
        return try reopen(id, from: [.dead, .cancelled], event: "task.retried_by_hand") { t in
            t.state = .queued; t.attempts = 0; t.error = nil; t.not_before_unix_ns = again; t.finished_unix_ns = 0
        }
    }

    /// Cancels a task (its dependents are dead-lettered). One that has not
    /// started is cancelled here; a running one through its request: the
    /// agent handling it gets a CANCEL, the attempt ends CANCELLED, and this
    /// returns once the task is recorded as cancelled. `plexus tasks cancel`
    /// and `plexus workflow cancel` both come here.
    public func cancel(_ id: String) throws(PlexusError) -> TaskRecord {
        if let request = running.beginCancel(id) {
            do throws(PlexusError) { try host.cancel(request, by: "a cancel of task \(id)") } catch {
                running.abandonCancel(id)
                throw PlexusError(.INVALID_ARGUMENT, "task \(id) finished just before the cancel reached it; `plexus tasks show \(id)` has its outcome")
            }
            guard let t = running.awaitRecorded(id, untilMonotonic: PlexusThreads.Clock.monotonicNanos() + 30_000_000_000) else {
                throw PlexusError(.INTERNAL, "task \(id) was cancelled, but the store did not record it within 30 s")
            }
            return t
        }
        let t = try reopen(id, from: [.queued, .waiting], event: "task.cancelled") { t in
            t.state = .cancelled; t.finished_unix_ns = PlexusThreads.Clock.unixNanos(); t.error = "cancelled by hand"
        }
        post(.reopened(t))   // the scheduler drops it and fails its dependents
        onFinished?(t)
        return t
    }

    private func reopen(_ id: String, from: Set<TaskState>, event: String,
                        change: @escaping (inout TaskRecord) -> Void) throws(PlexusError) -> TaskRecord {
        nonisolated(unsafe) var result: TaskRecord?
        do {
            try store.commit { db in
                guard var t = try TaskRecord.fetchOne(db, key: id) else { throw PlexusError(.INVALID_ARGUMENT, "no task \(id)") }
                guard from.contains(t.state) else {
                    // No local request to cancel: in a cluster the attempt runs on whichever host fetched it.
                    let elsewhere = event == "task.cancelled" && t.state == .running && self.exchange != nil
                        ? " (its attempt runs on a host of the cluster; a task running on another host cannot be cancelled yet)" : ""
                    throw PlexusError(.INVALID_ARGUMENT, "task \(id) is \(t.state.rawValue); only a \(from.map(\.rawValue).sorted().joined(separator: " or ")) task can be \(event == "task.cancelled" ? "cancelled" : "retried")\(elsewhere)")
                }
                if event == "task.retried_by_hand" {
                    // Retried, it runs at once: only when what it waits for
                    // has completed, or --after would mean nothing.
                    for dep in t.dependencies {
                        let d = try TaskRecord.fetchOne(db, key: dep)
                        guard d?.state == .completed else {
                            throw PlexusError(.INVALID_ARGUMENT, "task \(id) runs after task \(dep), which is \(d?.state.rawValue ?? "gone"); retry \(id) once \(dep) has completed")
                        }
                    }
                }
                change(&t)
                try t.update(db)
                try Store.appendEvent(db, kind: event, subject: id, data: ["capability": .string(t.capability)], at: PlexusThreads.Clock.unixNanos())
                result = t
            }
        } catch let e as PlexusError { throw e } catch { throw PlexusError(.INTERNAL, "the task store failed: \(error)") }
        if result!.state == .queued { post(.reopened(result!)) }
        return result!
    }

    private func post(_ i: Input) {
        lock.withLock { inbox.append(i); lock.signal() }
    }

    // MARK: the scheduler thread

    private func loop() {
        var lastSweep = PlexusThreads.Clock.monotonicNanos()
        while true {
            let inputs: [Input]? = lock.withLock {
                if inbox.isEmpty && !stopping && !woken {
                    let wake = PlexusThreads.Clock.monotonicNanos() + nextWakeNs()
                    lock.wait(untilMonotonic: wake)
                }
                if stopping { return nil }
                woken = false
                defer { inbox.removeAll(keepingCapacity: true) }
                return inbox
            }
            guard let inputs else { return }
            for i in inputs { take(i) }
            let now = clock.unixNanos()
            while let d = delayed.min, d.at <= now { _ = delayed.removeMin(); makeReady(d.id, now: now) }
            if PlexusThreads.Clock.monotonicNanos() - lastSweep > 1_000_000_000 { expireOverdue(now: now); lastSweep = PlexusThreads.Clock.monotonicNanos() }
            dispatch(now: now)
        }
    }

    /// Sleep until the next backoff ends, or 200 ms to look again at
    /// capabilities that had no capacity.
    private func nextWakeNs() -> Int64 {
        let poll: Int64 = ready.values.contains { !$0.isEmpty } ? 50_000_000 : 200_000_000
        guard let d = delayed.min else { return poll }
        return max(1_000_000, min(poll, d.at - clock.unixNanos()))
    }

    private func take(_ i: Input) {
        switch i {
        case .submitted(let ts): for t in ts { adopt(t) }
        case .reopened(let t):
            if t.state == .cancelled { open[t.id] = t; drop(t.id, failedBecause: "task \(t.id) was cancelled"); return }
            adopt(t)
        case .answered(let id, let answer, let started): finish(id, answer, startedNs: started)
        case .remote(let o, let recorded): finishRemote(o, recorded: recorded)
        }
    }

    /// A task enters the schedule: ready, backing off, or waiting for others.
    private func adopt(_ t: TaskRecord) {
        open[t.id] = t
        let now = clock.unixNanos()
        if t.state == .waiting {
            var pending = 0
            for d in t.dependencies {
                if open[d] != nil { dependents[d, default: []].insert(t.id); pending += 1; continue }
                guard let state = ended[d] ?? (try? store.task(d))?.state else { continue }
                if state == .completed { continue }
                deadLetter(t.id, reason: "it depends on task \(d), which was \(state == .dead ? "dead-lettered" : state.rawValue)", now: now)
                return
            }
            if pending == 0 { open[t.id]!.state = .queued; persistState(t.id, .queued); makeReady(t.id, now: now) }
            return
        }
        if t.not_before_unix_ns > now { delayed.insert(Delayed(at: t.not_before_unix_ns, id: t.id)) } else { makeReady(t.id, now: now) }
    }

    private func makeReady(_ id: String, now: Int64) {
        guard let t = open[id], t.state == .queued else { return }
        let r = Ready(rank: TaskPolicy.rank(priority: t.priority, readySinceMs: now / 1_000_000, agingMs: agingMs), seq: t.seq, id: id, since: now)
        ready[t.capability, default: Heap()].insert(r)
    }

    /// Sends ready tasks while their capability's providers have spare
    /// capacity; each send adds to a provider's load at once, so one pass
    /// never overfills it.
    private func dispatch(now: Int64) {
        if let exchange { dispatch(to: exchange, now: now); return }
        starved.store(true, ordering: .relaxed)   // before reading capacity: a finish during the pass still wakes us
        for cap in Array(ready.keys) {
            let room = host.spareCapacity(of: cap)
            guard room > 0 else {
                if let why = host.whyUnprovided(cap) { awaitProvider(cap, why, now: now) } else { providerFound(cap) }
                continue
            }
            for _ in 0..<room {
                guard let r = ready[cap]?.popMin() else { break }
                guard open[r.id]?.state == .queued else { continue }
                start(r.id, now: now)
            }
            providerFound(cap)
            if ready[cap]?.isEmpty == true { ready[cap] = nil }
        }
        if ready.isEmpty { starved.store(false, ordering: .relaxed) }
    }

    /// Ready tasks for a capability no active agent provides: each says so
    /// once per attempt (event task.waiting, waitReason), and an attempt
    /// that waited its timeout_ms fails with NO_SUCH_CAPABILITY, so attempts,
    /// backoff and dead-lettering apply as to any failure. A retry waits
    /// again: a provider may appear (a client registering, a restart).
    /// In a cluster it serves for NATS being unreachable too (`status`
    /// UNAVAILABLE): the attempt that waited its timeout fails with that.
    private func awaitProvider(_ cap: String, _ why: String, status: plexus_status = PLEXUS_NO_SUCH_CAPABILITY.status, now: Int64) {
        guard var heap = ready.removeValue(forKey: cap) else { return }
        var keep = Heap<Ready>()
        while let r = heap.popMin() {
            guard let t = open[r.id], t.state == .queued else { continue }
            if now - r.since < t.timeout_ms * 1_000_000 {
                keep.insert(r)
                if noteWaiting(r.id, why) {
                    store.enqueue { db in
                        try Store.appendEvent(db, kind: "task.waiting", subject: r.id,
                                              data: ["capability": .string(cap), "reason": .string(why),
                                                     "attempt": .int(Int64(t.attempts + 1)), "timeout_ms": .int(t.timeout_ms)], at: now)
                    }
                }
                continue
            }
            open[r.id]!.attempts += 1
            clearWaiting(r.id)
            let detail = "\(why) (waited \(t.timeout_ms) ms, the task's timeout_ms)"
            finish(r.id, Envelope(kind: .error, target: .reply,
                                  payload: Array(JSONValue.object(["error": .string(statusName(status)),
                                                                   "message": .string(detail)]).text.utf8),
                                  status: status), startedNs: r.since)
        }
        if !keep.isEmpty { ready[cap] = keep }
    }

    /// Why each task waiting for a provider waits, by task id: read by other
    /// threads (workflow status), written by the scheduler's.
    private let waiting = Mutex<[String: String]>([:])
    /// Running tasks' requests, for cancel (RunningTasks.swift).
    private let running = RunningTasks()

    /// True the first time this attempt is noted as waiting.
    private func noteWaiting(_ id: String, _ why: String) -> Bool {
        waiting.withLock { w in
            guard w[id] == nil else { return false }
            w[id] = why
            return true
        }
    }

    private func clearWaiting(_ id: String) { _ = waiting.withLock { $0.removeValue(forKey: id) } }

    /// A provider of `cap` exists (busy, perhaps): its ready tasks no longer
    /// say they wait for one (a later loss of every provider says so again).
    private func providerFound(_ cap: String) {
        guard let heap = ready[cap], !waiting.withLock({ $0.isEmpty }) else { return }
        waiting.withLock { w in for r in heap.unordered { w[r.id] = nil } }
    }

    /// Why task `id` has not started, when it waits for a provider
    /// ("no agent provides data.colect"); nil otherwise.
    public func waitReason(_ id: String) -> String? { waiting.withLock { $0[id] } }

    /// Why a task for `capability` cannot start now for want of a provider;
    /// nil when an active agent provides it.
    public func whyUnprovided(_ capability: String) -> String? {
        if let exchange { return exchange.whyUnprovided(capability) }   // in a cluster: no provider on any node
        return host.whyUnprovided(capability)
    }

    private func start(_ id: String, now: Int64) {
        clearWaiting(id)
        guard var t = open[id] else { return }
        if t.deadline_unix_ns > 0 && t.deadline_unix_ns <= now {
            deadLetter(id, reason: "its deadline passed before it could run", now: now)
            return
        }
        t.state = .running
        t.attempts += 1
        open[id] = t
        let attempt = t.attempts
        let event = JSONValue.object(["capability": .string(t.capability), "attempt": .int(Int64(attempt))]).text
        store.enqueue { db in
            try Store.markStarted(db, id: id, attempt: attempt)
            try Store.appendEvent(db, kind: "task.started", subject: id, json: event, at: now)
        }
        let deadline = min(t.deadline_unix_ns > 0 ? t.deadline_unix_ns : Int64.max, now + t.timeout_ms * 1_000_000)
        let env = Envelope(kind: .query, target: .capability(t.capability), priority: Priority(rawValue: UInt8(t.priority)) ?? .normal,
                           payload: [UInt8](t.payload), contentType: t.content_type, deadlineUnixNs: deadline,
                           traceID: plexus_id(hex: id) ?? .none)
        let started = now
        do {
            let request = try host.request(env) { [weak self] answer in self?.post(.answered(id, answer, startedNs: started)) }
            running.started(id, request: request)
        } catch {
            post(.answered(id, Envelope(kind: .error, target: .reply,
                                        payload: Array(JSONValue.object(["error": .string(error.name), "message": .string(error.detail)]).text.utf8),
                                        status: error.status), startedNs: started))
        }
    }

    /// An attempt ended: completed, retried, or dead-lettered.
    private func finish(_ id: String, _ answer: Envelope, startedNs: Int64, node: String? = nil) {
        running.ended(id)
        guard var t = open[id] else { return }
        let now = clock.unixNanos()
        if answer.kind == .error && answer.status == PLEXUS_CANCELLED.status && running.isCancelling(id) {
            cancelledWhileRunning(t, answer, startedNs: startedNs, now: now)
            return
        }
        if host.tracer.enabled, let key = t.idempotency_key { traceAttempt(t, key: key, answer, startedNs: startedNs, now: now) }
        let sender = answer.sender.isEmpty ? nil : answer.sender
        // Run on another node (RemoteOutcome): recorded as `node/agent`, the
        // host's own answers there as `node/plexus`.
        let agent = node.map { "\($0)/\(sender ?? "plexus")" } ?? sender
        if answer.kind == .response {
            t.state = .completed; t.result = Data(answer.payload); t.result_type = answer.contentType
            t.agent = agent; t.finished_unix_ns = now
            open[id] = nil
            remember(id, .completed)
            let a = AttemptRecord(task_id: id, attempt: t.attempts, agent: agent, started_unix_ns: startedNs, finished_unix_ns: now,
                                  outcome: "completed", detail: "")
            let done = t
            let event = JSONValue.object(["capability": .string(done.capability), "agent": agent.map(JSONValue.string) ?? .null,
                                          "attempt": .int(Int64(done.attempts)), "ms": .int((now - startedNs) / 1_000_000)]).text
            store.enqueue({ db in
                try Store.recordOutcome(db, done)
                try Store.insertAttempt(db, a)
                try Store.appendEvent(db, kind: "task.completed", subject: id, json: event, at: now)
            }, done: ended(done))
            release(id, now: now)
            return
        }
        let e = Host.error(from: answer)
        // The host answers for an agent it lost (sender "plexus"); an agent's
        // own error answer, whatever its status, is the task's failure.
        let byHost = sender == nil || sender == "plexus"
        let lost = TaskPolicy.reassigns(e.status, byHost: byHost)
        let a = AttemptRecord(task_id: id, attempt: t.attempts, agent: agent, started_unix_ns: startedNs, finished_unix_ns: now,
                              outcome: lost ? "agent lost" : "failed", detail: "\(e.name): \(e.detail)")
        let overdue = t.deadline_unix_ns > 0 && t.deadline_unix_ns <= now
        let retryOn = t.retryOn
        guard TaskPolicy.retries(e.status, byHost: byHost, retryOn: retryOn) else {
            let why = TaskPolicy.whyNotRetried(e.status, retryOn: retryOn)
            store.enqueue { db in
                try Store.insertAttempt(db, a)
                try Store.appendEvent(db, kind: "task.not_retried", subject: id,
                                      data: ["capability": .string(t.capability), "attempt": .int(Int64(t.attempts)),
                                             "error": .string("\(e.name): \(e.detail)"), "reason": .string(why)], at: now)
            }
            deadLetter(id, reason: "\(e.name): \(e.detail) (\(why))", now: now)
            return
        }
        guard t.attempts < t.max_attempts && !overdue else {
            store.enqueue { db in try Store.insertAttempt(db, a) }
            deadLetter(id, reason: overdue ? "its deadline passed; last error \(e.name): \(e.detail)"
                                           : "\(t.attempts) attempt(s) failed; last error \(e.name): \(e.detail)", now: now)
            return
        }
        let wait = lost ? 0
            : TaskPolicy.backoffMs(afterAttempt: t.attempts, baseMs: t.backoff_ms, maxMs: t.backoff_max_ms, unit: clock.random())
        t.state = .queued
        t.not_before_unix_ns = now + wait * 1_000_000
        t.error = "\(e.name): \(e.detail)"
        open[id] = t
        let retried = t
        store.enqueue { db in
            try Store.recordOutcome(db, retried)
            try Store.insertAttempt(db, a)
            try Store.appendEvent(db, kind: "task.retried", subject: id,
                                  data: ["capability": .string(retried.capability), "attempt": .int(Int64(retried.attempts)),
                                         "error": .string(retried.error ?? ""), "backoff_ms": .int(wait)], at: now)
        }
        if wait == 0 { makeReady(id, now: now) } else { delayed.insert(Delayed(at: t.not_before_unix_ns, id: id)) }
    }

    /// The hand cancel of a running task took effect: its attempt ended
    /// CANCELLED; it is not retried, and its dependents are dead-lettered.
    private func cancelledWhileRunning(_ task: TaskRecord, _ answer: Envelope, startedNs: Int64, now: Int64) {
        var t = task
        let id = t.id
        let e = Host.error(from: answer)
        t.state = .cancelled; t.error = "cancelled by hand while running"; t.finished_unix_ns = now
        open[id] = t   // drop() below remembers it as cancelled
        let a = AttemptRecord(task_id: id, attempt: t.attempts, agent: nil, started_unix_ns: startedNs, finished_unix_ns: now,
                              outcome: "cancelled", detail: "\(e.name): \(e.detail)")
        let done = t
        let running = self.running
        let onFinished = self.onFinished
        store.enqueue({ db in
            try Store.recordOutcome(db, done)
            try Store.insertAttempt(db, a)
            try Store.appendEvent(db, kind: "task.cancelled", subject: id,
                                  data: ["capability": .string(done.capability), "attempt": .int(Int64(done.attempts)),
                                         "while": .string("running")], at: now)
        }, done: { err in
            running.recorded(done)
            if err == nil { onFinished?(done) }
        })
        drop(id, failedBecause: "task \(id) was cancelled")
    }

    private func deadLetter(_ id: String, reason: String, now: Int64) {
        clearWaiting(id)
        guard var t = open[id] else { return }
        t.state = .dead; t.error = reason; t.finished_unix_ns = now
        open[id] = nil
        remember(id, .dead)
        let dead = t
        store.enqueue({ db in
            try Store.recordOutcome(db, dead)
            try Store.appendEvent(db, kind: "task.dead_lettered", subject: id,
                                  data: ["capability": .string(dead.capability), "attempts": .int(Int64(dead.attempts)),
                                         "reason": .string(reason)], at: now)
        }, done: ended(dead))
        logger.warning("task dead-lettered", metadata: ["task": "\(id)", "capability": "\(t.capability)", "reason": "\(reason)"])
        drop(id, failedBecause: "it depends on task \(id), which was dead-lettered: \(reason)")
    }

    /// Tells onFinished once the write is on disk.
    private func ended(_ t: TaskRecord) -> (Error?) -> Void {
        { [onFinished] e in if e == nil { onFinished?(t) } }
    }

    private func remember(_ id: String, _ state: TaskState) {
        ended[id] = state
        endedOrder.append(id)
        if endedOrder.count > 100_000, let old = endedOrder.popFirst() { ended[old] = nil }
    }

    /// A task left the schedule without completing: its dependents cannot run.
    private func drop(_ id: String, failedBecause reason: String) {
        clearWaiting(id)
        if let t = open[id] { remember(id, t.state == .cancelled ? .cancelled : .dead) }
        open[id] = nil
        for d in dependents.removeValue(forKey: id) ?? [] { deadLetter(d, reason: reason, now: clock.unixNanos()) }
    }

    /// A task completed: dependents with nothing else to wait for become ready.
    private func release(_ id: String, now: Int64) {
        for d in dependents.removeValue(forKey: id) ?? [] {
            guard let t = open[d], t.state == .waiting else { continue }
            if t.dependencies.allSatisfy({ open[$0] == nil || open[$0]?.state == .completed }) {
                open[d]!.state = .queued
                persistState(d, .queued)
                makeReady(d, now: now)
            }
        }
    }

    private func persistState(_ id: String, _ s: TaskState) {
        store.enqueue { db in try Store.setState(db, id: id, s) }
    }

    /// Queued tasks whose deadline passed while they waited (no provider,
    /// no capacity) are dead-lettered rather than kept forever.
    private func expireOverdue(now: Int64) {
        for (id, t) in open where t.state != .running && t.deadline_unix_ns > 0 && t.deadline_unix_ns <= now {
            // Its own reason when it has one ("waiting for NATS: ...", "no agent provides ...").
            let why = waitReason(id) ?? "no capacity for \(t.capability)"
            deadLetter(id, reason: "its deadline passed while it waited (\(why))", now: now)
        }
    }
}

extension Scheduler {
    /// The host's span recorder (the workflow engine records runs and steps).
    public var tracer: Tracer { host.tracer }

    /// A workflow step's attempt (its task's key is wf/RUN/GEN/STEP[/ITEM]):
    /// a span in the run's trace under its step, naming the task whose
    /// messages it sent (WorkflowTrace).
    fileprivate func traceAttempt(_ t: TaskRecord, key: String, _ answer: Envelope, startedNs: Int64, now: Int64) {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0] == "wf" else { return }
        let run = String(parts[1]), step = String(parts[3])
        let mono = Tracer.now(), unix = Clock.unixNanos()   // the task's times are unix; spans keep monotonic
        host.tracer.record(trace: WorkflowTrace.trace(run: run), span: Tracer.newSpanID(),
                           parent: WorkflowTrace.stepSpan(run: run, step: step), kind: .attempt,
                           name: parts.count == 5 ? "\(step)[\(parts[4])]" : step,
                           agent: answer.sender.isEmpty ? t.capability : answer.sender,
                           start: startedNs - unix + mono, end: now - unix + mono,
                           status: answer.kind == .error ? answer.status : 0, attempt: t.attempts, link: t.id)
    }
}

// MARK: in a cluster (TaskExchange)

extension Scheduler {
    /// An attempt's outcome from the host that ran it (ClusterTasks, on its
    /// fetch thread). `recorded` runs once what it changed here is on disk
    /// (or at once when it changes nothing): then the message carrying it
    /// may be acknowledged.
    public func deliver(_ outcome: RemoteOutcome, recorded: @escaping @Sendable () -> Void) {
        post(.remote(outcome, recorded: recorded))
    }
}

extension Scheduler {
    /// Every ready task of a capability some node provides goes to the
    /// exchange at once (in priority order): the hosts' fetchers take
    /// them as their providers have room. One no node provides waits as
    /// it would for a local provider (awaitProvider).
    ///
    /// An offer NATS/JetStream did not take (unreachable) spends no attempt:
    /// the task stays queued, says "waiting for NATS: ..." once, and every
    /// ready task is offered again 250 ms later (the connection back, the
    /// first offer that works ends the wait). One that waits past its
    /// timeout_ms fails that attempt (UNAVAILABLE), as for a missing provider.
    fileprivate func dispatch(to exchange: TaskExchange, now: Int64) {
        for cap in Array(ready.keys) {
            if let why = exchange.whyUnprovided(cap) { awaitProvider(cap, why, now: now); continue }
            if let why = exchangeDown, now < exchangeRetryAt {
                awaitProvider(cap, why, status: PLEXUS_UNAVAILABLE.status, now: now)
                continue
            }
            while let r = ready[cap]?.popMin() {
                guard open[r.id]?.state == .queued else { continue }
                if let why = offer(r.id, to: exchange, now: now) {
                    ready[cap, default: Heap()].insert(r)   // the same attempt, still waiting from r.since
                    // Said once per attempt: a reason it had (no provider, once) gives way to this one.
                    if waitReason(r.id)?.hasPrefix("waiting for NATS: ") != true { clearWaiting(r.id) }
                    if exchangeDown == nil { logger.warning("durable tasks wait for NATS", metadata: ["error": "\(why)"]) }
                    exchangeDown = "waiting for NATS: " + why
                    exchangeRetryAt = now + 250_000_000
                    break
                }
                if exchangeDown != nil { logger.notice("durable tasks are handed to the cluster again"); exchangeDown = nil }
            }
            if let why = exchangeDown, ready[cap]?.isEmpty == false {
                awaitProvider(cap, why, status: PLEXUS_UNAVAILABLE.status, now: now)
                continue
            }
            providerFound(cap)
            ready[cap] = nil
        }
    }

    /// Like start(), with the exchange in place of a local request: the
    /// attempt is counted here (the submitting host counts attempts; a
    /// redelivery to another host after one died is the same attempt).
    /// Returns why NATS/JetStream did not take it (UNAVAILABLE: the task is
    /// queued again as it was, no attempt spent); nil when offered or ended.
    private func offer(_ id: String, to exchange: TaskExchange, now: Int64) -> String? {
        guard var t = open[id] else { return nil }
        if t.deadline_unix_ns > 0 && t.deadline_unix_ns <= now {
            clearWaiting(id)
            deadLetter(id, reason: "its deadline passed before it could run", now: now)
            return nil
        }
        t.state = .running
        t.attempts += 1
        open[id] = t
        let attempt = t.attempts
        do throws(PlexusError) {
            // Stored in the stream before it is marked running here: a
            // crash in between offers it again under the same message id.
            try exchange.offer(t, attempt: attempt)
        } catch {
            if error.status == PLEXUS_UNAVAILABLE.status {
                // Not handed over: not an attempt. Offered again under the
                // same message id, so a publish whose ack alone was lost is
                // stored once.
                t.state = .queued
                t.attempts -= 1
                open[id] = t
                return error.detail
            }
            // Refused for the task itself (its payload, say): a failed
            // attempt, with its backoff.
            clearWaiting(id)
            post(.answered(id, Envelope(kind: .error, target: .reply,
                                        payload: Array(JSONValue.object(["error": .string(error.name), "message": .string(error.detail)]).text.utf8),
                                        sender: "plexus.cluster", status: error.status), startedNs: now))
            return nil
        }
        clearWaiting(id)
        let event = JSONValue.object(["capability": .string(t.capability), "attempt": .int(Int64(attempt)), "via": .string("jetstream")]).text
        store.enqueue { db in
            try Store.markStarted(db, id: id, attempt: attempt)
            try Store.appendEvent(db, kind: "task.started", subject: id, json: event, at: now)
        }
        return nil
    }

    /// An outcome from another host (or this one's fetcher). A completion
    /// is final whatever attempt it ran as (the done-marker let one run
    /// complete); a failure counts only for the attempt running now (an
    /// older one's, redelivered, is stale).
    fileprivate func finishRemote(_ o: RemoteOutcome, recorded: @escaping @Sendable () -> Void) {
        guard var t = open[o.taskID], t.state == .running || t.state == .queued else {
            recorded()
            return
        }
        if t.state == .queued {
            // Queued here, yet an outcome: it was offered before this host
            // restarted and its running state was not on disk yet (the offer
            // made again was the same message, dropped as a duplicate), or
            // an older attempt completed after all. Either is its outcome.
            guard o.answer.kind == .response || o.attempt > t.attempts else { recorded(); return }
            t.state = .running
            t.attempts = max(t.attempts, o.attempt)
            open[o.taskID] = t
        } else if o.answer.kind != .response && o.attempt != t.attempts {
            recorded()   // a failure of an older attempt, delivered late: stale
            return
        }
        finish(o.taskID, o.answer, startedNs: o.startedNs, node: o.node)
        // After finish's writes, in the same order: on disk when this runs.
        store.enqueue({ _ in }, done: { _ in recorded() })
    }
}
