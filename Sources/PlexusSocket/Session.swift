import PlexusCore
import PlexusThreads
import PlexusHost
import PlexusTrace

/// One client connection's state: who it is, the agents it registered, and
/// where its outgoing frames queue. All of it is touched only by the
/// socket server's event-loop thread, except the outbox. Nothing here may
/// block: requests are answered through callbacks.
///
/// Every frame a client sends gets exactly one answer frame whose
/// correlation_id is the client frame's id, except a reply to a request the
/// host delivered (RESPONSE or ERROR to target REPLY): that one is answered
/// only when it cannot be taken. Session operations are requests to the
/// host's reserved capabilities `plexus.register`, `plexus.unregister`,
/// `plexus.subscribe` and `plexus.unsubscribe` (SDK/PROTOCOL.md).
final class Session {
    /// Who this connection is; nil until a peer that must say hello does.
    private var identity: Identity?
    /// The peer's uid, from its credentials.
    private let uid: UInt32
    /// Whether any frame other than a hello was taken (a hello must come first).
    private var begun = false
    private let host: Host
    let outbox: Outbox
    /// Agents this connection registered, by name.
    private var agents: [String: ExternalAgent] = [:]
    /// The agent that holds this connection's own subscriptions, made on
    /// the first subscribe.
    private var listener: ExternalAgent?
    private let serial: Int
    /// Told how quickly each agent answers (which agents may run inline).
    private let policy: InlinePolicy
    /// This connection's queries still waiting for their final answer.
    private let queries = OpenClientQueries()

    /// The registered agents and the listener.
    private var everyAgent: [ExternalAgent] { Array(agents.values) + (listener.map { [$0] } ?? []) }

    static let operations: Set<String> = ["plexus.hello", "plexus.register", "plexus.unregister", "plexus.subscribe", "plexus.unsubscribe"]

    init(identity: Identity?, uid: UInt32, serial: Int, host: Host, outbox: Outbox, policy: InlinePolicy) {
        self.policy = policy
        self.identity = identity
        self.uid = uid
        self.serial = serial
        self.host = host
        self.outbox = outbox
    }

    /// The sender name for logs: the identity, or the uid still to say hello.
    var name: String { identity?.name ?? "uid \(uid) (no hello yet)" }

    /// Handles one frame from the client. False when the connection must
    /// end (a refused hello).
    func handle(_ env: Envelope) -> Bool {
        let answer = answerer(for: env.id)
        do throws(PlexusError) {
            if case .capability("plexus.hello") = env.target {
                answer(try hello(env.payload))
                return true
            }
            guard let me = identity else {
                throw PlexusError(.PERMISSION_DENIED, "this connection (uid \(uid)) must first say hello: a QUERY to plexus.hello "
                                  + "with {\"client\": NAME, \"token\": TOKEN} naming a client of plexus.yaml")
            }
            begun = true
            if env.kind == .response || env.kind == .error {
                if env.isPartial { try replyPartial(env) } else { try reply(env) }
            } else if env.kind == .cancel {
                try cancel(env, as: me)   // answered by the query's own CANCELLED; only a refusal answers this frame
            } else if case .capability(let op) = env.target, Session.operations.contains(op) {
                answer(Envelope(kind: .response, target: .reply, payload: Array(try operate(op, env.payload, me).text.utf8),
                                contentType: "application/json"))
            } else if env.kind == .query {
                try request(env, as: me)
            } else {
                let id = try host.send(env, as: me.name, grants: me.grants)
                answer(Envelope(kind: .response, target: .reply, payload: Array(JSONValue.object(["id": .string(id.hex)]).text.utf8),
                                contentType: "application/json"))
            }
        } catch {
            answer(Session.errorEnvelope(error))
            if case .capability("plexus.hello") = env.target, error.status == PLEXUS_PERMISSION_DENIED.status { return false }
        }
        return true
    }

