import CPlexus
import CPlexusTrace
import PlexusCore
import PlexusTrace

/// What the router records for the tracer: one record per delivery of a
/// traced message (route, wait in the mailbox, handle), a record for a
/// reply handed to a caller's callback, and one for a message refused at
/// the mailbox. Only messages the tracer admitted at route time carry
/// stamps (MessageHeader.tRoute != 0); the others pay one branch.
extension Router {
    /// Marks m as traced: its parent span and its route times. Before m is
    /// admitted anywhere, so no other thread reads the header yet.
    @inline(never)
    func stamp(_ m: Message, t0: Int64, parent: UInt64) {
        m.header.parentSpan = parent
        m.header.tRoute = t0
        m.header.tRouted = Tracer.now()
    }

    /// m was handled by agent between start and end (monotonic ns).
    @inline(never)
    func handled(_ m: Message, by agent: Agent, start: Int64, end: Int64, status: plexus_status) {
        record(m, kind: PLEXUS_SPAN_MESSAGE, agent: agent, start: start, end: end, status: status)
    }

    /// A traced reply reached its caller's callback (a socket client, the API).
    @inline(never)
    func repliedToCaller(_ m: Message) {
        let now = Tracer.now()
        record(m, kind: PLEXUS_SPAN_REPLY, agent: nil, start: now, end: now, status: 0)
    }

    /// A traced message that the mailbox refused (full, closed, circuit open).
    @inline(never)
    func refused(_ m: Message, _ agent: Agent, status: plexus_status) {
        let now = Tracer.now()
        record(m, kind: PLEXUS_SPAN_REFUSED, agent: agent, start: 0, end: now, status: status)
    }

    private func record(_ m: Message, kind: plexus_span_record_kind, agent: Agent?, start: Int64, end: Int64,
                        status: plexus_status) {
        let h = m.header
        var r = plexus_span_record()
        r.trace_hi = h.traceID.hi; r.trace_lo = h.traceID.lo
        // A topic's one message reaches several agents: each delivery its own spans.
        r.span = Tracer.spanBase(h.kind == MessageKind.event.rawValue && agent != nil
                                 ? plexus_id(hi: h.id.hi ^ UInt64(UInt(bitPattern: agent!.cName)), lo: h.id.lo) : h.id)
        r.parent = h.parentSpan
        r.t_route = h.tRoute; r.t_routed = h.tRouted
        r.t_start = start; r.t_end = end
        r.status = status
        r.kind = UInt8(kind.rawValue)
        r.message_kind = h.kind
        m.withEnvelope { e in
            let reply = e.pointee.target_kind == UInt8(PLEXUS_TARGET_REPLY.rawValue)
            Router.replyName.withCString { rn in
                tracer.record(&r, name: reply ? rn : e.pointee.target, agent: agent.map { UnsafePointer($0.cName) },
                              sender: e.pointee.sender)
            }
        }
    }

    private static let replyName = "reply"
}

extension CurrentMessage {
    /// The span of the handler running on this thread (what a message sent
    /// now belongs under); 0 when none runs here.
    static var handleSpan: UInt64 {
        guard let m = current else { return 0 }
        return Tracer.handleSpan(of: m.header.id)
    }
}
