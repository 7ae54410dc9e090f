import PlexusThreads
import PlexusMetrics
import Glibc
import CPlexus
import CPlexusInternal
import PlexusCore
import Logging
import Synchronization

/// The one road between agents: every send, request, reply and publish, from
/// a plugin, a client or the host itself, passes through here.
final class Router: @unchecked Sendable {
    struct Limits: Sendable {
        var maxPayload: UInt64
        var defaultTimeoutMs: Int64
    }

    /// Who is sending: the name stamped on the envelope (never taken from it).
    /// Lives only for one route/reply call, whose caller holds the agent and
    /// the grants: the references are unowned, so building and passing an
    /// Origin costs no reference counting on the hot path.
    /// (Unmanaged, not `unowned(unsafe)`: reading one of those into a
    /// strong reference retains it, and the grant check runs per message.)
    struct Origin {
        let cName: UnsafePointer<CChar>
        private let agentRef: Unmanaged<Agent>?
        let trace: plexus_id
        /// The span it sends under (a socket client's request span); 0:
        /// the handler running on this thread, if any.
        var parentSpan: UInt64 = 0
        /// The sender records its own span for this message (a socket
        /// client's request) and tracing.rate admitted it already: traced
        /// without spending the budget twice, so the trace is whole.
        var admitted = false
        /// Sent by another host (Router+Remote.swift): delivered here only, never sent on.
        var fromPeer = false
        /// What it may do; nil: anything (the host itself, its own user).
        private let grantsRef: Unmanaged<Grants>?

        init(cName: UnsafePointer<CChar>, agent: Agent?, trace: plexus_id, grants: Grants? = nil) {
            self.cName = cName
            agentRef = agent.map { Unmanaged.passUnretained($0) }
            self.trace = trace
            grantsRef = grants.map { Unmanaged.passUnretained($0) }
        }

        var agent: Agent? { agentRef?.takeUnretainedValue() }
        /// The sending agent's identity, for "is it the responder?" without a reference.
        var agentID: UnsafeMutableRawPointer? { agentRef?.toOpaque() }

        /// Lends body the grants (nil: anything) without retaining them.
        func withGrants<R>(_ body: (Grants?) -> R) -> R {
            guard let g = grantsRef else { return body(nil) }
            return g._withUnsafeGuaranteedRef { body($0) }
        }
    }

    let registry: Registry
    let ids = IDGenerator()
    let pending: PendingRequests
    let deadLetters: DeadLetters
    /// The host's meters; nil when metrics are off (one branch per site).
    let metrics: HostMetrics?
    /// The same, lent to the message path without a retain.
    let metricsRef: Unmanaged<HostMetrics>?
    /// The most recent permission refusals (Audit.swift).
    let audit = Recent<AuditEvent>()
    /// Requests cancelled lately: a reply to one is dead-lettered as late (Router+Streams.swift).
    let cancelled = RecentCancels()
    let logger = Logger(label: "plexus.router")
    /// Who hears of agents starting, crashing, restarting (Lifecycle.swift).
    let observer = Mutex<(@Sendable (LifecycleEvent) -> Void)?>(nil)
    let limits: Limits
    /// The agents' key-value store; nil when the host runs without a store.
    /// Set before start (Host.attach(keyValue:)).
    var keyValue: (any KeyValueAccess)?
    /// spawn/stop of the host tables (the Host; Host+Spawn.swift).
    weak var spawns: (any SpawnService)?
    /// Called each time an agent finishes work and so has room for more
    /// (Host.observeCapacity); set before start.
    var capacityFreed: (@Sendable () -> Void)? { didSet { observesCapacity = capacityFreed != nil } }
    /// capacityFreed != nil, read per message without touching the closure.
    private(set) var observesCapacity = false
    /// A let: reaching it from the hot path loads no reference.
    let dispatcher: Dispatcher
    /// Records spans of what is routed (Router+Tracing.swift).
    let tracer: Tracer
    let hostName = strdup("plexus")!
    /// Other hosts over NATS (Router+Remote.swift); nil: this host is alone. Set before start.
    var remote: RemoteLink?

