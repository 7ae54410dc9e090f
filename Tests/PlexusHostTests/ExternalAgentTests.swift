import Foundation
import PlexusCore
import PlexusHost
import PlexusSocket
import Testing

/// Programs on the socket that join the host as agents and subscribers,
/// driven through the Python client (SDK/python) as a user would run it.
@Suite("Socket clients as agents", .serialized)
struct ExternalAgentTests {
    /// A host with the example plugins and the relay fixture, serving a socket.
    func withRunningHost(_ body: (Host, String) throws -> Void) throws {
        try withServedHost(HostConfiguration(pluginsDirectory: PipelineTests.plugins),
                           files: [try Fixtures.build("relay.c", name: "relay")], body)
    }

    /// A client program; its stdin stays open until `finish` so it can
    /// serve as an agent meanwhile.
    final class Program {
        let process = Process()
        private let input = Pipe(), output = Pipe(), errors = Pipe()

        init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
            process.standardInput = input
            process.standardOutput = output
            process.standardError = errors
            try process.run()
        }

        /// A Python script run with the SDK on its path.
        static func python(_ source: String, socket: String) throws -> Program {
            try Program("/usr/bin/env", ["python3", "-c", source, socket], environment: ["PYTHONPATH": Fixtures.root + "/SDK/python"])
        }

        /// The next line the script prints (it prints "ready" once registered).
        func line() -> String {
            var bytes: [UInt8] = []
            while true {
                let d = output.fileHandleForReading.readData(ofLength: 1)
                if d.isEmpty || d.first == 10 { break }
                bytes.append(d.first!)
            }
            return String(decoding: bytes, as: UTF8.self)
        }

