import Foundation
import PlexusCore
import PlexusHost
import PlexusSocket
import PlexusStore
import PlexusTasks
import Testing

/// Durable tasks against real sandboxed agents: completion, retries with
/// backoff, dead letters with history, dependencies, idempotency keys,
/// priorities, an agent that dies, and a host killed with SIGKILL.
@Suite("Tasks", .serialized)
struct TaskTests {
    /// A started host with the probe plugin, a store and a scheduler.
    final class Rig {
        let host: Host
        let store: Store
        let scheduler: Scheduler
        let dir: String

        init(instances: Int = 1) throws {
            dir = Fixtures.dir + "/tasks-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var c = HostConfiguration(pluginsDirectory: nil)
            c.threads = 2
            let file = try Fixtures.probe()
            var s = c.settings(for: file)
            s.instances = instances
            Fixtures.grantWrite(dir, to: &s.policy)   // probe.append writes its logs here
            c.plugins[PluginDescriptor.stem(of: file)] = s
            host = Host(c)
            try host.load(path: file)
            store = try Store(path: dir + "/plexus.db")
            scheduler = try Scheduler(host: host, store: store, agingMs: 5_000)
            try TaskService.install(on: host, scheduler: scheduler)
            host.start()
            try scheduler.start()
        }

        func stop() { scheduler.stop(); host.shutdown(); store.close() }

        func submit(_ capability: String, _ payload: String = "", _ change: (inout TaskSpec) -> Void = { _ in }) throws -> TaskRecord {
            var s = TaskSpec(capability: capability, payload: Array(payload.utf8))
            s.backoffMs = 20
            change(&s)
            return try scheduler.submit([s])[0]
        }

        /// Waits (up to 20 s) until the task is finished; returns it.
        func finished(_ id: String) throws -> TaskRecord {
            for _ in 0..<400 {
                if let t = try store.task(id), !t.state.isOpen { return t }
                Thread.sleep(forTimeInterval: 0.05)
            }
            throw Fixtures.FixtureError(description: "task \(id) did not finish: \(String(describing: try store.task(id)))")
        }

        func events(_ id: String) throws -> [String] {
            Thread.sleep(forTimeInterval: 0.05)   // the last event commits with the state, asynchronously
            return try store.events(after: 0, limit: 10_000).filter { $0.subject == id }.map(\.kind)
        }
    }

    @Test func aTaskRunsOnAnAgentAndItsCompletionIsRecorded() throws {
        let r = try Rig()
        defer { r.stop() }
        let t = try r.finished(try r.submit("probe.echo", "hello").id)
        #expect(t.state == .completed && t.result == Data("hello".utf8) && t.agent == "probe" && t.attempts == 1)
        #expect(try r.events(t.id) == ["task.queued", "task.started", "task.completed"])
        #expect(try r.store.events(after: 0).contains { $0.kind == "agent.started" && $0.subject == "probe" })
    }

    @Test func aFailingTaskIsRetriedWithBackoffThenDeadLetteredWithItsHistory() throws {
        let r = try Rig()
        defer { r.stop() }
        let t = try r.finished(try r.submit("probe.fail") { $0.maxAttempts = 3 }.id)
        #expect(t.state == .dead && t.attempts == 3)
        #expect(t.error == "3 attempt(s) failed; last error HANDLER_FAILED: agent 'probe' returned HANDLER_FAILED while handling the request")
        let history = try r.store.attempts(of: t.id)
        #expect(history.map(\.outcome) == ["failed", "failed", "failed"])
        #expect(try r.events(t.id) == ["task.queued", "task.started", "task.retried", "task.started", "task.retried", "task.started", "task.dead_lettered"])
        // A task that fails once then succeeds completes on its second attempt.
        let flaky = try r.finished(try r.submit("probe.flaky", r.dir + "/flaky.log").id)
        #expect(flaky.state == .completed && flaky.attempts == 2)
    }

