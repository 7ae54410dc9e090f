import Foundation
import Glibc
import PlexusCore
import PlexusSocket
import PlexusTestSupport
import Synchronization
import Testing

/// A real `nats-server` on a free loopback port, killed (SIGKILL) when the
/// test lets it go.
final class NatsServer {
    let process = Process()
    let port: Int
    let log: String

    var url: String { "nats://127.0.0.1:\(port)" }
    func url(user: String, password: String) -> String { "nats://\(user):\(password)@127.0.0.1:\(port)" }

    /// Starts it (with a configuration file's text, when given) and returns
    /// once it says it is ready to take connections.
    /// `port`: a given one (a server restarted where the last one was);
    /// `arguments`: more of nats-server's options (a cluster's routes);
    /// `jetStream`: false for a server without it (what a host says then).
    init(config: String? = nil, port: Int? = nil, arguments: [String] = [], jetStream: Bool = true) throws {
        self.port = port ?? NatsServer.freePort()
        let dir = Fixtures.dir + "/nats-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        log = dir + "/nats.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        // JetStream on (durable tasks across hosts), its files kept per port:
        // a server restarted on the same port finds its streams again. A
        // JetStream cluster (routes) needs each server named.
        let store = Fixtures.dir + "/nats-js-\(self.port)"
        var args = ["-a", "127.0.0.1", "-p", "\(self.port)", "--server_name", "plexus-test-\(self.port)"]
            + (jetStream ? ["-js", "-sd", store] : []) + arguments
        if let config {
            try config.write(toFile: dir + "/nats.conf", atomically: true, encoding: .utf8)
            args += ["-c", dir + "/nats.conf"]
        }
        process.executableURL = URL(fileURLWithPath: NatsServer.executable)
        process.arguments = args
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardOutput = FileHandle(forWritingAtPath: log)
        try process.run()
        guard waitFor(seconds: 30, { self.logText.contains("Server is ready") || !self.process.isRunning }), process.isRunning else {
            throw Fixtures.FixtureError(description: "nats-server did not start: \(logText)")
        }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    static var executable: String {
        for p in ["/usr/bin/nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"] where access(p, X_OK) == 0 { return p }
        return "/usr/bin/nats-server"
    }

    /// A loopback port nobody listens on now (bound, read, released).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }
}

/// Several `plexus run` processes joined over a real nats-server: routing
/// by name, capability and topic across them, the local preference, a
/// host killed mid-request, grants on the receiving host, a taken name.
@Suite(.serialized) struct ClusterTests {
    static let cClient = Fixtures.clientProgram("plexus_call")

    /// A probe agent named `name` (subscribed to `subscribe`), built for this test.
    static func probe(_ name: String, subscribe: String? = nil) throws -> String {
        try Fixtures.probe(named: name, subscribe: subscribe)
    }

    /// textkit, the C example plugin (capability text.stats), built for this test.
    static func textkit() throws -> String {
        let out = Fixtures.dir + "/textkit-\(UUID().uuidString.prefix(6)).so"
        try Fixtures.run("/usr/bin/cc", ["-std=c11", "-O1", "-shared", "-fPIC", "-I\(Fixtures.root)/include", "-I\(Fixtures.root)/SDK/c",
                                         "\(Fixtures.root)/Plugins/textkit/textkit.c", "-o", out, "-lm"])
        return out
    }

    /// `plexus run --nats URL --node NODE` with these plugin files (and a plexus.yaml's text).
    static func node(_ node: String, _ nats: String, plugins: [String: String], yaml: String? = nil) throws -> HostProcess {
        var args = ["--nats", nats, "--node", node]
        if let yaml {
            let file = Fixtures.dir + "/plexus-\(node)-\(UUID().uuidString.prefix(6)).yaml"
            try yaml.write(toFile: file, atomically: true, encoding: .utf8)
            args += ["--config", file]
        }
        return try HostProcess("node-\(node)", plugins: plugins, arguments: args)
    }

