import Foundation
import PlexusCore
import PlexusHost
import Synchronization
import Testing

@Suite("Routing")
struct RoutingTests {
    /// A refused name or content type says which rule it broke, and for a
    /// refused character, which one and where.
    @Test func aRefusedNameSaysWhatWasWrongAndWhere() throws {
        let host = try startedHost([])
        defer { host.shutdown() }
        let bad = expectError(.INVALID_ARGUMENT) { _ = try host.call(Envelope(kind: .query, target: .capability("bad/t@rget!"), payload: [])) }
        #expect(bad?.detail == "target has a character outside [A-Za-z0-9_.:/@*>-] ('!' at byte 11 of 'bad/t@rget!')", "\(bad?.detail ?? "")")
        let long = expectError(.INVALID_ARGUMENT) { _ = try host.call(Envelope(kind: .query, target: .capability(String(repeating: "a", count: 300)), payload: [])) }
        #expect(long?.detail == "target is longer than 255 bytes", "\(long?.detail ?? "")")
        let type = expectError(.INVALID_ARGUMENT) {
            _ = try host.call(Envelope(kind: .query, target: .capability("echo"), payload: [], contentType: "text\nplain"))
        }
        #expect(type?.detail == "content_type has a character outside printable ASCII (byte 0x0A at byte 5 of 'text\nplain')", "\(type?.detail ?? "")")
    }

    @Test func capabilityRequestGetsTheReply() throws {
        let host = try startedHost([Fixtures.probe()])
        defer { host.shutdown() }
        #expect(try host.callText("probe.echo", "{\"hello\":\"world\"}") == "{\"hello\":\"world\"}")
    }

    @Test func directToAnAgentByName() throws {
        let host = try startedHost([Fixtures.probe(named: "alpha"), Fixtures.probe(named: "beta")])
        defer { host.shutdown() }
        // agent: targets reach that agent; the handler sees the agent name as target.
        let reply = try host.call(Envelope(kind: .query, target: .agent("beta"), payload: Array("probe.whoami".utf8)))
        #expect(reply.sender == "beta")
        #expect(reply.payloadString == "beta")
        _ = expectError(.NO_SUCH_AGENT) { _ = try host.callText("agent:gamma") }
    }

    @Test func senderIdentityComesFromTheHostNotTheEnvelope() throws {
        let host = try startedHost([Fixtures.probe()])
        defer { host.shutdown() }
        let reply = try host.call(Envelope(kind: .query, target: .capability("probe.sender"), sender: "probe"))
        #expect(reply.payloadString == "client:api")
        #expect(try host.call(Envelope(kind: .query, target: .capability("probe.sender")), timeoutMs: 1000).payloadString == "client:api")
    }

    @Test func noSuchCapability() throws {
        let host = try startedHost([Fixtures.probe()])
        defer { host.shutdown() }
        let e = expectError(.NO_SUCH_CAPABILITY) { _ = try host.callText("nobody.has.this") }
        #expect(e?.detail == "no agent provides capability 'nobody.has.this'")
    }

    @Test func leastLoadedProviderGetsTheWork() throws {
        let host = try startedHost([Fixtures.probe(named: "busy"), Fixtures.probe(named: "idle")], threads: 2)
        defer { host.shutdown() }
        // Occupy "busy" (directly) so its load is 2, then ask the capability several times.
        try host.command("agent:busy", "probe.sleep 400")
        try host.command("agent:busy", "probe.sleep 0")
        var whom: [String] = []
        for _ in 0..<5 { whom.append(try host.callText("probe.whoami")) }
        #expect(whom.filter { $0 == "idle" }.count >= 4, "capability calls went to \(whom)")
    }