    init(registry: Registry, limits: Limits, threads: Int, tracer: Tracer = Tracer(TracingSettings(enabled: false)),
         metrics: HostMetrics? = nil) {
        self.tracer = tracer
        self.registry = registry
        self.metrics = metrics
        self.metricsRef = metrics.map { Unmanaged.passUnretained($0) }
        self.deadLetters = DeadLetters(metrics: metrics)
        registry.metrics = metrics
        self.limits = limits
        self.pending = PendingRequests(node: ids.node)
        self.dispatcher = Dispatcher(threads: threads)
        // The router owns and stops the dispatcher, so its threads use it
        // without counting references to it: a count every dispatcher
        // thread changed per message would bounce its cache line between cores.
        let me = Unmanaged.passUnretained(self)
        dispatcher.deliver = { (d: Dispatcher, agent: Agent) in
            if let link = agent.link {
                me._withUnsafeGuaranteedRef { $0.runWorkerBatch(agent, link) }
            } else {
                Dispatcher.runBatch(agent, dispatcher: d) { m in me._withUnsafeGuaranteedRef { $0.invoke(m, on: agent) } }
            }
        }
        pending.onTimeout = { [unowned self] (id: plexus_id, e: PendingRequests.Entry) in
            Router.observeAnswer(e)
            if e.streamed {   // the deadline cut a stream short: its partials came, its end did not
                self.answer(e.requester, requestID: id, status: PLEXUS_EXPIRED.status,
                            detail: "the stream from '\(e.target)' passed its deadline (\(e.timeoutMs) ms) before its final answer")
                return
            }
            self.answer(e.requester, requestID: id, status: PLEXUS_TIMEOUT.status,
                        detail: "no reply from '\(e.target)' within \(e.timeoutMs) ms")
        }
    }

    var hostOrigin: Origin { Origin(cName: hostName, agent: nil, trace: .none) }

    // MARK: sending