    static func plexus(_ args: [String]) throws -> PlexusCommand.Outcome { try PlexusCommand.run(args) }

    /// `plexus nodes --json` of the host at socket, parsed.
    static func nodes(_ socket: String) -> [String: String] {
        guard let r = try? plexus(["nodes", "--socket", socket, "--json"]), r.status == 0,
              case .object(let o)? = try? JSONValue.parse(Array(r.out.utf8)), case .array(let list)? = o["nodes"] else { return [:] }
        var states: [String: String] = [:]
        for n in list { if case .object(let x) = n, case .string(let name)? = x["node"], case .string(let s)? = x["state"] { states[name] = s } }
        return states
    }

    /// Waits until the host at socket hears every node in `up` (an event, not a delay).
    static func waitForNodes(_ socket: String, up: [String]) -> Bool {
        waitFor(seconds: 30) { let s = nodes(socket); return up.allSatisfy { s[$0] == "up" } }
    }

    /// The capability picks `plexus nodes --json` counts: (local, remote).
    static func picks(_ socket: String) -> (Int, Int) {
        guard let r = try? plexus(["nodes", "--socket", socket, "--json"]),
              case .object(let o)? = try? JSONValue.parse(Array(r.out.utf8)), case .object(let p)? = o["capability_picks"],
              case .int(let l)? = p["local"], case .int(let m)? = p["remote"] else { return (-1, -1) }
        return (Int(l), Int(m))
    }

    /// What an agent's `probe.journal` says (the events it recorded).
    static func journal(_ socket: String, _ agent: String) throws -> String {
        try SocketClient(path: socket).call(Envelope(kind: .query, target: .agent(agent), payload: Array("probe.journal".utf8)), timeoutMs: 10_000).payloadString
    }

    /// A query to `target` with a text payload, through the host at socket.
    static func call(_ socket: String, _ target: Target, _ text: String, timeoutMs: Int64 = 20_000, trace: plexus_id = .none) throws(PlexusError) -> Envelope {
        try SocketClient(path: socket).call(Envelope(kind: .query, target: target, payload: Array(text.utf8), contentType: "text/plain", traceID: trace),
                                            timeoutMs: timeoutMs)
    }

    /// What one agent of the host at socket holds now: queued plus being handled.
    static func busy(_ socket: String, _ agent: String) -> Int {
        guard let r = try? plexus(["agents", "--socket", socket, "--json"]), case .array(let list)? = try? JSONValue.parse(Array(r.out.utf8)) else { return 0 }
        for a in list {
            if case .object(let o) = a, case .string(let n)? = o["name"], n == agent,
               case .int(let q)? = o["queued"], case .int(let f)? = o["in_flight"] { return Int(q + f) }
        }
        return 0
    }

