import PlexusCore
import PlexusHost

/// One client connection's state: who it is, the agents it registered, and
/// where its outgoing frames queue. All of it is touched only by the
/// connection's reader thread, except the outbox.
///
/// Every frame a client sends gets exactly one answer frame whose
/// correlation_id is the client frame's id, except a reply to a request the
/// host delivered (RESPONSE or ERROR to target REPLY): that one is answered
/// only when it cannot be taken. Session operations are requests to the
/// host's reserved capabilities `plexus.register`, `plexus.unregister`,
/// `plexus.subscribe` and `plexus.unsubscribe` (SDK/PROTOCOL.md).
final class Session {
    let name: String
    private let host: Host
    let outbox: Outbox
    /// Agents this connection registered, by name.
    private var agents: [String: ExternalAgent] = [:]
    /// The agent that holds this connection's own subscriptions, made on
    /// the first subscribe.
    private var listener: ExternalAgent?
    private let serial: Int

    /// The registered agents and the listener.
    private var everyAgent: [ExternalAgent] { Array(agents.values) + (listener.map { [$0] } ?? []) }

    static let operations: Set<String> = ["plexus.register", "plexus.unregister", "plexus.subscribe", "plexus.unsubscribe"]

    init(name: String, serial: Int, host: Host, outbox: Outbox) {
        self.name = name
        self.serial = serial
        self.host = host
        self.outbox = outbox
    }

    /// Handles one frame from the client.
    func handle(_ env: Envelope) {
        let answer = answerer(for: env.id)
        do throws(PlexusError) {
            if env.kind == .response || env.kind == .error {
                try reply(env)
            } else if case .capability(let op) = env.target, Session.operations.contains(op) {
                answer(Envelope(kind: .response, target: .reply, payload: Array(try operate(op, env.payload).text.utf8),
                                contentType: "application/json"))
            } else if env.kind == .query {
                try host.request(env, timeoutMs: 0, as: name, onAnswer: answer)
            } else {
                let id = try host.send(env, as: name)
                answer(Envelope(kind: .response, target: .reply, payload: Array(JSONValue.object(["id": .string(id.hex)]).text.utf8),
                                contentType: "application/json"))
            }
        } catch {
            answer(Session.errorEnvelope(error))
        }
    }

    /// Sends `e` as the answer to the client frame `id`.
    private func answerer(for id: plexus_id) -> @Sendable (Envelope) -> Void {
        { [outbox] reply in
            var r = reply
            r.correlationID = id
            guard let frame = try? r.encode() else { return }
            _ = outbox.post(frame, force: true)
        }
    }

    static func errorEnvelope(_ e: PlexusError) -> Envelope {
        Envelope(kind: .error, target: .reply,
                 payload: Array(JSONValue.object(["error": .string(e.name), "message": .string(e.detail)]).text.utf8),
                 contentType: "application/json", status: e.status)
    }

    // MARK: replies from the client's agents

    private func reply(_ env: Envelope) throws(PlexusError) {
        let rid = env.correlationID
        guard let a = everyAgent.first(where: { host.isOpen(rid, at: $0) }) else {
            throw PlexusError(.NOT_A_REQUEST, "no request \(rid.hex) delivered to this connection is waiting for a reply (answered already, timed out, or never sent here)")
        }
        try host.reply(env, from: a)
    }

    // MARK: session operations

    private func operate(_ op: String, _ payload: [UInt8]) throws(PlexusError) -> JSONValue {
        let args = try Session.object(payload, op)
        switch op {
        case "plexus.register":
            let n = try Session.string(args, "name", op)
            let caps = try Session.strings(args, "capabilities", op)
            let x = try host.attach(name: n, capabilities: caps, deliver: deliverer())
            agents[n] = x
            return .object(["agent": .string(n), "capabilities": .array(caps.map(JSONValue.string))])
        case "plexus.unregister":
            let n = try Session.string(args, "name", op)
            guard let x = agents.removeValue(forKey: n) else {
                throw PlexusError(.NO_SUCH_AGENT, "\(op): this connection registered no agent named '\(n)'")
            }
            host.detach(x, reason: "its client unregistered it")
            return .object(["agent": .string(n)])
        case "plexus.subscribe":
            let p = try Session.string(args, "pattern", op)
            try host.subscribe(try subscriber(args, op), p)
            return .object(["pattern": .string(p)])
        default:   // plexus.unsubscribe
            let p = try Session.string(args, "pattern", op)
            guard host.unsubscribe(try subscriber(args, op), p) else {
                throw PlexusError(.INVALID_ARGUMENT, "\(op): not subscribed to '\(p)'")
            }
            return .object(["pattern": .string(p)])
        }
    }

    /// The agent a (un)subscription is for: a registered one named by
    /// "agent", or the connection's own listener.
    private func subscriber(_ args: [String: JSONValue], _ op: String) throws(PlexusError) -> ExternalAgent {
        if case .string(let n)? = args["agent"] {
            guard let x = agents[n] else { throw PlexusError(.NO_SUCH_AGENT, "\(op): this connection registered no agent named '\(n)'") }
            return x
        }
        if let l = listener { return l }
        let l = try host.attach(name: "\(name).\(serial)", capabilities: [], deliver: deliverer())
        listener = l
        return l
    }

    private func deliverer() -> @Sendable (UnsafeRawBufferPointer) -> Bool {
        { [outbox] frame in outbox.post(Array(frame), force: false) }
    }

    /// The connection is gone: its agents leave the host.
    func close() {
        for x in everyAgent { host.detach(x, reason: "its client's connection closed") }
        agents.removeAll()
        listener = nil
        outbox.close()
    }

    // MARK: arguments

    private static func object(_ payload: [UInt8], _ op: String) throws(PlexusError) -> [String: JSONValue] {
        guard case .object(let o)? = try? JSONValue.parse(payload) else {
            throw PlexusError(.INVALID_ARGUMENT, "\(op): the payload must be a JSON object, got '\(String(decoding: payload.prefix(60), as: UTF8.self))'")
        }
        return o
    }

    private static func string(_ o: [String: JSONValue], _ key: String, _ op: String) throws(PlexusError) -> String {
        guard case .string(let s)? = o[key] else { throw PlexusError(.INVALID_ARGUMENT, "\(op): \"\(key)\" must be a string") }
        return s
    }

    private static func strings(_ o: [String: JSONValue], _ key: String, _ op: String) throws(PlexusError) -> [String] {
        guard let v = o[key] else { return [] }
        guard case .array(let a) = v else { throw PlexusError(.INVALID_ARGUMENT, "\(op): \"\(key)\" must be an array of strings") }
        var out: [String] = []
        for item in a {
            guard case .string(let s) = item else { throw PlexusError(.INVALID_ARGUMENT, "\(op): \"\(key)\" must be an array of strings") }
            out.append(s)
        }
        return out
    }
}