    /// Routes a command, event or (with `request`) a query. Returns the id
    /// the host gave the message. Throws, and delivers nothing, when the
    /// message cannot be accepted.
    @discardableResult
    func route(_ e: UnsafePointer<plexus_envelope>, from o: Origin,
               request: (Requester, timeoutMs: Int64)? = nil) throws(PlexusError) -> plexus_id {
        guard e.pointee.struct_size >= UInt32(MemoryLayout<plexus_envelope>.size) else {
            throw PlexusError(.INVALID_ARGUMENT, "envelope struct_size \(e.pointee.struct_size) is smaller than \(MemoryLayout<plexus_envelope>.size)")
        }
        var c = e.pointee
        c.struct_size = UInt32(MemoryLayout<plexus_envelope>.size)
        // A request's id comes from its pending slot (below); others count up.
        c.id = request == nil ? ids.next() : .none
        c.sender = o.cName
        c.flags = 0
        if c.trace_id.isNone { c.trace_id = o.trace.isNone ? ids.next() : o.trace }
        // The coarse clock (no hardware read): deadlines are kept to the
        // millisecond, and the exact clock is read only near one (Clock.isPast).
        let nowUnix = Clock.coarseUnixNanos()
        let t0 = tracer.enabled && (o.admitted || tracer.admits(coarseUnixNanos: nowUnix)) ? Tracer.now() : 0
        var timeoutMs: Int64 = 0
        if let request {
            c.kind = MessageKind.query.rawValue
            timeoutMs = request.timeoutMs > 0 ? request.timeoutMs
                : c.deadline_unix_ns > 0 ? max(0, (c.deadline_unix_ns - nowUnix) / 1_000_000) : limits.defaultTimeoutMs
            // From the coarse clock's upper bound: a deadline never comes
            // before the timeout asked for, at most a few ms after it.
            c.deadline_unix_ns = c.deadline_unix_ns > 0 && request.timeoutMs <= 0
                ? c.deadline_unix_ns : nowUnix + Clock.coarseLagNanos + timeoutMs * 1_000_000
        } else if c.kind == MessageKind.query.rawValue {
            throw PlexusError(.INVALID_ARGUMENT, "kind QUERY must be sent with request(), which arranges for the reply")
        } else if c.kind == MessageKind.response.rawValue || c.kind == MessageKind.error.rawValue {
            throw PlexusError(.INVALID_ARGUMENT, "kind \(c.kind == 2 ? "RESPONSE" : "ERROR") must be sent with reply()")
        } else if c.kind == MessageKind.cancel.rawValue {
            throw PlexusError(.INVALID_ARGUMENT, "kind CANCEL is made by the host: cancel a request with cancel()")
        }
        if c.deadline_unix_ns != 0 && Clock.isPast(c.deadline_unix_ns, coarse: nowUnix) {
            throw PlexusError(.EXPIRED, "the message's deadline had already passed when it was sent")
        }
        guard let target = c.target, target.pointee != 0 else {
            throw PlexusError(.INVALID_ARGUMENT, "target is empty: name an agent, a capability or a topic")
        }
        switch UInt32(c.target_kind) {
        case PLEXUS_TARGET_TOPIC.rawValue:
            let subject = String(cString: target)
            if request != nil { throw PlexusError(.INVALID_ARGUMENT, "a request goes to an agent or a capability, not to topic '\(subject)'") }
            c.kind = MessageKind.event.rawValue
            try Subject.validateSubject(subject)
            // The host's subjects are published by the host alone, and
            // `_plexus.` (a channel's control frames) by no one.
            if ReservedNames.isControl(subject) || o.cName != UnsafePointer(hostName),
               let refusal = ReservedNames.refusal(subject, as: .subject) { throw refusal }
            try authorize(o, .publish, target)
            return try publish(&c, subject: subject, from: o, t0: t0)
        case PLEXUS_TARGET_REPLY.rawValue:
            throw PlexusError(.INVALID_ARGUMENT, "target kind REPLY is for reply()")
        default: break
        }
        try authorize(o, .call, target)   // before resolving: a refused sender learns nothing of what exists
        if let remote, !o.fromPeer,
           let id = try routeRemote(remote, &c, target, request: request, timeoutMs: timeoutMs, nowUnix: nowUnix) { return id }
        let found: (Agent, String, Unmanaged<AtomicHistogram>?)
        do { found = try resolve(kind: c.target_kind, target) } catch {
            // A name no agent has may be one no agent could have: say what is wrong with
            // it (checked only here, so the message path checks each envelope once, in make).
            throw Message.refusal(&c, maxPayload: limits.maxPayload) ?? error
        }
        let (agent, label, timer) = found
        if registry.traffic.enabled { registry.traffic.count(from: o.agent?.trafficSlot ?? 0, to: agent.trafficSlot) }
        if let request {   // the request's id names its pending slot
            var entry = PendingRequests.Entry(requester: request.0, responder: agent,
                                         // both coarse clocks move at the same tick; half the lag (one tick) covers a tick between the two reads
                                         deadlineMono: Clock.coarseMonotonicNanos() + Clock.coarseLagNanos / 2 + (c.deadline_unix_ns - nowUnix),
                                         target: label, timeoutMs: timeoutMs, trace: c.trace_id, traced: t0 != 0)
            if metricsRef != nil {
                entry.timer = timer ?? metrics.map { Unmanaged.passUnretained($0.requestHistogram(label)) }
                entry.startTicks = plexus_ticks()
            }
            c.id = try pending.add(consume entry)
        }
        do throws(PlexusError) {
            if t0 == 0 {
                // Made and handed on as one reference: the mailbox's, with no
                // retain for it and release of the router's own afterwards.
                try admit(Unmanaged.passRetained(try Message.make(&c, maxPayload: limits.maxPayload)), to: agent)
            } else {
                let m = try Message.make(&c, maxPayload: limits.maxPayload)
                stamp(m, t0: t0, parent: o.parentSpan != 0 ? o.parentSpan : CurrentMessage.handleSpan)
                do throws(PlexusError) { try admit(m, to: agent) } catch {
                    refused(m, agent, status: error.status)
                    throw error
                }
            }
        } catch {
            if request != nil { _ = pending.take(c.id, responder: agent) }
            throw error
        }
        if let r = metricsRef { let k = c.kind; r._withUnsafeGuaranteedRef { $0.countRouted(k) } }
        return c.id
    }

