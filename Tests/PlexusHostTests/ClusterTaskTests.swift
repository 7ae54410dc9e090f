import Foundation
import GRDB
import Glibc
import PlexusCore
import PlexusSocket
import PlexusTestSupport
import Testing

/// Durable tasks across hosts on JetStream (issue 16, item 4a): submitted on
/// one host, run by a provider on another, the outcome recorded where it
/// was submitted; a running host killed with SIGKILL mid-way; the
/// idempotency key across hosts; the submitting host restarted mid-way.
/// Real nats-server -js and real `plexus run --nats` processes.
@Suite(.serialized) struct ClusterTaskTests {
    typealias C = ClusterTests

    /// A `plexus run --nats` on a directory of its own that outlives the
    /// process: restarted on the same store, or read after a SIGKILL.
    final class Node {
        let name: String
        let dir: String
        let nats: String
        var process: Process?
        /// More `plexus run` options (such as --shutdown-grace-ms).
        let arguments: [String]
        var socket: String { dir + "/plexus.sock" }
        var db: String { dir + "/plexus.db" }
        var log: String { dir + "/host.log" }

        init(_ name: String, nats: String, plugins: [String: String], arguments: [String] = []) throws {
            self.name = name
            self.nats = nats
            self.arguments = arguments
            dir = Fixtures.dir + "/jstask-\(name)-\(UUID().uuidString.prefix(6))"
            try FileManager.default.createDirectory(atPath: dir + "/plugins", withIntermediateDirectories: true)
            for (file, so) in plugins { try FileManager.default.copyItem(atPath: so, toPath: dir + "/plugins/" + file) }
            try start()
        }

        func start() throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("plexus")
            p.arguments = ["run", "--plugins", dir + "/plugins", "--socket", socket, "--store", db, "--sandbox", "in-process",
                           "--nats", nats, "--node", name] + arguments
            FileManager.default.createFile(atPath: log, contents: nil)
            p.standardError = FileHandle(forWritingAtPath: log)
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            process = p
            guard waitFor(seconds: 60, { self.logText.contains("host up") || !p.isRunning }), p.isRunning else {
                throw Fixtures.FixtureError(description: "plexus run (\(name)) did not come up: \(logText)")
            }
        }

        /// SIGKILL: no goodbye, nothing flushed.
        func kill9() {
            guard let p = process, p.isRunning else { return }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }

        /// SIGTERM (a graceful stop: `plexus run` waits for it with sigwait,
        /// so the inherited blocked mask does not matter); its exit status,
        /// or nil when it did not exit within the seconds given.
        func term(within seconds: Double = 60) -> Process.TerminationReason? {
            guard let p = process, p.isRunning else { return nil }
            kill(p.processIdentifier, SIGTERM)
            guard waitFor(seconds: seconds, { !p.isRunning }) else { return nil }
            p.waitUntilExit()
            return p.terminationReason
        }

        var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        deinit { kill9() }

        /// A JSON answer of one of the host's own capabilities.
        func ask(_ capability: String, _ args: JSONValue) throws -> JSONValue {
            let reply = try SocketClient(path: socket).call(Envelope(kind: .query, target: .capability(capability), payload: Array(args.text.utf8)),
                                                           timeoutMs: 30_000)
            guard reply.kind == .response else { throw Fixtures.FixtureError(description: "\(capability): \(reply.payloadString)") }
            return try JSONValue.parse(reply.payload)
        }

        /// Submits tasks (one call, one transaction); their ids in order.
        func submit(_ tasks: [JSONValue]) throws -> [JSONValue] {
            guard case .array(let a) = try ask("plexus.tasks.submit", .array(tasks)) else { return [] }
            return a
        }

        func show(_ id: String) -> [String: JSONValue] {
            guard case .object(let o)? = try? ask("plexus.tasks.show", .object(["id": .string(id)])) else { return [:] }
            return o
        }