        /// Closes its stdin, waits for it; returns (exit code, rest of stdout, stderr).
        func finish() -> (Int32, String, String) {
            try? input.fileHandleForWriting.close()
            let o = output.fileHandleForReading.readDataToEndOfFile(), e = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
        }
    }

    static let header = "import sys, os, time\nfrom plexus_client import Client, PlexusError\nc = Client(sys.argv[1])\n"

    @Test func aPythonScriptCallsACAgentAndGetsItsReply() throws {
        try withRunningHost { _, sock in
            let s = try Program.python(Self.header + """
                print(c.call("echo", {"hello": "world"}).decode())
                try:
                    c.call("no.such.capability", {})
                except PlexusError as e:
                    print(e.name, e.message)
                """, socket: sock)
            let (code, out, err) = s.finish()
            #expect(code == 0, "\(err)")
            let lines = out.split(separator: "\n").map(String.init)
            #expect(lines.first == "{\"hello\":\"world\"}")
            #expect(lines.last == "NO_SUCH_CAPABILITY no agent provides capability 'no.such.capability'")
        }
    }

    @Test func aCPluginCallsAnAgentAPythonScriptRegistered() throws {
        try withRunningHost { h, sock in
            let s = try Program.python(Self.header + """
                c.register("py.upper", ["text.upper"], lambda m: m.payload.decode().upper())
                print("ready", flush=True)
                sys.stdin.read()
                """, socket: sock)
            #expect(s.line() == "ready")
            #expect(h.agentReports.first { $0.name == "py.upper" }?.kind == "client")
            // relay (C, in its worker) requests text.upper, which only the Python agent provides.
            #expect(try h.callText("relay.ask", "text.upper\nfrom a c plugin", timeoutMs: 10_000) == "FROM A C PLUGIN")
            let (code, _, err) = s.finish()
            #expect(code == 0, "\(err)")
            // Gone with its connection: the capability is no longer offered.
            #expect(throws: PlexusError.self) {
                _ = try h.callText("text.upper", timeoutMs: 2_000)
            }
        }
    }

    @Test func aHandlerErrorReachesTheCallerAsHandlerFailed() throws {
        try withRunningHost { h, sock in
            let s = try Program.python(Self.header + """
                def fail(m): raise ValueError("bad input: " + m.payload.decode())
                c.register("py.fails", ["py.fail"], fail)
                print("ready", flush=True)
                sys.stdin.read()
                """, socket: sock)
            #expect(s.line() == "ready")
            let e = #expect(throws: PlexusError.self) {
                _ = try h.callText("py.fail", "xyz", timeoutMs: 10_000)
            }
            #expect(e?.status == PLEXUS_HANDLER_FAILED.status)
            #expect(e?.detail == "ValueError: bad input: xyz")
            _ = s.finish()
        }
    }

    /// A client that dies while holding a request: the caller hears at once
    /// that the agent left, not at its deadline.
    @Test func aClientThatDisconnectsMidRequestEndsItWithUnavailable() throws {
        try withRunningHost { h, sock in
            let s = try Program.python(Self.header + """
                c.register("py.dies", ["py.die"], lambda m: os._exit(3))
                print("ready", flush=True)
                sys.stdin.read()
                """, socket: sock)
            #expect(s.line() == "ready")
            let e = #expect(throws: PlexusError.self) {
                _ = try h.callText("py.die", timeoutMs: 60_000)
            }
            #expect(e?.status == PLEXUS_UNAVAILABLE.status, "\(String(describing: e))")
            #expect(e?.detail.contains("agent 'py.dies' left before replying") == true, "\(String(describing: e))")
            #expect(s.finish().0 == 3)
            #expect(!h.agentReports.contains { $0.name == "py.dies" })
        }
    }

    @Test func aPythonSubscriberReceivesWhatASwiftPluginPublishes() throws {
        try withRunningHost { h, sock in
            let s = try Program.python(Self.header + """
                c.subscribe("docs.*")
                print("ready", flush=True)
                m = c.receive(10)
                print(m.target, m.sender, m.json()["title"])
                """, socket: sock)
            #expect(s.line() == "ready")
            _ = try h.callText("report.summarize", "Field notes\nThe host routes messages. Agents answer.", timeoutMs: 10_000)
            let (code, out, err) = s.finish()
            #expect(code == 0, "\(err)")
            #expect(out == "docs.summarized summarizer Field notes\n")
        }
    }

    /// FAULTS.md 28: a frame that claims another sender is delivered under
    /// the connection's identity.
    @Test func aFrameClaimingAnotherSenderArrivesUnderTheConnectionsIdentity() throws {
        try withRunningHost { _, sock in
            let s = try Program.python(Self.header + """
                from plexus_client import wire
                c.register("py.who", ["who.asked"], lambda m: m.sender)
                caller = Client(sys.argv[1])
                env = wire.Envelope(kind=wire.QUERY, target_kind=wire.TARGET_CAPABILITY, target="who.asked",
                                    sender="summarizer", deadline_unix_ns=time.time_ns() + 5_000_000_000)
                print(caller._exchange(env, 6).payload.decode(), os.getpid())
                """, socket: sock)
            let (code, out, err) = s.finish()
            #expect(code == 0, "\(err)")
            let parts = out.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            #expect(parts.count == 2 && parts[0] == "client:\(parts[1])", "\(out)")
        }
    }

    @Test func registrationMistakesAreNamed() throws {
        try withRunningHost { _, sock in
            let s = try Program.python(Self.header + """
                for name, caps in [("textkit", ["x"]), ("bad name", []), ("plexus.mine", []), ("ok", ["has space"])]:
                    try:
                        c.register(name, caps, lambda m: None)
                        print("accepted", name)
                    except PlexusError as e:
                        print(e.name, e.message)
                try:
                    c.unsubscribe("never.subscribed")
                except PlexusError as e:
                    print(e.name, e.message)
                """, socket: sock)
            let (code, out, err) = s.finish()
            #expect(code == 0, "\(err)")
            #expect(out.split(separator: "\n").map(String.init) == [
                "INVALID_ARGUMENT agent name 'textkit' is already taken by a running agent",
                "INVALID_ARGUMENT agent name 'bad name' has the character ' '; allowed are A-Z a-z 0-9 _ . : / @ -",
                "PERMISSION_DENIED agent name 'plexus.mine' is reserved for the host",
                "INVALID_ARGUMENT capability name 'has space' has the character ' '; allowed are A-Z a-z 0-9 _ . : / @ -",
                "INVALID_ARGUMENT plexus.unsubscribe: not subscribed to 'never.subscribed'",
            ])
        }
    }

    // MARK: the Rust client (SDK/rust/plexus-agent, examples/plexus_client.rs)

    static let rustProgram: String = {
        let crate = Fixtures.root + "/SDK/rust/plexus-agent"
        try? Fixtures.run("/usr/bin/env", ["cargo", "build", "--offline", "--quiet", "--example", "plexus_client",
                                           "--manifest-path", crate + "/Cargo.toml"])
        return crate + "/target/debug/examples/plexus_client"
    }()

    @Test func aRustProgramCallsAnAgentAndGetsItsReply() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.rustProgram), "the Rust example did not build")
        try withRunningHost { _, sock in
            let ok = try Program(Self.rustProgram, ["--socket", sock, "call", "echo", "{\"from\":\"rust\"}"]).finish()
            #expect(ok.0 == 0, "\(ok.2)")
            #expect(ok.1 == "{\"from\":\"rust\"}\n")
            let missing = try Program(Self.rustProgram, ["--socket", sock, "call", "agent:nobody", "{}"]).finish()
            #expect(missing.0 == 1)
            #expect(missing.2 == "NO_SUCH_AGENT: no agent named 'nobody'\n")
        }
        let none = try Program(Self.rustProgram, ["--socket", Fixtures.dir + "/nobody.sock", "call", "echo", "{}"]).finish()
        #expect(none.0 == 1)
        #expect(none.2.hasPrefix("UNAVAILABLE: no host is running at "), "\(none.2)")
    }

    @Test func aRustClientSubscribesToWhatASwiftPluginPublishes() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.rustProgram), "the Rust example did not build")
        try withRunningHost { h, sock in
            let sub = try Program(Self.rustProgram, ["--socket", sock, "subscribe", "docs.>", "1"])
            #expect(sub.line() == "ready")
            _ = try h.callText("report.summarize", "Rust notes\nThe host routes messages.", timeoutMs: 10_000)
            let (code, out, err) = sub.finish()
            #expect(code == 0, "\(err)")
            #expect(out.hasPrefix("docs.summarized summarizer {\"title\":\"Rust notes\""), "\(out)")
        }
    }

    /// Three languages on one path: the C client program calls an agent a
    /// Rust program registered, through the host.
    @Test func aCProgramCallsAnAgentARustProgramRegistered() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.rustProgram), "the Rust example did not build")
        try #require(FileManager.default.isExecutableFile(atPath: ClientTests.program), "the C example did not build")
        try withRunningHost { _, sock in
            let agent = try Program(Self.rustProgram, ["--socket", sock, "serve", "rust.upper", "text.shout"])
            #expect(agent.line() == "ready")
            let call = try Program(ClientTests.program, ["--socket", sock, "text.shout", "\"quiet words\""]).finish()
            #expect(call.0 == 0, "\(call.2)")
            #expect(call.1 == "\"QUIET WORDS\"\n")
            #expect(agent.finish().0 == 0)
        }
    }

    // MARK: the C client's agent side (SDK/c/examples/plexus_serve.c)

    static let cServe = Fixtures.clientProgram("plexus_serve")

    @Test func aPythonScriptCallsAnAgentACProgramRegistered() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.cServe), "the C example did not build")
        try withRunningHost { _, sock in
            let agent = try Program(Self.cServe, ["--socket", sock, "serve", "c.reverser", "text.reverse", "2"])
            #expect(agent.line() == "ready")
            let s = try Program.python(Self.header + """
                print(c.call("text.reverse", "stressed").decode())
                print(c.call("agent:c.reverser", "drawer").decode())
                """, socket: sock)
            let (code, out, err) = s.finish()
            #expect(code == 0, "\(err)")
            #expect(out == "desserts\nreward\n")
            let served = agent.finish()
            #expect(served.0 == 0, "\(served.2)")
        }
    }

    @Test func aCSubscriberReceivesWhatARustClientPublishes() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.cServe), "the C example did not build")
        try #require(FileManager.default.isExecutableFile(atPath: Self.rustProgram), "the Rust example did not build")
        try withRunningHost { _, sock in
            let listener = try Program(Self.cServe, ["--socket", sock, "listen", "metrics.*", "2"])
            #expect(listener.line() == "ready")
            let refused = try Program(Self.rustProgram, ["--socket", sock, "call", "topic:metrics.cpu", "{}"]).finish()
            #expect(refused.0 == 1)   // a query cannot go to a topic: the host says so
            #expect(refused.2.hasPrefix("INVALID_ARGUMENT: a request goes to an agent or a capability"), "\(refused.2)")
            for (subject, body) in [("metrics.cpu", "{\"load\":1}"), ("metrics.disk.sda", "{\"ignored\":true}"), ("metrics.mem", "{\"free\":2}")] {
                let pub = try Program(Self.rustProgram, ["--socket", sock, "publish", subject, body]).finish()
                #expect(pub.0 == 0, "\(pub.2)")
                #expect(pub.1.count == 33, "\(pub.1)")   // the host's id, 32 hex digits
            }
            let (code, out, err) = listener.finish()
            #expect(code == 0, "\(err)")
            let lines = out.split(separator: "\n").map { $0.split(separator: " ").enumerated().filter { $0.offset != 1 }.map(\.element).joined(separator: " ") }
            #expect(lines == ["metrics.cpu {\"load\":1}", "metrics.mem {\"free\":2}"])
        }
    }
}