    /// The agent a message goes to, and the name it was addressed by.
    /// And the histogram of requests so addressed (nil when metrics are off,
    /// or when the name is one only a socket client provides).
    private func resolve(kind: UInt8, _ target: UnsafePointer<CChar>) throws(PlexusError) -> (Agent, String, Unmanaged<AtomicHistogram>?) {
        if UInt32(kind) == PLEXUS_TARGET_AGENT.rawValue {
            guard let a = registry.agent(cName: target) else {
                throw PlexusError(.NO_SUCH_AGENT, "no agent named '\(String(cString: target))'")
            }
            return (a, a.name, a.metersRef?._withUnsafeGuaranteedRef { Unmanaged.passUnretained($0.requests) })
        }
        guard let found = registry.leastLoaded(cName: target) else {
            throw PlexusError(.NO_SUCH_CAPABILITY, "no agent provides capability '\(String(cString: target))'")
        }
        return found
    }

    private func admit(_ m: Message, to a: Agent, force: Bool = false) throws(PlexusError) {
        try admit(Unmanaged.passRetained(m), to: a, force: force)   // the mailbox's reference, taken here once
    }

    /// The same with the reference u carries (+1): the mailbox's when the
    /// message is accepted, released here when it is not.
    func admit(_ u: Unmanaged<Message>, to a: Agent, force: Bool = false) throws(PlexusError) {
        if !force, let link = a.link, link.circuitNotClosed.load(ordering: .acquiring),
           let why = link.supervisor?.refusal(a.name) {
            u.release()
            throw PlexusError(.AGENT_CRASHED, why)   // an open circuit fails fast
        }
        switch a.admit(u, force: force) {
        case .accepted(let wake):
            guard wake else { return }
            // A worker's batch only writes to a socket and never blocks, so it
            // runs right here: no dispatcher thread has to wake up for it.
            if let link = a.link { runWorkerBatch(a, link) } else { dispatcher.schedule(a) }
        case .full: throw PlexusError(.MAILBOX_FULL, "agent '\(a.name)' has \(a.capacity) messages waiting, its mailbox's limit")
        case .redirected(let next):   // a reload replaced a: its request now waits for next's answer
            u._withUnsafeGuaranteedRef { m in if m.isQuery { pending.transfer(m.id, from: a, to: next) } }
            try admit(u, to: next, force: force)
        case .closed:
            // Given up by its supervisor while the host runs on: say so, not "shutting down".
            if a.state == .terminated, let why = a.link?.givenUpReason {
                throw PlexusError(.SHUTTING_DOWN, "agent '\(a.name)' was terminated (\(why)); it takes no new messages until `plexus agents start \(a.name)` or the host restarts; `plexus agents` shows its restarts and last exit")
            }
            if a.state == .stopped {
                throw PlexusError(.SHUTTING_DOWN, "agent '\(a.name)' was stopped by an operator and takes no new messages; `plexus agents start \(a.name)` starts it again")
            }
            throw PlexusError(.SHUTTING_DOWN, "agent '\(a.name)' is \(a.state.rawValue) and takes no new messages")
        }
    }

    /// Sends a worker agent's waiting mail, one write per batch.
    func runWorkerBatch(_ agent: Agent, _ link: WorkerLink) {
        Dispatcher.runBatch(agent, dispatcher: dispatcher, gate: link.hasRoom) { invoke($0, on: agent) }
        link.flush()
    }

