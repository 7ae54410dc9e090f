import Foundation
import Glibc
import PlexusCore
import PlexusTestSupport
import Testing

/// The event log on JetStream: real `nats-server -js` processes and real
/// `plexus run --nats` hosts; `plexus events --cluster` (and --follow) on one
/// host shows every host's events, in order per host.
@Suite(.serialized) struct ClusterEventTests {
    /// A nats-server with JetStream, keeping its streams in a directory of its own.
    static func jetStream(storeDir: String? = nil, port: Int? = nil) throws -> NatsServer {
        let dir = storeDir ?? Fixtures.dir + "/js-\(UUID().uuidString.prefix(6))"
        return try NatsServer(port: port, arguments: ["-js", "-sd", dir], jetStream: false)   // its own store directory, not the default one
    }

    struct Line: Equatable { var node: String; var seq: Int64; var kind: String; var subject: String; var streamSeq: Int64 }

    /// `plexus events --cluster --json` (with more arguments) of the host at socket, parsed.
    static func clusterEvents(_ socket: String, _ more: [String] = []) -> (lines: [Line], status: Int32, err: String) {
        guard let r = try? PlexusCommand.run(["events", "--cluster", "--json", "--socket", socket] + more) else { return ([], -1, "did not run") }
        return (r.out.split(separator: "\n").compactMap { parse(String($0)) }, r.status, r.err)
    }

    static func parse(_ text: String) -> Line? {
        guard let v = try? JSONValue.parse(Array(text.utf8)), case .string(let n)? = v["node"], case .int(let s)? = v["seq"],
              case .string(let k)? = v["kind"], case .string(let sub)? = v["subject"], case .int(let ss)? = v["stream_seq"] else { return nil }
        return Line(node: n, seq: s, kind: k, subject: sub, streamSeq: ss)
    }

    /// An operator action on an agent (suspend, resume…): one event in that host's log.
    static func act(_ socket: String, _ verb: String, _ agent: String) throws {
        let r = try PlexusCommand.run(["agents", verb, agent, "--socket", socket])
        #expect(r.status == 0, "\(verb) \(agent): \(r.err)")
    }

    /// Every host's seqs only go up in the order printed.
    static func inOrderPerHost(_ lines: [Line]) -> Bool {
        var last: [String: Int64] = [:]
        for l in lines {
            if let p = last[l.node], l.seq <= p { return false }
            last[l.node] = l.seq
        }
        return true
    }

