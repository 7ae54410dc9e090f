import Foundation
import PlexusCore
import PlexusHost
import PlexusSocket
import PlexusStore
import PlexusTasks
import PlexusWorkflows
import Testing

/// Workflows on real sandboxed agents (Tests/Fixtures/steps.c): every
/// construct, failure and resume from checkpoints, approval, and the
/// weather crew killed with SIGKILL halfway.
@Suite("Workflows", .serialized)
struct WorkflowTests {
    final class Rig {
        let host: Host
        let store: Store
        let scheduler: Scheduler
        let engine: WorkflowEngine
        let dir: String

        init(instances: Int = 1) throws {
            dir = Fixtures.dir + "/wf-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var c = HostConfiguration(pluginsDirectory: nil)
            c.threads = 2
            let file = try Fixtures.build("steps.c", name: "steps")
            var s = c.settings(for: file)
            s.instances = instances
            Fixtures.grantWrite(dir, to: &s.policy)   // steps wait for and write marker files here
            c.plugins[PluginDescriptor.stem(of: file)] = s
            host = Host(c)
            try host.load(path: file)
            store = try Store(path: dir + "/plexus.db")
            scheduler = try Scheduler(host: host, store: store)
            engine = try WorkflowEngine(scheduler: scheduler)
            host.start()
            try scheduler.start()
            try engine.start()
        }

        func stop() { engine.stop(); scheduler.stop(); host.shutdown(); store.close() }

        func run(_ yaml: String, _ input: JSONValue? = nil) throws -> String {
            try engine.run(try WorkflowFile.parse(yaml, file: "test.yaml"), input: input).id
        }

        /// Waits (up to 20 s) until the run is no longer running, or `until` holds.
        func wait(_ id: String, until: (JSONValue) -> Bool = { _ in false }) throws -> JSONValue {
            for _ in 0..<400 {
                let s = try engine.status(id)
                if s["state"] != .string("running") || until(s) { return s }
                Thread.sleep(forTimeInterval: 0.05)
            }
            throw Fixtures.FixtureError(description: "run \(id) did not end: \(try engine.status(id).text)")
        }

        func step(_ status: JSONValue, _ name: String) -> JSONValue {
            guard case .array(let steps)? = status["steps"] else { return .null }
            return steps.first { $0["name"] == .string(name) } ?? .null
        }

        func finishedEvents(_ run: String) throws -> [String] {
            try store.events(after: 0, limit: 100_000).filter { $0.subject == run && $0.kind == "workflow.step.finished" }.map { e in
                let d = try JSONValue.parse(Array(e.data.utf8))
                return "\(d["step"].map { if case .string(let s) = $0 { s } else { "" } } ?? ""):\(d["state"]?.text ?? "")"
            }
        }
    }

    @Test func stepsConditionsParallelMergeAndFanOutProduceTheOutputs() throws {
        let rig = try Rig(instances: 3)
        defer { rig.stop() }
        let id = try rig.run("""
            workflow: constructs
            input: { words: [alpha, beta, gamma, delta, epsilon], limit: 3 }
            steps:
              first:
                call: wf.echo
                input: { count: "${len(input.words)}" }
              each:
                call: wf.echo
                for_each: input.words
                concurrency: 2
                input: "${index}:${item}"
              both:
                parallel:
                  left: { call: wf.echo, input: { side: left, n: "${steps.first.output.count}" } }
                  right: { call: wf.echo, input: { side: right } }
              joined:
                merge: both
              big:
                when: steps.first.output.count > input.limit
                call: wf.echo
                input: big
              small:
                when: steps.first.output.count <= input.limit
                call: wf.echo
                input: small
            outputs:
              all.json: "${steps.joined.output}"
              each.txt: "${join(steps.each.output, ',')}"
              branch.txt: "${steps.big.output ?? steps.small.output}"
            """)
        let s = try rig.wait(id)
        #expect(s["state"] == .string("completed"), "\(s.text)")
        #expect(rig.step(s, "small")["state"] == .string("skipped"))
        #expect(rig.step(s, "big")["state"] == .string("done"))
        let out = try rig.engine.outputs(id)
        #expect(out["each.txt"] == .string("0:alpha,1:beta,2:gamma,3:delta,4:epsilon"))
        #expect(out["branch.txt"] == .string("big"))
        // Each branch's output under its own name: they cannot overwrite each other.
        #expect(out["all.json"] == .object(["left": .object(["side": .string("left"), "n": .int(5)]), "right": .object(["side": .string("right")])]))
    }

