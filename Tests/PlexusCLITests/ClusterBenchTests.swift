import Foundation
import Glibc
import PlexusTestSupport
import Testing

/// `plexus bench --cluster` as a user runs it: its own nats-server and two
/// hosts, the cross-host lines beside raw libnats, and nothing left running
/// afterwards. Small counts: what is checked is that the lines carry
/// numbers, never how fast they are.
@Suite("plexus bench --cluster", .serialized)
struct ClusterBenchTests {
    /// The benchmark agents and floor programs, built by Benchmarks/build.sh into dir.
    func buildAgents(_ dir: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.root + "/Benchmarks/build.sh")
        p.arguments = [dir]
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "Benchmarks/build.sh \(dir) failed")
    }

    /// The figure after `name: ` on the line that starts with it.
    func figure(_ out: String, _ name: String) -> Double? {
        out.split(separator: "\n").first { $0.hasPrefix(name + ": ") }
            .flatMap { $0.dropFirst(name.count + 2).split(separator: " ").first }.flatMap { Double($0) }
    }

    /// The port of the nats-server the bench said it started.
    func natsPort(_ out: String) -> UInt16? {
        guard let r = out.range(of: "nats-server nats://127.0.0.1:") else { return nil }
        return UInt16(out[r.upperBound...].prefix { $0.isNumber })
    }

    func listening(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }

    @Test func printsTheClusterLinesBesideRawLibnatsAndStopsItsServerAndHosts() throws {
        let dir = TestDirectory.make("clbench")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try buildAgents(dir + "/agents")
        let r = try PlexusCommand.run(["bench", "--cluster", "--agents", dir + "/agents", "--repetitions", "1",
                                       "--cluster-round-trips", "200", "--cluster-messages", "500"], in: dir)
        #expect(r.status == 0, "\(r.out)\n\(r.err)")
        for name in ["cluster_rr_per_s", "cluster_rr_p50_us", "cluster_publish_per_s",
                     "# raw_nats_rr_per_s", "# raw_nats_rr_p50_us", "# raw_nats_publish_per_s"] {
            let v = figure(r.out, name)
            #expect(v != nil && v! > 0, "no figure for \(name) in:\n\(r.out)")
        }
        let lines = r.out.split(separator: "\n")
        for (name, floor) in [("cluster_rr_per_s", "raw_nats_rr_per_s"), ("cluster_rr_p50_us", "raw_nats_rr_p50_us"),
                              ("cluster_publish_per_s", "raw_nats_publish_per_s")] {
            let line = lines.first { $0.hasPrefix(name + ": ") } ?? ""
            #expect(line.contains("floor: \(floor): "), "\(line)")
            #expect(line.range(of: #"ratio [0-9]+\.[0-9]{2}x floor"#, options: .regularExpression) != nil, "\(line)")
        }
        let port = try #require(natsPort(r.out), "no nats-server URL in:\n\(r.out)")
        #expect(!listening(port), "the bench's nats-server on port \(port) still runs")
    }

    /// Ctrl-C in the middle: the server and both hosts are stopped too.
    @Test func anInterruptStopsTheServerAndTheHosts() throws {
        let dir = TestDirectory.make("clbench-int")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try buildAgents(dir + "/agents")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: PlexusCommand.path)
        p.arguments = ["bench", "--cluster", "--agents", dir + "/agents", "--repetitions", "50", "--cluster-round-trips", "20000"]
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        // Up once it prints its first line (the server's URL), flushed at once.
        var text = ""
        while natsPort(text) == nil || !text.contains("\n") {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            text += String(decoding: d, as: UTF8.self)
        }
        let port = try #require(natsPort(text), "the bench printed no nats-server URL: \(text)")
        #expect(listening(port))
        let hosts = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())
            .filter { $0 == "plexus-bench-cluster-\(p.processIdentifier)" }
        #expect(hosts.count == 1, "no working directory of the bench's hosts")
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        #expect(p.terminationStatus == 130)
        #expect(!listening(port), "the bench's nats-server on port \(port) still runs after SIGINT")
        #expect(!FileManager.default.fileExists(atPath: NSTemporaryDirectory() + "/plexus-bench-cluster-\(p.processIdentifier)"),
                "the hosts' directory (sockets, stores) is left behind")
    }

}
