import CPlexusPOSIX
import DequeModule
import Glibc
import PlexusHost
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
///
/// Frames wait back to back in one buffer, so one send carries all of them.
/// While the loop handles a batch of a client's frames it corks the outbox:
/// the answers produced meanwhile (most of them on the loop thread itself,
/// when the agent ran inline) go out together in one send when it uncorks,
/// instead of one send per answer. A dispatcher thread does the same for
/// the answers it produces during one batch of an agent's messages
/// (DispatcherBatch.hold, bounded in time: HeldWrites.swift).
final class Outbox: BatchedWriter {
    let fd: Int32
    private let epoll: Int32
    /// Deliveries queued beyond this are refused (the client is not reading).
    let limit: Int

    private struct State {
        /// Frames not yet written, back to back; bytes before `written` are sent.
        var bytes: [UInt8] = []
        var written = 0
        /// Where each waiting frame ends in `bytes`, oldest first.
        var ends = Deque<Int>()
        /// No more frames are taken; what is queued is still written.
        var closed = false
        /// The socket failed or was closed: nothing is written any more.
        var dead = false
        var corked = false
        /// The thread that corked: only its own posts are held back, so an
        /// answer produced elsewhere never waits for the loop's batch (or
        /// for an agent running long on the loop).
        var corker = pthread_t()
        var reading = true
        var interest: UInt32 = PLEXUS_LOOP_IN
        /// A dispatcher thread holds what waits until its batch ends
        /// (DispatcherBatch.hold): posts only queue meanwhile.
        var held = false
    }
    private let state = Mutex(State())
    /// state.ends.count, stored under the lock and read without it: the
    /// loop checks the backlog before every frame it reads, and taking the
    /// lock for that contended with dispatcher threads posting answers.
    private let waiting = Atomic<Int>(0)

    /// Waiting bytes beyond this are moved to the front once written past.
    private static let compactAt = 1 << 16

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
        frame.withUnsafeBytes { post($0, force: force) }
    }

    func post(_ frame: UnsafeRawBufferPointer, force: Bool) -> Bool {
        state.withLock { s in
            if s.closed || s.dead || (!force && s.ends.count >= limit) { return false }
            s.bytes.append(contentsOf: frame)
            s.ends.append(s.bytes.count)
            waiting.store(s.ends.count, ordering: .relaxed)
            if s.held { return true }   // written when the holding thread's batch ends
            if !s.corked {
                // Else the socket is full: the loop writes when it has room.
                if s.ends.count == 1 { if DispatcherBatch.hold(self) { s.held = true } else { write(&s) } }
            } else if pthread_equal(s.corker, pthread_self()) == 0 {
                write(&s)   // from another thread: out now, with what the cork held before it
            }
            return true
        }
    }

    /// Holds what is posted until `uncork` (the loop, around a batch of a client's frames).
    func cork() { state.withLock { $0.corked = true; $0.corker = pthread_self() } }

    /// Writes what was held back, in one send when the socket takes it.
    func uncork() {
        state.withLock { s in
            s.corked = false
            write(&s)
        }
    }

    /// Writes what the socket takes now (the loop, when it has room).
    func flush() { state.withLock { s in write(&s) } }

    /// The holding dispatcher thread's batch ended: out with what waits.
    func releaseHeld() { state.withLock { s in s.held = false; write(&s) } }

    /// How many frames wait.
    var backlog: Int { waiting.load(ordering: .relaxed) }

    /// Whether nothing waits any more, or nothing can be written.
    var drained: Bool { state.withLock { $0.ends.isEmpty || $0.dead } }

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
            s.bytes = []
            s.ends.removeAll()
            s.written = 0
            waiting.store(0, ordering: .relaxed)
            _ = plexus_loop_ctl(epoll, 2, fd, 0, 0)
            Glibc.close(fd)
        }
    }

    /// Writes without blocking until the socket is full or the queue empty.
    private func write(_ s: inout State) {
        while !s.dead && s.written < s.bytes.count {
            let n = s.bytes.withUnsafeBytes { b in
                send(fd, b.baseAddress! + s.written, b.count - s.written, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                // The client is gone: the loop sees the end when it reads.
                s.dead = true
                s.bytes = []
                s.ends.removeAll()
                s.written = 0
                break
            }
            s.written += n
            while let e = s.ends.first, e <= s.written { s.ends.removeFirst() }
        }
        if s.written == s.bytes.count {
            s.bytes.removeAll(keepingCapacity: s.bytes.capacity <= 1 << 20)
            s.written = 0
        } else if s.written >= Self.compactAt {
            s.bytes.removeFirst(s.written)
            for i in s.ends.indices { s.ends[i] -= s.written }
            s.written = 0
        }
        waiting.store(s.ends.count, ordering: .relaxed)
        updateInterest(&s)
    }

    private func updateInterest(_ s: inout State) {
        if s.dead { return }
        let want = (s.reading ? PLEXUS_LOOP_IN : 0) | (s.ends.isEmpty ? 0 : PLEXUS_LOOP_OUT)
        guard want != s.interest else { return }
        s.interest = want
        _ = plexus_loop_ctl(epoll, 1, fd, want, UInt64(UInt32(bitPattern: fd)))
    }
}