    @Test func fanOutNeverRunsMoreItemsAtOnceThanItsLimit() throws {
        let rig = try Rig(instances: 4)
        defer { rig.stop() }
        let id = try rig.run("""
            workflow: limited
            steps:
              nap:
                call: wf.sleep
                for_each: "[150, 150, 150, 150, 150, 150]"
                concurrency: 2
                input: "${item}"
            """)
        #expect(try rig.wait(id)["state"] == .string("completed"))
        // From the store: no moment had more than two of the six attempts running.
        let tasks = try rig.store.tasks(limit: 100).filter { $0.capability == "wf.sleep" }
        #expect(tasks.count == 6)
        let spans = try tasks.flatMap { try rig.store.attempts(of: $0.id) }.map { ($0.started_unix_ns, $0.finished_unix_ns) }
        let most = spans.map { s in spans.filter { $0.0 <= s.0 && s.0 < $0.1 }.count }.max() ?? 0
        #expect(most >= 1 && most <= 2, "\(most) items ran at once")
    }

    @Test func aStepRetriesAndATimeoutFailsTheRunNamingTheStep() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let ok = try rig.run("""
            workflow: retrying
            steps:
              shaky: { call: wf.flaky, input: fine, retry: { attempts: 2, backoff_ms: 10 } }
            """)
        #expect(try rig.wait(ok)["state"] == .string("completed"))
        let shaky = try rig.store.tasks(limit: 10).first { $0.capability == "wf.flaky" }
        #expect(shaky?.attempts == 2)
        let slow = try rig.run("""
            workflow: timing-out
            steps:
              slow: { call: wf.sleep, input: "3000", timeout_ms: 200 }
              after_it: { call: wf.echo, after: [slow] }
            """)
        let s = try rig.wait(slow)
        #expect(s["state"] == .string("failed"))
        #expect(rig.step(s, "after_it")["state"] == .string("pending"))
        guard case .string(let e)? = s["error"] else { Issue.record("no error"); return }
        #expect(e.hasPrefix("step slow: its task"), "\(e)")
        #expect(e.contains("TIMEOUT"), "\(e)")
    }

    @Test func aFailedRunResumesWithoutRedoingFinishedSteps() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let marker = rig.dir + "/ready"
        let id = try rig.run("""
            workflow: resumable
            input: { marker: none }
            steps:
              before: { call: wf.echo, input: one }
              gate: { call: wf.needs_file, input: "${input.marker}", after: [before] }
              last: { call: wf.echo, input: "${steps.gate.output}" }
            """, .object(["marker": .string(marker)]))
        let failed = try rig.wait(id)
        #expect(failed["state"] == .string("failed"))
        #expect(try rig.finishedEvents(id) == ["before:\"done\"", "gate:\"failed\""])
        FileManager.default.createFile(atPath: marker, contents: nil)
        _ = try rig.engine.resume(id)
        let done = try rig.wait(id)
        #expect(done["state"] == .string("completed"), "\(done.text)")
        // "before" finished once, in the first attempt of the run; only gate and last ran again.
        #expect(try rig.finishedEvents(id) == ["before:\"done\"", "gate:\"failed\"", "gate:\"done\"", "last:\"done\""])
        #expect(throws: PlexusError.self) { _ = try rig.engine.resume(id) }   // completed: nothing to resume
    }

    @Test func aStepWaitsForApproval() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let id = try rig.run("""
            workflow: approving
            steps:
              draft: { call: wf.echo, input: draft }
              publish: { call: wf.echo, input: "${steps.draft.output}", approval: "read the draft first" }
            """)
        let waiting = try rig.wait(id) { rig.step($0, "publish")["state"] == .string("awaiting_approval") }
        #expect(rig.step(waiting, "publish")["state"] == .string("awaiting_approval"))
        #expect(throws: PlexusError.self) { try rig.engine.approve(run: id, step: "draft") }   // not awaiting
        try rig.engine.approve(run: id, step: "publish")
        #expect(try rig.wait(id)["state"] == .string("completed"))
    }

    /// A workflow file's default input path names a file in the host's
    /// directory; a sandboxed agent runs in `/`, so the host makes such a
    /// path absolute when the run starts. What names nothing stays as it is.
    @Test func relativeDefaultPathsAreResolvedInTheHostsDirectory() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let cwd = FileManager.default.currentDirectoryPath
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: cwd).sorted().first { !$0.hasPrefix(".") })
        let missing = "no-such-file-\(UUID().uuidString).csv"
        let r = try rig.engine.run(try WorkflowFile.parse("""
            workflow: paths
            input: { here: "\(name)", nowhere: "\(missing)" }
            steps:
              first: { call: wf.echo }
            """, file: "test.yaml"), input: JSONValue?.none)
        let input = try JSONValue.parse(Array(r.input.utf8))
        #expect(input["here"] == JSONValue.string(cwd + "/" + name))
        #expect(input["nowhere"] == JSONValue.string(missing))
        _ = try rig.wait(r.id)
    }
}

/// The main job's workflow on the real crew (Plugins/, built by
/// Plugins/build.sh), its host killed with SIGKILL at a random moment.
@Suite("Workflow crash", .serialized)
struct WorkflowCrashTests {
    let host = TaskCrashTests()

    func ask(_ c: SocketClient, _ capability: String, _ args: JSONValue) throws -> JSONValue {
        let reply = try c.call(Envelope(kind: .query, target: .capability(capability), payload: Array(args.text.utf8)), timeoutMs: 20_000)
        return try JSONValue.parse(reply.payload)
    }

