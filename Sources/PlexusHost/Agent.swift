import PlexusThreads
import CPlexus
import Glibc
import Logging
import PlexusCore
import Synchronization

/// Lifecycle states every agent passes through, as the supervision tree will show them.
public enum AgentState: String, Sendable {
    /// suspended: its worker died and is being restarted (mail waits).
    case registering, active, draining, suspended, terminated
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
    unowned(unsafe) var router: Router!
    /// What this agent may send, publish and subscribe to; nil: anything
    /// (the host's own agents). Set before the agent is registered.
    var grants: Grants?
    /// The key-value namespace its kv_* calls use: its plugin's name, shared
    /// by every instance; nil for the host's own agents.
    var kvNamespace: String?

    /// The plugin's own state pointer from init.
    var pluginState: UnsafeMutableRawPointer?
    /// What admit and next share, behind one lock.
    private struct Inbox: ~Copyable, Sendable {
        var mailbox: Mailbox
        /// Dispatcher threads running this agent now (or about to).
        var runners = 0
        var state = AgentState.registering
    }
    private let inbox: Mutex<Inbox>
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
    /// Its row and column in the topology counts (Traffic), given at registration.
    var trafficSlot = 0

    init(name: String, behavior: AgentBehavior, capabilities: [String],
         exports: [PluginDescriptor.Export], mailboxCapacity: Int, concurrency: Int = 1) {
        self.concurrency = max(1, concurrency)
        self.name = name
        self.cName = strdup(name)
        self.behavior = behavior
        if case .plugin(let p) = behavior { handleFn = p.handleFn } else { handleFn = nil }
        if case .worker(let w) = behavior { link = w } else { link = nil }
        self.capabilities = capabilities
        self.exports = Dictionary(exports.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.inbox = Mutex(Inbox(mailbox: Mailbox(capacity: mailboxCapacity)))
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
        if router.observesCapacity { router.capacityFreed?() }
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
        get { inbox.withLock { $0.state } }
        set { inbox.withLock { $0.state = newValue } }
    }

    var queued: Int { inbox.withLock { $0.mailbox.count } }

    enum Admission { case accepted(schedule: Bool), full, closed }

    /// Puts m in the mailbox. `schedule` says the caller must hand the agent
    /// to the dispatcher (it was idle).
    func admit(_ m: Message, force: Bool = false) -> Admission {
        admit(Unmanaged.passRetained(m), force: force)
    }

    /// The same with the reference u carries (+1), which the mailbox takes
    /// over when it accepts and which is released when it does not.
    func admit(_ u: Unmanaged<Message>, force: Bool = false) -> Admission {
        let isWorker = link != nil
        let admission: Admission = inbox.withLock { b in
            if b.state == .terminated || (b.state == .draining && !force) { return .closed }
            // For a worker, what it holds unstarted counts too: `load` covers the
            // mailbox, messages on their way out and deliveries not yet DONE, with
            // no gap between them (the running one is not "waiting").
            let elsewhere = isWorker ? max(0, load.load(ordering: .relaxed) - 1 - b.mailbox.count) : 0
            guard b.mailbox.push(u, force: force, elsewhere: elsewhere) else { return .full }
            return .accepted(schedule: Agent.claimRunner(&b, concurrency))
        }
        if case .accepted = admission { load.wrappingAdd(1, ordering: .relaxed) } else { u.release() }
        return admission
    }

    /// Lock held: true when the caller must hand the agent to the
    /// dispatcher (another runner is allowed). With concurrency 1 this is
    /// the classic "was idle" flag.
    private static func claimRunner(_ b: inout Inbox, _ concurrency: Int) -> Bool {
        guard b.runners < concurrency else { return false }
        b.runners += 1
        return true
    }

    /// Takes the next message, or gives up this runner when there is none.
    func next() -> Message? {
        inbox.withLock { b in
            if let m = b.mailbox.pop() { return m }
            b.runners -= 1
            return nil
        }
    }

    /// Puts messages a dead worker had not finished back at the front.
    /// Returns true when the caller must hand the agent to the dispatcher.
    @discardableResult
    func requeueFront(_ ms: [Message]) -> Bool {
        guard !ms.isEmpty else { return false }
        load.add(ms.count, ordering: .relaxed)
        return inbox.withLock { b in
            b.mailbox.pushFront(ms)
            return Agent.claimRunner(&b, concurrency)
        }
    }

    /// Empties the mailbox (at shutdown) and returns what was in it.
    func drainMailbox() -> [Message] {
        inbox.withLock { $0.mailbox.removeAll() }
    }
}

/// The message the current thread is handling, so what a handler sends
/// continues its trace. Per thread, because a concurrent agent runs several
/// handlers at once; a plugin's own threads have none.
enum CurrentMessage {
    private static let key: pthread_key_t = {   // a let: no exclusivity check per access
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    static func during<R>(_ m: Message, _ body: () -> R) -> R {
        let k = key
        let previous = pthread_getspecific(k)
        pthread_setspecific(k, Unmanaged.passUnretained(m).toOpaque())
        defer { pthread_setspecific(k, previous) }
        return body()
    }

    static var trace: plexus_id {
        guard let p = pthread_getspecific(key) else { return .none }
        return Unmanaged<Message>.fromOpaque(p).takeUnretainedValue().header.traceID
    }

    /// The message being handled on this thread, if any (borrowed).
    static var current: Message? {
        guard let p = pthread_getspecific(key) else { return nil }
        return Unmanaged<Message>.fromOpaque(p).takeUnretainedValue()
    }
}
