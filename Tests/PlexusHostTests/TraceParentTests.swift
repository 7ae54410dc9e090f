import Foundation
import PlexusCore
import PlexusHost
import PlexusTestSupport
import Testing

/// W3C traceparent from the SDKs' clients (C, Rust, Python): the request
/// joins the caller's trace, the answer carries that trace id back, and the
/// host's client span sits under the caller's own span.
@Suite("traceparent from the SDK clients", .serialized)
struct TraceParentTests {
    static let parent = "b7ad6b7169203331"

    /// A traceparent of its own per test, so no trace is shared between them.
    func traceparent() -> (String, String) {
        let trace = (0..<4).map { _ in String(format: "%08x", UInt32.random(in: 1...UInt32.max)) }.joined()
        return ("00-\(trace)-\(Self.parent)-01", trace)
    }

    /// Waits until the host recorded the client span of trace.
    func clientSpan(_ host: Host, _ trace: String) -> Span? {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let s = host.trace(plexus_id(hex: trace)!).spans.first(where: { $0.kind == "client" }) { return s }
            usleep(20_000)
        }
        return nil
    }

    func run(_ exe: String, _ args: [String], env: [String: String] = [:]) throws -> (Int32, String, String) {
        let r = try PlexusCommand.run(args, env: env, executable: exe)
        return (r.status, r.out, r.err)
    }

    func check(_ host: Host, trace: String, reported err: String) throws {
        #expect(err.contains("trace: \(trace)"), "the answer carries the caller's trace id: \(err)")
        let span = try #require(clientSpan(host, trace), "the host recorded the request in the caller's trace")
        #expect(span.parent == Self.parent && span.name == "echo")
        let kinds = Set(host.trace(plexus_id(hex: trace)!).spans.map(\.kind))
        #expect(kinds.isSuperset(of: ["client", "route", "wait", "handle"]), "\(kinds)")
    }

    @Test func theCClientJoinsATraceparent() throws {
        try #require(FileManager.default.isExecutableFile(atPath: ClientTests.program), "the C example did not build")
        try ExternalAgentTests().withRunningHost { host, sock in
            let (tp, trace) = traceparent()
            let r = try run(ClientTests.program, ["--socket", sock, "echo", "{\"from\":\"c\"}"], env: ["PLEXUS_TRACEPARENT": tp])
            #expect(r.0 == 0, "\(r.2)")
            try check(host, trace: trace, reported: r.2)
            let bad = try run(ClientTests.program, ["--socket", sock, "echo", "{}"], env: ["PLEXUS_TRACEPARENT": "00-zz-1-01"])
            #expect(bad.0 == 2 && bad.2.contains("traceparent '00-zz-1-01' is malformed"), "\(bad.2)")
        }
    }

    @Test func theRustClientJoinsATraceparent() throws {
        try #require(FileManager.default.isExecutableFile(atPath: ExternalAgentTests.rustProgram), "the Rust example did not build")
        try ExternalAgentTests().withRunningHost { host, sock in
            let (tp, trace) = traceparent()
            let r = try run(ExternalAgentTests.rustProgram, ["--socket", sock, "call", "echo", "{\"from\":\"rust\"}"],
                            env: ["PLEXUS_TRACEPARENT": tp])
            #expect(r.0 == 0, "\(r.2)")
            try check(host, trace: trace, reported: r.2)
        }
    }

    @Test func thePythonClientJoinsATraceparent() throws {
        try ExternalAgentTests().withRunningHost { host, sock in
            let (tp, trace) = traceparent()
            let script = ExternalAgentTests.header + """
                c.call("echo", b'{"from":"python"}', traceparent=sys.argv[2])
                print("trace: " + c.last_trace_id, file=sys.stderr)
                try:
                    c.call("echo", b"{}", traceparent="01-nope")
                except PlexusError as e:
                    print("refused: " + e.name, file=sys.stderr)
                """
            let r = try run("/usr/bin/env", ["python3", "-c", script, sock, tp], env: ["PYTHONPATH": Fixtures.root + "/SDK/python"])
            #expect(r.0 == 0, "\(r.2)")
            #expect(r.2.contains("refused: INVALID_ARGUMENT"), "\(r.2)")
            try check(host, trace: trace, reported: r.2)
        }
    }
}
