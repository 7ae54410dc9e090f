@testable import PlexusHost
import PlexusThreads
import PlexusCore
import Synchronization
import Testing
import Glibc

/// A request id names its slot in the pending table; these check that an id
/// is answered once, that a reused slot never answers an old id, and that
/// ids from elsewhere are never taken for ours.
@Suite("Pending requests")
struct PendingRequestsTests {
    func entry(_ target: String = "x") -> PendingRequests.Entry {
        .init(requester: .callback { _ in }, responder: nil,
              deadlineMono: Clock.monotonicNanos() + 60_000_000_000, target: target, timeoutMs: 60_000)
    }

    /// With nothing waiting the timer sleeps until a request comes (no tick
    /// every millisecond); the request that comes wakes it and times out
    /// on time, and so does one due sooner than the one it sleeps for.
    @Test func theTimerSleepsWhileNothingWaitsAndARequestStillTimesOut() throws {
        let p = PendingRequests(node: 7)
        let ended = Mutex<[String]>([])
        let short = OneShot<Void>(), long = OneShot<Void>()
        p.onTimeout = { _, e in
            ended.withLock { $0.append(e.target) }
            if e.target == "short" { short.set(()) } else { long.set(()) }
        }
        try p.start()
        defer { p.stop() }
        let deadline = Clock.monotonicNanos() + 30_000_000_000
        while p.parkings.load(ordering: .relaxed) == 0 && Clock.monotonicNanos() < deadline { usleep(1_000) }
        #expect(p.parkings.load(ordering: .relaxed) > 0, "an empty table's timer sleeps")
        // It sleeps for nothing: the first request must ring it.
        _ = try p.add(.init(requester: .callback { _ in }, responder: nil,
                            deadlineMono: Clock.monotonicNanos() + 5_000_000_000, target: "long", timeoutMs: 5_000))
        // It now sleeps until the long one's bucket comes round: one due
        // sooner must ring it too.
        _ = try p.add(.init(requester: .callback { _ in }, responder: nil,
                            deadlineMono: Clock.monotonicNanos() + 20_000_000, target: "short", timeoutMs: 20))
        #expect(short.wait(untilMonotonic: Clock.monotonicNanos() + 10_000_000_000) != nil, "the short request timed out")
        #expect(long.wait(untilMonotonic: Clock.monotonicNanos() + 20_000_000_000) != nil, "the long request timed out")
        #expect(ended.withLock { $0 } == ["short", "long"])
        #expect(p.count == 0)
    }

    @Test func anIdIsAnsweredOnce() throws {
        let p = PendingRequests(node: 7)
        let id = try p.add(entry("a"))
        #expect(id.hi == 7)
        #expect(p.count == 1)
        #expect(p.take(id, responder: nil)?.target == "a")
        #expect(p.take(id, responder: nil) == nil)
        #expect(p.count == 0)
    }