    /// Fan-out: one immutable Message shared by every subscriber's mailbox.
    private func publish(_ c: inout plexus_envelope, subject: String, from o: Origin, t0: Int64) throws(PlexusError) -> plexus_id {
        let m = try Message.make(&c, maxPayload: limits.maxPayload)
        if t0 != 0 { stamp(m, t0: t0, parent: o.parentSpan != 0 ? o.parentSpan : CurrentMessage.handleSpan) }
        if let remote, !o.fromPeer { publishRemote(remote, m, subject: subject) }
        var refused: [String] = []
        for a in registry.subscribers(of: subject) {
            if registry.traffic.enabled { registry.traffic.count(from: o.agent?.trafficSlot ?? 0, to: a.trafficSlot) }
            do { try admit(m, to: a) } catch {
                refused.append(a.name)
                deadLetters.record(m, reason: "publish to '\(subject)': \(error.detail)", cause: Int(error.status))
            }
        }
        if let r = metricsRef { r._withUnsafeGuaranteedRef { $0.countRouted(MessageKind.event.rawValue) } }
        if !refused.isEmpty {
            throw PlexusError(.MAILBOX_FULL, "not delivered to \(refused.joined(separator: ", ")) (dead-lettered); delivered to the other subscribers")
        }
        return m.id
    }

    // MARK: replies

    /// Answers a pending query on behalf of `o` (which must be its responder).
    func reply(_ e: UnsafePointer<plexus_envelope>, from o: Origin) throws(PlexusError) {
        guard e.pointee.struct_size >= UInt32(MemoryLayout<plexus_envelope>.size) else {
            throw PlexusError(.INVALID_ARGUMENT, "envelope struct_size \(e.pointee.struct_size) is smaller than \(MemoryLayout<plexus_envelope>.size)")
        }
        var c = e.pointee
        let rid = c.correlation_id
        guard let entry = pending.take(rid, responderID: o.agentID) else {
            throw lateAnswer(&c, from: o)
        }
        // The caller's view ends when it starts handling the answer: for an
        // in-process agent with meters, at its handler's start (invoke);
        // for any other caller, now.
        let deferred = entry.timer != nil && entry.requesterTimesItself
        if !deferred { Router.observeAnswer(entry) }
        // A sandboxed agent's failures reach the host as the ERROR its worker answers.
        // (`plexus agents` FAILED as well as /metrics: both count them.)
        if c.kind == MessageKind.error.rawValue, let a = o.agent, a.link != nil {
            a.failed.wrappingAdd(1, ordering: .relaxed)
            a.meters?.failed.increment(Int(c.status))
        }
        let t0 = entry.traced ? Tracer.now() : 0
        c.struct_size = UInt32(MemoryLayout<plexus_envelope>.size)
        c.kind = c.kind == MessageKind.error.rawValue ? c.kind : MessageKind.response.rawValue
        if c.kind == MessageKind.response.rawValue { c.status = 0 }
        c.target_kind = UInt8(PLEXUS_TARGET_REPLY.rawValue)
        c.target = nil
        c.id = ids.next()
        c.sender = o.cName
        c.flags = 0
        c.deadline_unix_ns = 0
        if c.trace_id.isNone { c.trace_id = entry.trace.isNone ? o.trace : entry.trace }
        let m: Message
        do { m = try Message.make(&c, maxPayload: limits.maxPayload) } catch {
            // The requester still gets an answer: why the reply could not travel.
            if deferred { Router.observeAnswer(entry) }
            answer(entry.requester, requestID: rid, status: error.status, detail: "the reply was refused: \(error.detail)")
            throw error
        }
        if deferred { m.header.answerTimer = entry.timer; m.header.answerStart = entry.startTicks }
        // Recorded when its request was: a trace is whole or absent, and a
        // reply does not spend tracing.rate's budget a second time.
        if t0 != 0 { stamp(m, t0: t0, parent: Tracer.handleSpan(of: rid)) }
        deliver(m, to: entry.requester)
    }

    /// Ends a pending query with a host-made ERROR (timeout, failure, expiry).
    func fail(requestID: plexus_id, responder: Agent?, status: plexus_status, detail: String) {
        guard let e = pending.take(requestID, responder: responder) else { return }
        Router.observeAnswer(e)
        answer(e.requester, requestID: requestID, status: status, detail: detail)
    }

