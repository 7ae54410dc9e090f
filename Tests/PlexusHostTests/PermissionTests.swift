import Foundation
import PlexusCore
import PlexusHost
import PlexusSocket
import Testing

/// Grants decide who may call, publish, subscribe and register, for plugins
/// and socket clients alike (FAULTS.md 27 and 29); every refusal names the
/// missing grant and is audited.
@Suite("Permissions", .serialized)
struct PermissionTests {
    typealias Program = ExternalAgentTests.Program
    static let token = "test-token-0123456789abcdef"

    /// The example plugins, the relay fixture, and a client 'reporter' that
    /// may call echo, subscribe under docs and register py.ok.
    func configuration() -> HostConfiguration {
        var c = HostConfiguration(pluginsDirectory: PipelineTests.plugins)
        c.clients["reporter"] = ClientSpec(token: Self.token,
                                           grants: [.call: ["echo"], .subscribe: ["docs.>"], .register: ["py.ok", "ok.*"]])
        return c
    }

    func audited(_ h: Host, _ action: String, _ name: String) -> AuditEvent? {
        h.auditEvents.recent.last { $0.action == action && $0.name == name }
    }

    // MARK: plugins (FAULTS.md 27)

    @Test func aPluginIsRefusedACallItWasNotGrantedAndItIsAudited() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        let file = try Fixtures.build("relay.c", name: "relay")
        var relay = c.settings(for: file)
        relay.grants = [.call: ["probe.echo"]]   // narrower than the ">" relay.c requests
        c.plugins[PluginDescriptor.stem(of: file)] = relay
        let h = Host(c)
        try h.load(path: file)
        try h.load(path: try Fixtures.probe())
        h.start()
        defer { h.shutdown() }
        #expect(try h.callText("relay.ask", "probe.echo\nallowed") == "allowed")
        let e = expectError(.PERMISSION_DENIED) { _ = try h.callText("relay.ask", "probe.journal\nx") }
        #expect(e?.detail == "relay to probe.journal refused: PERMISSION_DENIED")
        let event = try #require(audited(h, "call", "probe.journal"))
        #expect(event.holder == "agent 'relay'" && event.sender == "relay")
        #expect(event.reason == "agent 'relay' is not granted \"call probe.journal\" (it may call probe.echo); grant it in plugins.\(PluginDescriptor.stem(of: file)).grants.call of plexus.yaml")
        #expect(try h.callText("probe.journal") == "", "the refused call reached the probe")
    }

    @Test func aPluginIsRefusedAPublishItWasNotGrantedAndNothingIsDelivered() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.pluginGrants = [.subscribe: ["probe.events.>"]]   // every plugin: subscribe only
        let h = Host(c)
        try h.load(path: try Fixtures.probe(named: "talker"))
        try h.load(path: try Fixtures.probe(named: "listener", subscribe: "probe.events.>"))
        h.start()
        defer { h.shutdown() }
        let e = expectError(.HANDLER_FAILED) { _ = try h.callText("agent:talker", "probe.publish") }
        #expect(e?.detail == "agent 'talker' returned PERMISSION_DENIED while handling the request")
        #expect(audited(h, "publish", "probe.events.relay")?.holder == "agent 'talker'")
        // A marker published after it (by the host, not held to plugin grants)
        // arrives alone: the refused event went nowhere before it.
        try h.send(Envelope(kind: .event, target: .topic("probe.events.marker"), payload: Array("marker".utf8)))
        #expect(waitFor(seconds: 10) { (try? h.callText("agent:listener", "probe.journal")) != "" })
        #expect(try h.callText("agent:listener", "probe.journal") == "marker", "a refused event was delivered")
    }

    @Test func aPluginGetsWhatItsDescriptorRequestsAndNoMore() throws {
        // textkit requests subscribe docs.>; summarizer requests its two calls and one publish.
        let h = Host(HostConfiguration(pluginsDirectory: PipelineTests.plugins))
        try h.loadPlugins()
        h.start()
        defer { h.shutdown() }
        _ = try h.callText("report.summarize", "A title\nSome words here, and more words.", timeoutMs: 20_000)
        #expect(h.auditEvents.total == 0)
        // A subscription outside the request fails the plugin's init, with the reason.
        var c = HostConfiguration(pluginsDirectory: nil)
        let file = try Fixtures.probe(named: "wide", subscribe: "jobs.>")
        c.plugins[PluginDescriptor.stem(of: file)] = PluginSettings(sandbox: c.sandbox, policy: c.workerPolicy, restart: c.restartPolicy,
                                                                    grants: [.subscribe: ["jobs.done"]])
        let h2 = Host(c)
        try h2.load(path: file)
        h2.start()
        defer { h2.shutdown() }
        #expect(audited(h2, "subscribe", "jobs.>")?.reason.hasPrefix("agent 'wide' is not granted \"subscribe jobs.>\" (it may subscribe jobs.done)") == true)
        #expect(h2.agentReports.first { $0.name == "wide" } == nil, "an agent whose init failed kept running")
    }

    // MARK: socket clients (FAULTS.md 29)

    @Test func aClientWithoutTheRightTokenIsRefusedAndTheConnectionEnds() throws {
        try withServedHost(configuration()) { h, sock in
            let (code, out, err) = try Program.python("""
                import sys
                from plexus_client import Client, PlexusError
                for name, token in [("reporter", "wrong-token-0123456789"), ("reporter", None), ("stranger", "x" * 20)]:
                    try:
                        Client(sys.argv[1], client=name, token=token)
                        print("admitted", name)
                    except PlexusError as e:
                        print(e.name, e.message)
                """, socket: sock).finish()
            #expect(code == 0, "\(err)")
            #expect(out == """
                PERMISSION_DENIED plexus.hello: wrong token for client 'reporter'
                PERMISSION_DENIED plexus.hello: client 'reporter' needs its token ("token" is missing)
                PERMISSION_DENIED plexus.hello: plexus.yaml has no client named 'stranger'

                """)
            #expect(audited(h, "hello", "reporter")?.holder == "uid \(getuid())")
            #expect(audited(h, "hello", "stranger") != nil)
        }
    }

    @Test func aClientIsHeldToItsGrantsAndEachRefusalNamesTheGrant() throws {
        try withServedHost(configuration()) { h, sock in
            let (code, out, err) = try Program.python("""
                import sys
                from plexus_client import Client, PlexusError
                c = Client(sys.argv[1], client="reporter", token="\(Self.token)")
                print(c.grants["call"], c.call("echo", "allowed").decode())
                def attempt(what, f):
                    try:
                        f()
                        print(what, "ok")
                    except PlexusError as e:
                        print(what, e.name, e.message)
                attempt("call", lambda: c.call("report.summarize", "text"))
                attempt("agent", lambda: c.call("agent:textkit", "text"))
                attempt("publish", lambda: c.publish("docs.summarized", {}))
                attempt("subscribe-wide", lambda: c.subscribe(">"))
                attempt("subscribe", lambda: c.subscribe("docs.summarized"))
                attempt("register", lambda: c.register("py.other", ["echo.too"], lambda m: "x"))
                attempt("register-cap", lambda: c.register("py.ok", ["text.stats"], lambda m: "x"))
                attempt("register-ok", lambda: c.register("py.ok", ["ok.fine"], lambda m: "fine"))
                attempt("hello-again", lambda: c._operate("plexus.hello", {"client": "reporter", "token": "\(Self.token)"}))
                print(Client(sys.argv[1]).call("ok.fine").decode())   # what it registered within its grants is reachable
                """, socket: sock).finish()
            #expect(code == 0, "\(err)")
            let lines = out.split(separator: "\n").map(String.init)
            let grant = "grant it in clients.reporter.grants"
            #expect(lines == [
                "['echo'] allowed",
                "call PERMISSION_DENIED client 'reporter' is not granted \"call report.summarize\" (it may call echo); \(grant).call of plexus.yaml",
                "agent PERMISSION_DENIED client 'reporter' is not granted \"call textkit\" (it may call echo); \(grant).call of plexus.yaml",
                "publish PERMISSION_DENIED client 'reporter' is not granted \"publish docs.summarized\" (it may publish nothing); \(grant).publish of plexus.yaml",
                "subscribe-wide PERMISSION_DENIED client 'reporter' is not granted \"subscribe >\" (it may subscribe docs.>); \(grant).subscribe of plexus.yaml",
                "subscribe ok",
                "register PERMISSION_DENIED client 'reporter' is not granted \"register py.other\" (it may register py.ok, ok.*); \(grant).register of plexus.yaml",
                "register-cap PERMISSION_DENIED client 'reporter' is not granted \"register text.stats\" (it may register py.ok, ok.*); \(grant).register of plexus.yaml",
                "register-ok ok",
                "hello-again INVALID_ARGUMENT plexus.hello must be the connection's first frame, and comes once",
                "fine",
            ])
            #expect(audited(h, "call", "report.summarize")?.sender == "client:reporter")
        }
    }

    @Test func aCAndARustProgramWithoutTheGrantAreRefusedWithItsName() throws {
        try #require(FileManager.default.isExecutableFile(atPath: ClientTests.program), "the C example did not build")
        try #require(FileManager.default.isExecutableFile(atPath: ExternalAgentTests.rustProgram), "the Rust example did not build")
        try withServedHost(configuration()) { _, sock in
            let env = ["PLEXUS_CLIENT": "reporter", "PLEXUS_TOKEN": Self.token]
            let denial = "PERMISSION_DENIED: client 'reporter' is not granted \"call report.summarize\" (it may call echo); grant it in clients.reporter.grants.call of plexus.yaml\n"
            let c = try Program(ClientTests.program, ["--socket", sock, "report.summarize", "{}"], environment: env).finish()
            #expect(c.0 == 1 && c.2 == denial, "\(c.2)")
            let r = try Program(ExternalAgentTests.rustProgram, ["--socket", sock, "call", "report.summarize", "{}"], environment: env).finish()
            #expect(r.0 == 1 && r.2 == denial, "\(r.2)")
            let ok = try Program(ClientTests.program, ["--socket", sock, "echo", "\"granted\""], environment: env).finish()
            #expect(ok.0 == 0 && ok.1.hasPrefix("\"granted\""), "\(ok.2)")
            let wrong = try Program(ExternalAgentTests.rustProgram, ["--socket", sock, "call", "echo", "{}"],
                                    environment: ["PLEXUS_CLIENT": "reporter", "PLEXUS_TOKEN": "not-the-token-at-all"]).finish()
            #expect(wrong.0 == 1 && wrong.2 == "PERMISSION_DENIED: plexus.hello: wrong token for client 'reporter'\n", "\(wrong.2)")
        }
    }

    @Test func theHostsOwnUserCanBeNarrowedToo() throws {
        var c = configuration()
        c.ownerGrants = [.call: ["echo", "plexus.*"]]
        try withServedHost(c) { _, sock in
            let client = try SocketClient(path: sock)
            #expect(try client.call(Envelope(kind: .query, target: .capability("echo"), payload: Array("hi".utf8)), timeoutMs: 5000).payloadString == "hi")
            let e = expectError(.PERMISSION_DENIED) {
                _ = try client.call(Envelope(kind: .query, target: .capability("text.stats"), payload: Array("hi".utf8)), timeoutMs: 5000)
            }
            #expect(e?.detail.hasSuffix("(the host's own user) is not granted \"call text.stats\" (it may call echo, plexus.*); grant it in clients.owner.grants.call of plexus.yaml") == true, "\(e?.detail ?? "")")
            let audit = try client.call(Envelope(kind: .query, target: .capability("plexus.audit")), timeoutMs: 5000)
            let report = try JSONDecoder().decode(AuditReport.self, from: Data(audit.payload))
            #expect(report.total == 1 && report.recent.first?.name == "text.stats")
        }
    }

    /// FAULTS.md 29 by peer credentials: another user's process is admitted
    /// only as the client plexus.yaml names for its uid.
    @Test(.enabled(if: getuid() == 0, "switching users needs root"))
    func anotherUsersProcessIsAdmittedOnlyByItsUid() throws {
        var c = HostConfiguration(pluginsDirectory: PipelineTests.plugins)
        c.clients["nobody"] = ClientSpec(uid: 65534, grants: [.call: ["echo"]])   // and no client that could say hello with a token
        try withServedHost(c, directory: "/tmp") { h, sock in
            var st = stat()
            #expect(stat(sock, &st) == 0 && st.st_mode & 0o777 == 0o666)   // others may connect; their uid decides
            let script = { (uid: Int) in """
                import os, sys
                from plexus_client import Client, PlexusError
                os.setgid(\(uid)); os.setuid(\(uid))
                try:
                    c = Client(sys.argv[1])
                    print(c.call("echo", "as \(uid)").decode())
                    c.call("text.stats", "x")
                except PlexusError as e:
                    print(e.name, e.message)
                """ }
            let admitted = try Program.python(script(65534), socket: sock).finish()
            #expect(admitted.1 == "as 65534\nPERMISSION_DENIED client 'nobody' is not granted \"call text.stats\" (it may call echo); grant it in clients.nobody.grants.call of plexus.yaml\n", "\(admitted.2)")
            let refused = try Program.python(script(65533), socket: sock).finish()
            #expect(refused.1 == "PERMISSION_DENIED uid 65533 may not use this host: plexus.yaml lists no client with uid: 65533 "
                    + "(and none that says hello with a token only)\n", "\(refused.1) \(refused.2)")
            #expect(audited(h, "connect", sock)?.holder == "uid 65533")
        }
    }

    // MARK: a client that floods

    /// A client that sends without reading its answers is pushed back by its
    /// own socket; the host keeps serving others, and every frame it took is
    /// answered once the flooder reads.
    @Test func aFloodingClientIsPushedBackAndLosesNothing() throws {
        var c = HostConfiguration(pluginsDirectory: PipelineTests.plugins)
        c.mailboxCapacity = 256
        try withServedHost(c) { _, sock in
            let flood = try Program.python("""
                import socket, sys, threading, time
                from plexus_client import Client, wire
                total = 20000
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(sys.argv[1])
                frames = b"".join(wire.encode(wire.Envelope(kind=wire.QUERY, target_kind=wire.TARGET_CAPABILITY, target="echo",
                                                            payload=b"x" * 64, id=(7, i + 1))) for i in range(total))
                sent = [0]
                def pump():
                    view = memoryview(frames)
                    while sent[0] < len(frames):
                        sent[0] += s.send(view[sent[0]:sent[0] + 65536])
                threading.Thread(target=pump, daemon=True).start()
                time.sleep(2)
                print("stalled" if sent[0] < len(frames) else "all-sent")
                other = Client(sys.argv[1])
                print(other.call("echo", "still served").decode())
                answered, ok, full, buf = 0, 0, 0, b""
                while answered < total:
                    chunk = s.recv(1 << 20)
                    if not chunk: break
                    buf += chunk
                    while len(buf) >= wire.HEADER.size:
                        n = wire.body_length(buf[:wire.HEADER.size])
                        if len(buf) < wire.HEADER.size + n: break
                        env = wire.decode_body(buf[wire.HEADER.size:wire.HEADER.size + n])
                        buf = buf[wire.HEADER.size + n:]
                        answered += 1
                        ok += env.kind == wire.RESPONSE and env.payload == b"x" * 64
                        full += env.kind == wire.ERROR and env.status == wire.STATUS["MAILBOX_FULL"]
                print(answered, ok + full, ok > 0)
                """, socket: sock)
            let (code, out, err) = flood.finish()
            #expect(code == 0, "\(err)")
            // Each frame gets its one answer: the echo, or MAILBOX_FULL when echo's queue was full.
            #expect(out == "stalled\nstill served\n20000 20000 True\n", "\(err)")
        }
    }
}
