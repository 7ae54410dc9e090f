import Foundation
import PlexusCore
import PlexusHost
import Testing

/// The supervision tree carried out on real workers: which pids change when
/// one worker is killed, what temporary agents do, and the circuit breaker.
@Suite("Supervision of workers", .serialized)
struct SupervisorTests {
    func host(_ names: [String], tree: SupervisorSpec?, configure: (inout HostConfiguration) -> Void = { _ in }) throws -> Host {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.restartPolicy.backoffBaseMs = 5
        c.supervision = tree
        configure(&c)
        let h = Host(c)
        for n in names { try h.load(path: try Fixtures.probe(named: n)) }
        h.start()
        return h
    }

    func pids(_ h: Host) -> [String: Int32] {
        Dictionary(uniqueKeysWithValues: h.agentReports.compactMap { r in r.pid.map { (r.name, $0) } })
    }

    /// Waits until every named agent has a worker again.
    func settled(_ h: Host, _ names: [String], differentFrom old: [String: Int32]) -> [String: Int32] {
        for _ in 0..<200 {
            let now = pids(h)
            if names.allSatisfy({ now[$0] != nil && now[$0] != old[$0] }) { return now }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return pids(h)
    }

    @Test func oneForAllRestartsEverySibling() throws {
        let g = SupervisorSpec(name: "pair", strategy: .oneForAll, children: [.agent("p1", .permanent), .agent("p2", .permanent)])
        let h = try host(["p1", "p2", "p3"], tree: SupervisorSpec(name: "root", children: [.group(g)]))
        defer { h.shutdown() }
        let before = pids(h)
        kill(before["p1"]!, SIGKILL)
        let after = settled(h, ["p1", "p2"], differentFrom: before)
        #expect(after["p1"] != before["p1"] && after["p2"] != before["p2"])
        #expect(after["p3"] == before["p3"])                    // outside the group
        #expect(try h.callText("agent:p2", "probe.whoami") == "p2")
        #expect(h.agentReports.first { $0.name == "p2" }?.state == "active")
    }

    @Test func restForOneRestartsTheLaterSiblings() throws {
        let g = SupervisorSpec(name: "chain", strategy: .restForOne,
                               children: [.agent("a", .permanent), .agent("b", .permanent), .agent("c", .permanent)])
        let h = try host(["a", "b", "c"], tree: SupervisorSpec(name: "root", children: [.group(g)]))
        defer { h.shutdown() }
        let before = pids(h)
        kill(before["b"]!, SIGKILL)
        let after = settled(h, ["b", "c"], differentFrom: before)
        #expect(after["a"] == before["a"])
        #expect(after["b"] != before["b"] && after["c"] != before["c"])
    }

    @Test func aTemporaryAgentIsNotRestarted() throws {
        let h = try host(["t", "p"], tree: SupervisorSpec(name: "root", children: [.agent("t", .temporary)]))
        defer { h.shutdown() }
        kill(pids(h)["t"]!, SIGKILL)
        for _ in 0..<100 where h.agentReports.first(where: { $0.name == "t" })?.state != "terminated" {
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(h.agentReports.first { $0.name == "t" }?.state == "terminated")
        #expect(expectError(.SHUTTING_DOWN) { _ = try h.callText("agent:t", "probe.whoami") } != nil)
        #expect(try h.callText("agent:p", "probe.whoami") == "p")
    }

    @Test func theCircuitOpensFailsFastAndClosesAfterAProbe() throws {
        let h = try host(["probe"], tree: nil) {
            $0.restartPolicy.breakerThreshold = 2
            $0.restartPolicy.breakerCooldownMs = 400
            $0.restartPolicy.maxAttempts = 1
        }
        defer { h.shutdown() }
        for _ in 0..<2 {
            _ = expectError(.AGENT_CRASHED) { _ = try h.callText("probe.crash", timeoutMs: 10_000) }
        }
        #expect(h.agentReports.first { $0.name == "probe" }?.circuit == "open")
        let refused = expectError(.AGENT_CRASHED) { _ = try h.callText("probe.echo", "x") }
        #expect(refused?.detail.contains("circuit") == true)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try h.callText("probe.echo", "probe", timeoutMs: 10_000) == "probe")   // the half-open probe
        Thread.sleep(forTimeInterval: 0.05)
        #expect(h.agentReports.first { $0.name == "probe" }?.circuit == "closed")
    }
}
