import Glibc
import Logging
import PlexusCore
import PlexusHost
import PlexusStore
import PlexusTasks
import PlexusThreads
import Synchronization

/// Durable tasks across the hosts of a cluster, on JetStream (the
/// scheduler's TaskExchange). The submitting host keeps the task: its
/// record, its dependencies, its attempts count, its retries. Each ready
/// attempt is published to one work-queue stream; whichever host has a
/// provider with room fetches it, runs it under the task's id, and sends
/// the outcome back to the submitting host's own outcome subject.
///
///   stream PLEXUS_<cluster>_TASKS     subjects plexus.<cluster>.task.<capability>, work queue, file storage
///     durable task-<capability>       one per capability, bound by every host providing it (JetStream spreads the work)
///   stream PLEXUS_<cluster>_OUTCOMES  subjects plexus.<cluster>.outcome.<node>, work queue, file storage
///     durable outcomes-<node>         the submitting host's: an outcome waits there while it is down
///   KV PLEXUS_<cluster>_TASKS_DONE    task id -> the outcome that completed it (create-if-absent: one completion)
///   KV PLEXUS_<cluster>_TASK_KEYS     idempotency key (hex-escaped) -> node and task id (create-if-absent)
///
/// Exactly once. A host acknowledges an attempt's message only after its
/// outcome is recorded: the done-marker created (for a completion), its
/// own store's attempt row on disk, the outcome stored in the outcome
/// stream. Killed anywhere before the ack, the message is redelivered
/// (ack wait) to a host that checks the marker first: a task already
/// completed is not run again, its outcome is sent again from the marker
/// (the submitting host ignores a second one). Two runs that both finish
/// (the first host slow, not dead) race on the marker: one completes, the
/// other's attempt is recorded as "duplicate". Handlers see the task id as
/// trace id on every run, so one that remembers ids does a task once.
public final class ClusterTasks: TaskExchange, @unchecked Sendable {
    public let node: String
    let cluster: String
    private let host: Host
    private let store: Store
    private let clusterNode: ClusterNode
    private let js: JetStream
    private let done: JetStreamKV
    private let keys: JetStreamKV
    private let logger = Logger(label: "plexus.cluster.tasks")
    /// Completions run off the router's threads (a marker, a commit, a publish, an ack).
    private let pool = WorkPool(name: "plexus-jstasks", threads: 4, queueLimit: 100_000)
    private let wake = ConditionLock()

    let tasksStream: String, outcomesStream: String
    /// How long a fetched attempt may go without an ack or in-progress
    /// before JetStream gives it to another host.
    static let ackWaitNs: Int64 = 10_000_000_000
    /// A long attempt says "in progress" this often (a third of the ack wait).
    static let progressEveryNs: Int64 = 3_000_000_000

    private struct Running {
        let message: JetStreamMessage
        var lastProgressMono: Int64
        /// complete() took it (recording, publishing, acking): stop() waits for it instead of giving it back.
        var finishing = false
        let job: Job
        /// The host request running it: cancelled when it is given back at shutdown.
        var requestID: plexus_id?
    }
    private struct Fetcher {
        let thread: OwnedThread
        let stop: StopFlag
    }
    /// Set when a capability's fetcher should end.
    private final class StopFlag: Sendable {
        private let flag = Atomic<Bool>(false)
        func set() { flag.store(true, ordering: .relaxed) }
        var isSet: Bool { flag.load(ordering: .relaxed) }
    }
    private struct State {
        var fetchers: [String: Fetcher] = [:]
        /// Attempts running here, by task id and attempt.
        var running: [String: Running] = [:]
        /// No more fetching (stop() began); what runs here still finishes.
        var stopping = false
        /// stop() ended: the outcome and in-progress threads end too.
        var closed = false
    }
    private let state = Mutex(State())
    private var threads: [OwnedThread] = []
    private weak var scheduler: Scheduler?