    @Test func eventsOfTwoHostsAppearOnEitherInOrderPerHostWithTheKindFilterAndTheNewestOfEach() throws {
        let nats = try Self.jetStream()
        let a = try ClusterTests.node("a", nats.url, plugins: ["alpha.so": try ClusterTests.probe("alpha")])
        let b = try ClusterTests.node("b", nats.url, plugins: ["beta.so": try ClusterTests.probe("beta")])
        #expect(ClusterTests.waitForNodes(a.socket, up: ["b"]))
        try Self.act(a.socket, "suspend", "alpha")
        try Self.act(b.socket, "suspend", "beta")
        try Self.act(b.socket, "resume", "beta")
        try Self.act(a.socket, "resume", "alpha")
        var seen: [Line] = []
        let both = waitFor(seconds: 30) {
            seen = Self.clusterEvents(a.socket, ["--last", "100"]).lines
            return seen.contains { $0.node == "a" && $0.kind == "agent.resumed" && $0.subject == "alpha" }
                && seen.contains { $0.node == "b" && $0.kind == "agent.resumed" && $0.subject == "beta" }
        }
        #expect(both, "\(seen)")
        #expect(Self.inOrderPerHost(seen), "\(seen)")
        // Every event in B's own log is in the cluster's view from A, with its seq and kind, in B's order.
        let local = try PlexusCommand.run(["events", "--json", "--last", "100", "--socket", b.socket])
        let mine = local.out.split(separator: "\n").compactMap { l -> (Int64, String)? in
            guard let v = try? JSONValue.parse(Array(l.utf8)), case .int(let s)? = v["seq"], case .string(let k)? = v["kind"] else { return nil }
            return (s, k)
        }
        #expect(!mine.isEmpty)
        let fromB = seen.filter { $0.node == "b" }.map { "\($0.seq) \($0.kind)" }
        #expect(fromB == mine.map { "\($0.0) \($0.1)" }, "cluster view of b: \(fromB), b's own log: \(mine)")
        // The same through B.
        let viaB = Self.clusterEvents(b.socket, ["--last", "100"]).lines
        #expect(viaB.filter { $0.node == "a" }.map(\.seq) == seen.filter { $0.node == "a" }.map(\.seq))

        // --kind keeps only those kinds; --last N is the newest N of each host.
        let suspended = Self.clusterEvents(a.socket, ["--kind", "agent.suspended"]).lines
        #expect(Set(suspended.map { "\($0.node) \($0.subject)" }) == ["a alpha", "b beta"], "\(suspended)")
        #expect(suspended.allSatisfy { $0.kind == "agent.suspended" })
        let newest = Self.clusterEvents(a.socket, ["--last", "1"]).lines
        #expect(newest.map(\.node).sorted() == ["a", "b"], "\(newest)")
        #expect(newest.first { $0.node == "a" }?.kind == "agent.resumed")
        // Text lines start with the node.
        let text = try PlexusCommand.run(["events", "--cluster", "--last", "1", "--socket", a.socket])
        #expect(text.status == 0, "\(text.err)")
        let starts = Set(text.out.split(separator: "\n").map { String($0.prefix(3)) })
        #expect(starts == ["a  ", "b  "], "\(text.out)")
        // --after: the stream's sequence numbers, oldest first.
        let cut = seen[seen.count / 2].streamSeq
        let after = Self.clusterEvents(a.socket, ["--after", "\(cut)"]).lines
        #expect(!after.isEmpty && after.allSatisfy { $0.streamSeq > cut }, "\(after)")
        #expect(after.map(\.streamSeq) == after.map(\.streamSeq).sorted())
        // Counted in plexus nodes: published, none lost.
        let nodes = try PlexusCommand.run(["nodes", "--json", "--socket", b.socket])
        let report = try JSONValue.parse(Array(nodes.out.utf8))
        guard case .int(let published)? = report["events"]?["published"] else { Issue.record("no events report: \(nodes.out)"); return }
        #expect(published >= Int64(mine.count))
        #expect(report["events"]?["lost"] == .int(0))
        let table = try PlexusCommand.run(["nodes", "--socket", b.socket])
        #expect(table.out.contains("event stream PLEXUS_plexus_EVENTS: \(published) of this host's events published"), "\(table.out)")
    }

    @Test func followingTheClusterOnOneHostShowsANewEventOfAnother() throws {
        let nats = try Self.jetStream()
        let a = try ClusterTests.node("a", nats.url, plugins: ["alpha.so": try ClusterTests.probe("alpha")])
        let b = try ClusterTests.node("b", nats.url, plugins: ["beta.so": try ClusterTests.probe("beta")])
        #expect(ClusterTests.waitForNodes(a.socket, up: ["b"]))
        // Both hosts' first events are in the stream before following begins.
        #expect(waitFor(seconds: 30) { Set(Self.clusterEvents(a.socket).lines.map(\.node)) == ["a", "b"] })

        let follow = Process()
        follow.executableURL = URL(fileURLWithPath: PlexusCommand.path)
        follow.arguments = ["events", "--follow", "--cluster", "--last", "0", "--socket", a.socket]
        let out = Pipe()
        follow.standardOutput = out
        try follow.run()
        // SIGKILL: the suites block SIGTERM in their threads, and a child inherits the mask.
        defer { kill(follow.processIdentifier, SIGKILL); follow.waitUntilExit() }
        let lines = FollowedLines(out.fileHandleForReading)
        // Until the follower has looked once, the event could land before its cursor: act until one shows.
        var shown = false
        for verb in Array(repeating: ["suspend", "resume"], count: 20).flatMap({ $0 }) where !shown {
            try Self.act(b.socket, verb, "beta")
            shown = lines.wait(seconds: 3) { $0.contains { $0.hasPrefix("b  ") && $0.contains("agent.\(verb)") && $0.contains("beta") } }
        }
        #expect(shown, "the follower on A printed: \(lines.all)")
        #expect(!lines.all.contains { $0.contains("agent.started") }, "--last 0 printed an older event: \(lines.all)")
    }

