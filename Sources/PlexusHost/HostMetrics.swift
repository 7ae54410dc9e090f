import CoreMetrics
import CPlexus
import CPlexusInternal
import Glibc
import PlexusCore
import PlexusMetrics
import PlexusThreads
import Prometheus
import Synchronization

/// The host's meters (issue 15): made once, when metrics are on
/// (HostConfiguration.metrics), and reached from the message path through
/// handles resolved in advance (the router's, each agent's `meters`), so a
/// site pays one branch when metrics are off and an atomic add when on.
/// Values the host already keeps (mailbox depth, restarts, worker CPU...)
/// are read when /metrics is scraped instead of being copied per message.
public final class HostMetrics: Sendable {
    public static let help: [String: String] = [
        "plexus_messages_routed_total": "Messages accepted by the router, by kind (command, query, response, event, error, cancel).",
        "plexus_messages_dead_lettered_total": "Messages that will not be delivered, by reason.",
        "plexus_agent_messages_handled_total": "Messages handed to the agent's handler (in process) or its worker.",
        "plexus_agent_messages_failed_total": "Messages whose handler returned a status other than OK (in process), or that a sandboxed agent answered with an ERROR, by that status.",
        "plexus_agent_mailbox_depth": "Messages waiting in the agent's mailbox.",
        "plexus_agent_in_flight": "Messages delivered to the agent's worker and not yet finished.",
        "plexus_agent_restarts_total": "Times the agent's worker was restarted.",
        "plexus_agent_state": "1 for the agent's current lifecycle state, 0 for the others.",
        "plexus_agent_handle_seconds": "Time from the handler's start to its end (in process; a handler that directly follows another on the same dispatcher thread starts where that one ended, so the hand-over between them, tens of nanoseconds, is counted in it), or from delivery to the worker to its DONE (sandboxed).",
        "plexus_request_seconds": "A request's time from routing to its answer (the caller's view), by the capability or agent it was addressed to.",
        "plexus_worker_cpu_seconds_total": "CPU time (user + system) of the agent's worker process, from /proc.",
        "plexus_worker_resident_bytes": "Resident memory of the agent's worker process, from /proc.",
        "plexus_socket_clients": "Clients connected to the host's Unix socket.",
        "plexus_pending_requests": "Requests waiting for an answer.",
        "plexus_denied_total": "Refusals of a grant or of a connection, by action.",
        "plexus_denied_syscalls_total": "System calls the sandbox refused in the agent's worker (each call).",
        "plexus_store_commit_seconds": "Time of one group commit of the durable store's writer.",
        "plexus_store_batch_size": "Writes per group commit of the durable store.",
        "plexus_tasks": "Durable tasks, by state.",
        "plexus_workflow_runs": "Workflow runs, by state.",
    ]

    /// Timers convert ticks of the meter clock (plexus_ticks.h), calibrated
    /// here once per process (about 2 ms, only when metrics are on).
    public let factory = PlexusMetricsFactory(help: HostMetrics.help, nanosPerTick: 1 / plexus_ticks_calibrate())
    /// By MessageKind's raw value (countRouted; `error` also counts an
    /// unknown kind): one padded atomic each, rendered by metricsText.
    let routed = PaddedCounters(slots: MessageKind.allCases.count)
    /// By status code; the last two slots: "init_failed", "other".
    let deadLettered: LazyCounters
    static let deadLetterInitFailed = 30
    /// By Grants.Action; the last slot "other" (connections, hellos).
    let denied: LazyCounters
    static let deniedActions = ["call", "publish", "subscribe", "connect", "hello", "other"]
    /// The store writer's (PlexusStore cannot see this type: it is handed these).
    public let storeCommit: AtomicHistogram
    public let storeBatch: AtomicHistogram
    /// Requests to a name that is neither a plugin capability nor an agent
    /// known at start (a socket client's): made on first use, under a lock.
    private let otherRequests = Mutex<[String: AtomicHistogram]>([:])
    /// What others measure at scrape time (socket clients, tasks, runs).
    private let collectors = Mutex<[@Sendable (inout String) -> Void]>([])

    init() {
        let f = factory
        deadLettered = LazyCounters(slots: 32) { i in
            let reason = i == HostMetrics.deadLetterInitFailed ? "init_failed" : i == 31 ? "other" : statusName(plexus_status(Int32(i))).lowercased()
            return CoreMetrics.Counter(label: "plexus_messages_dead_lettered_total", dimensions: [("reason", reason)], factory: f)
        }
        denied = LazyCounters(slots: HostMetrics.deniedActions.count) { i in
            CoreMetrics.Counter(label: "plexus_denied_total", dimensions: [("action", HostMetrics.deniedActions[i])], factory: f)
        }
        storeCommit = f.timer("plexus_store_commit_seconds")
        storeBatch = f.valueHistogram("plexus_store_batch_size")
    }

    @inline(__always)
    func countRouted(_ kind: UInt8) {
        routed.increment(Int(kind) < routed.slots ? Int(kind) : Int(MessageKind.error.rawValue))
    }