    func answer(_ r: Requester, requestID: plexus_id, status: plexus_status, detail: String) {
        let payload = Array(JSONValue.object(["error": .string(statusName(status)), "message": .string(detail)]).text.utf8)
        let env = Envelope(kind: .error, target: .reply, payload: payload, contentType: "application/json",
                           correlationID: requestID, status: status)
        env.withCEnvelope { e in
            var c = e.pointee
            c.id = ids.next()
            c.sender = UnsafePointer(hostName)
            guard let m = try? Message.make(&c, maxPayload: UInt64(PLEXUS_MAX_PAYLOAD_LEN)) else { return }
            deliver(m, to: r)
        }
    }

    /// The caller's view of a request, recorded when its answer is decided.
    @inline(__always)
    static func observeAnswer(_ e: PendingRequests.Entry) {
        if let t = e.timer { let d = plexus_ticks() - e.startTicks; t._withUnsafeGuaranteedRef { $0.observeTicks(d) } }
    }

    func deliver(_ m: Message, to r: Requester) {
        if let r = metricsRef { let k = m.header.kind; r._withUnsafeGuaranteedRef { $0.countRouted(k) } }
        switch r {
        case .agent(let a):
            do { try admit(m, to: a, force: true) } catch {
                m.header.observeAnswer(at: plexus_ticks())
                deadLetters.record(m, reason: "reply to '\(a.name)': \(error.detail)", cause: Int(error.status))
            }
        case .callback(let f), .stream(let f):
            if m.header.tRoute != 0 { repliedToCaller(m) }   // first: a caller that reads its trace once answered finds it whole
            f(m.envelope)
        }
    }

    // MARK: messages that will not be delivered

    /// Dead-letters m, which never reached agent, and ends its request (if
    /// it is one) with status and detail (the reason when nil).
    func abandon(_ m: Message, at agent: Agent, reason: String, status: plexus_status, detail: String? = nil) {
        deadLetters.record(m, reason: reason, cause: Int(status))
        if m.isQuery { fail(requestID: m.id, responder: agent, status: status, detail: detail ?? reason) }
    }

    /// A message whose deadline passed before it was handled, in the host's
    /// mailbox or in a worker's queue.
    func expired(_ m: Message, at agent: Agent) {
        abandon(m, at: agent, reason: "expired before delivery to '\(agent.name)'", status: PLEXUS_EXPIRED.status,
                detail: "the request expired in the mailbox of '\(agent.name)' before it was delivered")
    }

    // MARK: delivery (on a dispatcher thread)

    private func invoke(_ m: Message, on agent: Agent) {
        // The end of the handler this dispatcher thread ran just before (it
        // has not waited since), in meter-clock ticks: this handler's start
        // without a second clock read. Taken (0 is left) so that a message
        // handled any other way below, or a wait, breaks the chain.
        let chained = plexus_tls_tick()
        plexus_tls_set_tick(0)
        let h = m.header
        let isAnswer = h.kind == MessageKind.response.rawValue || h.kind == MessageKind.error.rawValue
            || h.kind == MessageKind.cancel.rawValue
        if !isAnswer && h.deadlineUnixNs != 0 && Clock.isPast(h.deadlineUnixNs, coarse: Clock.coarseUnixNanos()) {
            expired(m, at: agent)
            return
        }
        if let link = agent.link {   // the worker answers and accounts for it itself
            if let x = agent.exports.isEmpty || isAnswer ? nil : exportTargeted(by: m, agent) {
                deliverExport(x, m, to: agent, via: link)
            } else {
                link.deliver(m, of: agent)
            }
            agent.handled.wrappingAdd(1, ordering: .relaxed)   // its handle time: from here to the worker's DONE (WorkerLink)
            return
        }
        let t1 = h.tRoute != 0 ? Tracer.now() : 0   // recorded: the handler's start (a worker's: WorkerLink)
        let meters = agent.metersRef
        let started = meters == nil ? 0 : chained != 0 ? chained : plexus_ticks()
        h.observeAnswer(at: started)
        let status: plexus_status = CurrentMessage.during(m) {
            if let handle = agent.handleFn, agent.exports.isEmpty {
                return m.withEnvelope { handle(agent.pluginState, agent.ctx, $0) }
            }
            return invokeSlow(m, on: agent, isAnswer: isAnswer)
        }
        agent.handled.wrappingAdd(1, ordering: .relaxed)
        if t1 != 0 { handled(m, by: agent, start: t1, end: Tracer.now(), status: status) }
        if let meters {
            let ended = plexus_ticks()
            // Only a dispatcher thread chains (it clears the tick before it waits).
            if plexus_tls_worker() != nil { plexus_tls_set_tick(ended) }
            meters._withUnsafeGuaranteedRef { mt in
                if mt.exclusive { mt.handle.observeTicksExclusive(ended - started) } else { mt.handle.observeTicks(ended - started) }
                if status != 0 { mt.failed.increment(Int(status)) }
            }
        }
        if status != 0 {
            agent.failed.wrappingAdd(1, ordering: .relaxed)
            if m.isQuery {
                fail(requestID: m.id, responder: agent, status: PLEXUS_HANDLER_FAILED.status,
                     detail: "agent '\(agent.name)' returned \(statusName(status)) while handling the request")
            }
        }
    }