    @Test func aReusedSlotDoesNotAnswerTheOldId() throws {
        let p = PendingRequests(node: 7)
        var old: [plexus_id] = []
        for _ in 0..<100 { let id = try p.add(entry()); old.append(id); _ = p.take(id, responder: nil) }
        let fresh = try p.add(entry("fresh"))
        #expect(!old.contains(fresh))
        for id in old { #expect(p.take(id, responder: nil) == nil) }
        #expect(p.take(fresh, responder: nil)?.target == "fresh")
    }

    @Test func foreignAndCounterIdsAreNotRequests() throws {
        let p = PendingRequests(node: 7)
        let id = try p.add(entry())
        #expect(p.take(plexus_id(hi: 8, lo: id.lo), responder: nil) == nil)       // another host
        #expect(p.take(plexus_id(hi: 7, lo: id.lo & ~(1 << 63)), responder: nil) == nil)  // an ordinary message id
        #expect(p.take(plexus_id(hi: 7, lo: UInt64.max), responder: nil) == nil)  // a slot that was never used
        #expect(p.take(id, responder: nil) != nil)
    }

    @Test func takeAllReturnsEveryWaitingRequest() throws {
        let p = PendingRequests(node: 1)
        let ids = try (0..<40).map { _ in try p.add(entry()) }
        let all = p.takeAll()
        #expect(Set(all.map(\.0)) == Set(ids))
        #expect(p.count == 0)
    }

    // MARK: the table without a lock, attacked from several threads

    /// Four threads each try to take every one of 20,000 requests: each is
    /// taken exactly once, by one of them.
    @Test func threadsRacingForTheSameRequestsTakeEachOnce() throws {
        let p = PendingRequests(node: 3)
        let ids = try (0..<20_000).map { try p.add(entry("r\($0)")) }
        let taken = Mutex<[Int]>(Array(repeating: 0, count: ids.count))
        let threads = try (0..<4).map { k in
            try startThread(name: "pending-race-\(k)") {
                // Each starts at a different place, so they meet everywhere.
                for j in 0..<ids.count {
                    let i = (j + k * ids.count / 4) % ids.count
                    if let e = p.take(ids[i], responder: nil) {
                        let mine = e.target == "r\(i)"
                        taken.withLock { $0[i] += mine ? 1 : 1_000 }
                    }
                }
            }
        }
        for t in threads { t.join() }
        let counts = taken.withLock { $0 }
        #expect(counts.allSatisfy { $0 == 1 }, "taken \(counts.filter { $0 != 1 }.count) times other than once")
        #expect(p.count == 0)
    }

    /// Threads that add and answer at once, and answer stale and forged
    /// ids between, always get their own entry back and never another's.
    @Test func addsAndTakesOnManyThreadsEachGetTheirOwnEntry() throws {
        let p = PendingRequests(node: 5)
        let wrong = Atomic<Int>(0)
        let threads = try (0..<4).map { k in
            try startThread(name: "pending-churn-\(k)") {
                var held: [(plexus_id, String)] = []
                var stale: [plexus_id] = []
                var rng = SystemRandomNumberGenerator()
                for i in 0..<30_000 {
                    let target = "t\(k)-\(i)"
                    guard let id = try? p.add(entry(target)) else { wrong.add(1, ordering: .relaxed); continue }
                    held.append((id, target))
                    if held.count > 50 || Bool.random(using: &rng) {
                        let (old, name) = held.remove(at: Int.random(in: 0..<held.count, using: &rng))
                        if p.take(old, responder: nil)?.target != name { wrong.add(1, ordering: .relaxed) }
                        stale.append(old)
                    }
                    if let s = stale.randomElement(using: &rng), p.take(s, responder: nil) != nil { wrong.add(1, ordering: .relaxed) }
                    let forged = plexus_id(hi: 5, lo: 1 << 63 | UInt64.random(in: 0..<(1 << 40), using: &rng))
                    if let e = p.take(forged, responder: nil) {   // a forged id that names a live request takes it: put it back
                        if !held.contains(where: { $0.1 == e.target }) { wrong.add(1, ordering: .relaxed) }
                        held.removeAll { $0.1 == e.target }
                    }
                }
                for (id, name) in held where p.take(id, responder: nil)?.target != name { wrong.add(1, ordering: .relaxed) }
            }
        }
        for t in threads { t.join() }
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(p.count == 0)
        #expect(p.takeAll().isEmpty)
    }

    /// 40,000 requests added from four threads with deadlines a few
    /// milliseconds away each time out exactly once, never before their
    /// deadline, while the timer drains what the threads queue.
    @Test func manyShortRequestsFromManyThreadsEachTimeOutOnceAndNotEarly() throws {
        let p = PendingRequests(node: 9)
        let total = 40_000
        let seen = Mutex<Set<UInt64>>([])
        let early = Atomic<Int>(0), twice = Atomic<Int>(0)
        let all = OneShot<Void>()
        p.onTimeout = { id, e in
            if Clock.monotonicNanos() < e.deadlineMono { early.add(1, ordering: .relaxed) }
            let n: Int = seen.withLock { s in
                if !s.insert(id.lo).inserted { twice.add(1, ordering: .relaxed) }
                return s.count
            }
            if n == total { all.set(()) }
        }
        try p.start()
        defer { p.stop() }
        let threads = try (0..<4).map { k in
            try startThread(name: "pending-due-\(k)") {
                for i in 0..<(total / 4) {
                    let ms = Int64(1 + (i + k) % 20)
                    _ = try? p.add(.init(requester: .callback { _ in }, responder: nil,
                                         deadlineMono: Clock.monotonicNanos() + ms * 1_000_000, target: "d", timeoutMs: ms))
                }
            }
        }
        for t in threads { t.join() }
        #expect(all.wait(untilMonotonic: Clock.monotonicNanos() + 30_000_000_000) != nil,
                "\(seen.withLock { $0.count }) of \(total) timed out")
        #expect(early.load(ordering: .relaxed) == 0 && twice.load(ordering: .relaxed) == 0)
        #expect(p.count == 0)
    }

    /// A shard whose queue to the timer is full spills into its locked
    /// list; every request is still found by the timer.
    @Test func requestsBeyondTheTimersQueueStillTimeOut() throws {
        let shard = PendingShard(node: 2, shard: 0)
        var kicks = 0
        let due = Clock.monotonicNanos() + 1_000_000
        for _ in 0..<10_000 {
            _ = try shard.add(.init(requester: .callback { _ in }, responder: nil, deadlineMono: due, target: "q", timeoutMs: 1),
                              kick: { kicks += 1 })
        }
        #expect(kicks > 0, "a filling queue asks the timer to drain it")
        var expired: [(plexus_id, PendingShard.Entry)] = []
        let later = PendingShard.dueMs(due) + 2
        shard.tick(nowMs: later, into: &expired)
        #expect(expired.count == 10_000)
        #expect(Set(expired.map(\.0.lo)).count == 10_000 && shard.count == 0)
        #expect(shard.nextDueMs(after: later) == .max)
    }

    @Test func theTimersQueueRefusesWhenFullAndKeepsOrderAcrossTheWrap() {
        let q = DueQueue(capacity: 8)
        var next: UInt64 = 0, expected: UInt64 = 0
        for round in 0..<20 {
            while case .pushed = q.push(next, dueMs: Int64(next)) { next += 1 }
            #expect(next - expected == 8, "round \(round): \(next - expected) queued before it was full")
            for _ in 0..<(round % 8 + 1) {
                guard let (k, d) = q.pop() else { break }
                #expect(k == expected && d == Int64(expected))
                expected += 1
            }
        }
        while let (k, _) = q.pop() { #expect(k == expected); expected += 1 }
        #expect(expected == next)
    }
}