    @Test func dependenciesRunInOrderAndAFailedOneFailsItsDependents() throws {
        let r = try Rig(instances: 2)
        defer { r.stop() }
        let log = r.dir + "/order.log"
        let first = try r.submit("probe.append", log) { $0.priority = 0 }
        let second = try r.submit("probe.append", log) { $0.dependsOn = [first.id]; $0.priority = 3 }
        #expect(second.state == .waiting)
        _ = try r.finished(second.id)
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines == [first.id, second.id])
        let broken = try r.submit("probe.fail") { $0.maxAttempts = 1 }
        let orphan = try r.submit("probe.echo") { $0.dependsOn = [broken.id] }
        let o = try r.finished(orphan.id)
        #expect(o.state == .dead && o.attempts == 0)
        #expect(o.error?.hasPrefix("it depends on task \(broken.id), which was dead-lettered") == true, "\(o.error ?? "")")
        // Retried by hand, it would run at once: refused while what it runs
        // after has not completed, and the refusal says which task and why.
        let e = #expect(throws: PlexusError.self) { _ = try r.scheduler.retry(orphan.id) }
        #expect(e?.detail.contains("runs after task \(broken.id), which is dead") == true, "\(e?.detail ?? "")")
        #expect(try r.store.task(orphan.id)?.state == .dead)
        #expect(throws: PlexusError.self) { _ = try r.submit("probe.echo") { $0.dependsOn = ["00000000000000000000000000000001"] } }
    }

    @Test func anIdempotencyKeyGivesBackTheFirstTask() throws {
        let r = try Rig()
        defer { r.stop() }
        let log = r.dir + "/once.log"
        let a = try r.submit("probe.append", log) { $0.idempotencyKey = "invoice-7" }
        let b = try r.submit("probe.append", log) { $0.idempotencyKey = "invoice-7" }
        #expect(a.id == b.id)
        _ = try r.finished(a.id)
        #expect(try String(contentsOfFile: log, encoding: .utf8) == a.id + "\n")   // ran once
    }

    @Test func higherPriorityRunsFirstAndAgingKeepsLowOnesMoving() throws {
        // Pure rule: each level is worth agingMs of waiting.
        #expect(TaskPolicy.rank(priority: 3, readySinceMs: 10_000, agingMs: 5_000) < TaskPolicy.rank(priority: 0, readySinceMs: 10_000, agingMs: 5_000))
        #expect(TaskPolicy.rank(priority: 0, readySinceMs: 0, agingMs: 5_000) < TaskPolicy.rank(priority: 3, readySinceMs: 15_001, agingMs: 5_000))
        // Live: one busy agent; then low, normal, critical arrive together.
        let r = try Rig()
        defer { r.stop() }
        let log = r.dir + "/prio.log"
        let busy = try r.submit("probe.sleep", "300")
        #expect(waitFor(seconds: 10) { (try? r.store.task(busy.id))??.state == .running }, "the busy task holds the agent")
        let low = try r.submit("probe.append", log) { $0.priority = 0 }
        let normal = try r.submit("probe.append", log) { $0.priority = 1 }
        let critical = try r.submit("probe.append", log) { $0.priority = 3 }
        for t in [busy, low, normal, critical] { _ = try r.finished(t.id) }
        let order = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(order == [critical.id, normal.id, low.id])
    }

    @Test func backoffDoublesUpToItsCapWithJitter() {
        let b = { (n: Int, u: Double) in TaskPolicy.backoffMs(afterAttempt: n, baseMs: 100, maxMs: 1_000, unit: u) }
        #expect([1, 2, 3, 4, 5].map { b($0, 0.5) } == [100, 200, 400, 800, 1_000])
        #expect(b(1, 0) == 50 && b(1, 0.999) == 149)   // ±50% jitter
        #expect(b(60, 0.5) == 1_000)                     // no overflow far past the cap
        #expect(TaskPolicy.reassigns(PLEXUS_AGENT_CRASHED.status) && !TaskPolicy.reassigns(PLEXUS_HANDLER_FAILED.status))
    }

    @Test func aTaskWhoseAgentDiesGoesToAnotherAttemptAndIsDeadLetteredWhenItKeepsKillingIt() throws {
        let r = try Rig(instances: 2)
        defer { r.stop() }
        let t = try r.finished(try r.submit("probe.crash") { $0.maxAttempts = 2 }.id)
        #expect(t.state == .dead && t.attempts == 2)
        #expect(try r.store.attempts(of: t.id).map(\.outcome) == ["agent lost", "agent lost"])
        #expect(try r.finished(try r.submit("probe.echo", "still served").id).state == .completed)
    }
}