    /// The handles of one agent, made when it registers.
    func agent(_ name: String, exclusive: Bool) -> AgentMeters { AgentMeters(name: name, factory: factory, exclusive: exclusive) }

    /// A request histogram for a name no agent or capability object holds.
    func requestHistogram(_ label: String) -> AtomicHistogram {
        otherRequests.withLock { m in
            if let h = m[label] { return h }
            let h = HostMetrics.requestTimer(label, factory)
            m[label] = h
            return h
        }
    }

    static func requestTimer(_ label: String, _ f: PlexusMetricsFactory) -> AtomicHistogram {
        f.timer("plexus_request_seconds", [("capability", label)])
    }

    func countDenied(_ action: String) {
        denied.increment(HostMetrics.deniedActions.firstIndex(of: action) ?? HostMetrics.deniedActions.count - 1)
    }

    /// Adds a family measured at scrape time (rendered with its own # HELP/# TYPE).
    public func collect(_ body: @escaping @Sendable (inout String) -> Void) {
        collectors.withLock { $0.append(body) }
    }

    func renderCollected(into out: inout String) {
        for c in collectors.withLock({ $0 }) { c(&out) }
    }

    /// Families whose series are made on first use: until then, their
    /// # HELP and # TYPE alone, so a scraper knows them from the start.
    static let lazyFamilies = ["plexus_messages_dead_lettered_total", "plexus_agent_messages_failed_total", "plexus_denied_total"]
}

/// One agent's handles, resolved once (Registry.register/attach).
final class AgentMeters: @unchecked Sendable {
    /// Whether one thread at a time records into `handle` (an in-process,
    /// non-concurrent agent: observeTicksExclusive); a worker's DONE is
    /// recorded by its link's reader, beside the dispatcher.
    let exclusive: Bool
    /// By the handler's status code (the last slot: any other).
    let failed: LazyCounters
    let handle: AtomicHistogram
    /// plexus_request_seconds{capability=<this agent's name>}: requests addressed to it by name.
    let requests: AtomicHistogram
    /// The handle-time counts when the current p50/p99 window began (Reports).
    let window: Mutex<QuantileWindow>

    init(name: String, factory f: PlexusMetricsFactory, exclusive: Bool) {
        self.exclusive = exclusive
        failed = LazyCounters(slots: 32) { i in
            CoreMetrics.Counter(label: "plexus_agent_messages_failed_total",
                                dimensions: [("agent", name), ("status", i == 31 ? "UNKNOWN" : statusName(plexus_status(Int32(i))))], factory: f)
        }
        handle = f.timer("plexus_agent_handle_seconds", [("agent", name)])
        requests = HostMetrics.requestTimer(name, f)
        window = Mutex(QuantileWindow(buckets: handle.bounds.count + 1))
    }

    /// Takes its series off /metrics: a socket client's agent that leaves
    /// (a host serving many short-lived clients would otherwise keep every
    /// name it ever saw). Messages still on their way count unseen.
    func retire(_ f: PlexusMetricsFactory) {
        failed.destroyAll()
        f.destroyTimer(handle)
        f.destroyTimer(requests)
    }

    /// p50 and p99 of the handle time in microseconds over the recent window
    /// (QuantileWindow), nil when it saw no message.
    func handleQuantilesMicros() -> (p50: Double, p99: Double)? {
        let now = handle.snapshot()
        let base = window.withLock { $0.base(now: now, at: Clock.monotonicNanos()) }
        let delta = zip(now, base).map { $0 &- $1 }
        guard let p50 = handle.quantile(0.5, of: delta), let p99 = handle.quantile(0.99, of: delta) else { return nil }
        return (p50 / 1_000, p99 / 1_000)
    }
}

/// Which counts the p50/p99 of `plexus agents` subtract: two snapshots taken
/// by readers, rotated every `period`, so the quantiles cover the last 30 to
/// 60 s while someone reads them at least every 30 s (plexus top, the
/// dashboard), and since the older snapshot otherwise (since start at first).
struct QuantileWindow {
    static let periodNanos: Int64 = 30_000_000_000
    private var older: [UInt64]
    private var newer: [UInt64]
    private var newerAt: Int64

    init(buckets: Int) {
        older = [UInt64](repeating: 0, count: buckets)
        newer = older
        newerAt = Clock.monotonicNanos()
    }

    mutating func base(now: [UInt64], at t: Int64) -> [UInt64] {
        if t - newerAt >= QuantileWindow.periodNanos {
            older = newer
            newer = now
            newerAt = t
        }
        return older
    }
}

// MARK: scrape-time values