    /// Makes (or finds) the streams, consumers and buckets; nothing is
    /// fetched until start().
    public init(_ clusterNode: ClusterNode, host: Host, store: Store) throws(PlexusError) {
        let node = clusterNode.node, cluster = clusterNode.cluster
        let js = try JetStream(clusterNode.connection, replicas: clusterNode.replicas)
        let tasks = "PLEXUS_\(cluster)_TASKS", outcomes = "PLEXUS_\(cluster)_OUTCOMES"
        let mine = "plexus.\(cluster).outcome.\(node)"
        // A NATS cluster just started may need a few seconds to elect its
        // JetStream leader: tried for up to 10 s before giving up.
        let (d, k) = try ClusterTasks.retrying { () throws(PlexusError) -> (JetStreamKV, JetStreamKV) in
            try js.ensureStream(name: tasks, subjects: ["plexus.\(cluster).task.>"], retention: .workQueue)
            try js.ensureStream(name: outcomes, subjects: ["plexus.\(cluster).outcome.>"], retention: .workQueue)
            try js.ensureConsumer(stream: outcomes, durable: "outcomes-\(node)", filter: mine, ackWaitNs: 30_000_000_000)
            return (try js.keyValue(bucket: "PLEXUS_\(cluster)_TASKS_DONE"), try js.keyValue(bucket: "PLEXUS_\(cluster)_TASK_KEYS"))
        }
        self.clusterNode = clusterNode
        self.host = host
        self.store = store
        self.node = node
        self.cluster = cluster
        self.js = js
        tasksStream = tasks
        outcomesStream = outcomes
        done = d
        keys = k
    }

    private static func retrying<T>(_ body: () throws(PlexusError) -> T) throws(PlexusError) -> T {
        let until = Clock.monotonicNanos() + 10_000_000_000
        while true {
            do throws(PlexusError) { return try body() } catch {
                // Only a timeout is worth waiting out (no leader yet); a server
                // without JetStream answers "no responders" at once.
                if Clock.monotonicNanos() > until || !error.detail.contains("Timeout") { throw error }
                usleep(250_000)
            }
        }
    }

    func taskSubject(_ capability: String) -> String { "plexus.\(cluster).task.\(capability)" }
    func outcomeSubject(_ node: String) -> String { "plexus.\(cluster).outcome.\(node)" }
    static func durable(_ capability: String) -> String { "task-" + JetStream.token(capability) }

    /// Starts taking outcomes for this host's tasks (into scheduler) and
    /// fetching attempts for the capabilities this host provides. Call
    /// after scheduler.start() and host.start().
    public func start(scheduler: Scheduler) throws(PlexusError) {
        self.scheduler = scheduler
        settleLeftOver()
        let outcomes = try js.pullSubscription(stream: outcomesStream, durable: "outcomes-\(node)", filter: outcomeSubject(node))
        do {
            threads.append(try startThread(name: "plexus-outcomes") { [unowned self] in self.takeOutcomes(outcomes) })
            threads.append(try startThread(name: "plexus-jstasks") { [unowned self] in self.tick() })
        } catch { throw PlexusError(.INTERNAL, "\(error)") }
    }

