import FoundationEssentials
import PlexusCore
import PlexusHost
import PlexusStore
import PlexusTasks
import PlexusThreads
import PlexusWorkflows
import Synchronization

/// Reads the host on a thread of its own and keeps the latest picture for
/// the dashboard's routes, which only copy it out: a route handler runs on
/// Swift's shared pool and must never wait for the store or the host.
/// A full snapshot every second; the store's events every quarter second,
/// so a tail shows them as they happen. Only while someone looks (a stream
/// open, or a snapshot asked for in the last few seconds): a host whose
/// dashboard nobody has open pays nothing but a wake-up four times a second.
final class Collector: Sendable {
    struct Published: Sendable {
        /// Counts snapshots; a stream sends one when it changes.
        var version = 0
        var snapshot = "{}"
        /// When it was made (monotonic ns); 0: never.
        var madeAt: Int64 = 0
        /// The newest events, oldest first, each (seq, JSON).
        var events: [(seq: Int64, json: String)] = []
    }

    let host: Host
    let scheduler: Scheduler
    let engine: WorkflowEngine
    let store: Store
    let published = Mutex(Published())
    private let wake = ConditionLock()
    private let stopping = Atomic(false)
    private let thread = Mutex<OwnedThread?>(nil)
    /// Workflow graphs by run id: a run's source never changes.
    private let graphs = Mutex<[String: JSONValue]>([:])
    /// The last time a reader asked (monotonic ns): streams each quarter second, /api/snapshot.
    private let demandAt = Atomic<Int64>(0)
    static let idleAfterNs: Int64 = 5_000_000_000
    static let keptEvents = 300

    init(host: Host, scheduler: Scheduler, engine: WorkflowEngine, store: Store) {
        self.host = host
        self.scheduler = scheduler
        self.engine = engine
        self.store = store
    }

    var isStopped: Bool { stopping.load(ordering: .relaxed) }

    /// Someone reads: keep collecting (and start again at once if idle).
    func want() {
        let now = Clock.monotonicNanos()
        let before = demandAt.exchange(now, ordering: .relaxed)
        if now - before > Self.idleAfterNs { wake.withLock { wake.signal() } }
    }

    /// The published snapshot if it is at most maxAgeNs old, else nil.
    func snapshot(maxAgeNs: Int64) -> String? {
        published.withLock { Clock.monotonicNanos() - $0.madeAt <= maxAgeNs ? $0.snapshot : nil }
    }

    func start() throws(ThreadStartError) {
        collectEvents()
        publishSnapshot()
        let t = try startThread(name: "plexus-dashboard") { [self] in loop() }
        thread.withLock { $0 = t }
    }

    func stop() {
        wake.withLock { stopping.store(true, ordering: .relaxed); wake.signal() }
        thread.withLock { $0.take() }?.join()
    }

    private func loop() {
        var tick = 0
        var wasIdle = true
        while true {
            let stop: Bool = wake.withLock {
                if !stopping.load(ordering: .relaxed) { wake.wait(untilMonotonic: Clock.monotonicNanos() + 250_000_000) }
                return stopping.load(ordering: .relaxed)
            }
            if stop { return }
            if store.isClosed { continue }
            if Clock.monotonicNanos() - demandAt.load(ordering: .relaxed) > Self.idleAfterNs { wasIdle = true; continue }
            // Back from idle: the latest events, not a catch-up through all since.
            if wasIdle { published.withLock { $0.events.removeAll() } }
            collectEvents()
            tick += 1
            // Back from idle: a snapshot now, not up to a second later.
            if tick % 4 == 0 || wasIdle { publishSnapshot(); tick = 0 }
            wasIdle = false
        }
    }

    // MARK: events

    private func collectEvents() {
        let last = published.withLock { $0.events.last?.seq }
        let fresh: [EventRecord]
        if let last {
            fresh = (try? store.events(after: last, limit: 500)) ?? []
        } else {
            fresh = (try? store.latestEvents(100)) ?? []   // oldest first already: `last` above must be the newest
        }
        let encoded = fresh.map { (seq: $0.seq, json: Self.event($0).text) }
        published.withLock { p in
            p.events.append(contentsOf: encoded)
            if p.events.count > Self.keptEvents { p.events.removeFirst(p.events.count - Self.keptEvents) }
        }
    }

