import Foundation
import Glibc
import PlexusCore
import PlexusHost
import PlexusSocket
import PlexusTestSupport
import Synchronization
import Testing

/// Agents that spawn agents (plexus.h spawn/stop, issue 17 item 3) against
/// a real `plexus run`: the spawner (Tests/Fixtures/spawner.c, through the
/// C SDK's plexus_spawn/plexus_stop_child) in process and sandboxed, its
/// children (helper.c) in workers of their own.
@Suite("Agents that spawn agents", .serialized)
struct SpawnTests {
    final class SpawningHost {
        let host: HostProcess
        let client: SocketClient

        init(spawner mode: String, yaml extra: String = "", maxChildren: Int = 2, restart: String = "temporary",
             spawnerHealthTimeoutMs: Int = 5000) throws {
            let config = """
                plugins:
                  spawner:
                    sandbox: \(mode)
                    health: { timeout_ms: \(spawnerHealthTimeoutMs) }
                    spawn: { max_children: \(maxChildren), plugins: [helper], restart: \(restart) }
                \(extra)
                """
            let path = Fixtures.dir + "/spawn-\(UUID().uuidString.prefix(6)).yaml"
            try config.write(toFile: path, atomically: true, encoding: .utf8)
            host = try HostProcess("spawn", plugins: ["spawner.so": try Fixtures.build("spawner.c", name: "spawner"),
                                                      "helper.so": try Fixtures.build("helper.c", name: "helper")],
                                   arguments: ["--config", path])
            client = try SocketClient(path: host.socket)
        }

        func call(_ target: String, _ payload: String = "") throws -> String {
            try client.call(Envelope(kind: .query, target: Target(parsing: target), payload: Array(payload.utf8)), timeoutMs: 30_000).payloadString
        }

        func plexus(_ args: [String]) throws -> PlexusCommand.Outcome { try PlexusCommand.run(args + ["--socket", host.socket]) }

        func agents() throws -> [AgentReport] {
            let r = try plexus(["agents", "--json"])
            return (try? JSONDecoder().decode([AgentReport].self, from: Data(r.out.utf8))) ?? []
        }

        func agent(_ name: String) throws -> AgentReport? { try agents().first { $0.name == name } }

        /// The agent.terminated news the spawner received, by child name.
        func terminations() throws -> [String: JSONValue] {
            var out: [String: JSONValue] = [:]
            for line in try call("spawner.events").split(separator: "\n") {
                guard let v = try? JSONValue.parse(Array(line.utf8)), case .string(let n)? = v["name"] else { continue }
                out[n] = v
            }
            return out
        }

        func events() throws -> [JSONValue] {
            let r = try plexus(["events", "--json", "--kind", "agent.", "--last", "500"])
            return r.out.split(separator: "\n").compactMap { try? JSONValue.parse(Array($0.utf8)) }
        }
    }

