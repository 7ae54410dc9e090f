import CPlexusInternal
import Synchronization

/// Something that writes frames to a client and can hold them back while a
/// dispatcher thread runs a batch (a socket connection's outbox), then
/// write them in one go.
public protocol BatchedWriter: AnyObject, Sendable {
    /// Writes what was held.
    func releaseHeld()
}

/// Answers a dispatcher thread produces for a client during one batch of an
/// agent's messages go out together at the end of the batch, in one send,
/// instead of one send (and one wake-up of the client) each: a client with
/// many requests in flight gets them back in bursts, as it sent them.
///
/// An answer is held no longer than:
/// - the end of the batch (at most `Dispatcher.batch` messages, and no
///   longer than the agent has mail waiting);
/// - `maxAgeNanos` (checked between messages with the TSC, so a slow
///   handler's predecessors go out before it starts once they are older);
/// - one tick of the dispatcher's watchdog (1-2 ms) when a handler blocks
///   (the watchdog releases a stalled worker's held writes);
/// and at most `maxWriters` connections are held per thread at once.
/// Threads that are not dispatcher workers (the socket loop, callers of the
/// Swift API) never hold: they write at once, or cork as they already do.
final class HeldWrites: @unchecked Sendable {
    static let maxAgeNanos: Double = 50_000
    static let maxWriters = 32
    private static let maxAgeTicks = Int64(maxAgeNanos * plexus_ticks_calibrate())

    private let writers = Mutex<[any BatchedWriter]>([])
    /// writers.count, and when the first was held (ticks): read without
    /// the lock between messages.
    private let count = Atomic<Int>(0)
    private let since = Atomic<Int64>(0)
    /// Set by the worker's own thread around a batch; read only there.
    nonisolated(unsafe) var batching = false

    /// Holds w's writes until release; false: it must write now.
    func hold(_ w: any BatchedWriter) -> Bool {
        guard batching else { return false }
        return writers.withLock { ws in
            if ws.contains(where: { $0 === w }) { return true }
            guard ws.count < Self.maxWriters else { return false }
            if ws.isEmpty { since.store(plexus_ticks(), ordering: .relaxed) }
            ws.append(w)
            count.store(ws.count, ordering: .relaxed)
            return true
        }
    }

    /// Between two messages of a batch: writes what has waited too long.
    @inline(__always)
    func releaseIfOld() {
        guard count.load(ordering: .relaxed) > 0 else { return }
        if plexus_ticks() - since.load(ordering: .relaxed) > Self.maxAgeTicks { release() }
    }

    /// Writes everything held (any thread: the watchdog too).
    func release() {
        guard count.load(ordering: .relaxed) > 0 else { return }
        let ws: [any BatchedWriter] = writers.withLock { ws in
            defer { ws.removeAll(keepingCapacity: true); count.store(0, ordering: .relaxed) }
            return ws
        }
        for w in ws { w.releaseHeld() }
    }
}

public enum DispatcherBatch {
    /// Holds w's writes until the end of this thread's current batch, when
    /// this thread is a dispatcher worker running one; false: write now.
    public static func hold(_ w: any BatchedWriter) -> Bool {
        guard let raw = plexus_tls_worker() else { return false }
        return Unmanaged<Dispatcher.Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.held.hold(w) }
    }
}