    private func exportTargeted(by m: Message, _ agent: Agent) -> PluginDescriptor.Export? {
        m.withEnvelope { e in e.pointee.target.flatMap { agent.exports[String(cString: $0)] } }
    }

    /// Checks and converts the JSON arguments here, then hands the worker a
    /// binary call (WorkerExports); a bad argument is answered at once.
    private func deliverExport(_ x: PluginDescriptor.Export, _ m: Message, to agent: Agent, via link: WorkerLink) {
        let made: Result<Message, PlexusError> = m.withEnvelope { e in
            let json = e.pointee.payload.map { Array(UnsafeBufferPointer(start: $0, count: Int(e.pointee.payload_len))) } ?? []
            let body: [UInt8]
            do throws(PlexusError) { body = try WorkerExports.encodeCall(x, payload: json) } catch { return .failure(error) }
            var c = e.pointee
            return WorkerExports.ffiCall.withCString { ct in
                body.withUnsafeBufferPointer { b in
                    c.content_type = ct
                    c.payload = b.baseAddress
                    c.payload_len = UInt64(b.count)
                    do throws(PlexusError) { return .success(try Message.make(&c, maxPayload: UInt64(PLEXUS_MAX_PAYLOAD_LEN))) }
                    catch { return .failure(error) }
                }
            }
        }
        switch made {
        case .success(let call): link.deliver(call, of: agent)
        case .failure(let err):
            if m.isQuery { fail(requestID: m.id, responder: agent, status: err.status, detail: err.detail) }
        }
    }

    /// Typed exports, plugins without a handler, and built-in agents.
    private func invokeSlow(_ m: Message, on agent: Agent, isAnswer: Bool) -> plexus_status {
        switch agent.behavior {
        case .plugin, .worker:
            return m.withEnvelope { e in
                if !agent.exports.isEmpty, !isAnswer, let t = e.pointee.target,
                   let x = agent.exports[String(cString: t)] {
                    return TypedExports.invoke(x, message: e, agent: agent, router: self)
                }
                guard let handle = agent.handleFn else { return PLEXUS_UNSUPPORTED.status }
                return handle(agent.pluginState, agent.ctx, e)
            }
        case .builtin(let b):
            return b.handle(m, agent: agent, router: self)
        }
    }

    // MARK: lifecycle

    func start() throws(ThreadStartError) { try pending.start(); try dispatcher.start() }

    /// Stops dispatch; every request still waiting is answered SHUTTING_DOWN.
    func stop() {
        dispatcher.stop()
        pending.stop()
        for (id, e) in pending.takeAll() {
            answer(e.requester, requestID: id, status: PLEXUS_SHUTTING_DOWN.status, detail: "the host is shutting down")
        }
    }
}
