import PlexusThreads
import CPlexus
import CPlexusInternal
import Glibc
import Logging
import PlexusCore
import Synchronization

/// Lifecycle states every agent passes through, as the supervision tree will show them.
public enum AgentState: String, Sendable {
    /// suspended: its worker died and is being restarted (mail waits).
    case registering, active, draining, suspended, terminated
    /// Stopped by an operator (`plexus agents stop`): takes no mail, and is
    /// not restarted until `plexus agents start`.
    case stopped
}

/// An agent implemented inside the host in Swift (the "plexus" system agent).
protocol BuiltinBehavior: Sendable {
    var capabilities: [PluginDescriptor.Capability] { get }
    /// Handles one message; answers queries through router.reply.
    func handle(_ m: Message, agent: Agent, router: Router) -> plexus_status
}

enum AgentBehavior: @unchecked Sendable {
    case plugin(LoadedPlugin)
    case builtin(any BuiltinBehavior)
    /// A plugin in a sandboxed worker process.
    case worker(WorkerLink)
}

/// One running agent instance: its mailbox, its runners and its plugin
/// state. The host calls it from at most `concurrency` threads at a time
/// (one unless the plugin declares PLEXUS_PLUGIN_CONCURRENT).
final class Agent: Hashable, @unchecked Sendable {
    let name: String
    let cName: UnsafeMutablePointer<CChar>   // for envelopes; lives as long as the agent
    let behavior: AgentBehavior
    /// The plugin's handler, copied out of `behavior` for the hot path.
    let handleFn: plexus_handle_fn?
    /// The worker link, copied out of `behavior` for the hot path.
    let link: WorkerLink?
    let capabilities: [String]
    let exports: [String: PluginDescriptor.Export]
    let logger: Logger
    unowned(unsafe) var router: Router! { didSet { routerRef = router.map { Unmanaged.passUnretained($0) } } }
    /// The same, read per message without a reference count (see finishedWork).
    private var routerRef: Unmanaged<Router>?

    /// Runs body with the router, borrowed without counting a reference:
    /// loading `router` retains and releases it, and the router's count is
    /// one word every thread that routes would share (its cache line then
    /// moves between cores on every message).
    @inline(__always)
    func borrowRouter<R>(_ body: (Router) throws(PlexusError) -> R) throws(PlexusError) -> R {
        let r: Result<R, PlexusError> = routerRef.unsafelyUnwrapped._withUnsafeGuaranteedRef { router in
            do throws(PlexusError) { return .success(try body(router)) } catch { return .failure(error) }
        }
        return try r.get()
    }
    /// What this agent may send, publish and subscribe to; nil: anything
    /// (the host's own agents). Set before the agent is registered.
    var grants: Grants?
    /// The key-value namespace its kv_* calls use: its plugin's name, shared
    /// by every instance; nil for the host's own agents.
    var kvNamespace: String?
    /// Whether it reads partial answers and CANCEL envelopes (ABI 1.2):
    /// false for a plugin built for an earlier minor, which hears neither.
    var streams = true
    /// The version its plugin's descriptor declares (`plexus agents`); nil for the host's own agents.
    /// Behind a lock: a spawned child's changes while it runs (an upgrade of its plugin).
    var pluginVersion: String? {
        get { version.withLock { $0 } }
        set { version.withLock { $0 = newValue } }
    }
    private let version = Mutex<String?>(nil)
    /// Replaced or unloaded by a reload (Host+Reload.swift): lookups pass it over.
    /// Read per message by the registry, so an atomic rather than a lock.
    let retired = Atomic<Bool>(false)
    /// The version that took over from this one in a reload: mail that
    /// reaches this agent after it closed goes there instead of failing.
    let successor = Mutex<Agent?>(nil)

    /// The plugin's own state pointer from init.
    var pluginState: UnsafeMutableRawPointer?
    /// Its waiting messages and runners, lock-free on the common path (Inbox.swift).
    private let inbox: Inbox
    /// The state; its closed bits live in the inbox's word too, so
    /// admission never takes this lock.
    private let lifecycle = Mutex(AgentState.registering)
    /// How many may run it at once (in the host; a worker has its own threads).
    let concurrency: Int
    let capacity: Int

    /// Queued plus running messages: what "least loaded" compares.
    let load = Atomic<Int>(0)
    let handled = Atomic<Int>(0)
    /// Which pending-request shard this agent's requests use.
    let shard = Agent.shards.add(1, ordering: .relaxed).newValue
    private static let shards = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    /// Its meters (HostMetrics), set when it registers; nil when metrics are off.
    var meters: AgentMeters? { didSet { metersRef = meters.map { Unmanaged.passUnretained($0) } } }
    /// The same, for the message path: lent without a retain (the agent holds it).
    private(set) var metersRef: Unmanaged<AgentMeters>?
    /// Its row and column in the topology counts (Traffic), given at registration.
    var trafficSlot = 0
    /// An operator's suspension (Hold.swift): mail queues, none is handed out.
    let hold = Hold()

