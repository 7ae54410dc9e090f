import Foundation
import Glibc
import PlexusCore
import PlexusHost
import PlexusSocket
import PlexusTestSupport
import Synchronization
import Testing

/// `plexus agents restart|stop|start|suspend|resume|drain NAME` against a
/// real `plexus run`, for a sandboxed agent and an in-process one alike:
/// both modes answer the same contract (issue 17 item 2).
@Suite("Operator control of one agent", .serialized)
struct OperatorControlTests {
    /// A `plexus run` with the probe fixture, in the given sandbox mode.
    final class ControlledHost {
        let host: HostProcess
        let client: SocketClient

        init(_ mode: String, config: String? = nil, name: String = "ctl") throws {
            let so = try Fixtures.probe()
            var args = ["--sandbox", mode]
            if let config {
                let path = Fixtures.dir + "/\(name)-\(UUID().uuidString.prefix(6)).yaml"
                try config.write(toFile: path, atomically: true, encoding: .utf8)
                args += ["--config", path]
            }
            host = try HostProcess(name, plugins: ["probe.so": so], arguments: args)
            client = try SocketClient(path: host.socket)
        }

        /// `plexus ARGS --socket S`.
        func plexus(_ args: [String], env: [String: String] = [:]) throws -> PlexusCommand.Outcome {
            try PlexusCommand.run(args + ["--socket", host.socket], env: env)
        }

        func agent(_ name: String = "probe") throws -> AgentReport? {
            let r = try plexus(["agents", "--json"])
            guard r.status == 0 else { return nil }
            return try JSONDecoder().decode([AgentReport].self, from: Data(r.out.utf8)).first { $0.name == name }
        }

        /// Waits (generously) until the agent's report satisfies the condition.
        func waitForAgent(_ what: String, _ condition: (AgentReport) -> Bool) throws -> AgentReport? {
            var last: AgentReport?
            let ok = waitFor(seconds: 60) {
                last = try? agent()
                return last.map(condition) ?? false
            }
            if !ok { Issue.record("agent never became \(what): \(String(describing: last))") }
            return last
        }

        func call(_ capability: String, _ payload: String = "") throws -> String {
            try client.call(Envelope(kind: .query, target: .capability(capability), payload: Array(payload.utf8)), timeoutMs: 30_000).payloadString
        }

        /// A query on a connection of its own, on a thread of its own; the
        /// answer (or the error's status name and detail) lands in `answers`.
        func callInBackground(_ capability: String, _ payload: String, into answers: Answers) throws {
            let path = host.socket
            let t = Thread {
                do throws(PlexusError) {
                    let c = try SocketClient(path: path)
                    let r = try c.call(Envelope(kind: .query, target: .capability(capability), payload: Array(payload.utf8)), timeoutMs: 60_000)
                    answers.add(r.payloadString)
                } catch { answers.add("\(error.name): \(error.detail)") }
            }
            t.start()
        }

        func events() throws -> [JSONValue] {
            let r = try plexus(["events", "--json", "--kind", "agent.", "--last", "200"])
            return r.out.split(separator: "\n").compactMap { try? JSONValue.parse(Array($0.utf8)) }
        }
    }

    final class Answers: Sendable {
        private let list = Mutex<[String]>([])
        func add(_ s: String) { list.withLock { $0.append(s) } }
        var all: [String] { list.withLock { $0 } }
    }

