import Foundation
import PlexusCore
import PlexusHost
import Synchronization
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
        for n in names { try h.load(path: try Self.probe(n)) }
        h.start()
        return h
    }

    /// One build per name: every worker loads its own sealed copy, so hosts
    /// may share the file (only in-process plugins share globals per file).
    static let built = Mutex<[String: String]>([:])
    static func probe(_ name: String) throws -> String {
        if let f = built.withLock({ $0[name] }) { return f }
        let f = try Fixtures.probe(named: name)
        built.withLock { $0[name] = f }
        return f
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
        let refused = expectError(.SHUTTING_DOWN) { _ = try h.callText("agent:t", "probe.whoami") }
        // Not "shutting down" while the host runs on: why it was given up, and where to look.
        #expect(refused?.detail.contains("agent 't' was terminated (temporary agent 't' is not restarted after a crash") == true)
        #expect(refused?.detail.contains("plexus agents") == true)
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
        // Refused at once until the cooldown ends; then the half-open probe gets through.
        #expect(waitFor(seconds: 10) { (try? h.callText("probe.echo", "probe", timeoutMs: 10_000)) == "probe" })
        #expect(waitFor(seconds: 10) { h.agentReports.first { $0.name == "probe" }?.circuit == "closed" })
    }

    // MARK: the grid: strategy x restart kind x way of dying, on real workers

    /// Every way is abnormal: exit(0) without goodbye is a crash too
    /// (FAULTS.md 3); only a stop the host asks for is a normal exit.
    enum Death: String, CaseIterable, Sendable {
        case killed, crashed, exitedCleanly, exitedWithError, hung
    }

    struct Case: Sendable, CustomTestStringConvertible {
        let strategy: Strategy, kind: RestartKind, death: Death
        var testDescription: String { "\(strategy.rawValue) \(kind.rawValue) \(death.rawValue)" }
        var restarts: Bool { kind != .temporary }
        /// Who gets a new worker when y dies, in group g { x, y, z }.
        var restarted: [String] {
            guard restarts else { return [] }
            switch strategy {
            case .oneForOne: return ["y"]
            case .oneForAll: return ["x", "y", "z"]
            case .restForOne: return ["y", "z"]
            }
        }
    }

    static let grid: [Case] = Strategy.allCases.flatMap { s in
        RestartKind.allCases.flatMap { k in Death.allCases.map { Case(strategy: s, kind: k, death: $0) } }
    }

    /// root (one-for-one) { group g (strategy) { x; y (kind); z }; b }: y
    /// dies one way; the right siblings restart, the rest keep their
    /// process, and the agent outside the group never notices.
    @Test(arguments: grid)
    func eachWayOfDyingUnderEachStrategyAndKind(_ c: Case) throws {
        let g = SupervisorSpec(name: "g", strategy: c.strategy,
                               children: [.agent("x", .permanent), .agent("y", c.kind), .agent("z", .permanent)])
        let h = try host(["x", "y", "z", "b"], tree: SupervisorSpec(name: "root", children: [.group(g), .agent("b", .permanent)])) {
            $0.restartPolicy.maxAttempts = 1           // the fatal message is not retried
            $0.restartPolicy.heartbeatIntervalMs = 100
            $0.restartPolicy.heartbeatTimeoutMs = 500
            $0.restartPolicy.graceMs = 100
        }
        defer { h.shutdown() }
        let before = pids(h)
        switch c.death {
        case .killed: kill(before["y"]!, SIGKILL)
        case .crashed: try h.command("agent:y", "probe.crash")
        case .exitedCleanly: try h.command("agent:y", "probe.exit 0")
        case .exitedWithError: try h.command("agent:y", "probe.exit 3")
        case .hung: try h.command("agent:y", "probe.sleep 60000")
        }
        if c.restarts {
            let after = settled(h, c.restarted, differentFrom: before)
            for n in ["x", "y", "z", "b"] {
                #expect((after[n] != before[n]) == c.restarted.contains(n), "\(n): \(before[n] ?? 0) -> \(after[n] ?? 0)")
            }
            #expect(try h.callText("agent:y", "probe.whoami", timeoutMs: 10_000) == "y")
        } else {
            for _ in 0..<300 where h.agentReports.first(where: { $0.name == "y" })?.state != "terminated" {
                Thread.sleep(forTimeInterval: 0.02)
            }
            #expect(h.agentReports.first { $0.name == "y" }?.state == "terminated")
            let after = pids(h)
            #expect(after["x"] == before["x"] && after["z"] == before["z"])
        }
        let y = h.agentReports.first { $0.name == "y" }
        #expect(y?.last_exit?.hasPrefix(c.death == .exitedCleanly ? "exit 0" : c.death == .exitedWithError ? "exit 3" : "SIG") == true,
                "\(y?.last_exit ?? "-")")
        #expect(try h.callText("agent:b", "probe.whoami") == "b")
        #expect(pids(h)["b"] == before["b"])
    }
}
