import Foundation
import PlexusCore
import PlexusHost
import PlexusSocket
import Testing

/// The example plugins as built by Plugins/build.sh (which .ci/run runs first).
@Suite("Cross-language pipeline through the built example plugins", .serialized)
struct PipelineTests {
    static let plugins = Fixtures.root + "/Plugins"

    func host() throws -> Host {
        for name in ["textkit", "keywords", "summarizer"] {
            let path = "\(Self.plugins)/\(name).so"
            try #require(FileManager.default.fileExists(atPath: path), "\(path) is missing: run Plugins/build.sh first")
        }
        let h = Host(HostConfiguration(pluginsDirectory: Self.plugins))
        try h.loadPlugins()
        h.start()
        return h
    }

    @Test func allThreeLanguagesLoad() throws {
        let h = try host()
        defer { h.shutdown() }
        let loaded = h.pluginReports.filter { $0.status == "loaded" }.compactMap(\.name).sorted()
        #expect(loaded == ["analyst", "cleaner", "collector", "fanout", "keywords", "reporter", "summarizer", "textkit", "visualiser"])
    }

    @Test func echoSmokeTest() throws {
        let h = try host()
        defer { h.shutdown() }
        #expect(try h.callText("echo", "{\"hello\":\"world\"}") == "{\"hello\":\"world\"}")
    }

    @Test func swiftAsksCAndRustThenPublishesToC() throws {
        let h = try host()
        defer { h.shutdown() }
        let text = "Plexus routes messages. Agents in C, Rust and Swift cooperate through the host. The host routes every message."
        let report = try JSONValue.parse(Array(h.callText("report.summarize", "Plexus notes\n" + text).utf8))
        #expect(report["title"] == .string("Plexus notes"))
        #expect(report["stats"]?["words"] == .int(20))                        // counted by C
        guard case .array(let kws)? = report["keywords"]?["keywords"] else { Issue.record("no keywords"); return }
        #expect(kws.first?["term"] == .string("host"))                        // ranked by Rust
        guard case .array(let summary)? = report["summary"] else { Issue.record("no summary"); return }
        #expect(summary.count == 3)
        // Heard by C from Swift's event (the .so is shared by this suite's hosts: other entries may precede).
        guard case .array(let catalog) = try JSONValue.parse(Array(h.callText("docs.catalog").utf8)) else { Issue.record("catalog is not an array"); return }
        #expect(catalog.last == .object(["title": .string("Plexus notes"), "top": .array([.string("host"), .string("plexus"), .string("routes")])]))
    }

    @Test func aSubRequestFailureReachesTheOriginalCaller() throws {
        let h = try host()
        defer { h.shutdown() }
        // An empty document still gets a report: the pipeline handles edge input.
        let report = try JSONValue.parse(Array(h.callText("report.summarize", "").utf8))
        #expect(report["title"] == .string("untitled"))
    }

    @Test func socketClientsReachTheSameAgents() throws {
        let h = try host()
        defer { h.shutdown() }
        let path = Fixtures.dir + "/s-\(UUID().uuidString.prefix(8)).sock"
        let server = try SocketServer(host: h, path: path)
        try server.start()
        defer { server.stop() }
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        let client = try SocketClient(path: path)
        #expect(try client.call(Envelope(kind: .query, target: .capability("echo"), payload: Array("hi".utf8)), timeoutMs: 5000).payloadString == "hi")
        #expect(try client.call(Envelope(kind: .query, target: .capability("math.pow"), payload: Array("[2,8]".utf8)), timeoutMs: 5000).payloadString == "{\"result\":256.0}")
        let e = expectError(.NO_SUCH_CAPABILITY) { _ = try client.call(Envelope(kind: .query, target: .capability("nope")), timeoutMs: 5000) }
        #expect(e?.detail == "no agent provides capability 'nope'")
        let listing = try client.call(Envelope(kind: .query, target: .capability("plexus.plugins")), timeoutMs: 5000)
        #expect(listing.payloadString.contains("\"summarizer\""))

        // A client sending garbage gets one error frame and is dropped; others are unaffected.
        let raw = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un(); addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { d in for (i, b) in path.utf8.enumerated() { d[i] = b } }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(rc == 0)
        let junk = [UInt8]("GET / HTTP/1.1\r\n\r\n".utf8)
        _ = junk.withUnsafeBytes { write(raw, $0.baseAddress, $0.count) }
        var buf = [UInt8](repeating: 0, count: 4096)
        var got: [UInt8] = []
        while true {
            let n = buf.withUnsafeMutableBytes { read(raw, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            got += buf[0..<n]
        }
        close(raw)
        let err = try Envelope(frame: got)
        #expect(err.kind == .error && err.status == PLEXUS_MALFORMED_FRAME.status)
        #expect(err.payloadString.contains("bad magic"))
        #expect(try client.call(Envelope(kind: .query, target: .capability("echo"), payload: Array("still".utf8)), timeoutMs: 5000).payloadString == "still")
    }
}