    @Test func threeHostsReachEachOthersAgentsByNameAndCapabilityAndATopicReachesEverySubscriberOnce() throws {
        let nats = try NatsServer()
        let a = try Self.node("a", nats.url, plugins: ["alpha.so": try Self.probe("alpha", subscribe: "news.>")])
        let b = try Self.node("b", nats.url, plugins: ["beta.so": try Self.probe("beta", subscribe: "news.*"),
                                                        "summarizer.so": PipelineTests.plugins + "/summarizer.so"])
        let c = try Self.node("c", nats.url, plugins: ["textkit.so": try Self.textkit(), "gamma.so": try Self.probe("gamma", subscribe: "*.flash"),
                                                        "keywords.so": PipelineTests.plugins + "/keywords.so"])
        #expect(Self.waitForNodes(a.socket, up: ["b", "c"]))
        #expect(Self.waitForNodes(b.socket, up: ["a", "c"]))
        #expect(Self.waitForNodes(c.socket, up: ["a", "b"]))

        // A C client of host A: the Rust agent of host C by capability, and the
        // Swift agent of host B by name, which in turn asks host C's C and
        // Rust agents by capability (text.stats, text.keywords).
        let stats = try PlexusCommand.run(["--socket", a.socket, "text.stats", "one two three"], executable: Self.cClient)
        #expect(stats.status == 0, "\(stats.err)")
        #expect(stats.out.contains("\"words\":3") || stats.out.contains("\"words\": 3"), "\(stats.out)")
        let text = "Plexus hosts agents. Agents answer agents. Hosts join hosts over NATS."
        let keywords = try PlexusCommand.run(["--socket", a.socket, "text.keywords", text], executable: Self.cClient)
        #expect(keywords.status == 0, "\(keywords.err)")
        #expect(keywords.out.contains("\"term\":\"agents\""), "the Rust agent on c: \(keywords.out)")
        let summary = try PlexusCommand.run(["--socket", a.socket, "agent:summarizer", text], executable: Self.cClient)
        #expect(summary.status == 0, "\(summary.err)")
        #expect(summary.out.contains("\"keywords\"") && summary.out.contains("\"words\""), "the Swift agent on b: \(summary.out)")
        let who = try PlexusCommand.run(["--socket", a.socket, "agent:beta", "probe.whoami x"], executable: Self.cClient)
        #expect(who.status == 0, "\(who.err)")
        #expect(who.out.trimmingCharacters(in: .whitespacesAndNewlines) == "beta")
        // The receiving host names the sender node/agent, from the NATS subject.
        let sender = try Self.call(a.socket, .agent("beta"), "probe.sender x").payloadString
        #expect(sender.hasPrefix("a/client:"), "\(sender)")
        // NODE/NAME addresses one host's agent; the trace id travels with the request and its answer.
        let trace = plexus_id(hi: 0x1234, lo: 0x5678)
        let viaNode = try Self.call(a.socket, .agent("c/gamma"), "probe.whoami x", trace: trace)
        #expect(viaNode.payloadString == "gamma")
        #expect(viaNode.traceID == trace)

        // A stream from host C's textkit reaches A's caller partial by partial, then its final answer.
        var partials: [String] = []
        let final = try SocketClient(path: a.socket).stream(
            Envelope(kind: .query, target: .capability("count.stream"), payload: Array("{\"to\":3}".utf8)), timeoutMs: 20_000) { partials.append($0.payloadString) }
        #expect(partials.map { $0.replacingOccurrences(of: " ", with: "") } == ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"], "\(partials)")
        #expect(final.payloadString.replacingOccurrences(of: " ", with: "") == "{\"count\":3}", "\(final.payloadString)")

        // One publish on A: every subscriber on every host records it once (news.>, news.*, *.flash).
        let pub = try PlexusCommand.run(["--socket", a.socket, "topic:news.flash", "extra"], executable: Self.cClient)
        #expect(pub.status == 0, "\(pub.err)")
        for (socket, agent) in [(a.socket, "alpha"), (b.socket, "beta"), (c.socket, "gamma")] {
            #expect(waitFor(seconds: 20) { (try? Self.journal(socket, agent)) == "extra" }, "\(agent): \((try? Self.journal(socket, agent)) ?? "?")")
        }
        // `plexus agents --cluster` lists every host's agents with their node.
        let listed = try Self.plexus(["agents", "--cluster", "--socket", b.socket])
        #expect(listed.status == 0, "\(listed.err)")
        let rows = listed.out.split(separator: "\n").map { $0.split(separator: " ").prefix(2).joined(separator: " ") }
        for row in ["a alpha", "b beta", "c gamma", "c textkit"] { #expect(rows.contains(row), "\(listed.out)") }
    }

    @Test func aCapabilityStaysLocalWhileItsProviderHasRoomAndIsSharedAcrossHostsOtherwise() throws {
        let nats = try NatsServer()
        // Two instances on A: one call at a time always finds one with room, even while
        // the other still counts the call it just answered (its worker's DONE comes after the reply).
        let a = try Self.node("a", nats.url, plugins: ["alpha.so": try Self.probe("alpha")], yaml: "plugins: { alpha: { instances: 2 } }\n")
        let b = try Self.node("b", nats.url, plugins: ["beta.so": try Self.probe("beta")])
        let c = try Self.node("c", nats.url, plugins: [:])
        #expect(Self.waitForNodes(a.socket, up: ["b", "c"]))
        #expect(Self.waitForNodes(c.socket, up: ["a", "b"]))

        // From A, whose own provider is idle: every call stays on A.
        for _ in 0..<10 { #expect(try Self.call(a.socket, .capability("probe.whoami"), "").payloadString == "alpha") }
        #expect(Self.picks(a.socket) == (10, 0))

        // From C, which has no provider: NATS's queue group shares the calls between A and B.
        var seen: [String: Int] = [:]
        for _ in 0..<40 { seen[try Self.call(c.socket, .capability("probe.whoami"), "").payloadString, default: 0] += 1 }
        #expect(seen.keys.sorted() == ["alpha", "beta"], "\(seen)")
        #expect(Self.picks(c.socket) == (0, 40))

        // A's providers busy (a long call on each): A's next call goes to B.
        let aSocket = a.socket
        for agent in ["alpha", "alpha.2"] {
            Thread { _ = try? Self.call(aSocket, .agent(agent), "probe.sleep 4000") }.start()
            #expect(waitFor(seconds: 20) { Self.busy(a.socket, agent) > 0 })
        }
        #expect(try Self.call(a.socket, .capability("probe.whoami"), "").payloadString == "beta")
        #expect(Self.picks(a.socket).1 == 1)
        withExtendedLifetime([b, c]) {}   // every host up until the end
    }

    @Test func anAgentNameOnTwoHostsMustBeAddressedAsNodeSlashName() throws {
        let nats = try NatsServer()
        let a = try Self.node("a", nats.url, plugins: [:])
        let b = try Self.node("b", nats.url, plugins: ["dup.so": try Self.probe("dup")])
        let c = try Self.node("c", nats.url, plugins: ["dup.so": try Self.probe("dup")])
        #expect(Self.waitForNodes(a.socket, up: ["b", "c"]))
        do {
            _ = try Self.call(a.socket, .agent("dup"), "probe.whoami x")
            Issue.record("an ambiguous name was routed")
        } catch {
            #expect(error.status == PLEXUS_INVALID_ARGUMENT.status && error.detail.contains("runs on nodes b, c") && error.detail.contains("agent:b/dup"), "\(error)")
        }
        #expect(try Self.call(a.socket, .agent("c/dup"), "probe.sender x").payloadString.hasPrefix("a/client:"))
        withExtendedLifetime([b, c]) {}   // both hosts up until the end
    }

    @Test func aKilledHostIsDroppedAndARequestInFlightThereEndsUnavailableNamingIt() throws {
        let nats = try NatsServer()
        let a = try Self.node("a", nats.url, plugins: [:])
        let b = try Self.node("b", nats.url, plugins: ["beta.so": try Self.probe("beta")])
        #expect(Self.waitForNodes(a.socket, up: ["b"]))

        let outcome = Mutex<Result<Envelope, PlexusError>?>(nil)
        let aSocket = a.socket
        let caller = Thread {
            let r: Result<Envelope, PlexusError>
            do throws(PlexusError) { r = .success(try Self.call(aSocket, .agent("beta"), "probe.sleep 60000", timeoutMs: 90_000)) }
            catch { r = .failure(error) }
            outcome.withLock { $0 = r }
        }
        caller.start()
        #expect(waitFor(seconds: 20) { Self.busy(b.socket, "beta") > 0 })
        kill(b.pid, SIGKILL)
        b.process.waitUntilExit()

        #expect(waitFor(seconds: 30) { outcome.withLock { $0 != nil } })
        guard case .failure(let error)? = outcome.withLock({ $0 }) else {
            Issue.record("the request to the killed host was answered: \(String(describing: outcome.withLock { $0 }))")
            return
        }
        #expect(error.status == PLEXUS_UNAVAILABLE.status, "\(error)")
        #expect(error.detail.contains("node 'b'"), "\(error.detail)")
        #expect(Self.nodes(a.socket)["b"] == "gone")
        // Dropped from routing: the agent is no longer found through the cluster.
        #expect(throws: PlexusError.self) { _ = try Self.call(a.socket, .agent("beta"), "probe.whoami x") }
    }

    @Test func anAnswerWhoseCallersHostLeftIsDeadLetteredWithTheReason() throws {
        let nats = try NatsServer()
        let a = try Self.node("a", nats.url, plugins: [:])
        let b = try Self.node("b", nats.url, plugins: ["beta.so": try Self.probe("beta")])
        #expect(Self.waitForNodes(a.socket, up: ["b"]))
        #expect(Self.waitForNodes(b.socket, up: ["a"]))
        let aSocket = a.socket
        let caller = Thread { _ = try? Self.call(aSocket, .agent("beta"), "probe.sleep 6000", timeoutMs: 30_000) }
        caller.start()
        #expect(waitFor(seconds: 20) { Self.busy(b.socket, "beta") > 0 })
        kill(a.pid, SIGKILL)
        a.process.waitUntilExit()
        // B drops A (silent 3 s) before beta answers (6 s): the answer has no one to go to.
        #expect(waitFor(seconds: 30) {
            let letters = (try? SocketClient(path: b.socket).call(Envelope(kind: .query, target: .capability("plexus.deadletters")), timeoutMs: 5_000))?.payloadString ?? ""
            return letters.contains("the caller's node 'a' left cluster 'plexus'")
        })
    }

