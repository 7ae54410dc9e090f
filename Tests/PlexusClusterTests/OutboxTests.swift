import CPlexus
import PlexusCore
import Synchronization
import Testing
@testable import PlexusCluster

/// The outbox, driven by a fake NATS link of the test's own (up or down)
/// and a clock of its own. The real connection is in ClusterTests.
@Suite struct OutboxTests {
    /// A NATS link that records what it was handed, in order.
    final class Link: Sendable {
        let up = Atomic<Bool>(true)
        let sent = Mutex<[(String, [UInt8])]>([])
        func publish(_ subject: String, _ b: UnsafeRawBufferPointer) -> PublishOutcome {
            guard up.load(ordering: .relaxed) else { return .down }
            sent.withLock { $0.append((subject, Array(b.bindMemory(to: UInt8.self)))) }
            return .sent
        }
    }

    func send(_ o: Outbox, _ link: Link, _ subject: String, _ text: String, request: plexus_id? = nil, deadline: Int64? = nil) throws(PlexusError) {
        let bytes = Array(text.utf8)
        let r: Result<Void, PlexusError> = bytes.withUnsafeBytes { b in
            do throws(PlexusError) { try o.send(subject, b, request: request, deadlineMono: deadline) { link.publish($0, $1) }; return .success(()) }
            catch { return .failure(error) }
        }
        try r.get()
    }

    @Test func whileConnectedASendGoesStraightThroughAndNothingIsHeld() throws {
        let o = Outbox(maxMessages: 2, maxBytes: 100, what: "NATS at nats://127.0.0.1:4222")
        let link = Link()
        for i in 0..<5 { try send(o, link, "s", "m\(i)") }
        #expect(link.sent.withLock { $0.map { String(decoding: $0.1, as: UTF8.self) } } == ["m0", "m1", "m2", "m3", "m4"])
        #expect(o.depth.messages == 0)
    }

    @Test func whileDownSendsAreHeldThenSentInOrderWithTheSameBytesAndNewOnesQueueBehind() throws {
        let o = Outbox(maxMessages: 100, maxBytes: 10_000, what: "NATS at nats://127.0.0.1:4222")
        let link = Link()
        link.up.store(false, ordering: .relaxed)
        for i in 0..<5 { try send(o, link, "s.\(i)", "frame-\(i)") }
        #expect(o.depth.messages == 5)
        #expect(o.depth.bytes == 5 * 7)
        #expect(link.sent.withLock { $0.isEmpty })
        // Back: one more send while five are held queues behind them, it does not overtake.
        link.up.store(true, ordering: .relaxed)
        try send(o, link, "s.5", "frame-5")
        #expect(link.sent.withLock { $0.isEmpty })
        let d = o.drain(nowMono: 0, batch: 2) { link.publish($0, $1) }
        #expect(d.sent == 6 && d.left == 0 && d.expired.isEmpty)
        let got = link.sent.withLock { $0.map { "\($0.0)=\(String(decoding: $0.1, as: UTF8.self))" } }
        #expect(got == (0..<6).map { "s.\($0)=frame-\($0)" })
        #expect(o.depth.messages == 0 && o.depth.bytes == 0)
    }

    @Test func aFullOutboxRefusesAtOnceWithUnavailableNamingNATSAndItsSize() throws {
        let o = Outbox(maxMessages: 3, maxBytes: 1_000, what: "NATS at nats://127.0.0.1:4222")
        let link = Link()
        link.up.store(false, ordering: .relaxed)
        for i in 0..<3 { try send(o, link, "s", "m\(i)") }
        do {
            try send(o, link, "plexus.c.from.a.agent.b.beta", "m3")
            Issue.record("a fourth send was taken")
        } catch {
            #expect(error.status == PLEXUS_UNAVAILABLE.status)
            #expect(error.detail.contains("NATS at nats://127.0.0.1:4222"), "\(error.detail)")
            #expect(error.detail.contains("3 of 3 messages"), "\(error.detail)")
            #expect(error.detail.contains("nats.outbox"), "\(error.detail)")
            #expect(error.detail.hasSuffix("not sent to agent b/beta"), "the caller's words, not the subject: \(error.detail)")
        }
        // The byte bound too: 20 bytes of room, a 30-byte frame is refused, a 10-byte one taken.
        let b = Outbox(maxMessages: 100, maxBytes: 20, what: "NATS at x")
        #expect(throws: PlexusError.self) { try send(b, link, "s", String(repeating: "x", count: 30)) }
        try send(b, link, "s", String(repeating: "x", count: 10))
        #expect(b.depth.messages == 1 && b.depth.bytes == 10)
        // 0 messages: nothing is held, every send while down is refused.
        let none = Outbox(maxMessages: 0, maxBytes: 1_000, what: "NATS at x")
        #expect(throws: PlexusError.self) { try send(none, link, "s", "m") }
    }

