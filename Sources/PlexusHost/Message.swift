import PlexusMetrics
import CPlexus
import CPlexusInternal
import PlexusCore

/// What the router needs to know about a message without decoding it.
struct MessageHeader {
    var id: plexus_id
    var correlationID: plexus_id
    var traceID: plexus_id
    var deadlineUnixNs: Int64
    var kind: UInt8
    var priority: UInt8
    var frameLength: Int
    /// Tracing (Router+Tracing.swift): the span this message was sent
    /// under, and when it was routed and put in the mailbox (monotonic ns).
    /// tRoute 0: not recorded. Written once, before the message is admitted.
    var parentSpan: UInt64 = 0
    var tRoute: Int64 = 0
    var tRouted: Int64 = 0
    /// An answer to an in-process agent's request, with metrics on: the
    /// request's plexus_request_seconds and its start (meter-clock ticks),
    /// recorded when the requester starts handling this answer (Router.invoke)
    /// at the clock read its handler start needs anyway. Nil otherwise.
    var answerTimer: Unmanaged<AtomicHistogram>? = nil
    var answerStart: Int64 = 0

    /// Records the request this answers (answerTimer) as ended at `now`,
    /// in meter-clock ticks; nothing when it carries none.
    @inline(__always)
    func observeAnswer(at now: Int64) {
        if let t = answerTimer { t._withUnsafeGuaranteedRef { $0.observeTicks(max(0, now - answerStart)) } }
    }
}

/// One message in flight: its encoded wire frame, tail-allocated after a small
/// header, in a single allocation. Immutable once built, so one Message can sit
/// in several mailboxes at once (topic fan-out) and go out on any transport
/// as is.
final class Message: ManagedBuffer<MessageHeader, UInt8>, @unchecked Sendable {
    /// Validates and encodes a borrowed envelope.
    static func make(_ e: UnsafePointer<plexus_envelope>, maxPayload: UInt64) throws(PlexusError) -> Message {
        var what: UnsafePointer<CChar>?
        let v = plexus_wire_validate(e, maxPayload, &what)
        if v != 0 { throw invalid(e, status: v, what: what, maxPayload: maxPayload) }
        let size = Int(plexus_wire_frame_size(e))
        let header = MessageHeader(id: e.pointee.id, correlationID: e.pointee.correlation_id,
                                   traceID: e.pointee.trace_id, deadlineUnixNs: e.pointee.deadline_unix_ns,
                                   kind: e.pointee.kind, priority: e.pointee.priority, frameLength: size)
        let m = unsafeDowncast(Message.create(minimumCapacity: size) { _ in header }, to: Message.self)
        _ = m.withUnsafeMutablePointerToElements { plexus_wire_encode_valid(e, $0) }
        return m
    }

    /// Why an envelope was refused; a payload over the limit says both sizes.
    private static func invalid(_ e: UnsafePointer<plexus_envelope>, status: plexus_status, what: UnsafePointer<CChar>?,
                                maxPayload: UInt64) -> PlexusError {
        var why = what.map { String(cString: $0) } ?? "invalid envelope"
        if status == PLEXUS_TOO_LARGE.status && e.pointee.payload_len > maxPayload {
            why += " (\(e.pointee.payload_len) bytes; the limit is \(maxPayload))"
        }
        return PlexusError(status: status, why)
    }

    var id: plexus_id { header.id }
    var kind: UInt8 { header.kind }
    var isQuery: Bool { header.kind == MessageKind.query.rawValue }

    /// Lends the decoded envelope; every pointer in it points into this message.
    /// The frame was validated when it was made, so it is read without checks.
    func withEnvelope<R>(_ body: (UnsafePointer<plexus_envelope>) -> R) -> R {
        withUnsafeMutablePointerToElements { bytes in
            var e = plexus_envelope_init()
            plexus_wire_view(bytes, &e)
            return withUnsafePointer(to: &e) { body($0) }
        }
    }

    /// The frame's bytes, as written to a socket or pipe.
    func withFrame<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeMutablePointers { h, bytes in body(UnsafeRawBufferPointer(start: bytes, count: h.pointee.frameLength)) }
    }

    var envelope: Envelope { withEnvelope { Envelope($0) } }
}