    @Test func theStreamKeepsAHostsEventsThroughItsRestartWithoutPublishingThemTwice() throws {
        let nats = try Self.jetStream()
        let store = Fixtures.dir + "/a-\(UUID().uuidString.prefix(6)).db"
        // Node a on a store of its own path (the last --store wins), so that its restart finds it again.
        var a: HostProcess? = try HostProcess("node-a", plugins: ["alpha.so": try ClusterTests.probe("alpha")], arguments: ["--nats", nats.url, "--node", "a", "--store", store])
        let b = try ClusterTests.node("b", nats.url, plugins: ["beta.so": try ClusterTests.probe("beta")])
        try Self.act(a!.socket, "suspend", "alpha")
        #expect(waitFor(seconds: 30) { Self.clusterEvents(b.socket).lines.contains { $0.node == "a" && $0.kind == "agent.suspended" } })
        kill(a!.pid, SIGKILL)
        a!.process.waitUntilExit()
        a = try HostProcess("node-a2", plugins: ["alpha.so": try ClusterTests.probe("alpha")], arguments: ["--nats", nats.url, "--node", "a", "--store", store])
        try Self.act(a!.socket, "suspend", "alpha")   // the restarted host starts it running again
        var lines: [Line] = []
        #expect(waitFor(seconds: 30) {
            lines = Self.clusterEvents(b.socket, ["--last", "1000"]).lines
            return lines.filter { $0.node == "a" && $0.kind == "agent.suspended" }.count == 2
        }, "\(lines)")
        let suspended = lines.filter { $0.node == "a" && $0.kind == "agent.suspended" }
        #expect(suspended.count == 2 && suspended[0].seq < suspended[1].seq && suspended[0].streamSeq < suspended[1].streamSeq, "\(lines)")
        // The restarted host went on after its last event in the stream: none twice, in order.
        let seqs = lines.filter { $0.node == "a" }.map(\.seq)
        #expect(Set(seqs).count == seqs.count, "\(seqs)")
        #expect(Self.inOrderPerHost(lines), "\(lines)")
    }

    @Test func eventsMadeWhileNATSIsAwayArePublishedWhenItIsBackAndThoseBeyondCatchUpAreCountedLost() throws {
        let jsDir = Fixtures.dir + "/js-\(UUID().uuidString.prefix(6))"
        var nats: NatsServer? = try Self.jetStream(storeDir: jsDir)
        let port = nats!.port
        let yaml = Fixtures.dir + "/plexus-catch-up-\(UUID().uuidString.prefix(6)).yaml"
        try "nats: { events: { catch_up: 2 } }\n".write(toFile: yaml, atomically: true, encoding: .utf8)
        let a = try HostProcess("node-a", plugins: ["alpha.so": try ClusterTests.probe("alpha"), "beta.so": try ClusterTests.probe("beta")],
                                arguments: ["--nats", nats!.url, "--node", "a", "--config", yaml, "--http", "127.0.0.1:0"])
        #expect(waitFor(seconds: 30) { Self.clusterEvents(a.socket).lines.filter { $0.node == "a" }.count == 2 })
        nats = nil   // SIGKILL: the server is gone; the stream stays in its directory
        // Four events while NATS is away: only the newest two (catch_up) are published when it is back.
        try Self.act(a.socket, "suspend", "alpha")
        try Self.act(a.socket, "suspend", "beta")
        try Self.act(a.socket, "resume", "alpha")
        try Self.act(a.socket, "resume", "beta")
        nats = try Self.jetStream(storeDir: jsDir, port: port)
        var lines: [Line] = []
        #expect(waitFor(seconds: 60) {
            lines = Self.clusterEvents(a.socket, ["--last", "100"]).lines
            return lines.contains { $0.kind == "agent.resumed" && $0.subject == "beta" }
        }, "\(lines)")
        #expect(lines.map { "\($0.kind) \($0.subject)" }.suffix(2) == ["agent.resumed alpha", "agent.resumed beta"], "\(lines)")
        #expect(!lines.contains { $0.kind == "agent.suspended" }, "\(lines)")
        #expect(Self.inOrderPerHost(lines))
        // The two skipped are counted and logged, not dropped silently.
        let nodes = try PlexusCommand.run(["nodes", "--json", "--socket", a.socket])
        let report = try JSONValue.parse(Array(nodes.out.utf8))
        #expect(report["events"]?["lost"] == .int(2), "\(nodes.out)")
        #expect(a.logText.contains("events lost to the cluster's stream: NATS was away too long"), "\(a.logText)")
        let metrics = try HTTPGet.get(port: try HTTPServerTests.port(of: a), "/metrics").body
        #expect(metrics.contains("plexus_cluster_events_lost_total 2"), "\(metrics)")
        #expect(metrics.contains("plexus_cluster_events_published_total 4"), "\(metrics)")
    }

    @Test func aHostBusierThanItsPublisherLagsAndCatchesUpWithoutSkippingAny() throws {
        let nats = try Self.jetStream()
        // catch_up 10 bounds what is published after NATS was away, not a publisher that is merely behind.
        let a = try ClusterTests.node("a", nats.url, plugins: [:], yaml: "nats: { events: { catch_up: 10 } }\n")
        let tasks = JSONValue.array((0..<1_000).map { i in
            .object(["capability": .string("no.such"), "payload": .int(Int64(i)), "timeout_ms": .int(600_000)])
        })
        let file = Fixtures.dir + "/tasks-\(UUID().uuidString.prefix(6)).json"
        try tasks.text.write(toFile: file, atomically: true, encoding: .utf8)
        let submitted = try PlexusCommand.run(["call", "plexus.tasks.submit", "--file", file, "--socket", a.socket])
        #expect(submitted.status == 0, "\(submitted.err)")
        // Each task logs task.queued, then task.waiting (no agent provides no.such): 2,000 events at once.
        func counts() -> (published: Int64, lost: Int64) {
            guard let r = try? PlexusCommand.run(["nodes", "--json", "--socket", a.socket]), let v = try? JSONValue.parse(Array(r.out.utf8)),
                  case .int(let p)? = v["events"]?["published"], case .int(let l)? = v["events"]?["lost"] else { return (-1, -1) }
            return (p, l)
        }
        #expect(waitFor(seconds: 120) { counts().published >= 2_000 }, "\(counts())")
        #expect(counts().lost == 0)
        let waiting = Self.clusterEvents(a.socket, ["--after", "0", "--kind", "task.waiting"]).lines
        #expect(waiting.count == 1_000 && Self.inOrderPerHost(waiting), "\(waiting.count)")
    }

    @Test func withoutNATSOrWithoutJetStreamTheClusterViewSaysWhy() throws {
        let alone = try HostProcess("alone")
        let r = try PlexusCommand.run(["events", "--cluster", "--socket", alone.socket])
        #expect(r.status == 1)
        #expect(r.err.contains("is not part of a cluster: start it with `plexus run --nats"), "\(r.err)")

        let plain = try NatsServer(jetStream: false)
        let a = try ClusterTests.node("a", plain.url, plugins: [:])
        let s = try PlexusCommand.run(["events", "--cluster", "--socket", a.socket])
        #expect(s.status == 1)
        #expect(s.err.contains("the NATS server has no JetStream (start nats-server with -js"), "\(s.err)")
        // The host itself runs on, and says so in plexus nodes.
        #expect(waitFor(seconds: 30) {
            let n = (try? PlexusCommand.run(["nodes", "--json", "--socket", a.socket]))?.out ?? ""
            return n.contains("no JetStream")
        })
    }
}

/// A child's standard output, line by line, read on a thread of its own.
final class FollowedLines: @unchecked Sendable {
    private let lock = NSCondition()
    private var text = ""

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                lock.lock(); text += String(decoding: chunk, as: UTF8.self); lock.broadcast(); lock.unlock()
                if chunk.isEmpty { return }
            }
        }
    }

    var all: [String] { lock.lock(); defer { lock.unlock() }; return text.split(separator: "\n").map(String.init) }

    /// Whether the lines meet `condition` within the time given (an event's bound, not a timing check).
    func wait(seconds: Double, _ condition: ([String]) -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        lock.lock(); defer { lock.unlock() }
        while !condition(text.split(separator: "\n").map(String.init)) {
            if !lock.wait(until: end) { return condition(text.split(separator: "\n").map(String.init)) }
        }
        return true
    }
}
