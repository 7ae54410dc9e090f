import Glibc
import PlexusCore
import PlexusThreads

/// One client connection as the event loop sees it: the bytes read and not
/// yet a whole frame, the session, and the outbox. Everything but the
/// outbox is touched only by the loop thread.
final class Connection {
    let outbox: Outbox
    var session: Session?
    /// Bytes read that do not yet make a whole frame; `start` is the first unread.
    private var input: [UInt8] = []
    private var start = 0
    /// Monotonic ns since which an incomplete frame waits (0: none). Restarts
    /// whenever a frame completes, like a worker channel's.
    private(set) var partialSince: Int64 = 0
    /// Reading is paused while the client leaves `limit` answers unread.
    var paused = false
    /// Set when the connection ends: its last frames are still written until this monotonic deadline.
    var closingDeadline: Int64 = 0

    var fd: Int32 { outbox.fd }
    var closing: Bool { closingDeadline != 0 }

    init(outbox: Outbox) { self.outbox = outbox }

    enum Next {
        case frame(Envelope)
        /// Nothing whole yet.
        case none
        /// A malformed or oversized frame: answer it with one ERROR, then close.
        case bad(PlexusError)
    }

    /// Appends bytes read from the socket.
    func received(_ bytes: UnsafeRawBufferPointer) {
        if start > 0 && start == input.count { input.removeAll(keepingCapacity: input.capacity <= 1 << 16); start = 0 }
        input.append(contentsOf: bytes)
        if partialSince == 0 { partialSince = Clock.monotonicNanos() }
    }

    /// The next whole frame in what was read. The header is checked before
    /// the body is waited for, so an oversized frame is refused at once.
    func next(maxPayload: UInt64) -> Next {
        let have = input.count - start
        guard have >= Wire.headerLength else { return .none }
        let checked: Result<Int, PlexusError> = input.withUnsafeBytes { b in
            do throws(PlexusError) {
                return .success(try Wire.bodyLength(header: UnsafeRawBufferPointer(rebasing: b[start..<(start + Wire.headerLength)]),
                                                    maxPayload: maxPayload))
            } catch { return .failure(error) }
        }
        let body: Int
        switch checked { case .success(let n): body = n; case .failure(let e): return .bad(e) }
        let total = Wire.headerLength + body
        guard have >= total else { return .none }
        let frame = Array(input[start..<(start + total)])
        start += total
        if start == input.count {
            input.removeAll(keepingCapacity: input.capacity <= 1 << 16)
            start = 0
            partialSince = 0
        } else {
            partialSince = Clock.monotonicNanos()
        }
        do throws(PlexusError) { return .frame(try Envelope(frame: frame, maxPayload: maxPayload)) } catch { return .bad(error) }
    }

    /// What the client left unfinished when it closed, as an error; nil at a frame boundary.
    var cutShort: PlexusError? {
        let have = input.count - start
        if have == 0 { return nil }
        if have < Wire.headerLength {
            return PlexusError(.MALFORMED_FRAME, "connection closed inside a frame header (\(have) of \(Wire.headerLength) bytes)")
        }
        return PlexusError(.MALFORMED_FRAME, "connection closed inside a frame (\(have) bytes of it had arrived)")
    }
}
