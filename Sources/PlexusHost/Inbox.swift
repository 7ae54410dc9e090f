import Glibc
import Synchronization

/// An agent's waiting messages and the threads running it, without a lock on
/// the common path.
///
/// One atomic word holds the queued count, the number of runners and two
/// "closed" bits, so admission (closed? full? claim a runner?) is one
/// compare-and-swap, and a runner gives itself up only when the count is
/// zero in the same word: a message admitted meanwhile is never stranded.
///
/// Messages travel in two lanes per priority:
/// - the fast lane, a lock-free bounded queue (BoundedQueue) per priority,
///   for an in-process agent;
/// - the slow lane, a Mailbox behind a mutex, taken when a priority's fast
///   lane is full, by every message of that priority while the slow lane
///   holds any (so one sender's messages stay in order), and always by a
///   worker agent (whose messages a dead worker puts back in front, which
///   the slow lane alone can do in order; a worker's time goes to its
///   channel, not to this lock).
/// A runner takes a priority's fast lane before its slow lane: while the
/// slow lane is in use, what waits in the fast lane is older.
final class Inbox: @unchecked Sendable {   // shared state: atomics, and the slow lane's Mutex
    private static let countMask = (1 << 32) - 1
    private static let runner = 1 << 32                  // runners count in bits 32...47
    private static let runnersShift = 32
    private static let runnersMask = 0xFFFF << 32
    private static let closedToAll = 1 << 62            // terminated
    private static let closedToNew = 1 << 61            // draining: only replies it asked for

    private let word = Atomic<Int>(0)
    /// Bit p: priority p's slow lane holds messages (written under its lock).
    private let spilled = Atomic<Int>(0)
    private let slow: Mutex<Mailbox>
    /// Fast lanes by priority (3 also for higher); unused by a worker agent.
    private let q0: BoundedQueue, q1: BoundedQueue, q2: BoundedQueue, q3: BoundedQueue
    private let fast: Bool
    let capacity: Int
    let concurrency: Int

    /// Room in the fast lane of the normal priority (PLEXUS_PRIORITY_NORMAL)
    /// and of the others: a deeper queue spills into the slow lane.
    static let normalLane = 4096, otherLanes = 256

    init(capacity: Int, concurrency: Int, fast: Bool) {
        self.capacity = capacity
        self.concurrency = max(1, min(concurrency, 0xFFFF))
        slow = Mutex(Mailbox(capacity: capacity))
        self.fast = fast
        let other = fast ? min(capacity, Self.otherLanes) : 2
        q0 = BoundedQueue(capacity: other)
        q1 = BoundedQueue(capacity: fast ? min(capacity, Self.normalLane) : 2)
        q2 = BoundedQueue(capacity: other)
        q3 = BoundedQueue(capacity: other)
    }

    deinit { _ = drain() }   // the fast lanes hold references

    /// Pops priority p's fast lane.
    @inline(__always)
    private func pop(_ p: Int) -> UInt? {
        switch p {
        case 0: q0.pop()
        case 1: q1.pop()
        case 2: q2.pop()
        default: q3.pop()
        }
    }

    @inline(__always)
    private func push(_ p: Int, _ bits: UInt) -> Bool {
        switch p {
        case 0: q0.push(bits)
        case 1: q1.push(bits)
        case 2: q2.push(bits)
        default: q3.push(bits)
        }
    }

    var count: Int { word.load(ordering: .relaxed) & Self.countMask }

    /// Puts the message u carries (+1) in; the reference is the inbox's when
    /// accepted, still the caller's otherwise. `workerLoad`: a worker agent's
    /// load, whose messages held by the worker unstarted count against the
    /// capacity too (nil for an in-process agent).
    func admit(_ u: Unmanaged<Message>, force: Bool, workerLoad: Int?) -> Agent.Admission {
        var w = word.load(ordering: .relaxed)
        var claim: Bool
        while true {
            if w & Self.closedToAll != 0 || (w & Self.closedToNew != 0 && !force) { return .closed }
            let queued = w & Self.countMask
            // the running message is not "waiting" (hence - 1)
            let elsewhere = workerLoad.map { max(0, $0 - 1 - queued) } ?? 0
            if !force && queued + elsewhere >= capacity { return .full }
            claim = (w & Self.runnersMask) >> Self.runnersShift < concurrency
            let (won, current) = word.weakCompareExchange(
                expected: w, desired: w + 1 + (claim ? Self.runner : 0),
                successOrdering: .acquiringAndReleasing, failureOrdering: .relaxed)
            if won { break }
            w = current
        }
        place(u)   // counted first: a runner that finds it not yet placed waits for it
        return .accepted(schedule: claim)
    }

