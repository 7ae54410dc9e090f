import PlexusThreads
import DequeModule
import Glibc
import PlexusCore

/// The frames waiting to go out on one connection, written by the
/// connection's own thread: whoever produces a frame (a dispatcher thread
/// delivering to a client's agent, a reply arriving) only queues it, so a
/// client that stops reading never blocks the host.
final class Outbox: @unchecked Sendable {
    private let lock = ConditionLock()
    private var frames = Deque<[UInt8]>()
    private var closed = false
    private let io: FrameIO
    /// Deliveries queued beyond this are refused (the client is not reading).
    let limit: Int

    init(_ io: FrameIO, limit: Int) {
        self.io = io
        self.limit = limit
    }

    /// Queues a frame. Answers to the client's own frames are `force`d:
    /// they are bounded by awaitRoom, which stops reading the client while
    /// `limit` frames wait. False when the connection is closing, or when a
    /// delivery finds the queue full.
    func post(_ frame: [UInt8], force: Bool) -> Bool {
        lock.withLock {
            if closed || (!force && frames.count >= limit) { return false }
            frames.append(frame)
            lock.broadcast()
            return true
        }
    }

    /// Blocks while `limit` frames wait to be written (the client is not
    /// reading); false once the outbox is closed.
    func awaitRoom() -> Bool {
        lock.withLock {
            while frames.count >= limit && !closed { lock.wait() }
            return !closed
        }
    }

    /// Writes until closed and drained. A failed write closes the outbox and
    /// shuts the socket down, so the reader sees the end too.
    func run() {
        while let batch = next() {
            for f in batch {
                let r: Result<Void, PlexusError> = f.withUnsafeBytes { b in
                    do throws(PlexusError) { return .success(try io.write(b)) } catch { return .failure(error) }
                }
                if case .failure = r {
                    lock.withLock { closed = true; frames.removeAll(); lock.broadcast() }
                    shutdown(io.fd, Int32(SHUT_RDWR))
                    return
                }
            }
        }
    }

    private func next() -> [[UInt8]]? {
        lock.withLock {
            while frames.isEmpty && !closed { lock.wait() }
            if frames.isEmpty { return nil }
            let all = Array(frames)
            frames.removeAll(keepingCapacity: true)
            lock.broadcast()   // a reader waiting in awaitRoom may go on
            return all
        }
    }

    /// No more frames are taken; what is queued is still written.
    func close() { lock.withLock { closed = true; lock.broadcast() } }
}