    init(name: String, behavior: AgentBehavior, capabilities: [String],
         exports: [PluginDescriptor.Export], mailboxCapacity: Int, concurrency: Int = 1) {
        self.concurrency = max(1, concurrency)
        self.name = name
        self.cName = strdup(name)
        self.behavior = behavior
        if case .plugin(let p) = behavior { handleFn = p.handleFn } else { handleFn = nil }
        if case .worker(let w) = behavior { link = w } else { link = nil }
        // The host's own agents answer single requests; a socket client's agent speaks the whole protocol.
        if case .builtin(let b) = behavior { streams = b is ExternalBehavior }
        var isWorker = false
        if case .worker = behavior { isWorker = true }
        self.capabilities = capabilities
        self.exports = Dictionary(exports.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.inbox = Inbox(capacity: mailboxCapacity, concurrency: concurrency, fast: !isWorker)
        self.capacity = mailboxCapacity
        self.logger = Logger(label: "plexus.agent.\(name)")
    }

    deinit { free(cName) }

    /// n messages are done with: the load drops, and whoever waits for
    /// capacity (the task scheduler) hears of it.
    func finishedWork(_ n: Int = 1) {
        load.wrappingSubtract(n, ordering: .relaxed)   // wrapping: one locked add, not a compare-and-swap loop
        // A plain flag first: loading the optional closure costs reference
        // counting on every message, and it is nil unless tasks run.
        // Through routerRef: a load of `router` retains and releases the
        // router, whose count every dispatcher thread would share.
        guard let r = routerRef, r._withUnsafeGuaranteedRef({ $0.observesCapacity }) else { return }
        r._withUnsafeGuaranteedRef { $0.capacityFreed?() }
    }

    static func == (a: Agent, b: Agent) -> Bool { a === b }
    func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(self)) }

    /// The opaque plexus_ctx handed to the plugin.
    var ctx: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }
    static func from(_ ctx: OpaquePointer) -> Agent {
        Unmanaged<Agent>.fromOpaque(UnsafeRawPointer(ctx)).takeUnretainedValue()
    }
    /// The agent behind ctx, lent to body without a retain: ctx is only
    /// valid while the agent lives, which the plugin's call already requires.
    @inline(__always)
    static func borrow<R>(_ ctx: OpaquePointer, _ body: (Agent) -> R) -> R {
        Unmanaged<Agent>.fromOpaque(UnsafeRawPointer(ctx))._withUnsafeGuaranteedRef(body)
    }

    var state: AgentState {
        get { lifecycle.withLock { $0 } }
        set {
            lifecycle.withLock { s in
                s = newValue
                inbox.close(all: newValue == .terminated || newValue == .stopped, new: newValue == .draining)
            }
        }
    }

    var queued: Int { inbox.count }

    /// `redirected`: it closed in a reload; the message (still the
    /// caller's, not released) belongs to the agent named.
    enum Admission { case accepted(schedule: Bool), full, closed, redirected(Agent) }

    /// Puts m in the mailbox. `schedule` says the caller must hand the agent
    /// to the dispatcher (it was idle).
    func admit(_ m: Message, force: Bool = false) -> Admission {
        admit(Unmanaged.passRetained(m), force: force)
    }

    /// The same with the reference u carries (+1), which the mailbox takes
    /// over when it accepts and which is released when it does not.
    func admit(_ u: Unmanaged<Message>, force: Bool = false) -> Admission {
        // For a worker, what it holds unstarted counts too: `load` covers the
        // mailbox, messages on their way out and deliveries not yet DONE, with
        // no gap between them.
        let admission = inbox.admit(u, force: force, workerLoad: link == nil ? nil : load.load(ordering: .relaxed))
        if case .accepted = admission { load.wrappingAdd(1, ordering: .relaxed); return admission }
        // Closed by a reload after the sender resolved it: its successor
        // takes the message (answers stay: they belong to this agent's requests).
        if case .closed = admission, !force, let next = successor.withLock({ $0 }) { return .redirected(next) }
        u.release()
        return admission
    }

    /// Takes the next message, or gives up this runner when there is none.
    func next() -> Message? { inbox.next() }

    /// Puts messages a dead worker had not finished back at the front.
    /// Returns true when the caller must hand the agent to the dispatcher.
    @discardableResult
    func requeueFront(_ ms: [Message]) -> Bool {
        guard !ms.isEmpty else { return false }
        load.add(ms.count, ordering: .relaxed)
        return inbox.requeueFront(ms)
    }

    /// Empties the mailbox (at shutdown) and returns what was in it.
    func drainMailbox() -> [Message] {
        inbox.drain()
    }
}

/// The message the current thread is handling, so what a handler sends
/// continues its trace. Per thread, because a concurrent agent runs several
/// handlers at once; a plugin's own threads have none.
enum CurrentMessage {
    static func during<R>(_ m: Message, _ body: () -> R) -> R {
        let previous = plexus_tls_message()   // a C thread-local (plexus_tls.h): no call per message
        plexus_tls_set_message(Unmanaged.passUnretained(m).toOpaque())
        defer { plexus_tls_set_message(previous) }
        return body()
    }

    static var trace: plexus_id {
        guard let p = plexus_tls_message() else { return .none }
        return Unmanaged<Message>.fromOpaque(p).takeUnretainedValue().header.traceID
    }

    /// The message being handled on this thread, if any (borrowed).
    static var current: Message? {
        guard let p = plexus_tls_message() else { return nil }
        return Unmanaged<Message>.fromOpaque(p).takeUnretainedValue()
    }
}
