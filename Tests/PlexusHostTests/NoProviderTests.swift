import Foundation
import PlexusCore
import PlexusHost
import PlexusSocket
import PlexusStore
import PlexusTasks
import PlexusWorkflows
import PlexusTestSupport
import Testing

/// FAULTS.md 45: a task or workflow step addressed to a capability nobody
/// provides waits up to its timeout_ms per attempt, says why it waits, and
/// then fails the attempt with NO_SUCH_CAPABILITY; attempts and backoff
/// apply, and a provider that appears meanwhile takes the task.
@Suite("No provider", .serialized)
struct NoProviderTests {
    final class Rig {
        let host: Host
        let store: Store
        let scheduler: Scheduler
        let engine: WorkflowEngine

        init() throws {
            let dir = Fixtures.dir + "/noprov-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var c = HostConfiguration(pluginsDirectory: nil)
            c.threads = 2
            host = Host(c)
            store = try Store(path: dir + "/plexus.db")
            scheduler = try Scheduler(host: host, store: store)
            engine = try WorkflowEngine(scheduler: scheduler)
            host.start()
            try scheduler.start()
            try engine.start()
        }

        func stop() { engine.stop(); scheduler.stop(); host.shutdown(); store.close() }

        func submit(_ capability: String, timeoutMs: Int64, attempts: Int) throws -> String {
            var s = TaskSpec(capability: capability, payload: [])
            s.timeoutMs = timeoutMs
            s.maxAttempts = attempts
            s.backoffMs = 10
            return try scheduler.submit([s])[0].id
        }

        /// Waits (up to 20 s) for `condition`.
        func wait(_ what: String, _ condition: () throws -> Bool) throws {
            for _ in 0..<800 {
                if try condition() { return }
                Thread.sleep(forTimeInterval: 0.025)
            }
            throw Fixtures.FixtureError(description: "timed out waiting for \(what)")
        }

        func finished(_ id: String) throws -> TaskRecord {
            var t: TaskRecord?
            try wait("task \(id) to finish") { t = try store.task(id); return t.map { !$0.state.isOpen } ?? false }
            return t!
        }

        func eventKinds(_ id: String, until last: String) throws -> [String] {
            var kinds: [String] = []
            try wait("event \(last) of \(id)") {
                kinds = try store.events(after: 0, limit: 10_000).filter { $0.subject == id }.map(\.kind)
                return kinds.last == last
            }
            return kinds
        }
    }

    @Test func aTaskNoAgentProvidesHonoursItsTimeoutAndAttempts() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let id = try rig.submit("data.colect", timeoutMs: 300, attempts: 2)
        try rig.wait("the task to say why it waits") { rig.scheduler.waitReason(id) != nil }
        #expect(rig.scheduler.waitReason(id) == "no agent provides data.colect")
        let t = try rig.finished(id)
        #expect(t.state == .dead)
        #expect(t.attempts == 2)
        let last = "NO_SUCH_CAPABILITY: no agent provides data.colect (waited 300 ms, the task's timeout_ms)"
        #expect(t.error == "2 attempt(s) failed; last error \(last)")
        #expect(try rig.store.attempts(of: id).map(\.detail) == [last, last])
        #expect(try rig.eventKinds(id, until: "task.dead_lettered")
                == ["task.queued", "task.waiting", "task.retried", "task.waiting", "task.dead_lettered"])
        let waiting = try rig.store.events(after: 0, limit: 10_000).first { $0.subject == id && $0.kind == "task.waiting" }
        #expect(try waiting.map { try JSONValue.parse(Array($0.data.utf8))["reason"] } == .string("no agent provides data.colect"))
        #expect(rig.scheduler.waitReason(id) == nil)
    }

    @Test func aProviderThatAppearsWhileTheTaskWaitsTakesIt() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let id = try rig.submit("data.late", timeoutMs: 20_000, attempts: 1)
        try rig.wait("the task to wait for a provider") { rig.scheduler.waitReason(id) != nil }
        try rig.host.provide(name: "late", capabilities: [("data.late", "arrives after the task")]) { _, answer in
            answer(.success(.string("made it")))
        }
        let t = try rig.finished(id)
        #expect(t.state == .completed)
        #expect(t.attempts == 1)
        #expect(t.result.map { String(decoding: $0, as: UTF8.self) } == "\"made it\"")
    }

    @Test func aWorkflowStepNoAgentProvidesSaysWhyItWaitsThenFails() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let run = try rig.engine.run(try WorkflowFile.parse("""
            workflow: typo
            steps:
              collect:
                call: data.colect
                timeout_ms: 300
                retry: { attempts: 2, backoff_ms: 10 }
            """, file: "typo.yaml"), input: nil).id
        func step(_ s: JSONValue) -> JSONValue {
            guard case .array(let steps)? = s["steps"] else { return .null }
            return steps.first { $0["name"] == .string("collect") } ?? .null
        }
        try rig.wait("the step to say why it waits") { step(try rig.engine.status(run))["waiting"] != nil }
        #expect(step(try rig.engine.status(run))["waiting"] == .string("no agent provides data.colect"))
        var status = JSONValue.null
        try rig.wait("the run to end") { status = try rig.engine.status(run); return status["state"] != .string("running") }
        #expect(status["state"] == .string("failed"))
        guard case .string(let error)? = status["error"] else { Issue.record("no run error: \(status.text)"); return }
        #expect(error.hasPrefix("step collect: its task ") && error.contains("after 2 attempt(s)")
                && error.hasSuffix("NO_SUCH_CAPABILITY: no agent provides data.colect (waited 300 ms, the task's timeout_ms)"), "\(error)")
        #expect(step(status)["waiting"] == nil)
    }
}