        func completedCount() -> Int {
            guard case .array(let a)? = try? ask("plexus.tasks.list", .object(["state": .string("completed"), "limit": .int(10_000)])) else { return -1 }
            return a.count
        }
    }

    /// Host a without providers, b and c with the probe, a hearing both;
    /// with takingTasks, also b and c fetching durable tasks.
    static func aWithProvidersBAndC(_ nats: NatsServer, takingTasks: Bool = true) throws -> (Node, Node, Node) {
        let a = try Node("a", nats: nats.url, plugins: [:])
        let b = try Node("b", nats: nats.url, plugins: ["probe.so": try C.probe("probe")])
        let c = try Node("c", nats: nats.url, plugins: ["probe.so": try C.probe("probe")])
        #expect(C.waitForNodes(a.socket, up: ["b", "c"]))
        if takingTasks {
            #expect(waitFor(seconds: 60) { b.logText.contains("taking durable tasks") && c.logText.contains("taking durable tasks") })
        }
        return (a, b, c)
    }

    static func id(_ v: JSONValue) -> String { if case .string(let s)? = v["id"] { return s } else { return "" } }
    static func str(_ v: JSONValue?) -> String? { if case .string(let s)? = v { return s } else { return nil } }

    /// The store of a host that is not running, opened read-only.
    static func readOnly(_ path: String) throws -> DatabaseQueue {
        var c = Configuration()
        c.readonly = true
        return try DatabaseQueue(path: path, configuration: c)
    }

    @Test func aTaskSubmittedOnAHostWithoutProviderRunsOnTheHostThatHasOneAndCompletesWhereItWasSubmitted() throws {
        let nats = try NatsServer()
        let a = try Node("a", nats: nats.url, plugins: [:])
        let b = try Node("b", nats: nats.url, plugins: ["probe.so": try C.probe("probe")])
        #expect(C.waitForNodes(a.socket, up: ["b"]))
        let t = try a.submit([.object(["capability": .string("probe.echo"), "payload": .string("across")])])
        let id = Self.id(t[0])
        #expect(Self.str(t[0]["note"]) == nil, "no note: node b provides it: \(t[0])")
        #expect(waitFor(seconds: 60) { Self.str(a.show(id)["state"]) == "completed" }, "\(a.show(id))\n\(a.logText.suffix(3000))\n\(b.logText.suffix(3000))")
        let shown = a.show(id)
        #expect(Self.str(shown["node"]) == "b")
        #expect(Self.str(shown["agent"]) == "b/probe")
        let full = try a.ask("plexus.tasks.show", .object(["id": .string(id)]))
        #expect(Self.str(full["result"]) == "across")
        // On b: the attempt it ran for a, under the same id.
        let there = b.show(id)
        #expect(Self.str(there["state"]) == "elsewhere")
        #expect(Self.str(there["node"]) == "b")
        guard case .array(let attempts)? = there["attempt_history"], let first = attempts.first else { Issue.record("no attempts on b: \(there)"); return }
        #expect(Self.str(first["outcome"]) == "completed")
        #expect(Self.str(first["detail"])?.contains("for node a") == true)
        // The CLI says so too.
        let cli = try C.plexus(["tasks", "show", id, "--socket", a.socket])
        #expect(cli.status == 0 && cli.out.contains("\"node\" : \"b\"") || cli.out.contains("\"node\": \"b\""), "\(cli.out)")
    }

    @Test func theIdempotencyKeyHoldsAcrossHosts() throws {
        let nats = try NatsServer()
        let a = try Node("a", nats: nats.url, plugins: ["probe.so": try C.probe("probe")])
        let b = try Node("b", nats: nats.url, plugins: [:])
        #expect(C.waitForNodes(b.socket, up: ["a"]))
        let first = try a.submit([.object(["capability": .string("probe.echo"), "payload": .string("once"), "key": .string("report-42")])])
        let again = try b.submit([.object(["capability": .string("probe.echo"), "payload": .string("twice"), "key": .string("report-42")])])
        #expect(Self.id(first[0]) == Self.id(again[0]))
        #expect(Self.str(again[0]["node"]) == "a")
        #expect(Self.str(again[0]["note"])?.contains("submitted on node a") == true, "\(again[0])")
        // b stored no task of its own for the key; a's runs once.
        guard case .array(let onB) = try b.ask("plexus.tasks.list", .object([:])) else { Issue.record("no list"); return }
        #expect(onB.isEmpty, "\(onB)")
        #expect(waitFor(seconds: 60) { Self.str(a.show(Self.id(first[0]))["state"]) == "completed" })
        // And from a again, and from b once more: the same task.
        #expect(Self.id(try a.submit([.object(["capability": .string("probe.echo"), "key": .string("report-42")])])[0]) == Self.id(first[0]))
        #expect(Self.id(try b.submit([.object(["capability": .string("probe.echo"), "key": .string("report-42")])])[0]) == Self.id(first[0]))
        // A new key submitted on b is b's own.
        let own = try b.submit([.object(["capability": .string("probe.echo"), "payload": .string("mine"), "key": .string("report-43")])])
        #expect(Self.id(own[0]) != Self.id(first[0]))
        #expect(waitFor(seconds: 60) { Self.str(b.show(Self.id(own[0]))["state"]) == "completed" })
    }

    @Test func theSubmittingHostKilledAndRestartedStillLearnsEveryOutcome() throws {
        let nats = try NatsServer()
        let a = try Node("a", nats: nats.url, plugins: [:])
        let b = try Node("b", nats: nats.url, plugins: ["probe.so": try C.probe("probe")])
        #expect(C.waitForNodes(a.socket, up: ["b"]))
        let tasks = (0..<20).map { _ in JSONValue.object(["capability": .string("probe.sleep"), "payload": .string("100")]) }
        let ids = try a.submit(tasks).map(Self.id)
        #expect(ids.count == 20)
        // a goes once it has handed all of them to the cluster, while b
        // works through them (20 × 100 ms, one at a time).
        #expect(waitFor(seconds: 60) {
            guard case .array(let r)? = try? a.ask("plexus.tasks.list", .object(["state": .string("running")])) else { return false }
            return r.count + a.completedCount() == 20
        })
        let learnedBefore = a.completedCount()
        a.kill9()
        #expect(learnedBefore < 15, "a learned \(learnedBefore) outcomes before it was killed: too late to matter")
        // Outcomes are sent while a is down: they wait for it in its outcome stream.
        #expect(waitFor(seconds: 60) {
            (try? Self.readOnly(b.db).read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM task_attempts WHERE outcome = 'completed'") }) == 20
        })
        try a.start()
        #expect(waitFor(seconds: 60) { a.completedCount() == 20 }, "\(a.completedCount()) of 20\n\(a.logText.suffix(3000))")
        for id in ids {
            let s = a.show(id)
            #expect(Self.str(s["state"]) == "completed" && Self.str(s["node"]) == "b", "\(s)")
        }
    }

    /// FAULTS 34 / issue 16 item 6: 1,000 durable tasks submitted on a (no
    /// provider there), run on b and c; b is SIGKILLed mid-way. Every task
    /// completes on a exactly once, and the stores of b (read after it
    /// died) and c hold exactly one completion of each.
    @Test func aRunningHostKilledMidWayLosesNoTaskAndRunsNoneTwice() throws {
        let nats = try NatsServer()
        let (a, b, c) = try Self.aWithProvidersBAndC(nats)
        let handled = a.dir + "/handled.log"
        var ids: [String] = []
        let started = Date()
        // One submission (one transaction): all are acknowledged before most run.
        let tasks = (0..<1_000).map { i in JSONValue.object(["capability": .string("probe.append"), "payload": .string(handled),
                                                             "key": .string("job-\(i)")]) }
        ids = try a.submit(tasks).map(Self.id)
        #expect(Set(ids).count == 1_000)
        // b dies with work in hand, some way in (a tenth of the tasks handled).
        func handledCount() -> Int { ((try? String(contentsOfFile: handled, encoding: .utf8)) ?? "").utf8.count / 33 }
        #expect(waitFor(seconds: 120) { handledCount() >= 20 })
        let (from, since) = (handledCount(), Date())
        #expect(waitFor(seconds: 120) { handledCount() >= from + 100 })
        let flowing = Double(handledCount() - from) / Date().timeIntervalSince(since)
        b.kill9()
        let killedAt = handledCount()
        #expect(killedAt < 900, "b was killed too late to matter: \(killedAt) handled")
        #expect(waitFor(seconds: 240) { a.completedCount() == 1_000 }, "\(a.completedCount()) of 1000\n\(a.logText.suffix(2000))\n\(c.logText.suffix(2000))")
        let seconds = Date().timeIntervalSince(started)
        print("ClusterTaskTests: 1000 tasks across two hosts, one killed after \(killedAt) were handled, in \(String(format: "%.1f", seconds)) s "
              + "(\(String(format: "%.0f", flowing)) tasks/s across both hosts before the kill; the ack wait of 10 s included after it)")

        // Where a says each ran, and that it completed once there.
        var ranOn: [String: String] = [:]
        for id in ids {
            let s = a.show(id)
            #expect(Self.str(s["state"]) == "completed", "\(s)")
            ranOn[id] = Self.str(s["node"])
            guard case .array(let h)? = s["attempt_history"] else { continue }
            let completions = h.filter { Self.str($0["outcome"]) == "completed" }.count
            #expect(completions == 1, "\(id): \(completions) completions on a")
        }
        #expect(Set(ranOn.values).isSubset(of: ["b", "c"]))
        #expect(ranOn.values.contains("b") && ranOn.values.contains("c"), "both hosts took work")
        c.kill9()   // its store is read the same way
        func rows(_ path: String) throws -> [String: [String]] {
            try Self.readOnly(path).read { db in
                var out: [String: [String]] = [:]
                for r in try Row.fetchAll(db, sql: "SELECT task_id, outcome FROM task_attempts") { out[r["task_id"], default: []].append(r["outcome"]) }
                return out
            }
        }
        let onB = try rows(b.db), onC = try rows(c.db)
        // A completion is a "completed" row, or a "completing" one (the
        // host died between recording the answer and settling it) whose
        // done-marker names that host, which is where a says it ran.
        var window = 0
        for id in ids {
            func count(_ rows: [String], _ node: String) -> Int {
                rows.filter { $0 == "completed" || ($0 == "completing" && ranOn[id] == node) }.count
            }
            let inB = count(onB[id, default: []], "b"), inC = count(onC[id, default: []], "c")
            #expect(inB + inC == 1, "\(id) completed \(inB + inC) times: b \(onB[id] ?? []), c \(onC[id] ?? []), a says \(ranOn[id] ?? "?")")
            if inB + inC == 1 {
                #expect((inB == 1 ? "b" : "c") == ranOn[id], "\(id) completed on \(inB == 1 ? "b" : "c") but a says \(ranOn[id] ?? "?")")
            }
            if onB[id, default: []].contains("completing") && ranOn[id] == "b" { window += 1 }
        }
        #expect(window <= 4, "\(window) completions cut between answer and marker")
        // What b had in hand went to c under the same id (its second delivery).
        let redelivered = try Self.readOnly(c.db).read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM task_attempts WHERE detail LIKE '%(delivery 2)%'") ?? 0
        }
        print("ClusterTaskTests: \(redelivered) attempt(s) redelivered from b to c, \(window) completed by b with its row left completing")
        // The handler saw every task under its own id; one cut off by the
        // kill reached it a second time with that id, no task more often.
        let lines = try String(contentsOfFile: handled, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(Set(lines) == Set(ids), "\(Set(ids).subtracting(lines).count) never handled")
        let times = Dictionary(lines.map { ($0, 1) }, uniquingKeysWith: +)
        #expect(times.values.allSatisfy { $0 <= 2 }, "\(times.filter { $0.value > 2 })")
    }

    /// A task running longer than the consumer's ack wait (10 s) says it is
    /// in progress: it is not given to the other providing host meanwhile,
    /// and runs once.
    @Test func aLongTaskIsNotRedeliveredWhileItRuns() throws {
        let nats = try NatsServer()
        let (a, b, c) = try Self.aWithProvidersBAndC(nats)
        let t = try a.submit([.object(["capability": .string("probe.sleep"), "payload": .string("13000"), "timeout_ms": .int(60_000)])])
        let id = Self.id(t[0])
        #expect(waitFor(seconds: 90) { Self.str(a.show(id)["state"]) == "completed" }, "\(a.show(id))")
        let s = a.show(id)
        guard case .array(let h)? = s["attempt_history"] else { Issue.record("\(s)"); return }
        #expect(h.count == 1, "\(h)")
        // Ran on one of them, once; the other never saw it.
        let ranOn = Self.str(s["node"]) ?? "?"
        let other = ranOn == "b" ? c : b
        #expect(Self.str(other.show(id)["state"]) == nil, "\(other.show(id))")
        let there = (ranOn == "b" ? b : c).show(id)
        guard case .array(let rows)? = there["attempt_history"] else { Issue.record("\(there)"); return }
        #expect(rows.count == 1 && Self.str(rows[0]["detail"]) == "for node a", "\(rows)")
    }

    /// A workflow started on a host with no providers: its steps' tasks run
    /// on the other hosts and the run advances on their outcomes (the
    /// scheduler's onFinished), to the end.
    @Test func aWorkflowRunsWithItsStepsOnOtherHosts() throws {
        let nats = try NatsServer()
        let (a, b, c) = try Self.aWithProvidersBAndC(nats, takingTasks: false)
        defer { withExtendedLifetime((b, c)) {} }   // the providing hosts run until the test ends
        let file = a.dir + "/across.yaml"
        try """
            workflow: across
            steps:
              first:
                call: probe.echo
                input: "hello"
              fan:
                for_each: "${[1, 2, 3, 4, 5, 6]}"
                concurrency: 3
                call: probe.echo
                input: "${item}"
                after: [first]
              last:
                call: probe.echo
                input: "${steps.first.output}"
                after: [fan]
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let run = try C.plexus(["workflow", "run", file, "--socket", a.socket, "--follow"])
        #expect(run.status == 0, "\(run.out)\n\(run.err)\n\(a.logText.suffix(2000))")
        guard case .array(let tasks) = try a.ask("plexus.tasks.list", .object(["limit": .int(100)])) else { Issue.record("no list"); return }
        #expect(tasks.count == 8, "\(tasks)")
        for t in tasks {
            #expect(Self.str(t["state"]) == "completed" && ["b", "c"].contains(Self.str(t["node"]) ?? ""), "\(t)")
        }
    }

    /// Retries, backoff and dead-lettering keep their meaning across hosts:
    /// the submitting host counts attempts and decides; each attempt's
    /// failure travels back as its outcome.
    @Test func aFailedAttemptOnAnotherHostIsRetriedAndOneOutOfAttemptsIsDeadLetteredWhereItWasSubmitted() throws {
        let nats = try NatsServer()
        let a = try Node("a", nats: nats.url, plugins: [:])
        let b = try Node("b", nats: nats.url, plugins: ["probe.so": try C.probe("probe")])
        #expect(C.waitForNodes(a.socket, up: ["b"]))
        let seen = a.dir + "/flaky.log"
        let t = try a.submit([.object(["capability": .string("probe.flaky"), "payload": .string(seen), "backoff_ms": .int(50)]),
                              .object(["capability": .string("probe.fail"), "attempts": .int(2), "backoff_ms": .int(50)])])
        let flaky = Self.id(t[0]), failing = Self.id(t[1])
        #expect(waitFor(seconds: 60) { Self.str(a.show(flaky)["state"]) == "completed" }, "\(a.show(flaky))")
        #expect(waitFor(seconds: 60) { Self.str(a.show(failing)["state"]) == "dead" }, "\(a.show(failing))")
        let f = a.show(flaky), d = a.show(failing)
        guard case .array(let fh)? = f["attempt_history"], case .array(let dh)? = d["attempt_history"] else { Issue.record("\(f) \(d)"); return }
        #expect(fh.map { Self.str($0["outcome"]) ?? "" } == ["failed", "completed"], "\(fh)")
        #expect(dh.map { Self.str($0["outcome"]) ?? "" } == ["failed", "failed"], "\(dh)")
        #expect(dh.allSatisfy { Self.str($0["node"]) == "b" })
        #expect(Self.str(d["error"])?.contains("2 attempt(s) failed") == true, "\(d)")
        // b recorded both attempts of each, under the same ids.
        let there = b.show(failing)
        guard case .array(let rows)? = there["attempt_history"] else { Issue.record("\(there)"); return }
        #expect(rows.map { Self.str($0["outcome"]) ?? "" } == ["failed", "failed"], "\(rows)")
    }
}