    /// An agent woken by a handler that then blocks must not wait for that
    /// handler: the other worker takes it.
    @Test func agentWokenByABlockedHandlerStillRuns() throws {
        let host = try startedHost([Fixtures.probe(named: "slow"), Fixtures.probe(named: "quick")], threads: 2)
        defer { host.shutdown() }
        try host.command("agent:slow", "probe.nudge quick 1500")
        Thread.sleep(forTimeInterval: 0.05)
        #expect(try host.callText("agent:quick", "probe.journal", timeoutMs: 700) == "nudged")
    }

    @Test func topicFanOutReachesEveryMatchingSubscriberOnce() throws {
        let host = try startedHost([
            Fixtures.probe(named: "wide", subscribe: "probe.events.>"),
            Fixtures.probe(named: "narrow", subscribe: "probe.events.*"),
            Fixtures.probe(named: "other", subscribe: "unrelated.*"),
        ])
        defer { host.shutdown() }
        try host.send(Envelope(kind: .event, target: .topic("probe.events.one"), payload: Array("e1".utf8)))
        try host.send(Envelope(kind: .event, target: .topic("probe.events.deep.two"), payload: Array("e2".utf8)))
        #expect(try journal(host, "wide") == "e1,e2")
        #expect(try journal(host, "narrow") == "e1")
        #expect(try journal(host, "other") == "")
    }

    @Test func publishingToAWildcardIsRefused() throws {
        let host = try startedHost([Fixtures.probe()])
        defer { host.shutdown() }
        _ = expectError(.INVALID_ARGUMENT) { try host.send(Envelope(kind: .event, target: .topic("probe.*"))) }
    }

    @Test func agentsPublishAndOthersHear() throws {
        let host = try startedHost([Fixtures.probe(named: "talker"), Fixtures.probe(named: "listener", subscribe: "probe.events.relay")])
        defer { host.shutdown() }
        _ = try host.call(Envelope(kind: .query, target: .capability("probe.publish")))
        #expect(try journal(host, "listener") == "\"relayed\"")
    }

    @Test func correlationMatchesManyConcurrentRequests() throws {
        let host = try startedHost([Fixtures.probe(named: "p1"), Fixtures.probe(named: "p2")])
        defer { host.shutdown() }
        let mismatches = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<200 {
                let body = "\(t)-\(i)"
                if (try? host.callText("probe.echo", body)) != body { mismatches.add(1, ordering: .relaxed) }
            }
        }
        #expect(mismatches.load(ordering: .relaxed) == 0)
        #expect(host.pendingRequests == 0)
    }

    @Test func handlerFailureEndsTheRequestWithItsReason() throws {
        let host = try startedHost([Fixtures.probe()])
        defer { host.shutdown() }
        let e = expectError(.HANDLER_FAILED) { _ = try host.callText("probe.fail") }
        #expect(e?.detail == "agent 'probe' returned HANDLER_FAILED while handling the request")
    }

    @Test func tooLargeRequestIsRefusedAndTooLargeReplyEndsTheRequest() throws {
        let host = try startedHost([Fixtures.probe()], maxPayload: 1024)
        defer { host.shutdown() }
        let request = expectError(.TOO_LARGE) { _ = try host.callText("probe.echo", String(repeating: "x", count: 1025)) }
        #expect(request?.detail.contains("(1025 bytes; the limit is 1024)") == true, "both sizes: \(String(describing: request?.detail))")
        #expect(try host.callText("probe.echo", String(repeating: "x", count: 1024)).count == 1024)
        let e = expectError(.TOO_LARGE) { _ = try host.callText("probe.big", "5000") }
        #expect(e?.detail.contains("the reply was refused") == true)
        #expect(e?.detail.contains("(5000 bytes; the limit is 1024)") == true, "both sizes: \(String(describing: e?.detail))")
    }
}

/// The probe's journal. Sent by the same sender at the same priority as what
/// it journals, so it is answered only after all of that was handled.
func journal(_ host: Host, _ agent: String) throws -> String {
    try host.callText("agent:\(agent)", "probe.journal")
}