    @Test func aCallerCancellingARequestOnAnotherHostHasItCancelledThere() throws {
        let nats = try NatsServer()
        let a = try Self.node("a", nats.url, plugins: [:])
        let b = try Self.node("b", nats.url, plugins: ["beta.so": try Self.probe("beta")])
        #expect(Self.waitForNodes(a.socket, up: ["b"]))
        let payload = Fixtures.dir + "/sleep-\(UUID().uuidString.prefix(6))"
        try "probe.sleep 3000".write(toFile: payload, atomically: true, encoding: .utf8)
        let call = Process()
        call.executableURL = URL(fileURLWithPath: PlexusCommand.path)
        call.arguments = ["call", "--socket", a.socket, "agent:beta", "--file", payload]
        let err = Pipe()
        call.standardError = err
        call.standardOutput = FileHandle.nullDevice
        try call.run()
        #expect(waitFor(seconds: 20) { Self.busy(b.socket, "beta") > 0 })
        kill(call.processIdentifier, SIGINT)   // plexus call cancels its request
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        call.waitUntilExit()
        #expect(call.terminationStatus == 130, "\(text)")
        // Host b cancelled it too: beta's answer stays there, dead-lettered as late, and nothing comes back to a.
        func letters(_ socket: String) -> String {
            (try? SocketClient(path: socket).call(Envelope(kind: .query, target: .capability("plexus.deadletters")), timeoutMs: 5_000))?.payloadString ?? ""
        }
        #expect(waitFor(seconds: 20) { letters(b.socket).contains("was cancelled by its caller") }, "\(letters(b.socket))")
        #expect(!letters(a.socket).contains("late or unexpected"), "\(letters(a.socket))")
    }

