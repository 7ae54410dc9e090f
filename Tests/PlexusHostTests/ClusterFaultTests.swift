import Foundation
import Glibc
import PlexusCore
import PlexusSocket
import PlexusTestSupport
import Synchronization
import Testing

/// NATS going away under running hosts (FAULTS.md 34): a server killed and
/// restarted on its port, a tiny outbox filling up, a NATS cluster losing
/// one of its three servers. Real nats-server and `plexus run` processes.
@Suite(.serialized) struct ClusterFaultTests {
    typealias C = ClusterTests

    /// `plexus nodes --json` of the host at socket, parsed.
    static func report(_ socket: String) -> [String: JSONValue] {
        guard let r = try? C.plexus(["nodes", "--socket", socket, "--json"]), r.status == 0,
              case .object(let o)? = try? JSONValue.parse(Array(r.out.utf8)) else { return [:] }
        return o
    }

    static func natsState(_ socket: String) -> String {
        if case .string(let s)? = report(socket)["nats_state"] { return s }
        return "?"
    }

    static func outboxDepth(_ socket: String) -> Int {
        if case .object(let o)? = report(socket)["outbox"], case .int(let n)? = o["messages"] { return Int(n) }
        return -1
    }

    static func natsServer(_ socket: String) -> String {
        if case .string(let s)? = report(socket)["nats_server"] { return s }
        return ""
    }

    /// Calls made on their own threads; their outcomes by number.
    final class Calls: Sendable {
        let outcomes = Mutex<[Int: Result<Envelope, PlexusError>]>([:])
        func start(_ socket: String, _ n: Int, _ target: Target, _ text: String, timeoutMs: Int64) {
            Thread.detachNewThread {
                let r: Result<Envelope, PlexusError>
                do throws(PlexusError) {
                    r = .success(try C.call(socket, target, text, timeoutMs: timeoutMs, trace: plexus_id(hi: 0xfa17, lo: UInt64(n))))
                } catch { r = .failure(error) }
                self.outcomes.withLock { $0[n] = r }
            }
        }
        var count: Int { outcomes.withLock { $0.count } }
        subscript(n: Int) -> Result<Envelope, PlexusError>? { outcomes.withLock { $0[n] } }
    }

    /// The ids in a host's debug log lines with this message.
    static func ids(_ log: String, _ message: String) -> [String] {
        log.split(separator: "\n").filter { $0.contains(message) }.compactMap { line -> String? in
            guard let r = line.range(of: "id=") else { return nil }
            return String(line[r.upperBound...].prefix(while: { $0.isHexDigit }))
        }
    }