    /// A graceful stop, before the NATS connection closes: fetching stops
    /// at once; the attempts running here may finish until `deadline`
    /// (monotonic ns: the end of --shutdown-grace-ms), and each that does
    /// is recorded, its outcome sent and its message acknowledged as
    /// usual; one still running then is given back (nak, redelivered at
    /// once to another host) and its row here says so. Returns when no
    /// attempt here touches JetStream any more: the connection may close.
    public func stop(untilMonotonic deadline: Int64) {
        let fetchers = wake.withLock { () -> [Fetcher] in
            let f = state.withLock { s -> [Fetcher] in s.stopping = true; let f = Array(s.fetchers.values); s.fetchers = [:]; return f }
            wake.signal()
            return f
        }
        for f in fetchers { f.stop.set() }
        for f in fetchers { f.thread.join() }   // nothing new from here on
        // The attempts in hand finish (tick() still says "in progress" for them).
        if runningHere > 0 {
            logger.info("stopping: letting durable tasks running here finish", metadata: ["running": "\(runningHere)"])
        }
        while runningHere > 0 && Clock.monotonicNanos() < deadline { usleep(10_000) }
        // Past the grace: what has not answered goes back to the cluster now.
        let left = state.withLock { s -> [Running] in
            let out = s.running.values.filter { !$0.finishing }
            for r in out { s.running.removeValue(forKey: "\(r.job.id)/\(r.job.attempt)") }
            return out
        }
        let now = Clock.unixNanos()
        for r in left {
            r.message.nak(delayMs: 0)
            // Its handler hears CANCEL (a stream's next partial fails): the
            // cluster runs it elsewhere; here it should end, not run on.
            if let rid = r.requestID { try? host.cancel(rid, by: "this host's shutdown (the task was given back to the cluster)") }
            logger.notice("a durable task still running at shutdown was given back to the cluster",
                          metadata: ["task": "\(r.job.id)", "attempt": "\(r.job.attempt)"])
            if r.job.origin != node {
                try? ForeignAttempts.finished(store, id: r.job.id, attempt: r.job.attempt, capability: r.job.capability, origin: r.job.origin,
                                              agent: nil, outcome: "interrupted", error: ClusterTasks.givenBack,
                                              deliveries: r.job.deliveries, startedNs: r.job.startedNs, at: now)
            }
        }
        // Those being recorded now finish that (a few JetStream calls, each bounded by its wait).
        let until = Clock.monotonicNanos() + 12_000_000_000
        while runningHere > 0 && Clock.monotonicNanos() < until { usleep(5_000) }
        wake.withLock {
            state.withLock { $0.closed = true }
            wake.signal()
        }
        for t in threads { t.join() }
        threads = []
    }

    static let givenBack = "interrupted: this host stopped before it finished; the cluster redelivered it"
    static let leftRunning = "interrupted: this host stopped; the cluster redelivered it"

    private var stopping: Bool { state.withLock { $0.stopping } }
    private var closed: Bool { state.withLock { $0.closed } }

    /// Rows this host's store kept from before a SIGKILL: attempts for
    /// other nodes that it left "running" (the cluster redelivered them)
    /// are marked interrupted, so `tasks show` does not say "running"
    /// forever; "completing" ones take the done-marker's word.
    private func settleLeftOver() {
        do {
            let n = try ForeignAttempts.interruptLeftOver(store, why: ClusterTasks.leftRunning, at: Clock.unixNanos()) { id, attempt in
                // No marker (or unreadable now): this run was not the task's completion.
                guard let marker = try? done.get(id), let p = TaskParcel(marker), let n = p.string("node") else { return nil }
                if n == node && p.int("attempt") == Int64(attempt) { return ("completed", "") }
                return ("duplicate", "completed on node \(n) first")
            }
            if n > 0 { logger.notice("attempts for other nodes left unfinished by this host's last run were marked interrupted", metadata: ["rows": "\(n)"]) }
        } catch {
            logger.warning("could not mark the attempts left unfinished by this host's last run", metadata: ["error": "\(error)"])
        }
    }

    // MARK: TaskExchange (the submitting host, on the scheduler's thread)

    public func whyUnprovided(_ capability: String) -> String? {
        guard let why = host.whyUnprovided(capability) else { return nil }
        if !clusterNode.providerNodes(of: capability).isEmpty { return nil }
        return "\(why) on any node of cluster '\(cluster)'"
    }

    public func offer(_ task: TaskRecord, attempt: Int) throws(PlexusError) {
        guard clusterNode.connection.isConnected else {
            // The scheduler keeps the task queued (no attempt spent) and offers it again.
            throw PlexusError(.UNAVAILABLE, "the connection to NATS is down; the task is not handed to the cluster yet")
        }
        let env = Envelope(kind: .query, target: .capability(task.capability), priority: Priority(rawValue: UInt8(task.priority)) ?? .normal,
                           payload: [UInt8](task.payload), contentType: task.content_type, deadlineUnixNs: task.deadline_unix_ns,
                           traceID: plexus_id(hex: task.id) ?? .none)
        let parcel = TaskParcel(meta: ["task": .string(task.id), "origin": .string(node), "attempt": .int(Int64(attempt)),
                                       "timeout_ms": .int(task.timeout_ms), "capability": .string(task.capability)], envelope: env)
        // The same attempt offered twice (this host killed between offering
        // it and recording it as running) has the same id, and is stored
        // once; a task retried by hand starts its attempts again from 1
        // with a new not_before, so its offers are new messages.
        try js.publish(taskSubject(task.capability), try parcel.encode(), msgID: "\(task.id)-\(attempt)-\(task.not_before_unix_ns)")
    }