extension Host {
    /// The Prometheus text of this host's meters (nil when metrics are off):
    /// the registry's counters and gauges, the histograms, and what is read
    /// now (agents' mailboxes, states, workers' CPU and memory, pending requests).
    public func metricsText() -> String? {
        guard let m = router.metrics else { return nil }
        var out = ""
        m.factory.render(into: &out)
        Exposition.header(&out, "plexus_messages_routed_total", type: "counter", help: HostMetrics.help["plexus_messages_routed_total"]!)
        for k in MessageKind.allCases {
            Exposition.sample(&out, "plexus_messages_routed_total", [("kind", k.name)], Double(m.routed.value(Int(k.rawValue))))
        }
        let agents = registry.everyAgent
        // Counted by the agent itself (Agent.handled), read here: the message
        // path pays no second add for the metric.
        Exposition.header(&out, "plexus_agent_messages_handled_total", type: "counter", help: HostMetrics.help["plexus_agent_messages_handled_total"]!)
        // An agent name's count goes on across hot reloads: its earlier versions' are added.
        let earlier = reloads.handledElsewhere()
        for a in agents where a.meters != nil {
            let n = a.handled.load(ordering: .relaxed) + (earlier[a.name] ?? 0)
            Exposition.sample(&out, "plexus_agent_messages_handled_total", [("agent", a.name)], Double(n))
        }
        let states: [AgentState] = [.registering, .active, .draining, .suspended, .terminated, .stopped]
        Exposition.header(&out, "plexus_agent_mailbox_depth", type: "gauge", help: HostMetrics.help["plexus_agent_mailbox_depth"]!)
        for a in agents { Exposition.sample(&out, "plexus_agent_mailbox_depth", [("agent", a.name)], Double(a.queued)) }
        Exposition.header(&out, "plexus_agent_in_flight", type: "gauge", help: HostMetrics.help["plexus_agent_in_flight"]!)
        for a in agents {
            Exposition.sample(&out, "plexus_agent_in_flight", [("agent", a.name)], Double(a.link?.inflightCount.load(ordering: .relaxed) ?? 0))
        }
        Exposition.header(&out, "plexus_agent_state", type: "gauge", help: HostMetrics.help["plexus_agent_state"]!)
        for a in agents {
            let s = reportedState(a)   // as `plexus agents` shows it: an operator's suspension included
            for k in states { Exposition.sample(&out, "plexus_agent_state", [("agent", a.name), ("state", k.rawValue)], k.rawValue == s ? 1 : 0) }
        }
        let workers = agents.compactMap { a in a.link.map { (a, $0.status) } }
        Exposition.header(&out, "plexus_agent_restarts_total", type: "counter", help: HostMetrics.help["plexus_agent_restarts_total"]!)
        for (a, w) in workers {   // the supervisor's restarts and the operator's, as `plexus agents` counts them
            Exposition.sample(&out, "plexus_agent_restarts_total", [("agent", a.name)], Double(w.restarts + control.report(a).restarts))
        }
        Exposition.header(&out, "plexus_denied_syscalls_total", type: "counter", help: HostMetrics.help["plexus_denied_syscalls_total"]!)
        for (a, w) in workers { Exposition.sample(&out, "plexus_denied_syscalls_total", [("agent", a.name)], Double(w.denied)) }
        let usage = workers.compactMap { (a, w) in w.pid.flatMap { pid in ProcUsage.read(pid: pid).map { (a.name, pid, $0) } } }
        Exposition.header(&out, "plexus_worker_cpu_seconds_total", type: "counter", help: HostMetrics.help["plexus_worker_cpu_seconds_total"]!)
        for (n, pid, u) in usage { Exposition.sample(&out, "plexus_worker_cpu_seconds_total", [("agent", n), ("pid", String(pid))], u.cpuSeconds) }
        Exposition.header(&out, "plexus_worker_resident_bytes", type: "gauge", help: HostMetrics.help["plexus_worker_resident_bytes"]!)
        for (n, pid, u) in usage { Exposition.sample(&out, "plexus_worker_resident_bytes", [("agent", n), ("pid", String(pid))], Double(u.residentBytes)) }
        Exposition.header(&out, "plexus_pending_requests", type: "gauge", help: HostMetrics.help["plexus_pending_requests"]!)
        Exposition.sample(&out, "plexus_pending_requests", [], Double(router.pending.count))
        m.renderCollected(into: &out)
        for name in HostMetrics.lazyFamilies where !out.contains("# TYPE \(name) ") {
            Exposition.header(&out, name, type: "counter", help: HostMetrics.help[name]!)
        }
        return out
    }

    /// The host's meters, for the parts of `plexus run` outside PlexusHost
    /// (store, socket server, scheduler, workflow engine); nil when off.
    public var metrics: HostMetrics? { router.metrics }
}

/// A process's CPU time and resident memory, from /proc/PID/stat and statm.
public struct ProcUsage: Sendable, Equatable {
    public var cpuSeconds: Double
    public var residentBytes: Int

    static let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    static let page = Int(sysconf(Int32(_SC_PAGESIZE)))

    public static func read(pid: Int32) -> ProcUsage? {
        guard let stat = file("/proc/\(pid)/stat"), let statm = file("/proc/\(pid)/statm") else { return nil }
        // The command name (field 2) may hold spaces and parentheses: fields
        // are counted after its last ')'. utime and stime are fields 14 and 15.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
        let m = statm.split(separator: " ")
        guard m.count > 1, let rss = Int(m[1]) else { return nil }
        return ProcUsage(cpuSeconds: (u + s) / ticks, residentBytes: rss * page)
    }

    private static func file(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buf = [CChar](repeating: 0, count: 1024)
        let n = fread(&buf, 1, buf.count - 1, f)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
