import Synchronization

/// A bounded multi-producer multi-consumer queue of non-nil pointer bits
/// without a lock (Dmitry Vyukov's bounded MPMC queue). Each slot carries a
/// sequence number that says whose turn it is: a producer claims a position
/// with one compare-and-swap on the tail, writes the item and publishes it
/// with one release store of the slot's sequence; a consumer does the same
/// on the head. No allocation per item, and neither side ever waits: a full
/// queue refuses, an empty one answers nil.
///
/// A consumer may find a claimed slot not yet published (a producer between
/// its compare-and-swap and its store): it reports empty, as it would have a
/// moment earlier. Callers that count items elsewhere (Inbox) retry.
///
/// A non-copyable struct of pointers, not a class: its owner (Inbox) lends
/// it to each call, so using it costs no reference counting.
struct BoundedQueue: ~Copyable, @unchecked Sendable {   // all shared state is atomic
    private struct Slot: ~Copyable {
        /// position: free for the producer of `position`; position + 1:
        /// holds that producer's item for the consumer of `position`.
        let sequence: Atomic<Int>
        let item: Atomic<UInt>
    }

    let capacity: Int
    private let mask: Int
    private let slots: UnsafeMutablePointer<Slot>
    /// tail at byte 0, head at byte 128: two cache lines apart, so producers
    /// and the consumer do not invalidate each other's line.
    private let ends: UnsafeMutableRawPointer
    @inline(__always) private var tail: UnsafeMutablePointer<Atomic<Int>> { ends.assumingMemoryBound(to: Atomic<Int>.self) }
    @inline(__always) private var head: UnsafeMutablePointer<Atomic<Int>> { (ends + 128).assumingMemoryBound(to: Atomic<Int>.self) }

    /// capacity is rounded up to a power of two (at least 2).
    init(capacity requested: Int) {
        var c = 2
        while c < requested { c <<= 1 }
        capacity = c
        mask = c - 1
        slots = .allocate(capacity: c)
        for i in 0..<c { (slots + i).initialize(to: Slot(sequence: Atomic(i), item: Atomic(0))) }
        ends = .allocate(byteCount: 256, alignment: 64)
        ends.bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(0))
        (ends + 128).bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(0))
    }

    /// The caller empties the queue first (the items' owners are its to release).
    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
        tail.deinitialize(count: 1)
        head.deinitialize(count: 1)
        ends.deallocate()
    }

    /// Appends bits (never 0); false when the queue is full.
    @inline(__always)
    func push(_ bits: UInt) -> Bool {
        var pos = tail.pointee.load(ordering: .relaxed)
        while true {
            let s = slots + (pos & mask)
            let seq = s.pointee.sequence.load(ordering: .acquiring)
            let dif = seq &- pos
            if dif == 0 {
                let (won, current) = tail.pointee.weakCompareExchange(
                    expected: pos, desired: pos &+ 1, successOrdering: .relaxed, failureOrdering: .relaxed)
                if won {
                    s.pointee.item.store(bits, ordering: .relaxed)
                    s.pointee.sequence.store(pos &+ 1, ordering: .releasing)
                    return true
                }
                pos = current
            } else if dif < 0 {
                return false   // the slot still holds the item of a lap ago: full
            } else {
                pos = tail.pointee.load(ordering: .relaxed)   // another producer took pos
            }
        }
    }

    /// Removes the oldest published item; nil when there is none.
    @inline(__always)
    func pop() -> UInt? {
        var pos = head.pointee.load(ordering: .relaxed)
        while true {
            let s = slots + (pos & mask)
            let seq = s.pointee.sequence.load(ordering: .acquiring)
            let dif = seq &- (pos &+ 1)
            if dif == 0 {
                let (won, current) = head.pointee.weakCompareExchange(
                    expected: pos, desired: pos &+ 1, successOrdering: .relaxed, failureOrdering: .relaxed)
                if won {
                    let bits = s.pointee.item.load(ordering: .relaxed)
                    s.pointee.sequence.store(pos &+ mask &+ 1, ordering: .releasing)
                    return bits
                }
                pos = current
            } else if dif < 0 {
                return nil     // not yet written (or being written): empty
            } else {
                pos = head.pointee.load(ordering: .relaxed)   // another consumer took pos
            }
        }
    }

    /// Whether a pop now would find nothing published (a hint under concurrency).
    var isEmpty: Bool {
        let pos = head.pointee.load(ordering: .relaxed)
        return (slots + (pos & mask)).pointee.sequence.load(ordering: .acquiring) != pos &+ 1
    }
}
