@testable import PlexusHost
import CPlexus
import Testing

/// What a worker holds unfinished: a restart hands it back in the order it
/// was sent, whatever order the worker finished the rest in, and a delivery
/// that stays unfinished while thousands pass it costs no more than the window.
@Suite("Unfinished deliveries")
struct UnfinishedTests {
    private static func held(_ ids: ClosedRange<UInt64>) -> Unfinished {
        var u = Unfinished()
        for n in ids { u.append(MailboxTests.message(n), sent: Int64(n)) }
        return u
    }

    @Test func finishedInOrderLeavesTheRestInSentOrder() {
        var u = Self.held(1...10)
        for n in UInt64(1)...4 { #expect(u.remove(plexus_id(hi: 1, lo: n))?.sent == Int64(n)) }
        #expect(u.count == 6)
        #expect(u.removeAll().map(\.id.lo) == Array(5...10))
        #expect(u.isEmpty)
    }

    @Test func finishedOutOfOrderHandsBackTheOthersInSentOrder() {
        var u = Self.held(1...10)
        for n: UInt64 in [7, 2, 9, 1, 5] { #expect(u.remove(plexus_id(hi: 1, lo: n))?.id.lo == n) }
        #expect(u.count == 5)
        #expect(u.first { $0.id.lo > 3 }?.id.lo == 4)   // the oldest that matches
        #expect(u.removeAll().map(\.id.lo) == [3, 4, 6, 8, 10])
    }

    @Test func anIdItDoesNotHoldIsNotFoundTwice() {
        var u = Self.held(1...3)
        #expect(u.remove(plexus_id(hi: 1, lo: 2)) != nil)
        #expect(u.remove(plexus_id(hi: 1, lo: 2)) == nil)   // a repeated DONE
        #expect(u.remove(plexus_id(hi: 2, lo: 1)) == nil)   // same lo, other hi
        #expect(u.count == 2)
    }

    @Test func oneLongDeliveryDoesNotKeepEveryGapBehindIt() {
        var u = Unfinished()
        u.append(MailboxTests.message(0), sent: 0)   // never finished while the others pass it
        var missing = 0, widest = 0
        for n in UInt64(1)...50_000 {
            u.append(MailboxTests.message(n), sent: 0)
            if u.remove(plexus_id(hi: 1, lo: n)) == nil { missing += 1 }
            widest = max(widest, u.slotCount)
        }
        #expect(missing == 0)
        #expect(widest <= 2 * 2 + 64)
        #expect(u.count == 1)
        #expect(u.slotCount <= 2 * u.count + 64)
        #expect(u.removeAll().map(\.id.lo) == [0])
    }
}