    @Test func aRequestsDeadlineTravelsWithItToTheHostHandlingIt() throws {
        let nats = try NatsServer()
        let a = try Self.node("a", nats.url, plugins: [:])
        let b = try Self.node("b", nats.url, plugins: ["beta.so": try Self.probe("beta")])
        #expect(Self.waitForNodes(a.socket, up: ["b"]))
        // beta busy for 3 s; a request from host a with an 800 ms deadline waits in its mailbox on b.
        let bSocket = b.socket
        Thread { _ = try? Self.call(bSocket, .agent("beta"), "probe.sleep 3000") }.start()
        #expect(waitFor(seconds: 20) { Self.busy(b.socket, "beta") > 0 })
        #expect(throws: PlexusError.self) { _ = try Self.call(a.socket, .agent("beta"), "probe.whoami x", timeoutMs: 800) }
        // Host b knows that deadline: the message expires in beta's mailbox there and is
        // dead-lettered, rather than handled after 3 s under b's own 30 s default.
        func letters() -> String {
            (try? SocketClient(path: b.socket).call(Envelope(kind: .query, target: .capability("plexus.deadletters")), timeoutMs: 5_000))?.payloadString ?? ""
        }
        #expect(waitFor(seconds: 20) { letters().contains("expired before delivery to 'beta'") }, "\(letters())")
    }