    static func alive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 }

    /// Calls by capability pass a suspended instance by while another
    /// serves: none waits for an operator's resume.
    @Test func capabilityCallsGoToTheProvidersThatAreNotSuspended() throws {
        let h = try ControlledHost("process", config: "plugins:\n  probe:\n    instances: 2\n", name: "ctl-suspend")
        #expect(try h.plexus(["agents", "suspend", "probe"]).status == 0)
        for i in 1...20 { #expect(try h.call("probe.echo", "m\(i)") == "m\(i)") }
        let probe = try #require(try h.agent("probe"))
        let other = try #require(try h.agent("probe.2"))
        #expect(probe.handled == 0 && probe.queued == 0, "\(probe)")
        #expect(other.handled == 20, "\(other)")
    }

    /// --plugins, --sandbox and --config shape an embedded host: given to a
    /// command that reaches a running host, they are named as unused.
    @Test func optionsForAnEmbeddedHostAreNamedUnusedWhenARunningHostAnswers() throws {
        let h = try ControlledHost("process", name: "ctl-unused")
        let r = try h.plexus(["agents", "--plugins", "/nowhere", "--sandbox", "in-process"])
        #expect(r.status == 0 && r.out.contains("probe"), "\(r.err)")
        #expect(r.err.contains("--plugins, --sandbox shape an embedded host only; the running host at \(h.host.socket) keeps its own"), "\(r.err)")
    }

    /// Unloading an in-process plugin says it is one way until the host restarts.
    @Test func unloadingAnInProcessPluginSaysItCannotBeLoadedAgainUntilARestart() throws {
        let h = try ControlledHost("in-process", name: "ctl-unload")
        let r = try h.plexus(["plugins", "unload", "probe"])
        #expect(r.status == 0 && r.out.contains("It ran in process: loading it again needs a restart of the host"), "\(r.out) \(r.err)")
    }

    // MARK: the whole contract, in both modes

    @Test(arguments: ["process", "in-process"])
    func everyActionAnswersTheSameContract(mode: String) throws {
        let h = try ControlledHost(mode)
        let sandboxed = mode == "process"
        let firstPid = try #require(try h.agent()).pid
        #expect(sandboxed == (firstPid != nil))

        // suspend: mail queues, none is handled; resume delivers it in order.
        var r = try h.plexus(["agents", "suspend", "probe"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("probe: suspended"), "\(r.out)")
        for i in 1...5 { _ = try h.client.send(Envelope(kind: .command, target: Target(parsing: "agent:probe"), payload: Array("probe.record m\(i)".utf8))) }
        let held = try h.waitForAgent("5 queued") { $0.queued == 5 }
        #expect(held?.state == "suspended" && held?.handled == 0, "\(String(describing: held))")
        #expect(held?.last_action?.hasPrefix("suspend by client:") == true, "\(String(describing: held))")
        r = try h.plexus(["agents", "suspend", "probe"])
        #expect(r.status == 1 && r.err.contains("suspended already"), "\(r.err)")
        r = try h.plexus(["agents", "resume", "probe"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try h.call("probe.journal") == "m1,m2,m3,m4,m5")
        r = try h.plexus(["agents", "resume", "probe"])
        #expect(r.status == 1 && r.err.contains("not suspended"), "\(r.err)")

        // stop: senders are told, the worker exits, nothing restarts it.
        r = try h.plexus(["agents", "stop", "probe"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("probe: stopped (stopped by operator"), "\(r.out)")
        let stopped = try #require(try h.agent())
        #expect(stopped.state == "stopped" && stopped.pid == nil, "\(stopped)")
        if sandboxed {   // its worker exited because it was asked to, not on its own
            #expect(stopped.last_exit?.contains("asked to stop: ") == true, "\(stopped.last_exit ?? "-")")
        }
        if let firstPid { #expect(waitFor(seconds: 60) { !Self.alive(firstPid) }, "the stopped worker \(firstPid) still runs") }
        let refused = expectError(.SHUTTING_DOWN) { _ = try h.call("probe.whoami") }
        #expect(refused?.detail.contains("was stopped by an operator") == true, "\(String(describing: refused))")
        r = try h.plexus(["agents", "stop", "probe"])
        #expect(r.status == 1 && r.err.contains("stopped already"), "\(r.err)")
        r = try h.plexus(["agents", "drain", "probe"])
        #expect(r.status == 1 && r.err.contains("stopped already"), "\(r.err)")

        // start: a new worker, or init again; it answers again.
        r = try h.plexus(["agents", "start", "probe"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try h.call("probe.whoami") == "probe")
        let started = try #require(try h.agent())
        #expect(started.state == "active", "\(started)")
        if sandboxed { #expect(started.pid != nil && started.pid != firstPid, "\(started)") }
        r = try h.plexus(["agents", "start", "probe"])
        #expect(r.status == 1 && r.err.contains("not stopped"), "\(r.err)")

        // restart: stop then start, counted in restarts.
        r = try h.plexus(["agents", "restart", "probe"])
        #expect(r.status == 0, "\(r.err)")
        let restarted = try #require(try h.agent())
        #expect(restarted.state == "active" && restarted.restarts == 1, "\(restarted)")
        #expect(restarted.last_action?.hasPrefix("restart by client:") == true, "\(restarted)")
        if sandboxed { #expect(restarted.pid != started.pid, "\(restarted)") }
        #expect(try h.call("probe.whoami") == "probe")

        // drain with nothing to do: stops at once.
        r = try h.plexus(["agents", "drain", "probe"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("drained"), "\(r.out)")
        #expect(try h.agent()?.state == "stopped")
        r = try h.plexus(["agents", "start", "probe"])
        #expect(r.status == 0, "\(r.err)")

        // Clear errors for what cannot be acted on.
        r = try h.plexus(["agents", "stop", "prob"])
        #expect(r.status == 1 && r.err.contains("NO_SUCH_AGENT") && r.err.contains("did you mean probe?"), "\(r.err)")
        r = try h.plexus(["agents", "stop", "plexus.tasks"])
        #expect(r.status == 1 && r.err.contains("the host's own"), "\(r.err)")
        r = try h.plexus(["agents", "pause", "probe"])
        #expect(r.status == 2, "\(r.err)")

        // Each action is an event and is audited, with who asked.
        let kinds = try h.events().filter { $0["subject"] == .string("probe") }.compactMap { e -> String? in
            if case .string(let k)? = e["kind"] { return k } else { return nil }
        }
        let wanted = ["agent.suspended", "agent.resumed", "agent.stopped", "agent.started", "agent.restarted", "agent.drained", "agent.started"]
        #expect(Array(kinds.drop { $0 != "agent.suspended" }) == wanted, "\(kinds)")
        r = try h.plexus(["audit", "--json"])
        let audit = try JSONDecoder().decode(AuditReport.self, from: Data(r.out.utf8))
        let actions = audit.actions ?? []
        #expect(actions.filter { $0.outcome.hasPrefix("done") }.map(\.action)
                == ["suspend", "resume", "stop", "start", "restart", "drain", "start"], "\(actions)")
        #expect(actions.contains { $0.action == "resume" && $0.outcome.hasPrefix("refused: UNSUPPORTED") })
        #expect(actions.allSatisfy { $0.by.hasPrefix("client:") })
        r = try h.plexus(["agents"])
        #expect(r.out.contains("LAST ACTION") && r.out.contains("start by client:"), "\(r.out)")
    }

    // MARK: drain and stop with work under way

    @Test(arguments: ["process", "in-process"])
    func drainFinishesQueuedAndRunningWorkBeforeItStops(mode: String) throws {
        let h = try ControlledHost(mode)
        let answers = Answers()
        // 1.5 s each: two stay queued long enough for `plexus agents` to see them on a loaded machine.
        for _ in 0..<3 { try h.callInBackground("probe.sleep", "1500", into: answers) }
        // One runs, the others wait (in the mailbox, or in the worker's queue).
        _ = try h.waitForAgent("busy with three calls") { $0.queued + $0.in_flight >= 2 }
        let drain = Process()
        drain.executableURL = URL(fileURLWithPath: PlexusCommand.path)
        drain.arguments = ["agents", "drain", "probe", "--socket", h.host.socket]
        let out = Pipe()
        drain.standardOutput = out
        drain.standardError = FileHandle.nullDevice
        try drain.run()
        // While it drains, new mail is refused with the reason.
        _ = try h.waitForAgent("draining") { $0.state == "draining" }
        let refused = expectError(.SHUTTING_DOWN) { _ = try h.call("probe.whoami") }
        #expect(refused?.detail.contains("draining") == true, "\(String(describing: refused))")
        drain.waitUntilExit()
        #expect(drain.terminationStatus == 0)
        let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(said.contains("probe: stopped (drained"), "\(said)")
        // Every accepted call was handled before the agent stopped.
        #expect(waitFor(seconds: 60) { answers.all.count == 3 })
        #expect(answers.all == ["probe", "probe", "probe"], "\(answers.all)")
        let a = try #require(try h.agent())
        #expect(a.state == "stopped" && a.queued == 0 && a.in_flight == 0, "\(a)")
    }

    @Test(arguments: ["process", "in-process"])
    func stopLetsRunningWorkFinishAndTellsEveryOtherCaller(mode: String) throws {
        let h = try ControlledHost(mode)
        let answers = Answers()
        // 1.5 s each: two stay queued long enough for `plexus agents` to see them on a loaded machine.
        for _ in 0..<3 { try h.callInBackground("probe.sleep", "1500", into: answers) }
        _ = try h.waitForAgent("busy with three calls") { $0.queued + $0.in_flight >= 2 }
        let r = try h.plexus(["agents", "stop", "probe"])
        #expect(r.status == 0, "\(r.err)")
        #expect(waitFor(seconds: 60) { answers.all.count == 3 })
        // The running call finishes; the rest finish within the grace (a
        // worker holds them) or are handed back with the reason.
        #expect(answers.all.contains("probe"), "\(answers.all)")
        for a in answers.all where a != "probe" {
            #expect(a.hasPrefix("SHUTTING_DOWN") && a.contains("stopped by an operator"), "\(a)")
        }
        #expect(try h.agent()?.state == "stopped")
    }

    // MARK: a terminated agent starts again

    @Test func anAgentTerminatedAfterTooManyCrashesStartsAgain() throws {
        let h = try ControlledHost("process", config: """
            defaults:
              restart: { intensity: 1, period_seconds: 60, backoff_ms: 10, max_attempts: 1 }
            """, name: "ctl-crash")
        // Two crashes within the period: past the intensity (1) the
        // supervisor gives the agent up.
        let first = try #require(try h.agent()?.pid)
        _ = try? h.call("probe.crash")
        _ = try h.waitForAgent("restarted once") { $0.state == "active" && $0.pid != nil && $0.pid != first }
        _ = try? h.call("probe.crash")
        let gone = try h.waitForAgent("terminated") { $0.state == "terminated" }
        #expect(gone?.pid == nil)
        let refused = expectError(.SHUTTING_DOWN) { _ = try h.call("probe.whoami") }
        #expect(refused?.detail.contains("plexus agents start probe") == true, "\(String(describing: refused))")
        var r = try h.plexus(["agents", "resume", "probe"])
        #expect(r.status == 1 && r.err.contains("terminated"), "\(r.err)")
        r = try h.plexus(["agents", "start", "probe"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try h.call("probe.whoami") == "probe")
        let back = try #require(try h.agent())
        #expect(back.state == "active" && back.pid != nil && back.circuit == "closed", "\(back)")
        // Supervised again: a crash now is restarted, not the end of it.
        _ = try? h.call("probe.exit", "3")
        #expect(try h.waitForAgent("restarted after a crash") { $0.state == "active" && $0.pid != back.pid } != nil)
        #expect(try h.call("probe.whoami") == "probe")
    }

    // MARK: who may do it

    @Test func aClientWithoutTheGrantIsRefusedAndAudited() throws {
        let h = try ControlledHost("process", config: """
            clients:
              ops: { token: "ops-token-0123456789abcdef", grants: { call: ["plexus.agents.*"] } }
              viewer: { token: "viewer-token-0123456789abcdef", grants: { call: ["plexus.agents"] } }
            """, name: "ctl-grant")
        let viewer = ["PLEXUS_CLIENT": "viewer", "PLEXUS_TOKEN": "viewer-token-0123456789abcdef"]
        var r = try h.plexus(["agents", "--json"], env: viewer)
        #expect(r.status == 0, "\(r.err)")
        r = try h.plexus(["agents", "stop", "probe"], env: viewer)
        #expect(r.status == 1 && r.err.contains("PERMISSION_DENIED") && r.err.contains("call plexus.agents.stop"), "\(r.err)")
        #expect(try h.agent()?.state == "active")
        r = try h.plexus(["agents", "stop", "probe"], env: ["PLEXUS_CLIENT": "ops", "PLEXUS_TOKEN": "ops-token-0123456789abcdef"])
        #expect(r.status == 0, "\(r.err)")
        let audit = try JSONDecoder().decode(AuditReport.self, from: Data(try h.plexus(["audit", "--json"]).out.utf8))
        #expect(audit.recent.contains { $0.holder == "client 'viewer'" && $0.action == "call" && $0.name == "plexus.agents.stop" }, "\(audit)")
        #expect(audit.actions?.contains { $0.by == "client:ops" && $0.action == "stop" && $0.outcome.hasPrefix("done") } == true, "\(audit)")
    }
}

/// The same rules through the Host API, where the mailbox's bound is small.
@Suite("Operator control in the host")
struct OperatorControlHostTests {
    @Test func aSuspendedAgentsMailboxIsBoundedAndResumeDeliversInOrder() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.mailboxCapacity = 4
        c.sandbox = .inProcess
        let h = Host(c)
        try h.load(path: try Fixtures.probe())
        h.start()
        defer { h.shutdown() }
        let out = try h.control(.suspend, "probe", by: "test")
        #expect(out.state == "suspended")
        for i in 1...4 { try h.command("agent:probe", "probe.record n\(i)") }
        let full = expectError(.MAILBOX_FULL) { try h.command("agent:probe", "probe.record n5") }
        #expect(full?.detail.contains("mailbox") == true)
        #expect(h.agentReports.first { $0.name == "probe" }?.handled == 0)
        let resumed = try h.control(.resume, "probe", by: "test")
        #expect(resumed.detail.contains("4 queued message(s)"), "\(resumed.detail)")
        // The mailbox empties as they are handled; then the journal shows their order.
        #expect(waitFor(seconds: 30) { h.agentReports.first { $0.name == "probe" }?.queued == 0 })
        #expect(try h.callText("probe.journal") == "n1,n2,n3,n4")
    }

    @Test func aStoppedInProcessAgentIsNotShutDownTwiceAndStartsWithInitAgain() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = .inProcess
        let h = Host(c)
        try h.load(path: try Fixtures.probe(named: "again", subscribe: "ctl.>"))
        h.start()
        defer { h.shutdown() }
        _ = try h.control(.stop, "again", by: "test")
        let e = expectError(.UNSUPPORTED) { _ = try h.control(.suspend, "again", by: "test") }
        #expect(e?.detail.contains("stopped already") == true)
        _ = try h.control(.start, "again", by: "test")
        // init ran again: its subscription holds, events reach it.
        try h.send(Envelope(kind: .event, target: .topic("ctl.ping"), payload: Array("pinged".utf8)))
        #expect(waitFor(seconds: 30) { (try? h.callText("agent:again", "probe.journal")) == "pinged" })
    }

    @Test func aDrainPastItsTimeoutStopsAndHandsBackWhatIsLeftAndRefusesASecondAction() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = .inProcess
        c.shutdownGraceMs = 5_000
        let h = Host(c)
        try h.load(path: try Fixtures.probe())
        h.start()
        defer { h.shutdown() }
        for _ in 0..<4 { try h.command("agent:probe", "probe.sleep 400") }
        let outcome = Mutex<ControlOutcome?>(nil)
        let drainer = Thread { outcome.withLock { $0 = try? h.control(.drain, "probe", by: "test", drainTimeoutMs: 600) } }
        drainer.start()
        #expect(waitFor(seconds: 30) { h.agentReports.first { $0.name == "probe" }?.state == "draining" })
        // One action at a time per agent: the drain is under way.
        let busy = expectError(.UNAVAILABLE) { _ = try h.control(.suspend, "probe", by: "test") }
        #expect(busy?.detail.contains("busy with an operator's drain") == true, "\(String(describing: busy))")
        #expect(waitFor(seconds: 60) { outcome.withLock { $0 } != nil })
        let out = try #require(outcome.withLock { $0 })
        // 600 ms let at most two of the four run: the rest were handed back.
        #expect(out.state == "stopped" && out.handed_back >= 1, "\(out)")
        #expect(out.detail.hasPrefix("not drained within 600 ms"), "\(out.detail)")
        #expect(h.deadLetters.contains { $0.reason.contains("was not drained within 600 ms") })
    }
}
