@testable import PlexusHost
import CPlexus
import PlexusCore
import Testing

/// The mailbox's rings of raw memory: order within a priority across growth
/// and wrap-around, priorities highest first, the capacity limit and what
/// `force` admits past it, redelivery at the front, and that every message a
/// ring still holds is released with it (no leak, no double release).
@Suite("Mailbox rings")
struct MailboxTests {
    static func message(_ n: UInt64, priority: UInt8 = 1) -> Message {
        var e = plexus_envelope_init()
        e.kind = UInt8(PLEXUS_KIND_COMMAND.rawValue)
        e.target_kind = UInt8(PLEXUS_TARGET_AGENT.rawValue)
        e.priority = priority
        e.id = plexus_id(hi: 1, lo: n)
        return "probe".withCString { t in
            e.target = t
            return try! Message.make(&e, maxPayload: 1024)
        }
    }

    @Test func oneRingKeepsOrderThroughGrowthAndWrapAround() {
        var r = MessageRing()
        var next: UInt64 = 0, expected: UInt64 = 0
        // Interleave pushes and pops so the head walks round the ring while it grows.
        for round in 0..<50 {
            for _ in 0..<(round % 7 + 3) { r.append(Unmanaged.passRetained(Self.message(next))); next += 1 }
            for _ in 0..<(round % 5 + 1) {
                guard let m = r.removeFirst() else { break }
                #expect(m.id.lo == expected)
                expected += 1
            }
        }
        while let m = r.removeFirst() { #expect(m.id.lo == expected); expected += 1 }
        #expect(expected == next)
        let empty = r.isEmpty, none = r.removeFirst() == nil
        #expect(empty && none)
    }

    @Test func prependPutsMessagesBackInFrontInTheirOrder() {
        var b = Mailbox(capacity: 100)
        for n in 10..<20 { let ok = b.push(Self.message(UInt64(n))); #expect(ok) }
        let first = b.pop()?.id.lo
        #expect(first == 10)
        b.pushFront([Self.message(1), Self.message(2), Self.message(3)])
        let order = b.removeAll().map(\.id.lo)
        #expect(order == [1, 2, 3] + Array(11..<20))
        let left = b.count
        #expect(left == 0)
    }

    @Test func higherPrioritiesComeFirstAndEachStaysInOrder() {
        var b = Mailbox(capacity: 100)
        for n in 0..<40 { let ok = b.push(Self.message(UInt64(n), priority: UInt8(n % 4))); #expect(ok) }
        let out = b.removeAll()
        #expect(out.map(\.header.priority) == Array(repeating: 3, count: 10) + Array(repeating: 2, count: 10)
                + Array(repeating: 1, count: 10) + Array(repeating: 0, count: 10))
        for p in 0..<4 {
            let ids = out.filter { $0.header.priority == p }.map(\.id.lo)
            #expect(ids == ids.sorted())
        }
    }

    @Test func aFullMailboxRefusesButForceAdmitsReplies() {
        var b = Mailbox(capacity: 4)
        for n in 0..<4 { let ok = b.push(Self.message(UInt64(n))); #expect(ok) }
        let full = b.isFull
        #expect(full)
        do { let ok = b.push(Self.message(99)); #expect(!ok) }
        do { let ok = b.push(Self.message(4), force: true); #expect(ok) }     // a reply the agent asked for
        do { let ok = b.push(Self.message(98), elsewhere: 0); #expect(!ok) }
        let count = b.count
        #expect(count == 5)
        let all = b.removeAll().map(\.id.lo)
        #expect(all == [0, 1, 2, 3, 4])
        var c = Mailbox(capacity: 4)
        do { let ok = c.push(Self.message(0), elsewhere: 3); #expect(ok) }
        do { let ok = c.push(Self.message(1), elsewhere: 3); #expect(!ok) }   // held elsewhere counts against the limit
    }

    @Test func messagesStillQueuedAreReleasedWithTheMailbox() {
        weak var held: Message?
        weak var popped: Message?
        do {
            var b = Mailbox(capacity: 64)
            for n in 0..<40 {
                let m = Self.message(UInt64(n), priority: UInt8(n % 4))
                if n == 39 { held = m }
                _ = b.push(m)
            }
            popped = b.pop()
            #expect(held != nil)
        }
        #expect(held == nil)
        #expect(popped == nil)
    }
}