    public func claim(key: String, taskID: String, stale: (KeyHolder) -> Bool) throws(PlexusError) -> KeyHolder? {
        let k = JetStream.token(key)
        let mine = Array(JSONValue.object(["node": .string(node), "task": .string(taskID)]).text.utf8)
        switch try keys.create(k, mine) {
        case .created: return nil
        case .exists(let v):
            guard case .object(let o)? = try? JSONValue.parse(v), case .string(let n)? = o["node"], case .string(let t)? = o["task"] else {
                throw PlexusError(.INTERNAL, "idempotency key '\(key)': its cluster-wide record in \(keys.bucket) is unreadable")
            }
            let holder = KeyHolder(node: n, taskID: t)
            if stale(holder) {
                try keys.put(k, mine)
                return nil
            }
            return holder
        }
    }

    // MARK: outcomes for this host's tasks

    /// Ends when stop() begins (what is not taken waits in the durable for
    /// the next start), so joining it costs nothing past the grace.
    private func takeOutcomes(_ sub: PullSubscription) {
        while !stopping {
            let msgs: [JetStreamMessage]
            do { msgs = try sub.fetch(batch: 64, timeoutMs: 500) } catch {
                logger.debug("outcome fetch failed", metadata: ["error": "\(error.detail)"])
                wake.withLock { if !stopping { wake.wait(untilMonotonic: Clock.monotonicNanos() + 250_000_000) } }
                continue
            }
            for m in msgs {
                guard let p = TaskParcel(m.bytes), let id = p.string("task"), let attempt = p.int("attempt"), let from = p.string("node") else {
                    logger.warning("an unreadable task outcome was dropped", metadata: ["bytes": "\(m.bytes.count)"])
                    try? m.ack()
                    continue
                }
                let o = RemoteOutcome(taskID: id, attempt: Int(attempt), node: from, answer: p.envelope, startedNs: p.int("started_ns") ?? 0)
                guard let scheduler else { return }
                // Acknowledged once the scheduler's record of it is on disk.
                scheduler.deliver(o) { m.ackAsync() }
            }
        }
    }

    // MARK: running attempts for any host's tasks

    /// Every 250 ms: one fetcher per capability this host provides; every
    /// attempt running here for 3 s says so (in progress) so JetStream
    /// does not give it to another host while it runs.
    private func tick() {
        while true {
            syncFetchers()
            let now = Clock.monotonicNanos()
            let due = state.withLock { s -> [JetStreamMessage] in
                var out: [JetStreamMessage] = []
                for (k, r) in s.running where now - r.lastProgressMono >= ClusterTasks.progressEveryNs {
                    out.append(r.message)
                    s.running[k]?.lastProgressMono = now
                }
                return out
            }
            for m in due { m.inProgress() }
            let stop = wake.withLock { () -> Bool in
                if closed { return true }
                wake.wait(untilMonotonic: now + 250_000_000)
                return closed
            }
            if stop { return }
        }
    }