    @Test func callsMadeWhileNATSRestartsAreHeldAndAnsweredOnceWithTheIdsTheSenderAssigned() throws {
        var nats: NatsServer? = try NatsServer()
        let port = nats!.port, url = nats!.url
        let debug = ["PLEXUS_LOG_LEVEL": "debug"]
        let a = try HostProcess("node-a", plugins: ["alpha.so": try C.probe("alpha")], arguments: ["--nats", url, "--node", "a"], environment: debug)
        let b = try HostProcess("node-b", plugins: ["beta.so": try C.probe("beta")], arguments: ["--nats", url, "--node", "b"], environment: debug)
        #expect(C.waitForNodes(a.socket, up: ["b"]))
        #expect(C.waitForNodes(b.socket, up: ["a"]))
        for i in 0..<5 { #expect(try C.call(a.socket, .agent("beta"), "probe.echo before \(i)").payloadString == "before \(i)") }

        var resumeSeconds: [Double] = []
        for round in 0..<3 {
            nats = nil   // SIGKILL: no goodbye to anyone
            #expect(waitFor(seconds: 20) { Self.natsState(a.socket) != "connected" && Self.natsState(b.socket) != "connected" })
            // Local work on A is untouched while NATS is away.
            #expect(try C.call(a.socket, .agent("alpha"), "probe.whoami x").payloadString == "alpha")
            let calls = Calls()
            for i in 0..<8 { calls.start(a.socket, i, .agent("beta"), "probe.echo held \(round).\(i)", timeoutMs: 60_000) }
            #expect(waitFor(seconds: 30) { Self.outboxDepth(a.socket) == 8 }, "outbox: \(Self.outboxDepth(a.socket))")
            #expect(calls.count == 0)   // held, not answered, not refused
            // B still counts as up on A: a host cut off from NATS drops no one.
            #expect(C.nodes(a.socket)["b"] == "up")

            nats = try NatsServer(port: port)
            let back = Date()   // the server says it is ready
            #expect(waitFor(seconds: 45) { calls.count == 8 })
            resumeSeconds.append(Date().timeIntervalSince(back))
            for i in 0..<8 {
                switch calls[i] {
                case .success(let e)?:
                    #expect(e.payloadString == "held \(round).\(i)")
                    #expect(e.traceID == plexus_id(hi: 0xfa17, lo: UInt64(i)))
                case .failure(let e)?: Issue.record("held call \(i) failed: \(e.name) \(e.detail)")
                case nil: Issue.record("held call \(i) not answered")
                }
            }
            #expect(Self.outboxDepth(a.socket) == 0)
            #expect(Self.natsState(a.socket) == "connected")
        }
        print("ClusterFaultTests: cross-host calls resumed \(resumeSeconds.map { String(format: "%.2f", $0) }) s after the NATS server was back")

        // Every request sent from A's outbox reached B once, under the id A gave it.
        #expect(waitFor(seconds: 10) { Self.ids(a.logText, "request sent from the outbox").count == 24 }, "\(a.logText.suffix(2000))")
        let sent = Self.ids(a.logText, "request sent from the outbox")
        let heard = Self.ids(b.logText, "message from another host")
        for id in sent { #expect(heard.filter { $0 == id }.count == 1, "id \(id) heard \(heard.filter { $0 == id }.count) times on b") }
        // No answer came twice (a second one would be dead-lettered as late on A).
        #expect(!a.logText.contains("late or unexpected answer"))
        // And after all that, calls flow straight again.
        #expect(try C.call(a.socket, .agent("beta"), "probe.echo after").payloadString == "after")
    }

    @Test func aFullOutboxRefusesAtOnceNamingNATSAndAnExpiredHeldRequestIsNotSentLater() throws {
        var nats: NatsServer? = try NatsServer()
        let port = nats!.port, url = nats!.url
        let debug = ["PLEXUS_LOG_LEVEL": "debug"]
        let yaml = Fixtures.dir + "/plexus-tiny-outbox-\(UUID().uuidString.prefix(6)).yaml"
        try "nats: { outbox: 2 }\n".write(toFile: yaml, atomically: true, encoding: .utf8)
        let a = try HostProcess("node-a", plugins: ["alpha.so": try C.probe("alpha")],
                                arguments: ["--nats", url, "--node", "a", "--config", yaml, "--http", "127.0.0.1:0"], environment: debug)
        let b = try HostProcess("node-b", plugins: ["beta.so": try C.probe("beta")], arguments: ["--nats", url, "--node", "b"], environment: debug)
        #expect(C.waitForNodes(a.socket, up: ["b"]))
        #expect(C.waitForNodes(b.socket, up: ["a"]))

        nats = nil
        #expect(waitFor(seconds: 20) { Self.natsState(a.socket) != "connected" })
        let calls = Calls()
        calls.start(a.socket, 0, .agent("beta"), "probe.echo kept", timeoutMs: 60_000)
        calls.start(a.socket, 1, .agent("beta"), "probe.echo short", timeoutMs: 1_500)
        #expect(waitFor(seconds: 30) { Self.outboxDepth(a.socket) == 2 })
        // The third is refused at once: UNAVAILABLE, naming NATS and the outbox's size.
        do {
            _ = try C.call(a.socket, .agent("beta"), "probe.echo refused", timeoutMs: 30_000)
            Issue.record("a send past a full outbox was taken")
        } catch {
            #expect(error.status == PLEXUS_UNAVAILABLE.status, "\(error.name) \(error.detail)")
            #expect(error.detail.contains("NATS at nats://127.0.0.1:\(port)"), "\(error.detail)")
            #expect(error.detail.contains("2 of 2 messages"), "\(error.detail)")
        }
        // plexus nodes and /metrics show the connection and the outbox.
        let text = try C.plexus(["nodes", "--socket", a.socket])
        #expect(text.out.contains("NATS reconnecting") && text.out.contains("outbox 2 of 2 messages"), "\(text.out)")
        let metrics = try HTTPGet.get(port: try HTTPServerTests.port(of: a), "/metrics").body
        #expect(metrics.contains("plexus_nats_outbox_messages 2") && metrics.contains("plexus_nats_connected 0"),
                "\(metrics.split(separator: "\n").filter { $0.contains("nats") })")
        // Local calls still work, the outbox full or not.
        #expect(try C.call(a.socket, .agent("alpha"), "probe.whoami x").payloadString == "alpha")
        // The short one times out while held, and leaves the outbox.
        #expect(waitFor(seconds: 20) { calls[1] != nil })
        if case .failure(let e)? = calls[1] { #expect(e.status == PLEXUS_TIMEOUT.status, "\(e.name) \(e.detail)") }
        else { Issue.record("the short call was answered: \(String(describing: calls[1]))") }
        #expect(waitFor(seconds: 10) { Self.outboxDepth(a.socket) == 1 })

        nats = try NatsServer(port: port)
        #expect(waitFor(seconds: 45) { calls[0] != nil })
        if case .success(let e)? = calls[0] { #expect(e.payloadString == "kept") }
        else { Issue.record("the kept call: \(String(describing: calls[0]))") }
        // Only the kept one reached B: the expired one was never sent.
        let sent = Self.ids(a.logText, "request sent from the outbox")
        #expect(sent.count == 1, "\(sent)")
        #expect(waitFor(seconds: 5) { Self.ids(b.logText, "message from another host").count == 1 }, "\(b.logText.suffix(2000))")
    }

    /// Three nats-servers routed into one NATS cluster named `name`: the
    /// servers (set one to nil to kill it), their client ports, and the
    /// URL list a host connects with.
    static func natsCluster(_ name: String) throws -> (servers: [NatsServer?], ports: [Int], urls: String) {
        let ports = (0..<3).map { _ in NatsServer.freePort() }
        let routes = (0..<3).map { _ in NatsServer.freePort() }
        let servers: [NatsServer?] = try (0..<3).map { i in
            let others = (0..<3).filter { $0 != i }.map { "nats://127.0.0.1:\(routes[$0])" }.joined(separator: ",")
            return try NatsServer(port: ports[i], arguments: ["--cluster_name", name, "--cluster", "nats://127.0.0.1:\(routes[i])", "--routes", others])
        }
        // JetStream is usable once every server knows the metadata leader: a
        // host started sooner cannot place a replicated stream ("no suitable
        // peers for placement"), which a loaded machine made happen.
        if !waitFor(seconds: 30, { servers.allSatisfy { $0!.logText.contains("metadata leader") } }) {
            Issue.record("the NATS cluster elected no JetStream metadata leader within 30 s: \(servers.map { $0!.logText.suffix(800) })")
        }
        return (servers, ports, ports.map { "nats://127.0.0.1:\($0)" }.joined(separator: ","))
    }

    /// beta's answer to text, asked at most twice (8 s each), and how many
    /// of the two ended TIMEOUT; nil when neither was answered.
    static func callAskingAgainOnTimeout(_ socket: String, _ text: String) -> (String?, Int) {
        var timeouts = 0
        for _ in 0..<2 {
            let r = Result { () throws(PlexusError) -> Envelope in try C.call(socket, .agent("beta"), text, timeoutMs: 8_000) }
            switch r {
            case .success(let e): return (e.payloadString, timeouts)
            case .failure(let e) where e.status == PLEXUS_TIMEOUT.status: timeouts += 1
            case .failure(let e): Issue.record("\(text): \(e)"); return (nil, timeouts)
            }
        }
        return (nil, timeouts)
    }

    @Test func aThreeServerNATSClusterKeepsCrossHostCallsFlowingWhenOneServerIsKilled() throws {
        // No copy of the servers stays elsewhere: setting one to nil kills it.
        var servers: [NatsServer?], ports: [Int], all: String
        (servers, ports, all) = try Self.natsCluster("plexus-test")
        let a = try C.node("a", all, plugins: ["alpha.so": try C.probe("alpha")])
        let b = try C.node("b", all, plugins: ["beta.so": try C.probe("beta")])
        #expect(C.waitForNodes(a.socket, up: ["b"]))
        #expect(C.waitForNodes(b.socket, up: ["a"]))
        for i in 0..<5 { #expect(try C.call(a.socket, .agent("beta"), "probe.echo \(i)").payloadString == "\(i)") }

        // Kill the server A is on (B may be on it too, or on another).
        let on = Self.natsServer(a.socket)
        guard let victim = ports.firstIndex(where: { on.hasSuffix(":\($0)") }) else {
            Issue.record("host a is on no known server: '\(on)'")
            return
        }
        servers[victim] = nil
        // Calls keep being answered: held for the moment A fails over, then
        // through another server. Core NATS is at-most-once (README, "When
        // NATS goes away"): the one call caught in the failover itself (its
        // request or its answer) may be lost with the server and end TIMEOUT
        // at its deadline (about one run in three here); it is asked again.
        // No more than that one may be lost.
        let start = Date()
        var lost = 0
        for i in 0..<20 {
            let (answer, timeouts) = Self.callAskingAgainOnTimeout(a.socket, "probe.echo after \(i)")
            lost += timeouts
            #expect(answer == "after \(i)")
        }
        #expect(lost <= 1, "\(lost) calls lost after one server of three was killed")
        print("ClusterFaultTests: 20 calls through the NATS cluster after killing one server in \(String(format: "%.2f", Date().timeIntervalSince(start))) s (\(lost) lost in the failover and asked again)")
        #expect(waitFor(seconds: 20) { let s = Self.natsServer(a.socket); return !s.isEmpty && !s.hasSuffix(":\(ports[victim])") })
        #expect(C.nodes(a.socket)["b"] == "up")
        #expect(C.nodes(b.socket)["a"] == "up")
        _ = servers
    }

    // MARK: durable tasks through a NATS blip, and on a three-server cluster with nats.replicas

    typealias T = ClusterTaskTests

    /// The task.waiting events of task id (newest 500 events of the host).
    static func waitingEvents(_ socket: String, _ id: String) -> [String] {
        guard let r = try? SocketClient(path: socket).call(Envelope(kind: .query, target: .capability("plexus.events"),
                                                                    payload: Array(JSONValue.object(["last": .int(500), "kind": .string("task.waiting")]).text.utf8)),
                                                           timeoutMs: 30_000),
              case .array(let events)? = try? JSONValue.parse(r.payload) else { return [] }
        return events.compactMap { e -> String? in
            guard T.str(e["subject"]) == id, T.str(e["kind"]) == "task.waiting", case .object(let d)? = e["data"] else { return nil }
            return T.str(d["reason"])
        }
    }

    @Test func aDurableTaskSubmittedWhileNATSIsDownWaitsWithoutSpendingAnAttemptAndCompletesWhenNATSIsBack() throws {
        var nats: NatsServer? = try NatsServer()
        let port = nats!.port
        // The provider is on the submitting host itself: still, in a cluster every attempt goes through JetStream.
        let b = try T.Node("b", nats: nats!.url, plugins: ["probe.so": try C.probe("probe")])
        let before = try b.submit([.object(["capability": .string("probe.echo"), "payload": .string("before")])])
        #expect(waitFor(seconds: 60) { T.str(b.show(T.id(before[0]))["state"]) == "completed" }, "\(b.logText.suffix(3000))")

        nats = nil   // SIGKILL
        #expect(waitFor(seconds: 20) { Self.natsState(b.socket) != "connected" })
        let t = try b.submit([.object(["capability": .string("probe.echo"), "payload": .string("blip"), "timeout_ms": .int(600_000)])])
        let id = T.id(t[0])
        // One that cannot wait long: its one attempt fails after its timeout_ms, saying why, not "retried".
        let short = try b.submit([.object(["capability": .string("probe.echo"), "payload": .string("short"), "timeout_ms": .int(300),
                                           "attempts": .int(1)])])
        let shortID = T.id(short[0])
        #expect(waitFor(seconds: 30) { T.str(b.show(shortID)["state"]) == "dead" }, "\(b.show(shortID))")
        let dead = b.show(shortID)
        let why = T.str(dead["error"]) ?? ""
        #expect(why.contains("waiting for NATS: ") && why.contains("timeout_ms") && !why.contains("retried"), "\(dead)")
        #expect(dead["attempts"] == .int(1))

        // The long one waits, queued, its attempts untouched, and says why once.
        #expect(waitFor(seconds: 30) { T.str(b.show(id)["waiting"])?.hasPrefix("waiting for NATS: ") == true }, "\(b.show(id))")
        let waiting = b.show(id)
        #expect(T.str(waiting["state"]) == "queued", "\(waiting)")
        #expect(waiting["attempts"] == .int(0), "\(waiting)")
        #expect(waitFor(seconds: 10) { Self.waitingEvents(b.socket, id).count == 1 })
        #expect(Self.waitingEvents(b.socket, id).allSatisfy { $0.hasPrefix("waiting for NATS: ") }, "\(Self.waitingEvents(b.socket, id))")
        #expect(T.str(b.show(id)["state"]) == "queued")   // still, a while later

        nats = try NatsServer(port: port)   // the same port and JetStream store
        #expect(waitFor(seconds: 90) { T.str(b.show(id)["state"]) == "completed" }, "\(b.show(id))\n\(b.logText.suffix(3000))")
        let done = b.show(id)
        #expect(done["attempts"] == .int(1), "\(done)")
        #expect(T.str(done["result"]) == "blip")
        #expect(done["waiting"] == nil)
        #expect(Self.waitingEvents(b.socket, id).count == 1)
        print("ClusterFaultTests: waited \(Self.waitingEvents(b.socket, id)); the short one: \(why)")
        _ = nats
    }

    @Test func withNATSReplicas3DurableTasksKeepCompletingWhenTheServerLeadingTheirStreamIsKilled() throws {
        var servers: [NatsServer?], all: String
        (servers, _, all) = try Self.natsCluster("plexus-rep")
        let yaml = "nats:\n  replicas: 3\n"
        let a = try C.node("a", all, plugins: [:], yaml: yaml)
        let b = try C.node("b", all, plugins: ["probe.so": try C.probe("probe")], yaml: yaml)
        #expect(C.waitForNodes(a.socket, up: ["b"]))
        #expect(C.waitForNodes(b.socket, up: ["a"]))

        func submit(_ text: String) throws -> String {
            let r = try SocketClient(path: a.socket).call(Envelope(kind: .query, target: .capability("plexus.tasks.submit"),
                                                                   payload: Array(JSONValue.array([.object(["capability": .string("probe.echo"),
                                                                                                            "payload": .string(text)])]).text.utf8)),
                                                          timeoutMs: 60_000)
            guard r.kind == .response, case .array(let l)? = try? JSONValue.parse(r.payload), let first = l.first else {
                throw Fixtures.FixtureError(description: "submit: \(r.payloadString)")
            }
            return T.id(first)
        }
        func state(_ id: String) -> [String: JSONValue] {
            guard let r = try? SocketClient(path: a.socket).call(Envelope(kind: .query, target: .capability("plexus.tasks.show"),
                                                                          payload: Array(JSONValue.object(["id": .string(id)]).text.utf8)),
                                                                 timeoutMs: 30_000),
                  case .object(let o)? = try? JSONValue.parse(r.payload) else { return [:] }
            return o
        }
        let first = try submit("before")
        #expect(waitFor(seconds: 60) { T.str(state(first)["state"]) == "completed" }, "\(state(first))\n\(a.logText.suffix(3000))")

        // Kill the server leading the task stream: with one replica the stream would go with it.
        let leader = "new stream leader for '$G > PLEXUS_plexus_TASKS'"
        guard let victim = (0..<3).first(where: { servers[$0]!.logText.contains(leader) }) else {
            Issue.record("no server leads PLEXUS_plexus_TASKS (not replicated?): \(servers.map { $0!.logText.suffix(1500) })")
            return
        }
        servers[victim] = nil
        var ids: [String] = []
        for i in 0..<5 { ids.append(try submit("after \(i)")) }
        #expect(waitFor(seconds: 90) { ids.allSatisfy { T.str(state($0)["state"]) == "completed" } },
                "\(ids.map { state($0) })\n\(a.logText.suffix(3000))\n\(b.logText.suffix(3000))")
        for (i, id) in ids.enumerated() {
            let s = state(id)
            #expect(T.str(s["result"]) == "after \(i)")
            #expect(s["attempts"] == .int(1), "\(s)")
        }
        _ = servers
    }
}
