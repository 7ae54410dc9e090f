import CPlexusPOSIX
import DequeModule
import Glibc
import Synchronization

/// The frames waiting to go out on one connection. Whoever produces a frame
/// (a dispatcher thread delivering to a client's agent, a reply arriving,
/// the event loop answering) posts it: when nothing waits, it is written at
/// once without blocking (no thread hop); what the socket does not take
/// waits here, and the event loop writes it when the socket has room. So a
/// client that stops reading never blocks the host, and frames keep their
/// order. The epoll interest of the connection is kept here too, under the
/// same lock, because both the loop (reading paused or not) and posters
/// (something to write or not) change it.
final class Outbox: Sendable {
    let fd: Int32
    private let epoll: Int32
    /// Deliveries queued beyond this are refused (the client is not reading).
    let limit: Int

    private struct State {
        var frames = Deque<[UInt8]>()
        /// Bytes of frames.first already written.
        var offset = 0
        /// No more frames are taken; what is queued is still written.
        var closed = false
        /// The socket failed or was closed: nothing is written any more.
        var dead = false
        var reading = true
        var interest: UInt32 = PLEXUS_LOOP_IN
    }
    private let state = Mutex(State())

    init(fd: Int32, epoll: Int32, limit: Int) {
        self.fd = fd
        self.epoll = epoll
        self.limit = limit
    }

    /// Queues a frame. Answers to the client's own frames are `force`d:
    /// they are bounded because the loop stops reading the client while
    /// `limit` frames wait. False when the connection is closing, or when a
    /// delivery finds the queue full.
    func post(_ frame: [UInt8], force: Bool) -> Bool {
        state.withLock { s in
            if s.closed || s.dead || (!force && s.frames.count >= limit) { return false }
            s.frames.append(frame)
            if s.frames.count == 1 { write(&s) }
            return true
        }
    }

    /// Writes what the socket takes now (the loop, when it has room).
    func flush() { state.withLock { s in write(&s) } }

    /// How many frames wait.
    var backlog: Int { state.withLock { $0.frames.count } }

    /// Whether nothing waits any more, or nothing can be written.
    var drained: Bool { state.withLock { $0.frames.isEmpty || $0.dead } }

    /// Stops or resumes reading the client (back-pressure).
    func setReading(_ on: Bool) {
        state.withLock { s in
            s.reading = on
            updateInterest(&s)
        }
    }

    /// No more frames are taken; what is queued is still written.
    func close() {
        state.withLock { s in
            s.closed = true
            s.reading = false
            updateInterest(&s)
        }
    }

    /// The connection ends: the descriptor is closed under the lock, so no
    /// poster can write to a descriptor number the kernel already reused.
    func release() {
        state.withLock { s in
            s.closed = true
            s.dead = true
            s.frames.removeAll()
            _ = plexus_loop_ctl(epoll, 2, fd, 0, 0)
            Glibc.close(fd)
        }
    }

    /// Writes without blocking until the socket is full or the queue empty.
    private func write(_ s: inout State) {
        while !s.dead, let first = s.frames.first {
            let n = first.withUnsafeBytes { b in
                send(fd, b.baseAddress! + s.offset, b.count - s.offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                // The client is gone: the loop sees the end when it reads.
                s.dead = true
                s.frames.removeAll()
                break
            }
            s.offset += n
            if s.offset == first.count { s.frames.removeFirst(); s.offset = 0 }
        }
        updateInterest(&s)
    }

    private func updateInterest(_ s: inout State) {
        if s.dead { return }
        let want = (s.reading ? PLEXUS_LOOP_IN : 0) | (s.frames.isEmpty ? 0 : PLEXUS_LOOP_OUT)
        guard want != s.interest else { return }
        s.interest = want
        _ = plexus_loop_ctl(epoll, 1, fd, want, UInt64(UInt32(bitPattern: fd)))
    }
}