    private func syncFetchers() {
        let want = Set(host.capabilityNames.filter { !ReservedNames.isHostOwned($0) })
        let (have, stopping) = state.withLock { (Set($0.fetchers.keys), $0.stopping) }
        if stopping { return }
        for cap in have.subtracting(want) {
            // Its providers are gone: the fetcher ends (within one fetch's 500 ms) and is joined.
            if let f = state.withLock({ $0.fetchers.removeValue(forKey: cap) }) { f.stop.set(); f.thread.join() }
        }
        for cap in want.subtracting(have).sorted() {
            do throws(PlexusError) {
                let durable = ClusterTasks.durable(cap)
                try js.ensureConsumer(stream: tasksStream, durable: durable, filter: taskSubject(cap), ackWaitNs: ClusterTasks.ackWaitNs)
                let sub = try js.pullSubscription(stream: tasksStream, durable: durable, filter: taskSubject(cap))
                let stop = StopFlag()
                let t: OwnedThread
                do { t = try startThread(name: "plexus-fetch") { [unowned self] in self.fetch(cap, sub, stop) } } catch {
                    throw PlexusError(.INTERNAL, "\(error)")
                }
                state.withLock { $0.fetchers[cap] = Fetcher(thread: t, stop: stop) }
                logger.info("taking durable tasks from the cluster", metadata: ["capability": "\(cap)", "consumer": "\(durable)"])
            } catch {
                logger.warning("cannot take durable tasks from the cluster", metadata: ["capability": "\(cap)", "error": "\(error.detail)"])
            }
        }
    }

    /// Fetches only while this host's providers of cap have room (what
    /// they hold is under their concurrency), as many as that room, so
    /// one host never hoards work another could start now.
    private func fetch(_ cap: String, _ sub: PullSubscription, _ stop: StopFlag) {
        while !stop.isSet {
            let room = host.spareCapacity(of: cap)
            if room <= 0 {
                wake.withLock { wake.wait(untilMonotonic: Clock.monotonicNanos() + 5_000_000) }
                continue
            }
            let msgs: [JetStreamMessage]
            do { msgs = try sub.fetch(batch: min(room, 64), timeoutMs: 500) } catch {
                wake.withLock { wake.wait(untilMonotonic: Clock.monotonicNanos() + 250_000_000) }
                continue
            }
            for m in msgs { run(m, cap: cap) }
        }
    }

    /// Runs one fetched attempt here, unless the task is already done.
    private func run(_ m: JetStreamMessage, cap: String) {
        guard let p = TaskParcel(m.bytes), let id = p.string("task"), let origin = p.string("origin"), let attempt = p.int("attempt") else {
            logger.warning("an unreadable durable task was dropped", metadata: ["capability": "\(cap)", "bytes": "\(m.bytes.count)"])
            try? m.ack()
            return
        }
        let marker: [UInt8]?
        do { marker = try done.get(id) } catch {
            m.nak(delayMs: 1_000)
            return
        }
        if let marker {   // completed already (by a host that died before its ack, or a slower twin)
            resend(marker, id: id, origin: origin, message: m)
            return
        }
        let started = Clock.unixNanos()
        var env = p.envelope
        let timeout = p.int("timeout_ms") ?? 30_000
        let byTimeout = started + timeout * 1_000_000
        env.deadlineUnixNs = env.deadlineUnixNs > 0 ? min(env.deadlineUnixNs, byTimeout) : byTimeout
        env.target = .capability(cap)
        if origin != node {
            ForeignAttempts.started(store, id: id, attempt: Int(attempt), capability: cap, origin: origin, node: node,
                                    deliveries: m.deliveries, at: started)
        }
        let key = "\(id)/\(attempt)"
        let job = Job(id: id, attempt: Int(attempt), origin: origin, capability: cap, startedNs: started, deliveries: m.deliveries)
        state.withLock { $0.running[key] = Running(message: m, lastProgressMono: Clock.monotonicNanos(), job: job) }
        do {
            let rid = try host.request(env) { [weak self] answer in
                guard let self, !answer.isPartial else { return }
                do { try self.pool.submit { self.complete(job, answer, m) } } catch {
                    _ = self.state.withLock { $0.running.removeValue(forKey: key) }
                    m.nak(delayMs: 1_000)
                }
            }
            state.withLock { $0.running[key]?.requestID = rid }
        } catch {
            _ = state.withLock { $0.running.removeValue(forKey: key) }
            logger.notice("a durable task could not start here; given back", metadata: ["task": "\(id)", "error": "\(error.detail)"])
            m.nak(delayMs: 1_000)
        }
    }

