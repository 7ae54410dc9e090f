import PlexusCore
import PlexusHost
import PlexusTestSupport
import Testing

/// Host.topology(): who sent to whom, counted by the router (the
/// dashboard's topology panel), in a worker and in process.
@Suite("Topology")
struct TopologyTests {
    static func host(_ mode: SandboxMode, topology: Bool) throws -> Host {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = mode
        c.threads = 2
        c.defaultTimeoutMs = 20_000
        let h = Host(c)
        for p in ["summarizer", "textkit", "keywords"] {
            let f = Fixtures.root + "/Plugins/\(p).so"
            _ = try h.load(path: f)
        }
        if topology { h.enableTopology() }
        h.start()
        return h
    }

    @Test(arguments: [SandboxMode.process, .inProcess])
    func eachSenderTargetPairIsCountedOncePerMessage(mode: SandboxMode) throws {
        let h = try Self.host(mode, topology: true)
        defer { h.shutdown() }
        for i in 0..<3 { _ = try h.callText("report.summarize", "Message \(i) for the topology. Agents talk.", timeoutMs: 20_000) }
        let edges = Dictionary(uniqueKeysWithValues: h.topology().map { ("\($0.from)->\($0.to)", $0.messages) })
        #expect(edges["plexus->summarizer"] == 3, "\(edges)")
        // Three text.stats requests and three docs.summarized events (textkit subscribes to docs.>).
        #expect(edges["summarizer->textkit"] == 6, "\(edges)")
        #expect(edges["summarizer->keywords"] == 3, "\(edges)")
        // Replies are not sends: nothing flows back along the edges.
        #expect(edges["textkit->summarizer"] == nil && edges["summarizer->plexus"] == nil, "\(edges)")
    }

    @Test func nothingIsCountedUnlessAsked() throws {
        let h = try Self.host(.inProcess, topology: false)
        defer { h.shutdown() }
        _ = try h.callText("report.summarize", "Uncounted. Agents talk.", timeoutMs: 20_000)
        #expect(h.topology().isEmpty)
    }
}
