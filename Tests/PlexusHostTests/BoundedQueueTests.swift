@testable import PlexusHost
import PlexusThreads
import Synchronization
import Glibc
import Testing

/// The lock-free queue under the mailboxes: FIFO through many laps of
/// wrap-around, refusal when full, and, with real threads, that nothing is
/// lost or delivered twice and each producer's items stay in its order.
@Suite("Lock-free bounded queue")
struct BoundedQueueTests {
    /// Shares one queue with the test's threads (the queue itself is not copyable).
    final class Shared: Sendable {
        let q: BoundedQueue
        init(_ capacity: Int) { q = BoundedQueue(capacity: capacity) }
    }

    @Test func keepsOrderThroughManyLapsAndRefusesWhenFull() {
        let s = Shared(5)
        let capacity = s.q.capacity
        #expect(capacity == 8)
        var next: UInt = 1, expected: UInt = 1
        for round in 0..<200 {   // 200 rounds of up to 7 in, 5 out: the positions wrap the 8 slots many times
            for _ in 0..<(round % 7 + 1) where s.q.push(next) { next += 1 }
            for _ in 0..<(round % 5 + 1) {
                guard let v = s.q.pop() else { break }
                #expect(v == expected)
                expected += 1
            }
        }
        while let v = s.q.pop() { #expect(v == expected); expected += 1 }
        #expect(expected == next && next > 400)
        for i in 1...8 { let ok = s.q.push(UInt(i)); #expect(ok) }
        let refused = !s.q.push(9)
        #expect(refused)          // full: refused, nothing overwritten
        let first = s.q.pop()
        #expect(first == 1)
        let again = s.q.push(9)
        #expect(again)           // one slot free again
        let rest = (0..<8).compactMap { _ in s.q.pop() }
        #expect(rest == [2, 3, 4, 5, 6, 7, 8, 9])
        let none = s.q.pop() == nil && s.q.isEmpty
        #expect(none)
    }

    /// Four producer threads push 50,000 tagged items each into a small
    /// queue (retrying when it is full) while one consumer drains it: every
    /// item arrives exactly once, and each producer's in its order.
    @Test func manyProducersOneConsumerLoseNothingAndDuplicateNothing() throws {
        let producers = 4, perProducer = 50_000
        let s = Shared(64)
        let fullSeen = Atomic<Int>(0)
        var threads: [OwnedThread] = []
        for p in 0..<producers {
            threads.append(try startThread(name: "q-producer") {
                for i in 1...perProducer {
                    // item bits: producer in the high byte, sequence below (never 0)
                    let bits = UInt(p) << 56 | UInt(i)
                    while !s.q.push(bits) { fullSeen.add(1, ordering: .relaxed); sched_yield() }
                }
            })
        }
        var last = [UInt](repeating: 0, count: producers)
        var received = 0
        var outOfOrder = 0
        while received < producers * perProducer {
            guard let bits = s.q.pop() else { sched_yield(); continue }
            let p = Int(bits >> 56), i = bits & ((1 << 56) - 1)
            if i != last[p] + 1 { outOfOrder += 1 }
            last[p] = i
            received += 1
        }
        for t in threads { t.join() }
        #expect(outOfOrder == 0)
        #expect(last == [UInt](repeating: UInt(perProducer), count: producers))
        let none = s.q.pop() == nil
        #expect(none)
        // The queue was really full at times, so the refusal path ran under contention.
        #expect(fullSeen.load(ordering: .relaxed) > 0)
    }

    /// Two consumers share the queue (a concurrent agent runs on several
    /// threads): the union of what they took is everything, once.
    @Test func twoConsumersSplitTheItemsWithoutDuplicates() throws {
        let n = 100_000
        let s = Shared(128)
        let seen = Mutex([UInt8](repeating: 0, count: n + 1))
        let taken = Atomic<Int>(0)
        var consumers: [OwnedThread] = []
        for _ in 0..<2 {
            consumers.append(try startThread(name: "q-consumer") {
                var mine: [UInt] = []
                while taken.load(ordering: .relaxed) < n {
                    if let v = s.q.pop() { mine.append(v); taken.add(1, ordering: .relaxed) } else { sched_yield() }
                }
                seen.withLock { s in for v in mine { s[Int(v)] &+= 1 } }
            })
        }
        for i in 1...n { while !s.q.push(UInt(i)) { sched_yield() } }
        for t in consumers { t.join() }
        let counts = seen.withLock { $0 }
        #expect(counts.dropFirst().allSatisfy { $0 == 1 })
    }
}
