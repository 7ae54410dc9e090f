import Glibc
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
    /// The pool's size class this buffer was made for (Message.poolClass), or -1.
    var poolClass: Int8 = -1

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
///
/// Small frames are made in buffers of two fixed sizes that are recycled
/// (plexus_pool.h): where the message path lets go of a message it may be
/// the last holder of (a handler returned, a worker finished it), it gives
/// the buffer back with `recycle` if no one else holds it, and the next
/// `make` on that thread takes it without calling malloc.
final class Message: ManagedBuffer<MessageHeader, UInt8>, @unchecked Sendable {
    /// Frame capacities of the pooled size classes; a larger frame gets a
    /// buffer of its own size, freed as usual.
    static let poolCapacities = [256, 1024]

    /// Validates and encodes a borrowed envelope.
    static func make(_ e: UnsafePointer<plexus_envelope>, maxPayload: UInt64) throws(PlexusError) -> Message {
        if let refused = refusal(e, maxPayload: maxPayload) { throw refused }
        let size = Int(plexus_wire_frame_size(e))
        var header = MessageHeader(id: e.pointee.id, correlationID: e.pointee.correlation_id,
                                   traceID: e.pointee.trace_id, deadlineUnixNs: e.pointee.deadline_unix_ns,
                                   kind: e.pointee.kind, priority: e.pointee.priority, frameLength: size)
        let m = buffer(for: &header)
        _ = m.withUnsafeMutablePointerToElements { plexus_wire_encode_valid(e, $0) }
        return m
    }

    /// A buffer for header.frameLength bytes, from this thread's pool when
    /// the frame fits a size class; header is written into it.
    @inline(__always)
    private static func buffer(for header: inout MessageHeader) -> Message {
        let size = header.frameLength
        let cls = size <= poolCapacities[0] ? 0 : size <= poolCapacities[1] ? 1 : -1
        guard cls >= 0 else { return unsafeDowncast(create(minimumCapacity: size) { _ in header }, to: Message.self) }
        header.poolClass = Int8(cls)
        if let p = plexus_pool_get(UInt32(cls)) {
            let m = Unmanaged<Message>.fromOpaque(p).takeRetainedValue()
            m.withUnsafeMutablePointerToHeader { $0.pointee = header }
            return m
        }
        return unsafeDowncast(create(minimumCapacity: poolCapacities[cls]) { [header] _ in header }, to: Message.self)
    }

    /// Gives m's buffer back to this thread's pool if `m` is the only
    /// reference to it (no one else can reach it then, so it may be
    /// rewritten); otherwise this is just the caller letting go of `m`.
    /// Callers pass their last reference with `consume`, so no copy of it
    /// is left alive to make the buffer look shared.
    @inline(__always)
    static func recycle(_ m: consuming Message) {
        guard isKnownUniquelyReferenced(&m) else { return }
        let cls = m.header.poolClass
        guard cls >= 0 else { return }
        _ = releaseSet
        let u = Unmanaged.passRetained(m)   // the pool's reference; m's own goes at return
        if plexus_pool_put(UInt32(cls), u.toOpaque()) == 0 { u.release() }
    }

    /// How a thread's leftover buffers are freed when it ends with the
    /// depot full: set once, before the first buffer enters a pool.
    private static let releaseSet: Void = plexus_pool_set_release { Unmanaged<Message>.fromOpaque($0!).release() }

    /// Why e would be refused, or nil when it is valid.
    static func refusal(_ e: UnsafePointer<plexus_envelope>, maxPayload: UInt64) -> PlexusError? {
        var what: UnsafePointer<CChar>?
        let v = plexus_wire_validate(e, maxPayload, &what)
        return v == 0 ? nil : invalid(e, status: v, what: what, maxPayload: maxPayload)
    }

    /// Why an envelope was refused; a payload over the limit says both sizes.
    private static func invalid(_ e: UnsafePointer<plexus_envelope>, status: plexus_status, what: UnsafePointer<CChar>?,
                                maxPayload: UInt64) -> PlexusError {
        var why = what.map { String(cString: $0) } ?? "invalid envelope"
        if status == PLEXUS_TOO_LARGE.status && e.pointee.payload_len > maxPayload {
            why += " (\(e.pointee.payload_len) bytes; the limit is \(maxPayload))"
        }
        let fields: [(String, UnsafePointer<CChar>?, (UInt8) -> Int32)] = [
            ("sender", e.pointee.sender, plexus_wire_name_byte_ok), ("target", e.pointee.target, plexus_wire_name_byte_ok),
            ("content_type", e.pointee.content_type, plexus_wire_content_type_byte_ok)]
        for (field, text, ok) in fields where why.hasPrefix(field + " has a character") {
            if let text { why += " (" + firstRefused(text, ok) + ")" }
        }
        return PlexusError(status: status, why)
    }

    /// Where a refused string first goes wrong: "'!' at byte 10 of 'bad/t@rget!'".
    private static func firstRefused(_ s: UnsafePointer<CChar>, _ ok: (UInt8) -> Int32) -> String {
        let bytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(s).assumingMemoryBound(to: UInt8.self), count: strlen(s)))
        guard let i = bytes.firstIndex(where: { ok($0) == 0 }) else { return "" }
        let c = bytes[i]
        let shown = c >= 0x21 && c <= 0x7e ? "'\(Character(UnicodeScalar(c)))'" : c == 0x20 ? "a space" : "byte 0x" + (c < 16 ? "0" : "") + String(c, radix: 16, uppercase: true)
        let whole = String(decoding: bytes.prefix(64), as: UTF8.self) + (bytes.count > 64 ? "…" : "")
        return "\(shown) at byte \(i + 1) of '\(whole)'"
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