    @Test func grantsApplyOnTheReceivingHostWhichAuditsTheSenderAsNodeSlashAgent() throws {
        // Each node's NATS user may publish only under its own prefix: the subject's node is the sender's.
        func user(_ n: String) -> String {
            "{ user: \(n), password: \(n)pw, permissions: { publish: { allow: [\"plexus.plexus.from.\(n).>\", \"$JS.API.>\", \"$JS.ACK.>\", \"$KV.PLEXUS_plexus_TASKS_DONE.>\", \"$KV.PLEXUS_plexus_TASK_KEYS.>\", \"plexus.plexus.task.>\", \"plexus.plexus.outcome.>\"] }, subscribe: { allow: [\">\"] }, allow_responses: true } }"
        }
        let nats = try NatsServer(config: "authorization { users = [ \(user("a")), \(user("b")) ] }\n")
        let a = try Self.node("a", nats.url(user: "a", password: "apw"), plugins: [:])
        let b = try Self.node("b", nats.url(user: "b", password: "bpw"), plugins: ["beta.so": try Self.probe("beta")],
                              yaml: "nats:\n  grants: { call: [probe.whoami] }\n")
        #expect(Self.waitForNodes(a.socket, up: ["b"]))

        #expect(try Self.call(a.socket, .capability("probe.whoami"), "").payloadString == "beta")
        do {
            _ = try Self.call(a.socket, .capability("probe.pid"), "")
            Issue.record("probe.pid was not refused")
        } catch {
            #expect(error.status == PLEXUS_PERMISSION_DENIED.status, "\(error)")
        }
        let audit = try Self.plexus(["audit", "--socket", b.socket, "--json"])
        #expect(audit.status == 0, "\(audit.err)")
        #expect(audit.out.contains("node 'a'") && audit.out.contains("a/client:") && audit.out.contains("probe.pid"), "\(audit.out)")

        // A host with user a's credentials claiming to be node c cannot send as c: the server refuses its publishes.
        let forger = try Self.node("c", nats.url(user: "a", password: "apw"), plugins: [:])
        #expect(Self.waitForNodes(forger.socket, up: ["b"]))
        #expect(throws: PlexusError.self) { _ = try Self.call(forger.socket, .capability("probe.whoami"), "", timeoutMs: 2_000) }
        #expect(waitFor(seconds: 10) { forger.logText.contains("NATS refused an operation") }, "\(forger.logText)")
    }

