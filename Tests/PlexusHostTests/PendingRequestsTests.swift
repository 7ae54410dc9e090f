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
}
