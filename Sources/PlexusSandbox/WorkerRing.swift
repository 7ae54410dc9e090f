import CPlexusInternal
import Glibc
import PlexusCore

/// The host's end of a worker's shared-memory channel (plexus_ring.h): two
/// byte rings in a sealed memfd, frames back to back in the wire format.
///
/// Not thread-safe by itself (unchecked Sendable only so a launched warm
/// worker can wait in the pool with it): its owner (`WorkerProcess`) writes under its
/// lock and reads on one thread at a time (its reading turn). Every index the worker controls is
/// read once and checked; a bad one is `.corrupt`, never a wait or a crash.
final class WorkerRing: @unchecked Sendable {
    private let ring: UnsafeMutablePointer<plexus_ring>
    private let base: UnsafeMutableRawPointer
    private let capacity: UInt32
    /// The memfd until it has been sent to the worker.
    private var memfd: Int32
    /// The eventfd the worker writes when the host sleeps and it published,
    /// or when it took bytes the host waits to write.
    let bell: Int32
    /// Where the C side explains a bad index: one per side, as the two
    /// sides run on different threads.
    private var writeWhy = [CChar](repeating: 0, count: 200)
    private var readWhy = [CChar](repeating: 0, count: 200)
    private var blocked = false

    enum Result { case done(Int, wake: Bool), corrupt(String) }

    init(capacity: UInt32 = PLEXUS_RING_CAPACITY) throws(PlexusError) {
        var fd: Int32 = -1
        var b: UnsafeMutableRawPointer?
        let rc = plexus_ring_create(capacity, &fd, &b)
        guard rc == 0, let b else { throw PlexusError(.INTERNAL, "cannot create the worker's ring: \(String(cString: strerror(rc)))") }
        let e = plexus_ring_eventfd()
        guard e >= 0 else {
            let err = errno
            close(fd)
            plexus_ring_unmap(b, capacity)
            throw PlexusError(.INTERNAL, "eventfd for the worker's ring: \(String(cString: strerror(err)))")
        }
        ring = .allocate(capacity: 1)
        _ = plexus_ring_open(ring, b, plexus_ring_size(capacity), 1, nil)
        base = b
        self.capacity = capacity
        memfd = fd
        bell = e
    }

    deinit {
        if memfd >= 0 { close(memfd) }
        close(bell)
        plexus_ring_unmap(base, capacity)
        ring.deallocate()
    }

    /// Hands the ring to the worker over its socket (SCM_RIGHTS); the host
    /// then closes its own copy of the memfd and keeps the mapping.
    func send(over socket: Int32) throws(PlexusError) {
        let rc = plexus_ring_send_fds(socket, memfd, bell)
        close(memfd)
        memfd = -1
        if rc != 0 { throw PlexusError(.INTERNAL, "cannot pass the ring to the worker: \(String(cString: strerror(rc)))") }
    }

    // MARK: host -> worker (under the owner's lock)

    /// Copies what fits; `wake` says the worker sleeps and must be woken
    /// (`wakeWorker`, best done after the owner's lock is released).
    func write(_ bytes: UnsafeRawBufferPointer) -> Result {
        guard let p = bytes.baseAddress, bytes.count > 0 else { return .done(0, wake: false) }
        var wake: Int32 = 0
        let n = writeWhy.withUnsafeMutableBufferPointer { why in
            plexus_ring_write(ring, p, UInt64(bytes.count), &wake, why.baseAddress, UInt64(why.count))
        }
        if n < 0 { return .corrupt(Self.text(writeWhy)) }
        return .done(Int(n), wake: wake != 0)
    }

    /// Announces (or withdraws) that the host has more to write and waits
    /// for room; the worker rings `bell` when it takes bytes. The caller
    /// tries once more after announcing, so room made meanwhile is not missed.
    func setBlocked(_ on: Bool) {
        if on == blocked { return }
        blocked = on
        plexus_ring_set_blocked(ring, on ? 1 : 0)
    }

    func wakeWorker() { plexus_ring_wake_consumer(ring) }

    // MARK: worker -> host (whoever holds the owner's reading turn)

    /// Copies up to max published bytes to dst. Wakes a worker blocked for
    /// room itself.
    func read(into dst: UnsafeMutableRawPointer, max: Int) -> Result {
        var wake: Int32 = 0
        let n = readWhy.withUnsafeMutableBufferPointer { why in
            plexus_ring_read(ring, dst, UInt64(max), &wake, why.baseAddress, UInt64(why.count))
        }
        if n < 0 { return .corrupt(Self.text(readWhy)) }
        if wake != 0 { plexus_ring_wake_producer(ring) }
        return .done(Int(n), wake: false)
    }

    /// The C side's NUL-terminated explanation.
    private static func text(_ buf: [CChar]) -> String {
        String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    var readable: Bool { plexus_ring_readable(ring) != 0 }

    /// A short adaptive spin for the worker's next bytes (plexus_ring_spin).
    func spin() -> Bool { plexus_ring_spin(ring) != 0 }

    func setSleeping(_ on: Bool) { plexus_ring_set_sleeping(ring, on ? 1 : 0) }

    // MARK: a caller waiting for its answer (any host thread)

    /// The incoming bell, read before counting a caller asleep.
    var incomingBell: UInt32 { plexus_ring_bell(ring) }
    /// Counts (or uncounts) a caller asleep on the bell; the worker then
    /// wakes it instead of the I/O thread.
    func setCallerWaiting(_ on: Bool) { plexus_ring_set_caller_waiting(ring, on ? 1 : 0) }
    func waitBell(seen: UInt32, timeoutMs: Int32) { plexus_ring_wait_bell(ring, seen, timeoutMs) }
    /// Wakes callers asleep on the bell (their answer came another way).
    func kickCallers() { plexus_ring_kick(ring) }
    /// Rings the I/O thread as the worker would (bytes were left for it).
    func ringIOThread() {
        var one: UInt64 = 1
        _ = Glibc.write(bell, &one, 8)
    }

    /// Empties the eventfd after a wake-up.
    func clearBell() {
        var v: UInt64 = 0
        _ = Glibc.read(bell, &v, 8)
    }
}
