import CPlexus
import DequeModule

/// The deliveries a worker holds and has not finished, in the order they
/// were sent: what a restart hands back, in that order, and what its DONE
/// frames take out.
///
/// A worker finishes nearly everything in the order it was sent (one
/// handler thread, one priority), so the one a DONE names is found at the
/// front with one comparison of ids, where a dictionary hashed every id
/// twice (once in, once out: SipHash was a sixth of the host's samples
/// sending one-way to a worker). Deliveries finished out of order (by
/// priority, or on a concurrent plugin's threads) are found by a scan of
/// at most twice the window and left as gaps until the front reaches them.
/// Not thread-safe: its WorkerLink guards it.
struct Unfinished {
    struct Delivery {
        let id: plexus_id
        let message: Message
        /// When it went to the worker (monotonic ns; 0 when metrics are off).
        let sent: Int64
    }

    /// Sent order; nil: finished out of order, not yet at the front.
    private var slots = Deque<Delivery?>()
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }
    /// What it keeps, gaps included (for tests: bounded by the compaction).
    var slotCount: Int { slots.count }

    mutating func append(_ m: Message, sent: Int64) {
        slots.append(Delivery(id: m.id, message: m, sent: sent))
        count += 1
    }

    /// Takes the delivery with this id out, if the worker holds it.
    mutating func remove(_ id: plexus_id) -> Delivery? {
        guard let i = slots.firstIndex(where: { $0.map { $0.id.hi == id.hi && $0.id.lo == id.lo } ?? false }) else { return nil }
        let d = slots[i]
        slots[i] = nil
        count -= 1
        while let first = slots.first, first == nil { slots.removeFirst() }
        // One delivery that takes long (a concurrent plugin's) would
        // otherwise keep every gap behind it: they go when they outnumber
        // what is held, so a scan stays within twice the window.
        if slots.count > 2 * count + 64 { slots.removeAll { $0 == nil } }
        return d
    }

    /// The oldest unfinished delivery that satisfies `matches`.
    func first(where matches: (Delivery) -> Bool) -> Delivery? {
        for case let d? in slots where matches(d) { return d }
        return nil
    }

    /// Empties it; what it held, oldest first.
    mutating func removeAll() -> [Message] {
        let out = slots.compactMap { $0?.message }
        slots.removeAll()
        count = 0
        return out
    }
}