/// FAULTS.md 32: the host killed with SIGKILL at a random point while tasks
/// are submitted and run; on restart every acknowledged task completes,
/// each once, with its own id.
@Suite("Tasks across a host crash", .serialized)
struct TaskCrashTests {
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("plexus").path

    func startHost(_ dir: String) throws -> Process {
        let run = Process()
        run.executableURL = URL(fileURLWithPath: exe)
        try Fixtures.writeGrantingConfig(dir, read: [Fixtures.root + "/data"])
        run.arguments = ["run", "--plugins", dir + "/plugins", "--socket", dir + "/h.sock", "--store", dir + "/plexus.db",
                         "--config", dir + "/plexus.yaml"]
        run.standardError = FileHandle(forWritingAtPath: dir + "/host.log") ?? FileHandle.nullDevice
        try run.run()
        for _ in 0..<200 {
            if let c = try? SocketClient(path: dir + "/h.sock"), (try? c.call(Envelope(kind: .query, target: .capability("plexus.agents")), timeoutMs: 2000)) != nil {
                return run
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw Fixtures.FixtureError(description: "the host did not come up: \((try? String(contentsOfFile: dir + "/host.log", encoding: .utf8)) ?? "")")
    }

    func submit(_ c: SocketClient, _ i: Int, log: String) throws -> String {
        let task = JSONValue.object(["capability": .string("probe.append"), "payload": .string(log), "key": .string("job-\(i)")])
        let reply = try c.call(Envelope(kind: .query, target: .capability("plexus.tasks.submit"), payload: Array(task.text.utf8)), timeoutMs: 10_000)
        guard case .array(let a) = try JSONValue.parse(reply.payload), case .string(let id)? = a.first?["id"] else { throw Fixtures.FixtureError(description: reply.payloadString) }
        return id
    }

    @Test func everyAcknowledgedTaskCompletesExactlyOnceAfterSIGKILL() throws {
        let dir = Fixtures.dir + "/crash-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/plugins", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try Fixtures.probe(), toPath: dir + "/plugins/probe.so")
        FileManager.default.createFile(atPath: dir + "/host.log", contents: nil)
        let log = dir + "/handled.log"
        var acknowledged: [String] = []
        var host = try startHost(dir)
        // Submit one by one; SIGKILL the host at a random moment meanwhile.
        let killAfter = Double.random(in: 0.15...0.6)
        let started = Date()
        let client = try SocketClient(path: dir + "/h.sock")
        var next = 0
        while Date().timeIntervalSince(started) < killAfter {
            acknowledged.append(try submit(client, next, log: log))
            next += 1
        }
        kill(host.processIdentifier, SIGKILL)
        host.waitUntilExit()
        #expect(acknowledged.count > 0)
        host = try startHost(dir)
        defer { if host.isRunning { host.interrupt(); host.waitUntilExit() } }
        // The same keys again (a client retrying after the crash): same tasks, no new work.
        let again = try SocketClient(path: dir + "/h.sock")
        for i in 0..<next { #expect(try submit(again, i, log: log) == acknowledged[i]) }
        var done = false
        for _ in 0..<400 where !done {
            Thread.sleep(forTimeInterval: 0.05)
            let list = try again.call(Envelope(kind: .query, target: .capability("plexus.tasks.list"),
                                               payload: Array(#"{"state":"completed","limit":10000}"#.utf8)), timeoutMs: 10_000)
            guard case .array(let a) = try JSONValue.parse(list.payload) else { continue }
            done = a.count >= acknowledged.count
        }
        #expect(done, "not every acknowledged task completed after the restart")
        host.interrupt()
        host.waitUntilExit()
        let store = try Store(path: dir + "/plexus.db")
        defer { store.close() }
        let completed = try store.tasks(state: .completed, limit: 100_000)
        #expect(Set(completed.map(\.id)) == Set(acknowledged), "lost or extra tasks")
        #expect(completed.count == acknowledged.count)   // each completed once
        // The handler saw every task under its own id. A task cut off by the
        // kill (running, or done but its completion not yet on disk) reached
        // it a second time with the same id, so a handler that remembers ids
        // does each task once; none came more than twice for one kill.
        let handled = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(Set(handled) == Set(acknowledged))
        let times = Dictionary(handled.map { ($0, 1) }, uniquingKeysWith: +)
        #expect(times.values.allSatisfy { $0 <= 2 }, "\(times.filter { $0.value > 2 })")
    }
}