/// The same through the command line against a real `plexus run`:
/// `workflow check` warns with the closest name, `workflow status` says why
/// a step waits, and `workflow check` without a host says it could not check.
@Suite("No provider (CLI)", .serialized)
struct NoProviderCLITests {
    let exe = PlexusCommand.path

    func plexus(_ args: [String]) throws -> PlexusCommand.Outcome { try PlexusCommand.run(args) }

    @Test func checkWarnsWithTheClosestNameAndStatusShowsWhyAStepWaits() throws {
        let dir = Fixtures.dir + "/noprov-cli-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/plugins", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try Fixtures.probe(), toPath: dir + "/plugins/probe.so")
        let file = dir + "/typo.yaml"
        try """
            workflow: typo
            steps:
              greet:
                call: probe.ech
                timeout_ms: 60000
            """.write(toFile: file, atomically: true, encoding: .utf8)

        let offline = try plexus(["workflow", "check", file, "--socket", dir + "/nobody.sock"])
        #expect(offline.status == 0)
        #expect(offline.out == "\(file): workflow typo is valid: 1 steps, 1 of them calling agents\n")
        #expect(offline.err.contains("no host is running at \(dir)/nobody.sock: capabilities not checked against its agents"), "\(offline.err)")

        let host = Process()
        host.executableURL = URL(fileURLWithPath: exe)
        host.arguments = ["run", "--plugins", dir + "/plugins", "--socket", dir + "/h.sock", "--store", dir + "/plexus.db"]
        host.standardError = FileHandle.nullDevice
        try host.run()
        defer { if host.isRunning { host.interrupt(); host.waitUntilExit() } }
        var up = false
        for _ in 0..<400 where !up && host.isRunning {
            up = (try? SocketClient(path: dir + "/h.sock")).flatMap { try? $0.call(Envelope(kind: .query, target: .capability("plexus.agents")), timeoutMs: 2000) } != nil
            if !up { Thread.sleep(forTimeInterval: 0.05) }
        }
        try #require(up, "the host did not come up")

        let checked = try plexus(["workflow", "check", file, "--socket", dir + "/h.sock"])
        #expect(checked.status == 0)
        #expect(checked.out.contains("\(file): warning: step greet calls probe.ech, which no agent of the running host provides (did you mean probe.echo?)"),
                "\(checked.out)")

        let started = try plexus(["workflow", "run", file, "--socket", dir + "/h.sock"])
        let id = started.out.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(started.status == 0 && !id.isEmpty, "\(started.err)")
        var shown = ""
        for _ in 0..<400 where !shown.contains("waiting: ") {
            shown = try plexus(["workflow", "status", id, "--socket", dir + "/h.sock"]).out
            if !shown.contains("waiting: ") { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(shown.contains("probe.ech  waiting: no agent provides probe.ech"), "\(shown)")

        // --follow shows the same while it waits, then the failure once the attempts are spent.
        let short = dir + "/short.yaml"
        try """
            workflow: short
            steps:
              greet:
                call: probe.ech
                timeout_ms: 1500
                retry: { attempts: 1 }
            """.write(toFile: short, atomically: true, encoding: .utf8)
        let followed = try plexus(["workflow", "run", short, "--follow", "--socket", dir + "/h.sock"])
        #expect(followed.status == 1)
        #expect(followed.out.contains("probe.ech  waiting: no agent provides probe.ech"), "\(followed.out)")
        #expect(followed.err.contains("NO_SUCH_CAPABILITY: no agent provides probe.ech (waited 1500 ms, the task's timeout_ms)"), "\(followed.err)")
    }
}