    func waitForEnd(_ c: SocketClient, _ id: String) throws -> JSONValue {
        for _ in 0..<600 {
            let s = try ask(c, "plexus.workflows.status", .object(["id": .string(id)]))
            if s["state"] != .string("running") { return s }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw Fixtures.FixtureError(description: "run \(id) did not end")
    }

    @Test func theWeatherReportKilledHalfwayResumesWithNoStepRedoneAndTheSameReport() throws {
        let dir = Fixtures.dir + "/wfcrash-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/plugins", withIntermediateDirectories: true)
        for p in ["collector", "cleaner", "analyst", "visualiser", "reporter"] {
            let built = Fixtures.root + "/Plugins/\(p).so"
            try #require(FileManager.default.fileExists(atPath: built), "\(built) is missing: run Plugins/build.sh first")
            try FileManager.default.copyItem(atPath: built, toPath: dir + "/plugins/\(p).so")
        }
        FileManager.default.createFile(atPath: dir + "/host.log", contents: nil)
        let source = try String(contentsOfFile: Fixtures.root + "/workflows/weather-report.yaml", encoding: .utf8)
        let data = Fixtures.root + "/data/seattle-weather/seattle-weather.csv"
        func start(_ c: SocketClient, pace: Int) throws -> String {
            // Not the flaky source: a kill inside collect's second attempt,
            // then the new host's collector failing its own first read, would
            // spend collect's three attempts on the flakiness alone (one run in
            // a few dozen), and this test is about the resume.
            let args = JSONValue.object(["source": .string(source), "file": .string("weather-report.yaml"),
                                         "input": .object(["path": .string(data), "pace_ms": .int(Int64(pace)), "flaky_source": .bool(false)])])
            guard case .string(let id)? = try ask(c, "plexus.workflows.run", args)["id"] else { throw Fixtures.FixtureError(description: "no run id") }
            return id
        }

        var h = try host.startHost(dir)
        // pace 60: the 48 months take at least 0.72 s to clean, 4 at once, so
        // the kill lands mid-run: before, during or after the fan-out's first items.
        let id = try start(try SocketClient(path: dir + "/h.sock"), pace: 60)
        Thread.sleep(forTimeInterval: Double.random(in: 0.1...0.7))
        kill(h.processIdentifier, SIGKILL)
        h.waitUntilExit()

        // What was checkpointed before the kill.
        var before: [String: Int64] = [:]
        do {
            let store = try Store(path: dir + "/plexus.db")
            defer { store.close() }
            for c in try store.checkpoints(of: id) where c.state == "done" { before["\(c.step)/\(c.item)"] = c.finished_unix_ns }
            #expect(try store.run(id)?.state == "running")
        }

        h = try host.startHost(dir)   // resumes the run by itself
        defer { if h.isRunning { h.interrupt(); h.waitUntilExit() } }
        let c = try SocketClient(path: dir + "/h.sock")
        let resumed = try waitForEnd(c, id)
        #expect(resumed["state"] == .string("completed"), "\(resumed.text)")
        #expect(resumed["generation"] == .int(0))
        let reference = try start(c, pace: 0)
        #expect(try waitForEnd(c, reference)["state"] == .string("completed"))
        let a = try ask(c, "plexus.workflows.outputs", .object(["id": .string(id)]))
        let b = try ask(c, "plexus.workflows.outputs", .object(["id": .string(reference)]))
        #expect(a == b, "the resumed run's report differs from an uninterrupted run's")
        guard case .string(let html)? = a["report.html"] else { Issue.record("no report.html"); return }
        #expect(html.contains("<svg") && html.contains("Data quality"))
        h.interrupt()
        h.waitUntilExit()

        let store = try Store(path: dir + "/plexus.db")
        defer { store.close() }
        // Nothing checkpointed before the kill was checkpointed again.
        for c in try store.checkpoints(of: id) where before["\(c.step)/\(c.item)"] != nil {
            #expect(c.finished_unix_ns == before["\(c.step)/\(c.item)"], "\(c.step) item \(c.item) was redone")
        }
        // Every step finished exactly once over both lives of the host.
        let finished = try store.events(after: 0, limit: 100_000).filter { $0.subject == id && $0.kind == "workflow.step.finished" }
        let steps = finished.compactMap { e -> String? in
            guard case .string(let s)? = (try? JSONValue.parse(Array(e.data.utf8)))?["step"] else { return nil }
            return s
        }
        #expect(steps.count == Set(steps).count, "a step finished twice: \(steps)")
        #expect(Set(steps).count == 9)
        // One task per step (per item of the fan-out): keys made resubmission idempotent.
        let tasks = try store.tasks(limit: 10_000).filter { $0.idempotency_key?.hasPrefix("wf/\(id)/") == true }
        #expect(tasks.count == 1 + 48 + 2 + 1 + 1 + 1)
        #expect(tasks.allSatisfy { $0.state == .completed })
    }
}