    private func place(_ u: Unmanaged<Message>) {
        let p = min(3, Int(u._withUnsafeGuaranteedRef { $0.header.priority }))
        if fast, spilled.load(ordering: .acquiring) & (1 << p) == 0,
           push(p, UInt(bitPattern: u.toOpaque())) { return }
        slow.withLock { m in
            _ = m.push(u, force: true)   // the count was checked on admission
            spilled.store(m.waitingPriorities, ordering: .releasing)
        }
    }

    private static func message(_ bits: UInt) -> Message {
        Unmanaged<Message>.fromOpaque(UnsafeRawPointer(bitPattern: bits).unsafelyUnwrapped).takeRetainedValue()
    }

    /// The next message by priority, or nil when none is placed yet.
    private func take() -> Message? {
        let spill = spilled.load(ordering: .acquiring)
        if spill == 0 {
            guard fast, let bits = q3.pop() ?? q2.pop() ?? q1.pop() ?? q0.pop() else { return nil }
            return Self.message(bits)
        }
        return slow.withLock { m in
            // Under the lock, priority by priority, fast lane first: a message
            // its sender placed in the fast lane before spilling is older.
            for p in stride(from: 3, through: 0, by: -1) {
                if fast, let bits = pop(p) { return Self.message(bits) }
                if m.waitingPriorities & (1 << p) != 0 {
                    let out = m.pop()
                    spilled.store(m.waitingPriorities, ordering: .releasing)
                    return out
                }
            }
            return nil
        }
    }

    /// A runner takes the next message, or gives itself up when none is
    /// waiting (with the count at zero in the same atomic step).
    func next() -> Message? {
        var misses = 0
        while true {
            var w = word.load(ordering: .relaxed)
            // Nothing counted: no lane is looked at (the end of every batch).
            if w & Self.countMask != 0, let m = take() {
                word.wrappingSubtract(1, ordering: .acquiringAndReleasing)
                return m
            }
            w = word.load(ordering: .relaxed)
            while w & Self.countMask == 0 {
                let (won, current) = word.weakCompareExchange(
                    expected: w, desired: w - Self.runner,
                    successOrdering: .acquiringAndReleasing, failureOrdering: .relaxed)
                if won { return nil }
                w = current
            }
            // Counted but not placed yet: its producer is a few instructions away.
            misses += 1
            if misses > 64 { sched_yield() }
        }
    }

    /// Messages a dead worker had not finished, back in front of their
    /// priority, always admitted. True when the caller must schedule the agent.
    func requeueFront(_ ms: [Message]) -> Bool {
        var w = word.load(ordering: .relaxed)
        var claim: Bool
        while true {
            claim = (w & Self.runnersMask) >> Self.runnersShift < concurrency
            let (won, current) = word.weakCompareExchange(
                expected: w, desired: w + ms.count + (claim ? Self.runner : 0),
                successOrdering: .acquiringAndReleasing, failureOrdering: .relaxed)
            if won { break }
            w = current
        }
        slow.withLock { m in
            // A worker agent has no fast lane; an in-process one's fast-lane
            // messages are newer, so they move behind the returned ones.
            var moved: [Message] = []
            for p in stride(from: 3, through: 0, by: -1) {
                while fast, let bits = pop(p) { moved.append(Self.message(bits)) }
            }
            m.pushFront(moved)
            m.pushFront(ms)
            spilled.store(m.waitingPriorities, ordering: .releasing)
        }
        return claim
    }

    /// Closes the inbox to everything (terminated), to all but the replies
    /// the agent asked for (draining), or opens it.
    func close(all: Bool, new: Bool) {
        var w = word.load(ordering: .relaxed)
        while true {
            let desired = w & ~(Self.closedToAll | Self.closedToNew) | (all ? Self.closedToAll : 0) | (new ? Self.closedToNew : 0)
            let (won, current) = word.weakCompareExchange(
                expected: w, desired: desired, successOrdering: .acquiringAndReleasing, failureOrdering: .relaxed)
            if won { return }
            w = current
        }
    }

    /// Takes every waiting message (at shutdown), including one being
    /// placed right now; runners may still take some meanwhile.
    func drain() -> [Message] {
        var out: [Message] = []
        var misses = 0
        while misses < 100_000 {
            if let m = take() {
                word.wrappingSubtract(1, ordering: .acquiringAndReleasing)
                out.append(m)
                continue
            }
            if count == 0 { break }
            misses += 1
            sched_yield()
        }
        return out
    }
}