    static func alive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 }

    static func text(_ v: JSONValue?) -> String? { if case .string(let s)? = v { return s } else { return nil } }

    @Test(arguments: ["process", "in-process"])
    func aChildAnswersIsListedWithItsParentAndIsStoppedByItOnly(mode: String) throws {
        let h = try SpawningHost(spawner: mode)
        #expect(try h.call("spawner.spawn", "helper h1 {\"greeting\":\"hi\"}") == "spawner/h1")
        // The child answers with its own name and the config its init got.
        #expect(try h.call("agent:spawner/h1", "x") == "spawner/h1|{\"greeting\":\"hi\"}")
        let child = try #require(try h.agent("spawner/h1"))
        #expect(child.parent == "spawner" && child.kind == "worker" && child.pid != nil && child.state == "active", "\(child)")
        #expect(try h.agent("helper")?.parent == nil)
        let table = try h.plexus(["agents"])
        #expect(table.out.contains("PARENT") && table.out.contains("spawner/h1"), "\(table.out)")
        #expect(try h.events().contains { Self.text($0["kind"]) == "agent.spawned" && Self.text($0["subject"]) == "spawner/h1" })

        // The host names a child spawned without an instance name; config NULL is {}.
        let named = try h.call("spawner.spawn", "helper - -")
        #expect(named.hasPrefix("spawner/helper."), "\(named)")
        #expect(try h.call("agent:\(named)", "x") == "\(named)|{}")

        // The limit (max_children: 2), then a name taken, a plugin it may not spawn, one that does not exist, bad JSON.
        #expect(try h.call("spawner.spawn", "helper h3 -") == "LIMIT_REACHED")
        #expect(try h.call("spawner.stop", named) == "OK")
        #expect(try h.call("spawner.spawn", "helper h1 -") == "CONFLICT")
        #expect(try h.call("spawner.spawn", "spawner s1 -") == "PERMISSION_DENIED")
        #expect(try h.call("spawner.spawn", "ghost g1 -") == "NO_SUCH_AGENT")
        #expect(try h.call("spawner.spawn", "helper h4 [1,2]") == "INVALID_ARGUMENT")
        #expect(try h.call("spawner.spawn", "helper bad/name -") == "INVALID_ARGUMENT")
        // spawn() inside a child's own init(): UNSUPPORTED (plexus.h), not SHUTTING_DOWN; the child starts.
        #expect(try h.call("spawner.spawn", "helper i1 {\"spawn_in_init\":1}") == "spawner/i1")
        #expect(try h.call("agent:spawner/i1", "x") == "spawner/i1|init-spawn:UNSUPPORTED")
        #expect(try h.call("spawner.stop", "spawner/i1") == "OK")
        #expect(try h.plexus(["audit", "--json"]).out.contains("may not spawn plugin 'spawner'"))

        // stop: its own children only.
        #expect(try h.call("spawner.stop", "helper") == "PERMISSION_DENIED")
        #expect(try h.call("spawner.stop", "spawner/nobody") == "NO_SUCH_AGENT")
        #expect(try h.agent(named) == nil)
        let stopped = try #require(try h.terminations()[named])
        #expect(Self.text(stopped["reason"])?.contains("stopped by its spawner 'spawner'") == true, "\(stopped)")
        // Nobody but the host can tell a spawner that a child ended: the subject is the host's.
        _ = expectError(.PERMISSION_DENIED) {
            _ = try h.client.send(Envelope(kind: .event, target: .topic("plexus.agent.terminated"), payload: Array("{\"name\":\"spawner/h1\"}".utf8)))
        }

        // Operator control works on a child: suspend and resume it.
        var r = try h.plexus(["agents", "suspend", "spawner/h1"])
        #expect(r.status == 0, "\(r.err)")
        r = try h.plexus(["agents", "resume", "spawner/h1"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try h.call("agent:spawner/h1", "x").hasPrefix("spawner/h1|"))
        r = try h.plexus(["agents", "restart", "spawner/h1"])
        #expect(r.status == 0, "\(r.err)")
        let restarted = try #require(try h.agent("spawner/h1"))
        #expect(restarted.pid != nil && restarted.pid != child.pid && restarted.parent == "spawner" && restarted.state == "active", "\(restarted)")
        #expect(try h.call("agent:spawner/h1", "x") == "spawner/h1|{\"greeting\":\"hi\"}")   // the config its spawner gave, again

        // Stopping the spawner takes its children down (linked).
        let pid = try #require(restarted.pid)
        r = try h.plexus(["agents", "stop", "spawner"])
        #expect(r.status == 0, "\(r.err)")
        #expect(waitFor(seconds: 60) { !Self.alive(pid) }, "the child's worker \(pid) outlived its stopped spawner")
        #expect(try h.agent("spawner/h1") == nil)
        #expect(try h.events().contains { Self.text($0["kind"]) == "agent.terminated" && Self.text($0["subject"]) == "spawner/h1" })
    }

    @Test(arguments: ["process", "in-process"])
    func theSpawnerHearsOfAChildThatCrashes(mode: String) throws {
        let h = try SpawningHost(spawner: mode)
        #expect(try h.call("spawner.spawn", "helper c1 -") == "spawner/c1")
        // An operator's restart leaves a history in `plexus agents` (RESTARTS, LAST ACTION)...
        #expect(try h.plexus(["agents", "restart", "spawner/c1"]).status == 0)
        let operated = try #require(try h.agent("spawner/c1"))
        #expect(operated.restarts == 1 && operated.last_action?.hasPrefix("restart by") == true, "\(operated)")
        let pid = try #require(operated.pid)
        _ = expectError(.AGENT_CRASHED) { _ = try h.call("agent:spawner/c1", "crash") }
        var news: JSONValue?
        #expect(waitFor(seconds: 60) { news = try? h.terminations()["spawner/c1"]; return news != nil }, "no agent.terminated for spawner/c1")
        #expect(Self.text(news?["reason"])?.contains("temporary agent 'spawner/c1' is not restarted") == true, "\(String(describing: news))")
        #expect(Self.text(news?["exit"])?.contains("SIGABRT") == true, "\(String(describing: news))")
        #expect(!Self.alive(pid))
        #expect(try h.events().contains { Self.text($0["kind"]) == "agent.terminated" && Self.text($0["subject"]) == "spawner/c1"
                                          && Self.text($0["data"]?["parent"]) == "spawner" })
        // Temporary: gone, not restarted; its name is free again.
        #expect(waitFor(seconds: 30) { (try? h.agent("spawner/c1")) == nil })
        #expect(try h.call("spawner.spawn", "helper c1 -") == "spawner/c1")
        // ...that a new child under the same name does not inherit.
        let again = try #require(try h.agent("spawner/c1"))
        #expect(again.restarts == 0 && again.last_action == nil, "\(again)")
    }

    /// A child of an in-process plugin runs in the host, inits with the config its spawner gave, and keeps it across an operator's restart.
    @Test func anInProcessChildStartsAndRestartsWithItsSpawnersConfig() throws {
        let h = try SpawningHost(spawner: "process", yaml: "  helper:\n    sandbox: in-process\n    config: { mine: true }\n")
        #expect(try h.call("spawner.spawn", "helper p1 {\"given\":1}") == "spawner/p1")
        let c = try #require(try h.agent("spawner/p1"))
        #expect(c.kind == "plugin" && c.pid == nil && c.parent == "spawner", "\(c)")
        #expect(try h.call("agent:spawner/p1", "x") == "spawner/p1|{\"given\":1}")
        #expect(try h.call("helper.echo", "x") == "helper|{\"mine\":true}")
        let r = try h.plexus(["agents", "restart", "spawner/p1"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try h.call("agent:spawner/p1", "x") == "spawner/p1|{\"given\":1}")
        #expect(try h.call("spawner.stop", "spawner/p1") == "OK")
        #expect(try h.agent("spawner/p1") == nil)
    }

    @Test func killingASandboxedSpawnerTakesItsChildrenDown() throws {
        let h = try SpawningHost(spawner: "process")
        #expect(try h.call("spawner.spawn", "helper k1 -") == "spawner/k1")
        #expect(try h.call("spawner.spawn", "helper k2 -") == "spawner/k2")
        let pids = try ["spawner/k1", "spawner/k2"].map { try #require(try h.agent($0)?.pid) }
        let spawnerPid = try #require(try h.agent("spawner")?.pid)
        kill(spawnerPid, SIGKILL)
        #expect(waitFor(seconds: 60) { pids.allSatisfy { !Self.alive($0) } }, "children \(pids) outlived their spawner")
        #expect(waitFor(seconds: 60) { (try? h.agents())?.contains { $0.parent != nil } == false })
        // The spawner itself is permanent: restarted, and it may spawn again.
        #expect(waitFor(seconds: 60) { (try? h.agent("spawner"))?.state == "active" })
        #expect(try h.call("spawner.spawn", "helper k3 -") == "spawner/k3")
    }

    @Test func restartKindHostWideCapAndUnloadComeFromPlexusYaml() throws {
        let h = try SpawningHost(spawner: "process", yaml: "defaults:\n  spawn: { max_total: 1 }\n", restart: "transient")
        #expect(try h.call("spawner.spawn", "helper t1 -") == "spawner/t1")
        #expect(try h.call("spawner.spawn", "helper t2 -") == "LIMIT_REACHED")   // the host-wide cap: 1
        let pid = try #require(try h.agent("spawner/t1")?.pid)
        _ = expectError(.AGENT_CRASHED) { _ = try h.call("agent:spawner/t1", "crash") }
        // transient: restarted after its crashes, still its spawner's child, no news of an end.
        #expect(waitFor(seconds: 60) { ((try? h.agent("spawner/t1")) ?? nil).map { $0.pid != nil && $0.pid != pid && $0.state == "active" } ?? false })
        #expect(try h.agent("spawner/t1")?.parent == "spawner")
        #expect(try h.call("agent:spawner/t1", "x").hasPrefix("spawner/t1|"))
        #expect(try h.terminations()["spawner/t1"] == nil)
        // Unloading the child's plugin stops the children running it.
        let r = try h.plexus(["plugins", "unload", "helper"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try h.agent("spawner/t1") == nil)
        #expect(Self.text(try h.terminations()["spawner/t1"]?["reason"])?.contains("was unloaded") == true)
    }

    /// A child whose init outlasts its load timeout: the spawn answers TIMEOUT and nothing of the child is left; the
    /// sandboxed spawner, waiting for the host all that time, still answers its heartbeats and is not killed as hung.
    @Test func aChildThatNeverBecomesReadyLeavesNothingAndItsSpawnerLives() throws {
        let h = try SpawningHost(spawner: "process", yaml: "  helper:\n    health: { load_timeout_ms: 2500 }\n", spawnerHealthTimeoutMs: 1000)
        let pid = try #require(try h.agent("spawner")?.pid)
        #expect(try h.call("spawner.spawn", "helper slow1 {\"slow\":true}") == "TIMEOUT")
        #expect(try h.agent("spawner/slow1") == nil)
        #expect(try h.agent("spawner")?.pid == pid)
        #expect(try h.call("spawner.spawn", "helper fast1 -") == "spawner/fast1")
    }

    @Test func aPluginWithoutASpawnSectionSpawnsNothing() throws {
        let h = try SpawningHost(spawner: "process", maxChildren: 0)
        #expect(try h.call("spawner.spawn", "helper h1 -") == "LIMIT_REACHED")
        let plain = try HostProcess("nospawn", plugins: ["spawner.so": try Fixtures.build("spawner.c", name: "spawner"),
                                                         "helper.so": try Fixtures.build("helper.c", name: "helper")])
        let c = try SocketClient(path: plain.socket)
        let r = try c.call(Envelope(kind: .query, target: .capability("spawner.spawn"), payload: Array("helper h1 -".utf8)), timeoutMs: 30_000)
        #expect(r.payloadString == "PERMISSION_DENIED")
    }

    /// The example plugin (Plugins/fanout): `plexus call fanout.count` spawns helpers, fans the text out, stops them.
    @Test func theFanoutExampleSpawnsHelpersAndStopsThem() throws {
        let so = Fixtures.dir + "/fanout-\(UUID().uuidString.prefix(6)).so"
        try Fixtures.run("/usr/bin/cc", ["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-I\(Fixtures.root)/include",
                                         "-I\(Fixtures.root)/SDK/c", "\(Fixtures.root)/Plugins/fanout/fanout.c", "-o", so])
        let path = Fixtures.dir + "/fanout-\(UUID().uuidString.prefix(6)).yaml"
        try "plugins:\n  fanout:\n    config: { helpers: 3 }\n    spawn: { max_children: 8, plugins: [fanout] }\n".write(toFile: path, atomically: true, encoding: .utf8)
        let host = try HostProcess("fanout", plugins: ["fanout.so": so], arguments: ["--config", path])
        let r = try PlexusCommand.run(["call", "fanout.count", "--socket", host.socket, "--json", "\"one two three four five six seven\""])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("\"words\":7,\"helpers\":3") && r.out.contains("\"parts\":["), "\(r.out)")
        let events = try PlexusCommand.run(["events", "--json", "--kind", "agent.", "--last", "100", "--socket", host.socket]).out
        #expect(events.components(separatedBy: "\"agent.spawned\"").count - 1 == 3, "\(events)")
        #expect(waitFor(seconds: 30) {
            (try? PlexusCommand.run(["agents", "--json", "--socket", host.socket]).out.contains("fanout/w.")) == false
        }, "the helpers outlived the fan-out")

        // Without a spawn: section it is refused, and says what to add.
        let plain = try HostProcess("fanout-nospawn", plugins: ["fanout.so": so])
        let refused = try PlexusCommand.run(["call", "fanout.count", "--socket", plain.socket, "--json", "\"a b\""])
        #expect(refused.status == 1 && refused.err.contains("PERMISSION_DENIED") && refused.err.contains("plugins.fanout.spawn"), "\(refused.err)")

        // The conformance suite's mock host answers its spawn/stop calls.
        let conformance = Process()
        conformance.executableURL = URL(fileURLWithPath: Fixtures.root + "/SDK/conformance/run.sh")
        conformance.arguments = [so]
        let out = Pipe()
        conformance.standardOutput = out
        try conformance.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        conformance.waitUntilExit()
        #expect(conformance.terminationStatus == 0 && text.contains("spawned 3 children, stopped 3"), "\(text)")
    }

    /// `cp helper-2.0.0.so Plugins/helper.so` while a child of helper runs: the child stays on 1.0.0 while 2.0.0 is on
    /// probation, moves to 2.0.0 when the upgrade commits (its name, spawner and config kept; a call in flight then is
    /// answered, not failed), and an operator's restart afterwards starts 2.0.0 again, not the old image.
    @Test func aChildMovesToItsPluginsNewVersionWhenAnUpgradeCommits() throws {
        let h = try SpawningHost(spawner: "process", yaml: "reload: { probation_messages: 2 }\n")
        let v2 = try Fixtures.build("helper.c", ["-DVERSION=\"2.0.0\""], name: "helper-2.0.0")
        #expect(try h.call("spawner.spawn", "helper a {\"k\":1}") == "spawner/a")
        #expect(try h.call("agent:spawner/a", "version") == "1.0.0")
        let before = try #require(try h.agent("spawner/a")?.pid)
        HotReloadTests.cp(v2, h.host.dir + "/plugins/helper.so")
        #expect(waitFor(seconds: 60) { (try? h.agent("helper"))?.version == "2.0.0" }, "helper was not upgraded")
        // On probation: the child still runs 1.0.0 (a rollback would leave it there).
        #expect(try h.call("agent:spawner/a", "version") == "1.0.0")
        #expect(try h.agent("spawner/a")?.version == "1.0.0")

        // A call in flight on the child while the upgrade commits.
        let slow = Mutex<Result<String, any Error>?>(nil)
        let socket = h.host.socket
        let caller = Thread {
            let r = Result<String, any Error>(catching: {
                let c = try SocketClient(path: socket)
                return try c.call(Envelope(kind: .query, target: Target(parsing: "agent:spawner/a"), payload: Array("slow".utf8)), timeoutMs: 60_000).payloadString
            })
            slow.withLock { $0 = r }
        }
        caller.start()
        #expect(waitFor(seconds: 30) { ((try? h.agent("spawner/a")) ?? nil).map { $0.in_flight > 0 } ?? false }, "the slow call never reached the child")
        // Two messages end 2.0.0's probation: the upgrade commits.
        for _ in 0..<2 { #expect(try h.call("helper.echo", "x").hasPrefix("helper|")) }
        #expect(waitFor(seconds: 60) { slow.withLock { $0 != nil } }, "the call in flight was never answered")
        let answer = try slow.withLock { try $0?.get() }
        #expect(answer == "1.0.0" || answer == "2.0.0", "\(String(describing: answer))")
        #expect(waitFor(seconds: 60) { (try? h.call("agent:spawner/a", "version")) == "2.0.0" }, "the child never moved to 2.0.0")
        let moved = try #require(try h.agent("spawner/a"))
        #expect(moved.version == "2.0.0" && moved.parent == "spawner" && moved.pid != nil && moved.pid != before, "\(moved)")
        #expect(try h.call("agent:spawner/a", "x") == "spawner/a|{\"k\":1}")   // the config its spawner gave
        #expect(try h.events().contains { Self.text($0["kind"]) == "agent.upgraded" && Self.text($0["subject"]) == "spawner/a" })
        #expect(try h.terminations()["spawner/a"] == nil)   // not an end: its spawner hears nothing

        // An operator's restart starts the new version again.
        let r = try h.plexus(["agents", "restart", "spawner/a"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try h.call("agent:spawner/a", "version") == "2.0.0")
        #expect(try h.agent("spawner/a")?.version == "2.0.0")
    }

    /// A rollback leaves children on the old version: one spawned before the upgrade never moves, and one spawned
    /// while the new version was on probation (it copies the current version) goes back to the old one.
    @Test func aRollbackLeavesChildrenOnTheOldVersion() throws {
        let h = try SpawningHost(spawner: "process", yaml: "reload: { probation_messages: 5 }\n")
        let v2 = try Fixtures.build("helper.c", ["-DVERSION=\"2.0.0\""], name: "helper-2.0.0")
        #expect(try h.call("spawner.spawn", "helper old -") == "spawner/old")
        HotReloadTests.cp(v2, h.host.dir + "/plugins/helper.so")
        #expect(waitFor(seconds: 60) { (try? h.agent("helper"))?.version == "2.0.0" }, "helper was not upgraded")
        #expect(try h.call("spawner.spawn", "helper new -") == "spawner/new")
        #expect(try h.call("agent:spawner/new", "version") == "2.0.0")
        // 2.0.0 dies on probation: rolled back; the message that killed it goes to 1.0.0, which dies of it too (it aborts).
        _ = try? h.client.call(Envelope(kind: .query, target: .capability("helper.echo"), payload: Array("crash".utf8)), timeoutMs: 30_000)
        #expect(waitFor(seconds: 60) { (try? h.call("agent:spawner/new", "version")) == "1.0.0" }, "the probation-time child stayed on 2.0.0")
        #expect(try h.call("agent:spawner/old", "version") == "1.0.0")
        #expect(try h.agent("spawner/new")?.version == "1.0.0")
        #expect(try h.agent("spawner/new")?.parent == "spawner")
    }

    /// A plugin built while 1.2 had no spawn/stop states a 136-byte host table: it still loads and serves, in both modes.
    @Test(arguments: [SandboxMode.process, .inProcess])
    func aPluginOfThe12DraftSizeStillLoads(mode: SandboxMode) throws {
        let so = try Fixtures.build("helper.c", ["-DHOST_SIZE=136"], name: "draft")
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = mode
        c.threads = 2
        let host = Host(c)
        defer { host.shutdown() }
        let d = try host.load(path: so)
        #expect(d.name == "helper")
        host.start()
        let r = try host.call(Envelope(kind: .query, target: .capability("helper.echo"), payload: Array("x".utf8)), timeoutMs: 30_000)
        #expect(r.payloadString == "helper|{}")
        #expect(Int(PLEXUS_HOST_SIZE_1_2) == MemoryLayout<plexus_host>.size && PLEXUS_HOST_SIZE_1_2_DRAFT == 136)
    }
}