    @Test func aPeerNamingTheHostsOwnCapabilityIsRefusedAndAuditedAndTheFrameCannotNameItsNode() throws {
        let nats = try NatsServer()
        let b = try Self.node("b", nats.url, plugins: ["beta.so": try Self.probe("beta")])
        let peer = Fixtures.dir + "/natspeer-\(UUID().uuidString.prefix(6))"
        try Fixtures.run("/usr/bin/cc", ["-std=c11", "-I\(Fixtures.root)/include", "-I\(Fixtures.root)/SDK/c", "\(Fixtures.root)/Tests/Fixtures/natspeer.c",
                                         "\(Fixtures.root)/Sources/CPlexus/wire.c", "-o", peer, "-lnats"])
        // A raw NATS client, as node a, asks b to stop its agent through the host's own capability,
        // with a frame that claims to come from b's administrator.
        try Fixtures.run(peer, [nats.url, "plexus.plexus.from.a.capon.b.plexus.agents.stop", "plexus.agents.stop", "b/admin", "{\"agent\":\"beta\"}"])
        #expect(waitFor(seconds: 20) {
            let audit = (try? Self.plexus(["audit", "--socket", b.socket, "--json"]))?.out ?? ""
            return audit.contains("answers its own clients only") && audit.contains("a/b/admin") && audit.contains("node 'a'")
        })
        #expect(try Self.call(b.socket, .agent("beta"), "probe.whoami x").payloadString == "beta")
    }

    @Test func aSecondHostWithATakenNodeNameIsRefusedWithTheHoldersAddress() throws {
        let nats = try NatsServer()
        let a = try Self.node("a", nats.url, plugins: [:])
        let dir = Fixtures.dir + "/taken-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir + "/plugins", withIntermediateDirectories: true)
        let second = Process()
        second.executableURL = URL(fileURLWithPath: PlexusCommand.path)
        second.arguments = ["run", "--plugins", dir + "/plugins", "--socket", dir + "/plexus.sock", "--store", dir + "/plexus.db",
                            "--nats", nats.url, "--node", "a"]
        let err = Pipe()
        second.standardError = err
        second.standardOutput = FileHandle.nullDevice
        try second.run()
        let exited = waitFor(seconds: 30) { !second.isRunning }
        if !exited { kill(second.processIdentifier, SIGKILL) }
        second.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(exited)
        #expect(second.terminationStatus == 1, "\(text)")
        #expect(text.contains("node name 'a' is taken") && text.contains(a.socket) && text.contains("pid \(a.pid)"), "\(text)")
    }

    @Test func badNatsOptionsAreUsageErrors() throws {
        let bad = try Self.plexus(["run", "--socket", Fixtures.dir + "/never.sock", "--nats", "http://127.0.0.1:4222"])
        #expect(bad.status == 2)
        #expect(bad.err.contains("--nats") && bad.err.contains("nats://"), "\(bad.err)")
        let name = try Self.plexus(["run", "--socket", Fixtures.dir + "/never.sock", "--nats", "nats://127.0.0.1:4222", "--node", "a.b"])
        #expect(name.status == 2)
        #expect(name.err.contains("--node") && name.err.contains("'.'"), "\(name.err)")
        let unreachable = try Self.plexus(["run", "--socket", Fixtures.dir + "/never.sock", "--plugins", Fixtures.dir,
                                           "--nats", "nats://127.0.0.1:\(NatsServer.freePort())", "--node", "x"])
        #expect(unreachable.status == 1)
        #expect(unreachable.err.contains("cannot connect to NATS"), "\(unreachable.err)")
        let nodeAlone = try Self.plexus(["run", "--socket", Fixtures.dir + "/never.sock", "--node", "x"])
        #expect(nodeAlone.status == 2)
        #expect(nodeAlone.err.contains("--nats"), "\(nodeAlone.err)")
    }

    @Test func aHostWithoutNatsSaysItIsNotInACluster() throws {
        let solo = try HostProcess("solo")
        let r = try Self.plexus(["nodes", "--socket", solo.socket])
        #expect(r.status == 1)
        #expect(r.err.contains("is not part of a cluster") && r.err.contains("--nats"), "\(r.err)")
        #expect(!solo.logText.contains("cluster"))
    }
}
