import Foundation
import Glibc
import PlexusCore
import PlexusSocket
import PlexusStore
import PlexusTestSupport
import Testing

/// A loop, a sub-workflow and a signal wait, each with its `plexus run`
/// killed by SIGKILL in the middle and started again on the same store:
/// the run finishes as an uninterrupted one would, nothing checkpointed
/// before the kill is done again, and each step's task exists once.
@Suite("Workflows that change course, killed", .serialized)
struct WorkflowCourseCrashTests {
    let host = TaskCrashTests()

    /// A directory with the steps agent in its plugins folder.
    func workspace(_ name: String) throws -> String {
        let dir = Fixtures.dir + "/\(name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/plugins", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try Fixtures.build("steps.c", name: "steps"), toPath: dir + "/plugins/steps.so")
        FileManager.default.createFile(atPath: dir + "/host.log", contents: nil)
        return dir
    }

    func ask(_ c: SocketClient, _ capability: String, _ args: JSONValue) throws -> JSONValue {
        let reply = try c.call(Envelope(kind: .query, target: .capability(capability), payload: Array(args.text.utf8)), timeoutMs: 20_000)
        return try JSONValue.parse(reply.payload)
    }

    func start(_ c: SocketClient, _ yaml: String, includes: [String: String] = [:]) throws -> String {
        var args: [String: JSONValue] = ["source": .string(yaml), "file": .string("main.yaml")]
        if !includes.isEmpty { args["includes"] = .object(includes.mapValues(JSONValue.string)) }
        guard case .string(let id)? = try ask(c, "plexus.workflows.run", .object(args))["id"] else { throw Fixtures.FixtureError(description: "no run id") }
        return id
    }

    /// Polls the run's status until `until` holds (60 s at most).
    func wait(_ c: SocketClient, _ id: String, until: (JSONValue) -> Bool) throws -> JSONValue {
        var s = JSONValue.null
        for _ in 0..<1200 {
            s = try ask(c, "plexus.workflows.status", .object(["id": .string(id)]))
            if until(s) { return s }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw Fixtures.FixtureError(description: "run \(id) never got there: \(s.text)")
    }

    func ended(_ s: JSONValue) -> Bool { s["state"] != .string("running") }

    func step(_ s: JSONValue, _ name: String) -> JSONValue {
        guard case .array(let steps)? = s["steps"] else { return .null }
        return steps.first { $0["name"] == .string(name) } ?? .null
    }

    func kill9(_ p: Process) {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// Every done checkpoint of the runs: "run/step/item" -> when it was written.
    func checkpoints(_ dir: String, _ runs: [String]) throws -> [String: Int64] {
        let store = try Store(path: dir + "/plexus.db")
        defer { store.close() }
        var out: [String: Int64] = [:]
        for r in runs { for c in try store.checkpoints(of: r) where c.state == "done" { out["\(r)/\(c.step)/\(c.item)"] = c.finished_unix_ns } }
        return out
    }

    /// After the restart: what was checkpointed before the kill was not written
    /// again, and each task key names one task, completed, tried at most twice
    /// (once more if the kill caught it running: at least once, never a new task).
    func expectNothingRedone(_ dir: String, _ runs: [String], before: [String: Int64]) throws -> [TaskRecord] {
        let after = try checkpoints(dir, runs)
        for (k, at) in before { #expect(after[k] == at, "\(k) was checkpointed again") }
        let store = try Store(path: dir + "/plexus.db")
        defer { store.close() }
        let tasks = try store.tasks(limit: 10_000).filter { t in runs.contains { t.idempotency_key?.hasPrefix("wf/\($0)/") == true } }
        #expect(Set(tasks.compactMap(\.idempotency_key)).count == tasks.count)
        for t in tasks { #expect(t.state == .completed && t.attempts <= 2, "\(t.idempotency_key ?? ""): \(t.state) after \(t.attempts)") }
        return tasks
    }

    @Test func aLoopKilledBetweenItsRunsGoesOnFromItsLastCheckpointedRun() throws {
        let dir = try workspace("loopcrash")
        var h = try host.startHost(dir)
        defer { if h.isRunning { kill9(h) } }   // whichever host is up when the test ends, even by a failure
        let id = try start(try SocketClient(path: dir + "/h.sock"), """
            workflow: loop-crash
            steps:
              poll:
                call: wf.sleep
                input: "250"
                repeat: { until: "steps.poll.iterations >= 5", max: 20 }
              report: { call: wf.echo, input: { runs: "${steps.poll.iterations}", last: "${steps.poll.output}" } }
            outputs:
              report.json: "${steps.report.output}"
            """)
        // Killed once two runs of the loop are in: in the middle of it.
        _ = try wait(try SocketClient(path: dir + "/h.sock"), id) { s in (Int(step(s, "poll")["iterations"]?.text ?? "") ?? 0) >= 2 || ended(s) }
        kill9(h)
        let before = try checkpoints(dir, [id])
        #expect(before.keys.filter { $0.hasPrefix("\(id)/poll/") }.count >= 2)
        #expect(before["\(id)/poll/-1"] == nil, "the loop ended before the kill")

        h = try host.startHost(dir)
        let c = try SocketClient(path: dir + "/h.sock")
        let s = try wait(c, id, until: ended)
        #expect(s["state"] == .string("completed"), "\(s.text)")
        #expect(try ask(c, "plexus.workflows.outputs", .object(["id": .string(id)]))["report.json"]
                == .object(["runs": .int(5), "last": .object(["slept": .int(250)])]))
        h.interrupt(); h.waitUntilExit()
        let tasks = try expectNothingRedone(dir, [id], before: before)
        #expect(tasks.filter { $0.capability == "wf.sleep" }.compactMap(\.idempotency_key).sorted() == (0..<5).map { "wf/\(id)/0/poll/\($0)" })
    }

    @Test func aSubWorkflowKilledInsideGoesOnInTheSameSubRun() throws {
        let dir = try workspace("subcrash")
        var h = try host.startHost(dir)
        defer { if h.isRunning { kill9(h) } }   // whichever host is up when the test ends, even by a failure
        let child = """
            workflow: child
            input: { ms: 0 }
            steps:
              a: { call: wf.sleep, input: "${input.ms}" }
              b: { call: wf.sleep, input: "${input.ms}", after: [a] }
              c: { call: wf.sleep, input: "${input.ms}", after: [b] }
            outputs:
              slept: "${steps.c.output.slept}"
            """
        let id = try start(try SocketClient(path: dir + "/h.sock"), """
            workflow: parent
            steps:
              first: { call: wf.echo, input: { ms: 300 } }
              sub: { workflow: lib/child.yaml, input: { ms: "${steps.first.output.ms}" } }
              last: { call: wf.echo, input: "${steps.sub.output.slept}" }
            outputs:
              slept.txt: "${steps.last.output}"
            """, includes: ["lib/child.yaml": child])
        let c0 = try SocketClient(path: dir + "/h.sock")
        let linked = try wait(c0, id) { s in step(s, "sub")["run"] != nil || ended(s) }
        guard case .string(let sub)? = step(linked, "sub")["run"] else { Issue.record("no sub-run: \(linked.text)"); return }
        // Killed once the sub-run's first step is in and before it ends.
        _ = try wait(c0, sub) { s in step(s, "a")["state"] == .string("done") || ended(s) }
        kill9(h)
        let before = try checkpoints(dir, [id, sub])
        #expect(before["\(sub)/a/-1"] != nil)
        #expect(before["\(sub)/c/-1"] == nil, "the sub-run ended before the kill")

        h = try host.startHost(dir)
        let c = try SocketClient(path: dir + "/h.sock")
        let s = try wait(c, id, until: ended)
        #expect(s["state"] == .string("completed"), "\(s.text)")
        #expect(step(s, "sub")["run"] == .string(sub))
        #expect(try ask(c, "plexus.workflows.outputs", .object(["id": .string(id)]))["slept.txt"] == .int(300))
        let subStatus = try ask(c, "plexus.workflows.status", .object(["id": .string(sub)]))
        #expect(subStatus["state"] == .string("completed") && subStatus["parent_run"] == .string(id))
        h.interrupt(); h.waitUntilExit()
        let store = try Store(path: dir + "/plexus.db")
        #expect(try store.childRuns(of: id).map(\.id) == [sub])   // the same sub-run, not a new one
        store.close()
        let tasks = try expectNothingRedone(dir, [id, sub], before: before)
        #expect(tasks.count == 2 + 3)
    }

    @Test func aSignalSentBeforeAKillIsKeptAndAWaitKilledGoesOnWaiting() throws {
        let dir = try workspace("sigcrash")
        var h = try host.startHost(dir)
        defer { if h.isRunning { kill9(h) } }   // whichever host is up when the test ends, even by a failure
        let id = try start(try SocketClient(path: dir + "/h.sock"), """
            workflow: signals
            steps:
              slow: { call: wf.sleep, input: "400" }
              early: { wait_for: early, after: [slow] }
              late: { wait_for: late, after: [early] }
              use: { call: wf.echo, input: { early: "${steps.early.output}", late: "${steps.late.output}" } }
            outputs:
              both.json: "${steps.use.output}"
            """)
        // Sent while slow still runs: no step waits for it yet. Then killed.
        _ = try ask(try SocketClient(path: dir + "/h.sock"), "plexus.workflows.signal",
                    .object(["id": .string(id), "name": .string("early"), "payload": .object(["n": .int(1)])]))
        kill9(h)
        do {
            let store = try Store(path: dir + "/plexus.db")
            defer { store.close() }
            #expect(try store.signals(of: id).map(\.name) == ["early"])
        }

        h = try host.startHost(dir)
        var c = try SocketClient(path: dir + "/h.sock")
        // The kept signal is taken; killed again while late waits.
        let waiting = try wait(c, id) { s in step(s, "late")["state"] == .string("waiting") || ended(s) }
        #expect(step(waiting, "early")["state"] == .string("done"), "\(waiting.text)")
        kill9(h)
        let before = try checkpoints(dir, [id])

        h = try host.startHost(dir)
        c = try SocketClient(path: dir + "/h.sock")
        #expect(step(try ask(c, "plexus.workflows.status", .object(["id": .string(id)])), "late")["state"] == .string("waiting"))
        _ = try ask(c, "plexus.workflows.signal", .object(["id": .string(id), "name": .string("late"), "payload": .string("two")]))
        let s = try wait(c, id, until: ended)
        #expect(s["state"] == .string("completed"), "\(s.text)")
        #expect(try ask(c, "plexus.workflows.outputs", .object(["id": .string(id)]))["both.json"]
                == .object(["early": .object(["n": .int(1)]), "late": .string("two")]))
        h.interrupt(); h.waitUntilExit()
        let store = try Store(path: dir + "/plexus.db")
        #expect(try store.signals(of: id).map { "\($0.name):\($0.step ?? "-")" } == ["early:early", "late:late"])
        store.close()
        _ = try expectNothingRedone(dir, [id], before: before)
    }

    /// A wait's timeout counts from when the step began to wait, across a
    /// restart: the host killed while it waits fails it on time, not later.
    @Test func aWaitsTimeoutCountsFromBeforeTheKill() throws {
        let dir = try workspace("waitcrash")
        var h = try host.startHost(dir)
        defer { if h.isRunning { kill9(h) } }
        let id = try start(try SocketClient(path: dir + "/h.sock"), """
            workflow: impatient
            steps:
              go: { wait_for: never, timeout_ms: 2000 }
            """)
        let waiting = try wait(try SocketClient(path: dir + "/h.sock"), id) { s in step(s, "go")["state"] == .string("waiting") || ended(s) }
        let began = Int64(step(waiting, "go")["started_unix_ns"]?.text ?? "") ?? 0
        #expect(began > 0)
        kill9(h)

        h = try host.startHost(dir)
        let c = try SocketClient(path: dir + "/h.sock")
        let s = try wait(c, id, until: ended)
        #expect(s["state"] == .string("failed"))
        let go = step(s, "go")
        #expect(go["state"] == .string("failed") && go["error"] == .string("no signal 'never' came within 2000 ms"), "\(s.text)")
        #expect(go["started_unix_ns"] == .int(began), "the wait began again after the restart")
        let finished = Int64(go["finished_unix_ns"]?.text ?? "") ?? 0
        #expect(finished - began >= 2_000_000_000)
    }

    /// The CLI: cancel and signal of a run that is not running exit 1 with
    /// what it is; cancel of a running one shows it and its steps cancelled.
    @Test func cancelAndSignalFromTheCommandLine() throws {
        let dir = try workspace("wfcli")
        let h = try host.startHost(dir)
        defer { if h.isRunning { h.interrupt(); h.waitUntilExit() } }
        let sock = ["--socket", dir + "/h.sock"]
        try "workflow: held\nsteps:\n  hold: { wait_for: go }\n  after_it: { call: wf.echo, after: [hold] }\n"
            .write(toFile: dir + "/held.yaml", atomically: true, encoding: .utf8)
        let started = try PlexusCommand.run(["workflow", "run", dir + "/held.yaml"] + sock)
        #expect(started.status == 0, "\(started.err)")
        let id = started.out.trimmingCharacters(in: .whitespacesAndNewlines)
        let c = try SocketClient(path: dir + "/h.sock")
        _ = try wait(c, id) { step($0, "hold")["state"] == .string("waiting") }
        let shown = try PlexusCommand.run(["workflow", "status", id] + sock)
        #expect(shown.out.contains("waits for signal go: plexus workflow signal \(id) go JSON"), "\(shown.out)")

        let bad = try PlexusCommand.run(["workflow", "signal", id, "go", "{nope"] + sock)
        #expect(bad.status == 2 && bad.err.contains("the signal's JSON does not parse"), "\(bad.err)")
        let cancelled = try PlexusCommand.run(["workflow", "cancel", id] + sock)
        #expect(cancelled.status == 0 && cancelled.out.contains("cancelled run \(id)"), "\(cancelled.err)")
        let status = try PlexusCommand.run(["workflow", "status", id, "--json"] + sock)
        let s = try JSONValue.parse(Array(status.out.utf8))
        #expect(s["state"] == .string("cancelled"))
        #expect(step(s, "hold")["state"] == .string("cancelled") && step(s, "after_it")["state"] == .string("pending"))

        let again = try PlexusCommand.run(["workflow", "cancel", id] + sock)
        #expect(again.status == 1 && again.err.contains("run \(id) is cancelled; only a running run can be cancelled"), "\(again.err)")
        let late = try PlexusCommand.run(["workflow", "signal", id, "go", "true"] + sock)
        #expect(late.status == 1 && late.err.contains("only a running run can be signalled"), "\(late.err)")
        let unknown = try PlexusCommand.run(["workflow", "cancel", "0123abcd"] + sock)
        #expect(unknown.status == 1 && unknown.err.contains("no workflow run 0123abcd"), "\(unknown.err)")

        // A client naming a sub-workflow file it did not send: the host reads no file for it.
        try "workflow: secret\nsteps:\n  a: { call: wf.echo }\n".write(toFile: dir + "/secret.yaml", atomically: true, encoding: .utf8)
        #expect { _ = try start(c, "workflow: sneaky\nsteps:\n  peek: { workflow: \(dir)/secret.yaml }\n") } throws: { e in
            "\(e)".contains("steps.peek.workflow: cannot read \(dir)/secret.yaml: the run was not given its text")
        }
    }
}
