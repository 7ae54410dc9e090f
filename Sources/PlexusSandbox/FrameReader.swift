import CPlexus
import CPlexusPOSIX
import Glibc
import PlexusCore
import PlexusThreads

/// Collects whole frames from a non-blocking stream socket, or from a
/// worker's shared-memory ring (`drain(ring:)`). A frame's header
/// is checked before room for its body is made, descriptors passed with
/// the bytes are refused, and a frame left half-read is visible to the
/// caller (`partialSince`) so a silent peer can be given a deadline.
///
/// Bytes are read (or copied out of the ring, so the worker cannot change
/// them after the check) straight into one growable buffer and frames are
/// decoded where they lie: no further copy and no allocation per frame.
final class FrameReader {
    let fd: Int32
    let maxPayload: UInt64
    private var buf: UnsafeMutableRawPointer
    private var cap: Int
    private var start = 0
    private var end = 0
    /// Monotonic ns at which the bytes of an incomplete frame began to wait.
    private(set) var partialSince: Int64 = 0

    init(fd: Int32, maxPayload: UInt64) {
        self.fd = fd
        self.maxPayload = maxPayload
        cap = 1 << 16
        buf = UnsafeMutableRawPointer.allocate(byteCount: cap, alignment: 16)
    }

    deinit { buf.deallocate() }

    enum Outcome { case more, closed }

    /// Reads what is available and calls body with each whole, decoded frame.
    /// Throws for a malformed frame or passed descriptors.
    func drain(_ body: (UnsafeRawBufferPointer, UnsafePointer<plexus_envelope>) -> Void) throws(PlexusError) -> Outcome {
        while true {
            if end == cap { makeRoom(for: cap - start + (1 << 16)) }
            let n = plexus_posix_recv_nofds(fd, buf + end, UInt64(cap - end))
            if n == -2 { throw PlexusError(.MALFORMED_FRAME, "the worker passed file descriptors over its channel") }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { return .more }
                if errno == EINTR { continue }
                return .closed
            }
            if n == 0 {
                if end > start { throw PlexusError(.MALFORMED_FRAME, "the channel closed inside a frame (\(end - start) bytes of it had arrived)") }
                return .closed
            }
            end += n
            try parse(body)
        }
    }

    enum RingOutcome: Equatable {
        /// Every whole frame was handed over; the ring is empty.
        case empty
        /// `accept` said no to a frame: it and what follows stay for the next drain.
        case stopped
        /// The worker broke the ring's indices (why).
        case broken(String)
    }

    /// Takes what the worker published on its ring and calls body with each
    /// whole, decoded frame, as `drain` does for the socket, starting with
    /// whole frames an earlier drain left (stopped). A frame `accept` refuses
    /// stops the drain before it. Throws for a malformed frame.
    func drain(ring: WorkerRing, accept: (UnsafePointer<plexus_envelope>) -> Bool = { _ in true },
               _ body: (UnsafeRawBufferPointer, UnsafePointer<plexus_envelope>) -> Void) throws(PlexusError) -> RingOutcome {
        if try parse(accept, body) { return .stopped }
        while true {
            if end == cap { makeRoom(for: cap - start + (1 << 16)) }
            switch ring.read(into: buf + end, max: cap - end) {
            case .corrupt(let why): return .broken(why)
            case .done(0, _): return .empty
            case .done(let n, _):
                end += n
                if try parse(accept, body) { return .stopped }
            }
        }
    }

    private func parse(_ body: (UnsafeRawBufferPointer, UnsafePointer<plexus_envelope>) -> Void) throws(PlexusError) {
        _ = try parse({ _ in true }, body)
    }

    /// Hands over whole frames while accept says yes; true when it said no
    /// (that frame is left first in the buffer, not counted as partial).
    private func parse(_ accept: (UnsafePointer<plexus_envelope>) -> Bool,
                       _ body: (UnsafeRawBufferPointer, UnsafePointer<plexus_envelope>) -> Void) throws(PlexusError) -> Bool {
        let before = start
        while end - start >= Wire.headerLength {
            let bodyLen = try Wire.bodyLength(header: UnsafeRawBufferPointer(start: buf + start, count: end - start), maxPayload: maxPayload)
            let total = Wire.headerLength + bodyLen
            guard end - start >= total else {
                if total > cap - start { makeRoom(for: total) }   // the header was checked: the size is bounded
                break
            }
            var e = plexus_envelope_init()
            var what: UnsafePointer<CChar>?
            let frame = (buf + start).assumingMemoryBound(to: UInt8.self)
            let s = plexus_wire_decode(frame, UInt64(total), maxPayload, &e, &what)
            if s != 0 { throw PlexusError(status: s, what.map { String(cString: $0) } ?? "bad frame") }
            let taken = withUnsafePointer(to: &e) { p in
                guard accept(p) else { return false }
                body(UnsafeRawBufferPointer(start: frame, count: total), p)
                return true
            }
            guard taken else { partialSince = 0; return true }   // whole, and waiting for another reader
            start += total
        }
        if start == end {
            start = 0; end = 0; partialSince = 0
        } else if partialSince == 0 || start != before {
            // The clock for "half a frame, then silence" restarts whenever a frame completes.
            partialSince = Clock.monotonicNanos()
        }
        return false
    }

    /// Moves the unread bytes to the front and grows the buffer to hold `bytes`.
    private func makeRoom(for bytes: Int) {
        let pending = end - start
        if bytes > cap {
            var c = cap
            while c < bytes { c *= 2 }
            let nb = UnsafeMutableRawPointer.allocate(byteCount: c, alignment: 16)
            nb.copyMemory(from: buf + start, byteCount: pending)
            buf.deallocate()
            buf = nb
            cap = c
        } else if start > 0 {
            (buf).copyMemory(from: buf + start, byteCount: pending)
        }
        start = 0
        end = pending
    }
}