    private struct Job: Sendable {
        let id: String, attempt: Int, origin: String, capability: String, startedNs: Int64, deliveries: Int
    }

    /// An attempt ended here: record it, tell the submitting host, then ack.
    /// Any failure before the ack gives the message back (nak): the
    /// done-marker decides what its next delivery does.
    private func complete(_ job: Job, _ answer: Envelope, _ m: JetStreamMessage) {
        let key = "\(job.id)/\(job.attempt)"
        // Taken from stop() past the grace: already given back and recorded
        // so; this late answer must not be acknowledged too.
        let mine = state.withLock { s -> Bool in
            guard s.running[key] != nil, s.running[key]?.finishing == false else { return false }
            s.running[key]?.finishing = true
            return true
        }
        guard mine else { return }
        defer { _ = state.withLock { $0.running.removeValue(forKey: key) } }
        let now = Clock.unixNanos()
        // This host is stopping (its agent was stopped under the task): not
        // the task's failure; another host takes it now.
        if answer.kind == .error && answer.sender == "plexus" && answer.status == PLEXUS_SHUTTING_DOWN.status {
            m.nak(delayMs: 0)
            return
        }
        let agent = answer.sender.isEmpty ? nil : answer.sender
        let parcel = TaskParcel(meta: ["task": .string(job.id), "attempt": .int(Int64(job.attempt)), "node": .string(node),
                                       "started_ns": .int(job.startedNs), "finished_ns": .int(now)], envelope: answer)
        do throws(PlexusError) {
            let bytes = try parcel.encode()
            let foreign = job.origin != node
            func record(_ outcome: String, _ error: String) throws(PlexusError) {
                guard foreign else { return }
                do {
                    try ForeignAttempts.finished(store, id: job.id, attempt: job.attempt, capability: job.capability, origin: job.origin,
                                                 agent: agent.map { "\(node)/\($0)" }, outcome: outcome, error: error,
                                                 deliveries: job.deliveries, startedNs: job.startedNs, at: now)
                } catch { throw PlexusError(.INTERNAL, "the store did not record the attempt: \(error)") }
            }
            if answer.kind == .response {
                // On disk first ("completing"), then the marker decides: a
                // host killed in between leaves a row the marker resolves,
                // never a completion its store does not know of.
                try record("completing", "")
                var send = bytes, outcome = "completed", note = ""
                if case .exists(let first) = try done.create(job.id, bytes) {
                    // Another run completed it first: this one is not its completion.
                    send = first
                    outcome = "duplicate"
                    if let p = TaskParcel(first), let n = p.string("node") { note = "completed on node \(n) first" }
                }
                if foreign {
                    ForeignAttempts.settle(store, id: job.id, attempt: job.attempt, capability: job.capability, origin: job.origin,
                                           outcome: outcome, note: note, at: now)
                }
                try js.publish(outcomeSubject(job.origin), send, msgID: "\(job.id)-done")
            } else {
                let e = Host.error(from: answer)
                try record("failed", "\(e.name): \(e.detail)")
                try js.publish(outcomeSubject(job.origin), bytes, msgID: "\(job.id)-\(job.attempt)-failed")
            }
            try m.ack()
        } catch {
            logger.warning("a durable task's outcome was not recorded; given back for redelivery",
                           metadata: ["task": "\(job.id)", "error": "\(error.detail)"])
            m.nak(delayMs: 1_000)
        }
    }

    /// A delivery of a task already completed: its outcome goes to the
    /// submitting host again (it ignores one it has), and the message goes.
    private func resend(_ marker: [UInt8], id: String, origin: String, message m: JetStreamMessage) {
        do throws(PlexusError) {
            try js.publish(outcomeSubject(origin), marker, msgID: "\(id)-done")
            try m.ack()
            logger.debug("a completed durable task was delivered again; its outcome was resent", metadata: ["task": "\(id)"])
        } catch {
            m.nak(delayMs: 1_000)
        }
    }

    /// What `plexus nodes` could show: attempts running here for the cluster.
    public var runningHere: Int { state.withLock { $0.running.count } }
}