    /// plexus.hello: the connection becomes a configured client. A refused
    /// hello is audited and ends the connection (one guess per connection).
    private func hello(_ payload: [UInt8]) throws(PlexusError) -> Envelope {
        guard !begun else {
            throw PlexusError(.INVALID_ARGUMENT, "plexus.hello must be the connection's first frame, and comes once")
        }
        let args = try Session.object(payload, "plexus.hello")
        do throws(PlexusError) {
            let (client, me) = try Identity.hello(args, uid: uid, host.configuration)
            identity = me
            begun = true
            var grants: [String: JSONValue] = [:]
            for (a, ps) in me.grants?.patterns ?? [:] { grants[a.rawValue] = .array(ps.map(JSONValue.string)) }
            return Envelope(kind: .response, target: .reply,
                            payload: Array(JSONValue.object(["client": .string(client), "sender": .string(me.name),
                                                             "grants": .object(grants)]).text.utf8),
                            contentType: "application/json")
        } catch {
            let who = args["client"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? "?"
            host.audit(holder: "uid \(uid)", sender: name, action: "hello", name: who, reason: error.detail)
            throw error
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

    /// A client's query, traced: it joins the client's trace (its
    /// traceparent: trace_id, and correlation_id's low half as the parent
    /// span, SDK/PROTOCOL.md) or starts one, under a span of its own for
    /// the request as this session sees it, recorded when it is answered.
    private func request(_ env: Envelope, as me: Identity) throws(PlexusError) {
        let tracer = host.tracer
        // Reading traces is not itself traced: it would crowd out what the reader looks for.
        // tracing.rate is asked once here, for the client span and the message alike.
        guard tracer.enabled, !env.target.name.hasPrefix("plexus.trace."),
              tracer.admits(coarseUnixNanos: Clock.coarseUnixNanos()) else {
            try streamed(env.id) { done throws(PlexusError) in
                let answer = timedAnswerer(for: env.id)
                return try host.requestStream(env, as: me.name, grants: me.grants) { reply in done(reply); answer(reply) }
            }
            return
        }
        var e = env
        if e.traceID.isNone { e.traceID = host.newTraceID() }
        let parent = e.correlationID.hi == 0 ? e.correlationID.lo : 0
        e.correlationID = .none   // a query's correlation_id means nothing past here
        let span = Tracer.newSpanID(), start = Tracer.now()
        let trace = e.traceID, name = e.target.description, client = me.name
        let answer = timedAnswerer(for: env.id, trace: trace)
        do {
            try streamed(env.id) { done throws(PlexusError) in
                try host.requestStream(e, as: me.name, grants: me.grants, parentSpan: span) { reply in
                    done(reply)
                    // Recorded before the client can see the answer: a client that
                    // reads the trace once answered finds it whole.
                    if !reply.isPartial {
                        tracer.record(trace: trace, span: span, parent: parent, kind: .client, name: name,
                                      agent: client, start: start, end: Tracer.now(), status: reply.kind == .error ? reply.status : 0)
                    }
                    answer(reply)
                }
            }
        } catch {
            tracer.record(trace: trace, span: span, parent: parent, kind: .client, name: name,
                          agent: client, start: start, end: Tracer.now(), status: error.status)
            throw error
        }
    }

    /// As answerer, and tells the policy how long the answer took. The
    /// answer carries the request's trace id (host-made errors have none).
    private func timedAnswerer(for id: plexus_id, trace: plexus_id = .none) -> @Sendable (Envelope) -> Void {
        let t0 = Clock.monotonicNanos()
        return { [outbox, policy] reply in
            if !reply.isPartial { policy.answered(reply.sender, nanos: Clock.monotonicNanos() - t0) }
            var r = reply
            if r.traceID.isNone { r.traceID = trace }
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

    /// Makes a query with `start` (given the callback that must see each
    /// answer), remembering its host id under the client's frame id until
    /// the final answer, so the client can cancel it.
    private func streamed(_ clientID: plexus_id,
                          _ start: (@escaping @Sendable (Envelope) -> Void) throws(PlexusError) -> plexus_id) throws(PlexusError) {
        let queries = self.queries
        queries.begin(clientID)
        do {
            let hostID = try start { reply in if !reply.isPartial { queries.end(clientID) } }
            queries.started(clientID, hostID)
        } catch {
            queries.end(clientID)
            throw error
        }
    }

    /// A CANCEL frame: correlation_id names one of this connection's queries.
    private func cancel(_ env: Envelope, as me: Identity) throws(PlexusError) {
        guard let hostID = queries.hostID(env.correlationID) else {
            throw PlexusError(.NOT_A_REQUEST, "no query \(env.correlationID.hex) of this connection is waiting for an answer (answered already, timed out, cancelled, or never sent)")
        }
        try host.cancel(hostID, by: "client '\(me.name)'")
    }

    // MARK: replies from the client's agents

    private func replyPartial(_ env: Envelope) throws(PlexusError) {
        let rid = env.correlationID
        guard let a = everyAgent.first(where: { host.isOpen(rid, at: $0) }) else {
            throw PlexusError(.NOT_A_REQUEST, "no request \(rid.hex) delivered to this connection is waiting for a reply (answered already, timed out, or never sent here)")
        }
        try host.replyPartial(env, from: a)
    }

    private func reply(_ env: Envelope) throws(PlexusError) {
        let rid = env.correlationID
        guard let a = everyAgent.first(where: { host.isOpen(rid, at: $0) }) else {
            throw PlexusError(.NOT_A_REQUEST, "no request \(rid.hex) delivered to this connection is waiting for a reply (answered already, timed out, or never sent here)")
        }
        try host.reply(env, from: a)
    }

    // MARK: session operations

    private func operate(_ op: String, _ payload: [UInt8], _ me: Identity) throws(PlexusError) -> JSONValue {
        let args = try Session.object(payload, op)
        switch op {
        case "plexus.register":
            let n = try Session.string(args, "name", op)
            let caps = try Session.strings(args, "capabilities", op)
            let x = try host.attach(name: n, capabilities: caps, as: me.name, grants: me.grants, deliver: deliverer())
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
            try Subject.validatePattern(p)
            try host.authorize(me.grants, .subscribe, p, as: me.name)
            try host.subscribe(try subscriber(args, op, me), p)
            return .object(["pattern": .string(p)])
        default:   // plexus.unsubscribe
            let p = try Session.string(args, "pattern", op)
            guard host.unsubscribe(try subscriber(args, op, me), p) else {
                throw PlexusError(.INVALID_ARGUMENT, "\(op): not subscribed to '\(p)'")
            }
            return .object(["pattern": .string(p)])
        }
    }

    /// The agent a (un)subscription is for: a registered one named by
    /// "agent", or the connection's own listener.
    private func subscriber(_ args: [String: JSONValue], _ op: String, _ me: Identity) throws(PlexusError) -> ExternalAgent {
        if case .string(let n)? = args["agent"] {
            guard let x = agents[n] else { throw PlexusError(.NO_SUCH_AGENT, "\(op): this connection registered no agent named '\(n)'") }
            return x
        }
        if let l = listener { return l }
        let l = try host.attachListener(connection: me.name, serial: serial, deliver: deliverer())
        listener = l
        return l
    }

    private func deliverer() -> @Sendable (UnsafeRawBufferPointer) -> Bool {
        { [outbox] frame in outbox.post(frame, force: false) }
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
