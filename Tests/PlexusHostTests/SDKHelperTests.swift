import Foundation
import PlexusCore
import PlexusHost
import PlexusTestSupport
import Synchronization
import Testing

/// What the agent SDKs promise a plugin author, checked through a real host
/// in both sandbox modes: a C plugin of several files (SDK/c/plexus_agent.h's
/// globals are shared by every file), its error messages as valid JSON, and a
/// Rust handler's panic text reaching the caller.
@Suite("Agent SDK helpers")
struct SDKHelperTests {
    func host(_ files: [String], _ mode: SandboxMode) throws -> Host {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = mode
        c.threads = 2
        c.defaultTimeoutMs = 20_000
        let host = Host(c)
        for f in files { try host.load(path: f) }
        host.start()
        return host
    }

    /// The two-file fixture (multi_a.c defines the agent, multi_b.c replies and logs).
    static let multiFile: Result<String, Error> = Result {
        let out = TestDirectory.make("multi") + "/multi.so"
        try Fixtures.run("/usr/bin/cc", ["-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-O1",
                                         "-I\(Fixtures.root)/include", "-I\(Fixtures.root)/SDK/c",
                                         "\(Fixtures.root)/Tests/Fixtures/multi_a.c", "\(Fixtures.root)/Tests/Fixtures/multi_b.c",
                                         "-o", out])
        return out
    }

    /// The Rust fixture crate, built by cargo (test.sh builds it first; then this is a no-op).
    static let panicky: Result<String, Error> = Result {
        let dir = Fixtures.root + "/Tests/Fixtures/panicky"
        try Fixtures.run("/usr/bin/env", ["cargo", "build", "--quiet", "--release", "--offline", "--manifest-path", dir + "/Cargo.toml"])
        return dir + "/target/release/libpanicky.so"
    }

    /// The raw answer to a query: its kind, status and payload, as the caller gets them.
    func answer(_ host: Host, _ target: String, _ payload: [UInt8]) throws -> Envelope {
        let got = Mutex<Envelope?>(nil)
        let done = DispatchSemaphore(value: 0)
        _ = try host.request(Envelope(kind: .query, target: Target(parsing: target), payload: payload), timeoutMs: 20_000) { a in
            got.withLock { $0 = a }
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 60) == .success, "no answer to \(target)")
        return try #require(got.withLock { $0 })
    }

    @Test(arguments: SandboxMode.allCases)
    func aPluginOfTwoCFilesRepliesFromItsSecondFile(mode: SandboxMode) throws {
        let h = try host([try Self.multiFile.get()], mode)
        defer { h.shutdown() }
        // Loading at all means multi_b.c's init hook saw the host (it refuses to start otherwise).
        #expect(try h.callText("multi.hello", "world") == "hello world from multi_b.c")
        #expect(try h.callText("multi.hello", "again") == "hello again from multi_b.c")
    }

    @Test(arguments: SandboxMode.allCases)
    func anErrorMessageIsEscapedAsJSONWhateverItHolds(mode: SandboxMode) throws {
        let h = try host([try Self.multiFile.get()], mode)
        defer { h.shutdown() }
        let long = String(repeating: "\"\\", count: 3000)   // 6 KB that escapes to 12 KB: never cut
        let messages = ["plain", "a \"quoted\" word", #"C:\path\to\file"#, "tab\there\nnewline\r\u{1}\u{1f}\u{8}\u{c}end",
                        "{\"error\":\"OK\"}", "ünïcödé ✓ 🚀", long]
        for text in messages {
            let reply = try answer(h, "multi.error", Array(text.utf8))
            #expect(reply.kind == .error && reply.status == PLEXUS_INVALID_ARGUMENT.status)
            let object = try JSONSerialization.jsonObject(with: Data(reply.payload)) as? [String: String]
            #expect(object == ["error": "INVALID_ARGUMENT", "message": text], "\(reply.payloadString.prefix(200))")
        }
        // Bytes that are not UTF-8 cannot be carried as they are: each becomes U+FFFD.
        let reply = try answer(h, "multi.error", Array("bad ".utf8) + [0xFF, 0xC3] + Array(" bytes".utf8))
        let object = try JSONSerialization.jsonObject(with: Data(reply.payload)) as? [String: String]
        #expect(object?["message"] == "bad \u{FFFD}\u{FFFD} bytes", "\(reply.payloadString)")
    }

    @Test(arguments: SandboxMode.allCases)
    func aRustHandlersPanicReachesTheCaller(mode: SandboxMode) throws {
        let h = try host([try Self.panicky.get()], mode)
        defer { h.shutdown() }
        let e = try #require(expectError(.HANDLER_FAILED) { _ = try h.callText("panicky.boom", "row 7 has \"no\" date") })
        #expect(e.detail.hasPrefix("panicked at src/lib.rs:"), "\(e.detail)")
        #expect(e.detail.hasSuffix(": row 7 has \"no\" date"), "\(e.detail)")
        // The panic was caught at the boundary: the same agent goes on answering.
        #expect(try h.callText("panicky.echo", "still here") == "still here")
    }

    /// The Swift example plugins as Plugins/build.sh built them.
    func examplePlugin(_ name: String) throws -> String {
        let path = Fixtures.root + "/Plugins/\(name).so"
        try #require(FileManager.default.fileExists(atPath: path), "\(path) is missing: run Plugins/build.sh first")
        return path
    }

    @Test(arguments: SandboxMode.allCases)
    func aSwiftHandlersThrownErrorReachesTheCaller(mode: SandboxMode) throws {
        let h = try host([try examplePlugin("summarizer"), try examplePlugin("analyst")], mode)
        defer { h.shutdown() }
        // AgentError(status, message): the caller gets that status and that message.
        let e = try #require(expectError(.UNSUPPORTED) { _ = try h.callText("agent:analyst", "hello") })
        #expect(e.detail == "analyst answers data.climate only")
        // An INVALID_ARGUMENT stays one (so a task does not retry it), with the agent's reason.
        let bad = try #require(expectError(.INVALID_ARGUMENT) { _ = try h.callText("data.climate", "not json") })
        #expect(bad.detail.hasPrefix("data.climate needs the list data.clean produced: "), "\(bad.detail)")
    }
}