    @Test func aHeldRequestPastItsDeadlineIsDroppedNotSentLateAndACancelledOneIsRemoved() throws {
        let o = Outbox(maxMessages: 100, maxBytes: 10_000, what: "NATS at x")
        let link = Link()
        link.up.store(false, ordering: .relaxed)
        let r1 = plexus_id(hi: 1, lo: 1), r2 = plexus_id(hi: 2, lo: 2), r3 = plexus_id(hi: 3, lo: 3)
        try send(o, link, "s", "early", request: r1, deadline: 100)
        try send(o, link, "s", "event")                                  // no deadline: kept until sent
        try send(o, link, "s", "late", request: r2, deadline: 1_000)
        try send(o, link, "s", "cancelled", request: r3, deadline: 1_000)
        #expect(o.sweep(nowMono: 50).isEmpty)
        #expect(o.sweep(nowMono: 100) == [r1])
        #expect(o.remove(request: r3))
        #expect(!o.remove(request: r3))
        link.up.store(true, ordering: .relaxed)
        let d = o.drain(nowMono: 500) { link.publish($0, $1) }
        #expect(d.sent == 2 && d.expired.isEmpty)
        #expect(link.sent.withLock { $0.map { String(decoding: $0.1, as: UTF8.self) } } == ["event", "late"])

        // Expired between the sweep and the drain: dropped by the drain.
        link.up.store(false, ordering: .relaxed)
        try send(o, link, "s", "stale", request: r1, deadline: 600)
        link.up.store(true, ordering: .relaxed)
        let d2 = o.drain(nowMono: 700) { link.publish($0, $1) }
        #expect(d2.expired == [r1] && d2.sent == 0 && o.depth.messages == 0)
    }

    @Test func aDrainStopsWhereTheConnectionDropsAgainAndKeepsTheRest() throws {
        let o = Outbox(maxMessages: 100, maxBytes: 10_000, what: "NATS at x")
        let link = Link()
        link.up.store(false, ordering: .relaxed)
        for i in 0..<4 { try send(o, link, "s", "m\(i)") }
        link.up.store(true, ordering: .relaxed)
        var n = 0
        let d = o.drain(nowMono: 0) { s, b in
            n += 1
            if n == 3 { link.up.store(false, ordering: .relaxed) }
            return link.publish(s, b)
        }
        #expect(d.sent == 2 && d.left == 2)
        link.up.store(true, ordering: .relaxed)
        _ = o.drain(nowMono: 0) { link.publish($0, $1) }
        #expect(link.sent.withLock { $0.map { String(decoding: $0.1, as: UTF8.self) } } == ["m0", "m1", "m2", "m3"])
    }

    @Test func aRefusalNamesWhatTheCallerAddressedNotTheSubject() {
        #expect(Outbox.destination("plexus.c.from.a.cap.text.stats") == "capability text.stats")
        #expect(Outbox.destination("plexus.c.from.a.capon.b.text.stats") == "capability text.stats on node b")
        #expect(Outbox.destination("plexus.c.from.a.topic.news.flash") == "topic news.flash")
        #expect(Outbox.destination("plexus.c.from.a.agent.b.summarizer") == "agent b/summarizer")
        #expect(Outbox.destination("something.else") == "something.else")
    }
}
