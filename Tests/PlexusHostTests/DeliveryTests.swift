import Foundation
import PlexusCore
import PlexusHost
import PlexusThreads
import Testing

@Suite("Mailboxes, deadlines and ordering")
struct DeliveryTests {
    @Test func requestWithoutReplyTimesOutWithTheReason() throws {
        let host = try startedHost([Fixtures.probe()])
        defer { host.shutdown() }
        let e = expectError(.TIMEOUT) { _ = try host.callText("probe.noreply", timeoutMs: 150) }
        #expect(e?.detail == "no reply from 'probe.noreply' within 150 ms")
        #expect(host.pendingRequests == 0)
    }

    @Test func messageThatExpiresInTheMailboxIsDeadLetteredNotDelivered() throws {
        let host = try startedHost([Fixtures.probe()])
        defer { host.shutdown() }
        try host.command("agent:probe", "probe.sleep 300")            // occupy the agent
        try host.command("probe.record", "late", deadline: unixNow() + 50_000_000)
        try host.command("probe.record", "on-time")
        // The caller's own deadline ends its wait first (TIMEOUT); the query
        // itself is then never delivered but dead-lettered as expired.
        let e = expectError(.TIMEOUT) { _ = try host.callText("probe.echo", "q", timeoutMs: 100) }
        #expect(e?.detail == "no reply from 'probe.echo' within 100 ms")
        #expect(try journal(host, "probe") == "on-time")
        let dead = host.deadLetters.map { ($0.envelope.payloadString, $0.reason) }
        #expect(dead.contains { $0.0 == "late" && $0.1 == "expired before delivery to 'probe'" })
        #expect(dead.contains { $0.0 == "q" && $0.1 == "expired before delivery to 'probe'" })
    }

    @Test func alreadyExpiredMessageIsRefusedAtTheDoor() throws {
        let host = try startedHost([Fixtures.probe()])
        defer { host.shutdown() }
        _ = expectError(.EXPIRED) { try host.command("probe.record", "x", deadline: unixNow() - 1) }
    }

    @Test func fullMailboxPushesBackAndLosesNothingAccepted() throws {
        let host = try startedHost([Fixtures.probe()], mailbox: 4)
        defer { host.shutdown() }
        try host.command("agent:probe", "probe.sleep 300")
        #expect(waitFor(seconds: 10) { Self.taken(host) }, "the sleep is taken off the queue, running")
        for i in 1...4 { try host.command("probe.record", "m\(i)") }
        let e = expectError(.MAILBOX_FULL) { try host.command("probe.record", "m5") }
        #expect(e?.detail == "agent 'probe' has 4 messages waiting, its mailbox's limit")
        let full = expectError(.MAILBOX_FULL) { _ = try host.callText("probe.echo", "q") }
        #expect(full != nil)
        #expect(host.pendingRequests == 0)
        // Once the sleep ends the four run; the journal query then fits in the mailbox and comes after them.
        #expect(waitFor(seconds: 10) { (try? journal(host, "probe")) == "m1,m2,m3,m4" })
    }

    @Test func oneSendersMessagesArriveInOrder() throws {
        let host = try startedHost([Fixtures.probe()], threads: 2)
        defer { host.shutdown() }
        let n = 2000
        for i in 0..<n { try host.command("probe.record", "\(i)") }
        let got = try journal(host, "probe").split(separator: ",").map { Int($0)! }
        #expect(got == Array(0..<n))
    }

    @Test func higherPriorityIsDeliveredFirst() throws {
        let host = try startedHost([Fixtures.probe()])
        defer { host.shutdown() }
        try host.command("agent:probe", "probe.sleep 200")
        #expect(waitFor(seconds: 10) { Self.taken(host) }, "the sleep is taken off the queue, running")
        try host.command("probe.record", "low", priority: .low)
        try host.command("probe.record", "normal", priority: .normal)
        try host.command("probe.record", "critical", priority: .critical)
        try host.command("probe.record", "high", priority: .high)
        let order = try host.call(Envelope(kind: .query, target: .agent("probe"), priority: .low,
                                           payload: Array("probe.journal".utf8))).payloadString
        #expect(order == "critical,high,normal,low")
    }

    @Test func shutdownAnswersWaitingRequests() throws {
        let host = try startedHost([Fixtures.probe()])
        let answer = OneShot<Envelope>()
        try host.request(Envelope(kind: .query, target: .capability("probe.noreply"))) { answer.set($0) }
        // Handled (its handler returned without answering): the request waits for a reply that never comes.
        #expect(waitFor(seconds: 10) { host.agentReports.first { $0.name == "probe" }?.handled == 1 })
        host.shutdown()
        #expect(answer.wait().status == PLEXUS_SHUTTING_DOWN.status)
    }

    /// The probe has taken what was queued (its handler runs): nothing waits.
    static func taken(_ host: Host) -> Bool {
        host.agentReports.first { $0.name == "probe" }?.queued == 0
    }
}
