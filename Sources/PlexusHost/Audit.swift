import PlexusThreads
import PlexusCore

/// One refusal by the permission check: who tried what, and when.
public struct AuditEvent: Sendable, Codable, Equatable {
    /// "agent 'summarizer'", "client 'reporter'", "client:4242".
    public var holder: String
    /// The identity stamped on the refused message.
    public var sender: String
    /// call, publish, subscribe or register.
    public var action: String
    /// The agent, capability, subject or pattern it was refused.
    public var name: String
    public var reason: String
    public var at_unix_ns: Int64
}

/// What `plexus audit` shows: the count of every refusal and the latest ones.
public struct AuditReport: Sendable, Codable, Equatable {
    public var total: Int
    public var recent: [AuditEvent]
    /// Operator actions on agents (`plexus agents stop NAME`...), done or
    /// refused, oldest first; nil from a host before they existed.
    public var actions: [ControlRecord]?
    public init(total: Int, recent: [AuditEvent], actions: [ControlRecord]? = nil) {
        self.total = total; self.recent = recent; self.actions = actions
    }
}

extension Router {
    /// The subject every refusal is also published on, for live watchers.
    static let auditSubject = "plexus.audit.denied"

    /// Records a refusal (kept in `audit`, logged, published on
    /// plexus.audit.denied) and returns the error the sender gets.
    func deny(_ g: Grants, _ action: Grants.Action, _ name: String, sender: String) -> PlexusError {
        let error = g.denial(action, name)
        record(AuditEvent(holder: g.holder, sender: sender, action: action.rawValue, name: name,
                          reason: error.detail, at_unix_ns: Clock.unixNanos()))
        return error
    }

    func record(_ event: AuditEvent) {
        audit.add(event)
        if let metrics { metrics.countDenied(event.action) }
        logger.notice("permission denied", metadata: ["holder": "\(event.holder)", "action": "\(event.action)", "name": "\(event.name)"])
        let body = JSONValue.object(["holder": .string(event.holder), "sender": .string(event.sender), "action": .string(event.action),
                                     "name": .string(event.name), "reason": .string(event.reason)])
        let e = Envelope(kind: .event, target: .topic(Router.auditSubject), payload: Array(body.text.utf8), contentType: "application/json")
        e.withCEnvelope { c in _ = try? route(c, from: hostOrigin) }
    }

    /// Checks that `o` may do `action` on `name`; records and throws a refusal.
    func authorize(_ o: Origin, _ action: Grants.Action, _ name: UnsafePointer<CChar>) throws(PlexusError) {
        let refusing = o.withGrants { g in g.flatMap { $0.allows(action, name) ? nil : $0 } }
        guard let g = refusing else { return }
        // A spawner may always message its own children (plexus.h spawn):
        // asked only on the refusal path, so granted calls pay nothing for it.
        if action == .call, let a = o.agent, let spawns, spawns.parent(of: String(cString: name)) == a.name { return }
        throw deny(g, action, String(cString: name), sender: String(cString: o.cName))
    }

    /// The same for a name in a Swift string (a subscription pattern, a
    /// registration): `grants` nil allows anything.
    func authorize(_ grants: Grants?, _ action: Grants.Action, _ name: String, sender: String) throws(PlexusError) {
        guard let g = grants, !g.permits(action, name) else { return }
        throw deny(g, action, name, sender: sender)
    }
}

extension Router {
    /// An agent subscribes itself, within its grants.
    func subscribe(_ a: Agent, _ pattern: String) throws(PlexusError) {
        try Subject.validatePattern(pattern)
        try authorize(a.grants, .subscribe, pattern, sender: a.name)
        try registry.subscribe(a, pattern)
    }
}
