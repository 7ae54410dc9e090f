import PlexusThreads
import Synchronization
import DequeModule
import PlexusCore

/// An agent that lives outside the host (a program on the socket) and joins
/// a running host: it is routed to, load-balanced and subscribed like any
/// plugin agent, and what it is sent is handed to `deliver` as wire frames.
public final class ExternalAgent: @unchecked Sendable {
    public var name: String { agent.name }
    let agent: Agent
    let behavior: ExternalBehavior
    init(_ agent: Agent, _ behavior: ExternalBehavior) { self.agent = agent; self.behavior = behavior }
}

/// The behaviour of an external agent: each message goes out as its frame;
/// queries it was handed are remembered until answered, so the ones still
/// open when it leaves end at once instead of at their deadline.
final class ExternalBehavior: BuiltinBehavior, @unchecked Sendable {
    /// Takes one frame; false when the other side cannot take more now.
    typealias Deliver = @Sendable (UnsafeRawBufferPointer) -> Bool
    let capabilities: [PluginDescriptor.Capability]
    private let deliver: Deliver
    private let open = Mutex(OpenQueries())

    /// Handed-out queries, oldest first, bounded: an agent that never
    /// answers must not grow the host (its requests time out anyway).
    struct OpenQueries {
        var ids: Set<plexus_id> = []
        var order = Deque<plexus_id>()
        static let limit = 65_536
        mutating func insert(_ id: plexus_id) {
            ids.insert(id)
            order.append(id)
            while order.count > Self.limit { ids.remove(order.removeFirst()) }
        }
    }

    init(capabilities: [String], deliver: @escaping Deliver) {
        self.capabilities = capabilities.map { .init(name: $0, description: "provided by a socket client", input: nil, output: nil) }
        self.deliver = deliver
    }

    func handle(_ m: Message, agent: Agent, router: Router) -> plexus_status {
        if m.isQuery { open.withLock { $0.insert(m.id) } }
        if m.withFrame({ deliver($0) }) { return 0 }
        if m.isQuery { _ = open.withLock { $0.ids.remove(m.id) } }
        router.abandon(m, at: agent, reason: "agent '\(agent.name)' (a socket client) is not reading its connection",
                       status: PLEXUS_UNAVAILABLE.status)
        return 0
    }

    func answered(_ id: plexus_id) { _ = open.withLock { $0.ids.remove(id) } }

    func isOpen(_ id: plexus_id) -> Bool { open.withLock { $0.ids.contains(id) } }

    func takeOpen() -> [plexus_id] {
        open.withLock { o in
            let ids = Array(o.order.filter { o.ids.contains($0) })
            o = OpenQueries()
            return ids
        }
    }
}

extension Host {
    /// Adds an agent provided by a program outside the host; what it is sent
    /// reaches `deliver` as frames, on a dispatcher thread (deliver must not
    /// block: queue and return). Its name must be free.
    /// `grants` (nil: anything) must allow registering the name and every
    /// capability; reserved names (ReservedNames) are refused whatever the grants.
    public func attach(name: String, capabilities: [String], as sender: String = "", grants: Grants? = nil,
                       deliver: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool) throws(PlexusError) -> ExternalAgent {
        try attach(name: name, capabilities: capabilities, as: sender, grants: grants, byHost: false, deliver: deliver)
    }

    /// The agent that holds a socket connection's own subscriptions, named
    /// by the host after the connection's identity ("client:4242.7"): the
    /// one road to a `client:` agent name.
    public func attachListener(connection sender: String, serial: Int,
                               deliver: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool) throws(PlexusError) -> ExternalAgent {
        guard sender.hasPrefix("client:") else {
            throw PlexusError(.INVALID_ARGUMENT, "a connection's identity starts with 'client:', not '\(sender)'")
        }
        return try attach(name: "\(sender).\(serial)", capabilities: [], byHost: true, deliver: deliver)
    }

    private func attach(name: String, capabilities: [String], as sender: String = "", grants: Grants? = nil, byHost: Bool,
                        deliver: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool) throws(PlexusError) -> ExternalAgent {
        try Names.check(name, what: "agent name")
        for c in capabilities { try Names.check(c, what: "capability name") }
        if !byHost {   // the reason a reserved name is refused, before any grant check
            try ReservedNames.check(name, as: .agent)
            for c in capabilities { try ReservedNames.check(c, as: .capability) }
        }
        for n in [name] + capabilities { try authorize(grants, .register, n, as: sender) }
        let behavior = ExternalBehavior(capabilities: capabilities, deliver: deliver)
        let a = Agent(name: name, behavior: .builtin(behavior), capabilities: capabilities, exports: [],
                      mailboxCapacity: configuration.mailboxCapacity)
        a.router = router
        a.state = .active
        try registry.attach(a, byHost: byHost)
        logger.info("agent attached", metadata: ["agent": "\(name)", "capabilities": "\(capabilities)"])
        router.lifecycle("agent.attached", name, ["capabilities": .array(capabilities.map(JSONValue.string))])
        return ExternalAgent(a, behavior)
    }

    /// Removes an external agent. Mail it had not been handed is
    /// dead-lettered; requests it was handed and never answered end now with
    /// UNAVAILABLE and `reason`.
    public func detach(_ x: ExternalAgent, reason: String) {
        let a = x.agent
        a.state = .terminated
        registry.detach(a)
        for m in a.drainMailbox() {
            router.abandon(m, at: a, reason: "agent '\(a.name)' left: \(reason)", status: PLEXUS_UNAVAILABLE.status)
        }
        for id in x.behavior.takeOpen() {
            router.fail(requestID: id, responder: a, status: PLEXUS_UNAVAILABLE.status,
                        detail: "agent '\(a.name)' left before replying: \(reason)")
        }
        logger.info("agent detached", metadata: ["agent": "\(a.name)", "reason": "\(reason)"])
        router.lifecycle("agent.detached", a.name, ["reason": .string(reason)])
    }

    /// Answers a request that was delivered to x (env.correlationID names it).
    public func reply(_ env: Envelope, from x: ExternalAgent) throws(PlexusError) {
        x.behavior.answered(env.correlationID)
        let r: Result<Void, PlexusError> = env.withCEnvelope { e in
            do throws(PlexusError) { return .success(try router.reply(e, from: HostTable.origin(x.agent))) }
            catch { return .failure(error) }
        }
        try r.get()
    }

    /// Whether x was handed the request `id` and has not answered it.
    public func isOpen(_ id: plexus_id, at x: ExternalAgent) -> Bool { x.behavior.isOpen(id) }

    public func subscribe(_ x: ExternalAgent, _ pattern: String) throws(PlexusError) {
        try registry.subscribe(x.agent, pattern)
    }

    @discardableResult
    public func unsubscribe(_ x: ExternalAgent, _ pattern: String) -> Bool {
        registry.unsubscribe(x.agent, pattern)
    }
}
