import Foundation
import GRDB
import Glibc
import PlexusCore
import Testing

/// A host of a cluster stopped while it runs durable tasks for another
/// host (review findings 1 and 8): gracefully (SIGTERM) it finishes them
/// within --shutdown-grace-ms, records them and acknowledges them before
/// its NATS connection closes, or gives back what is still running; killed
/// (SIGKILL) and restarted, it says the attempt it left was interrupted.
/// In ClusterTaskTests (serialized): real nats-server -js and `plexus run`.
extension ClusterTaskTests {
    /// The rows a store holds for a task: (outcome, detail), by attempt.
    static func rows(_ db: String, _ id: String) throws -> [(outcome: String, detail: String)] {
        try readOnly(db).read { db in
            try Row.fetchAll(db, sql: "SELECT outcome, detail FROM task_attempts WHERE task_id = ? ORDER BY attempt", arguments: [id])
                .map { (outcome: $0["outcome"] as String, detail: $0["detail"] as String) }
        }
    }

    static func startedEvents(_ db: String, _ id: String) throws -> Int {
        try readOnly(db).read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events WHERE kind = 'task.started' AND subject = ?", arguments: [id]) ?? 0
        }
    }

    /// A NATS server, host a (no plugins) and host c (textkit), both up,
    /// c taking durable tasks; `cArguments` go to c's `plexus run`.
    static func aAndC(cArguments: [String] = []) throws -> (nats: NatsServer, a: Node, c: Node) {
        let nats = try NatsServer()
        let a = try Node("a", nats: nats.url, plugins: [:])
        let c = try Node("c", nats: nats.url, plugins: ["textkit.so": try ClusterTests.textkit()], arguments: cArguments)
        #expect(ClusterTests.waitForNodes(a.socket, up: ["c"]))
        #expect(waitFor(seconds: 60) { c.logText.contains("taking durable tasks") })
        return (nats, a, c)
    }

    /// Submits count.stream on a (no plugins); returns its id once c has started it.
    static func countOnC(_ a: Node, _ c: Node, to: Int, everyMs: Int) throws -> String {
        let t = try a.submit([.object(["capability": .string("count.stream"), "payload": .string("{\"to\":\(to),\"every_ms\":\(everyMs)}"),
                                       "timeout_ms": .int(60_000)])])
        let id = Self.id(t[0])
        #expect(waitFor(seconds: 60) {
            guard case .array(let h)? = c.show(id)["attempt_history"] else { return false }
            return h.contains { Self.str($0["outcome"]) == "running" }
        }, "c never started \(id): \(c.logText.suffix(2000))")
        return id
    }

    /// Finding 1, its reproduction: c stopped with SIGTERM a second into a
    /// 3 s task for a. It exits with status 0 (no crash in libnats), the
    /// task completes on a once, c ran it once and recorded it completed.
    @Test func aHostStoppedGracefullyFinishesTheClusterTaskItRunsRecordsItAndExitsCleanly() throws {
        let (nats, a, c) = try Self.aAndC(cArguments: ["--shutdown-grace-ms", "10000"])
        defer { withExtendedLifetime(nats) {} }
        let id = try Self.countOnC(a, c, to: 6, everyMs: 500)
        let reason = c.term()
        #expect(reason == .exit, "c did not exit by itself: \(String(describing: reason))\n\(c.logText.suffix(3000))")
        #expect(c.process?.terminationStatus == 0, "exit status \(c.process?.terminationStatus ?? -1)\n\(c.logText.suffix(3000))")
        #expect(!c.logText.contains("crashed") && !c.logText.contains("given back"), "\(c.logText.suffix(3000))")
        // Completed on a, from c's one run.
        #expect(waitFor(seconds: 60) { Self.str(a.show(id)["state"]) == "completed" }, "\(a.show(id))\n\(a.logText.suffix(2000))")
        let shown = a.show(id)
        #expect(Self.str(shown["node"]) == "c")
        guard case .array(let h)? = shown["attempt_history"] else { Issue.record("\(shown)"); return }
        #expect(h.map { Self.str($0["outcome"]) ?? "" } == ["completed"], "\(h)")
        let full = try a.ask("plexus.tasks.show", .object(["id": .string(id)]))
        #expect(full["result"] == .object(["count": .int(6)]), "\(full)")
        // c's store: one attempt, completed (the marker is c's), started once.
        let onC = try Self.rows(c.db, id)
        #expect(onC.map(\.outcome) == ["completed"], "\(onC)")
        #expect(try Self.startedEvents(c.db, id) == 1)
    }

    /// Finding 1, past the grace: an attempt still running when the grace
    /// ends is given back while the connection is open (c's row says so)
    /// and c still exits 0; started again, c takes it back at once (no ack
    /// wait) and completes it, once.
    @Test func anAttemptStillRunningWhenTheGraceEndsIsGivenBackAndRunsAgain() throws {
        let (nats, a, c) = try Self.aAndC(cArguments: ["--shutdown-grace-ms", "1500"])
        defer { withExtendedLifetime(nats) {} }
        let id = try Self.countOnC(a, c, to: 80, everyMs: 100)
        let reason = c.term()
        #expect(reason == .exit && c.process?.terminationStatus == 0, "\(String(describing: reason)) \(c.process?.terminationStatus ?? -1)\n\(c.logText.suffix(3000))")
        #expect(c.logText.contains("given back to the cluster") && !c.logText.contains("crashed"), "\(c.logText.suffix(3000))")
        let left = try Self.rows(c.db, id)
        #expect(left.map(\.outcome) == ["interrupted"], "\(left)")
        #expect(left.first?.detail.contains("interrupted: this host stopped before it finished; the cluster redelivered it") == true, "\(left)")
        #expect(Self.str(a.show(id)["state"]) == "running", "\(a.show(id))")
        // c again, on the same store: the message was given back, so it is there now.
        try c.start()
        #expect(waitFor(seconds: 60) { Self.str(a.show(id)["state"]) == "completed" }, "\(a.show(id))\n\(c.logText.suffix(2000))")
        guard case .array(let h)? = a.show(id)["attempt_history"] else { Issue.record("\(a.show(id))"); return }
        #expect(h.map { Self.str($0["outcome"]) ?? "" } == ["completed"], "\(h)")
        guard case .array(let there)? = c.show(id)["attempt_history"] else { Issue.record("\(c.show(id))"); return }
        #expect(there.map { Self.str($0["outcome"]) ?? "" } == ["completed"], "\(there)")
        #expect(Self.str(there.first?["detail"])?.contains("(delivery 2)") == true, "\(there)")
    }

    /// Finding 8: c killed (SIGKILL) under a task for a; b takes it after
    /// the ack wait and completes it. c restarted says its attempt was
    /// interrupted, not "running" forever.
    @Test func aHostKilledUnderAClusterTaskSaysItWasInterruptedAfterItRestarts() throws {
        let (nats, a, c) = try Self.aAndC()
        let id = try Self.countOnC(a, c, to: 20, everyMs: 100)
        // b joins only now, so c is the one that ran it first.
        let b = try Node("b", nats: nats.url, plugins: ["textkit.so": try ClusterTests.textkit()])
        c.kill9()
        #expect(waitFor(seconds: 90) { Self.str(a.show(id)["state"]) == "completed" }, "\(a.show(id))\n\(b.logText.suffix(2000))")
        #expect(Self.str(a.show(id)["node"]) == "b")
        #expect(try Self.rows(c.db, id).map(\.outcome) == ["running"], "the row SIGKILL left")
        try c.start()
        let shown = c.show(id)
        #expect(Self.str(shown["state"]) == "elsewhere")
        guard case .array(let h)? = shown["attempt_history"], let first = h.first else { Issue.record("\(shown)"); return }
        #expect(h.count == 1 && Self.str(first["outcome"]) == "interrupted", "\(h)")
        #expect(Self.str(first["detail"]) == "for node a; interrupted: this host stopped; the cluster redelivered it", "\(first)")
        let cli = try ClusterTests.plexus(["tasks", "show", id, "--socket", c.socket])
        #expect(cli.status == 0 && cli.out.contains("interrupted") && !cli.out.contains("\"running\""), "\(cli.out)")
    }
}