    static func event(_ e: EventRecord) -> JSONValue {
        .object(["seq": .int(e.seq), "at_unix_ns": .int(e.at_unix_ns), "kind": .string(e.kind), "subject": .string(e.subject),
                 "data": (try? JSONValue.parse(Array(e.data.utf8))) ?? .string(e.data)])
    }

    // MARK: the snapshot

    private func publishSnapshot() {
        let text = snapshot().text
        let now = Clock.monotonicNanos()
        published.withLock { $0.version += 1; $0.snapshot = text; $0.madeAt = now }
    }

    func snapshot() -> JSONValue {
        .object([
            "at_unix_ns": .int(Clock.unixNanos()),
            "agents": Self.encode(host.agentReports),
            "topology": Self.encode(host.topology()),
            "runs": .array(runs()),
            "tasks": tasks(),
            "dead_letters": Self.encode(Array(host.deadLetterReports.suffix(100))),
            "audit": Self.encode(Array(host.auditEvents.recent.suffix(100))),
            "traces": Self.encode(host.recentTraces(last: 40)),
        ])
    }

    /// The latest runs, each with its steps (state, attempts, last failure,
    /// why it waits) and the graph `plexus workflow graph` draws.
    private func runs() -> [JSONValue] {
        guard let list = try? engine.list(limit: 12) else { return [] }
        let shown = list.compactMap { summary -> JSONValue? in
            guard case .string(let id)? = summary["id"], case .object(var o) = (try? engine.status(id)) ?? summary else { return nil }
            o["graph"] = graph(id) ?? .null
            return .object(o)
        }
        // Keep the graphs of the runs shown, not of every run the host has seen.
        let ids = Set(list.compactMap { if case .string(let id)? = $0["id"] { id } else { nil } })
        graphs.withLock { $0 = $0.filter { ids.contains($0.key) } }
        return shown
    }

    private func graph(_ id: String) -> JSONValue? {
        if let g = graphs.withLock({ $0[id] }) { return g }
        guard let r = try? store.run(id), let w = try? WorkflowFile.parse(run: r) else { return nil }
        let g = WorkflowGraph.json(w)
        graphs.withLock { $0[id] = g }
        return g
    }

    /// Queued and running tasks, and the dead-lettered ones with their attempts.
    private func tasks() -> JSONValue {
        func list(_ s: TaskState, _ n: Int) -> [TaskRecord] { (try? store.tasks(state: s, limit: n)) ?? [] }
        let dead: [JSONValue] = list(.dead, 30).map { t in
            guard case .object(var o) = TaskService.summary(t) else { return TaskService.summary(t) }
            o["attempt_history"] = .array(((try? store.attempts(of: t.id)) ?? []).map { a in
                .object(["attempt": .int(Int64(a.attempt)), "agent": a.agent.map(JSONValue.string) ?? .null,
                         "outcome": .string(a.outcome), "detail": .string(a.detail),
                         "ms": .int((a.finished_unix_ns - a.started_unix_ns) / 1_000_000)])
            })
            return .object(o)
        }
        return .object([
            "queued": .array((list(.waiting, 200) + list(.queued, 500)).map { t in
                guard case .object(var o) = TaskService.summary(t) else { return TaskService.summary(t) }
                if let why = scheduler.waitReason(t.id) { o["waiting"] = .string(why) }
                return .object(o)
            }),
            "running": .array(list(.running, 200).map { TaskService.summary($0) }),
            "dead": .array(dead),
            "counts": .object(Dictionary(uniqueKeysWithValues: TaskState.allCases.map {
                ($0.rawValue, JSONValue.int(Int64((try? store.count(state: $0)) ?? 0)))
            })),
        ])
    }

    /// Codable reports as JSON values (they encode as plain objects).
    static func encode<T: Encodable>(_ v: T) -> JSONValue {
        guard let data = try? JSONEncoder().encode(v), let j = try? JSONValue.parse(Array(data)) else { return .null }
        return j
    }
}
