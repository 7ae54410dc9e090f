import CPlexus
import CPlexusPOSIX
import Glibc
import PlexusCore
import PlexusThreads

/// Collects whole frames from a non-blocking stream socket. A frame's header
/// is checked before room for its body is made, descriptors passed with
/// the bytes are refused, and a frame left half-read is visible to the
/// caller (`partialSince`) so a silent peer can be given a deadline.
struct FrameReader {
    let fd: Int32
    let maxPayload: UInt64
    private var buf: [UInt8] = []
    private var start = 0
    /// Monotonic ns at which the bytes of an incomplete frame began to wait.
    private(set) var partialSince: Int64 = 0

    init(fd: Int32, maxPayload: UInt64) {
        self.fd = fd
        self.maxPayload = maxPayload
        buf.reserveCapacity(1 << 16)
    }

    enum Outcome { case more, closed }

    /// Reads what is available and calls body with each whole, decoded frame.
    /// Throws for a malformed frame or passed descriptors.
    mutating func drain(_ body: (UnsafeRawBufferPointer, UnsafePointer<plexus_envelope>) -> Void) throws(PlexusError) -> Outcome {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { plexus_posix_recv_nofds(fd, $0.baseAddress, UInt64($0.count)) }
            if n == -2 { throw PlexusError(.MALFORMED_FRAME, "the worker passed file descriptors over its channel") }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                if errno == EINTR { continue }
                return .closed
            }
            if n == 0 {
                if buf.count > start { throw PlexusError(.MALFORMED_FRAME, "the channel closed inside a frame (\(buf.count - start) bytes of it had arrived)") }
                return .closed
            }
            buf.append(contentsOf: chunk[0..<n])
            try parse(body)
        }
        return .more
    }

    private mutating func parse(_ body: (UnsafeRawBufferPointer, UnsafePointer<plexus_envelope>) -> Void) throws(PlexusError) {
        let before = start
        while buf.count - start >= Wire.headerLength {
            let outcome: Result<Int?, PlexusError> = buf.withUnsafeBytes { all in
                let b = UnsafeRawBufferPointer(rebasing: all[start...])
                let bodyLen: Int
                do throws(PlexusError) { bodyLen = try Wire.bodyLength(header: b, maxPayload: maxPayload) } catch { return .failure(error) }
                let total = Wire.headerLength + bodyLen
                guard b.count >= total else { return .success(nil) }
                var e = plexus_envelope_init()
                var what: UnsafePointer<CChar>?
                let frame = UnsafeRawBufferPointer(rebasing: b[0..<total])
                let s = plexus_wire_decode(frame.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(total), maxPayload, &e, &what)
                if s != 0 { return .failure(PlexusError(status: s, what.map { String(cString: $0) } ?? "bad frame")) }
                withUnsafePointer(to: &e) { body(frame, $0) }
                return .success(total)
            }
            guard let used = try outcome.get() else { break }
            start += used
        }
        if start == buf.count { buf.removeAll(keepingCapacity: true); start = 0; partialSince = 0 }
        else {
            if start > (1 << 20) { buf.removeFirst(start); start = 0 }
            // The clock for "half a frame, then silence" restarts whenever a frame completes.
            if partialSince == 0 || start != before { partialSince = Clock.monotonicNanos() }
        }
    }
}
