import FoundationEssentials
import Glibc
import PlexusCore
import PlexusHost
import PlexusStore
import PlexusTasks
import PlexusThreads
import PlexusWorkflows

private typealias Host = PlexusHost.Host

/// `workflow_steps_per_s`: a for_each step's items run as durable tasks on
/// sandboxed agents, each checkpointed before the run goes on; and
/// `workflow_checkpoint_us`: what one checkpoint costs when it is alone in
/// its transaction (fsync'd), beside one bare fsync'd SQLite transaction.
extension BenchCommand {
    func workflows(pong: String, items: Int) throws {
        let dir = "/tmp/plexus-bench-workflows-\(getpid())"
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        let rate = try median { () throws -> Int in
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            return try workflowRun(pong: pong, store: dir + "/plexus.db", items: items)
        }
        print("workflow_steps_per_s: \(rate) steps/s (one for_each step of \(items) items, 256 at once, each a durable task "
              + "on 2 sandboxed C agents, each checkpointed)")
        let (checkpoint, bare) = try checkpointCost(dir + "/cost.db", count: 1_000)
        print("workflow_checkpoint_us: \(checkpoint) µs per checkpoint alone in its transaction "
              + "(floor: one fsync'd SQLite transaction: \(bare) µs; the engine writes all checkpoints of a turn in one; \(ratio(Double(checkpoint), Double(bare), "floor")))")
    }

    private func workflowRun(pong: String, store path: String, items: Int) throws -> Int {
        let (h, store, scheduler) = try durableHost(pong: pong, store: path)
        let engine = try WorkflowEngine(scheduler: scheduler)
        h.start()
        try scheduler.start()
        try engine.start()
        defer { engine.stop(); scheduler.stop(); h.shutdown(); store.close() }
        let yaml = """
            workflow: bench
            steps:
              each: { call: bench.pong0, for_each: input.items, concurrency: 256, input: x }
            """
        let w: Workflow
        do { w = try WorkflowFile.parse(yaml, file: "bench.yaml") } catch { throw CLIError(error.description) }
        let t0 = Clock.monotonicNanos()
        let run = try engine.run(w, input: .object(["items": .array((0..<items).map { .int(Int64($0)) })]))
        while true {
            let st = try engine.status(run.id)
            if st["state"] == .string("completed") { break }
            if st["state"] != .string("running") { throw CLIError("the bench run ended \(st.text)") }
            if Clock.monotonicNanos() - t0 > 120_000_000_000 { throw CLIError("the bench run did not finish within 120 s") }
            usleep(5_000)
        }
        return Int(Double(items) / (Double(Clock.monotonicNanos() - t0) / 1e9))
    }

    private func checkpointCost(_ path: String, count: Int) throws -> (Int, Int) {
        let store: Store
        do { store = try Store(path: path) } catch { throw CLIError(error.description) }
        defer { store.close() }
        let output = JSONValue.object(["month": .string("2012-01"), "kept": .int(31), "csv": .string(String(repeating: "2012-01-01,0,12.8,5,4.7,sun\n", count: 31))]).text
        var t0 = Clock.monotonicNanos()
        for i in 0..<count {
            let c = CheckpointRecord(run_id: "bench", step: "clean", item: i, state: "done", output: output, error: nil, task_id: nil,
                                     started_unix_ns: 0, finished_unix_ns: 0)
            try store.commit { db in try c.save(db) }
        }
        let checkpoint = Int(Double(Clock.monotonicNanos() - t0) / 1e3 / Double(count))
        t0 = Clock.monotonicNanos()
        for i in 0..<count { try store.put("floor", "k\(i)", [1]) }
        return (checkpoint, Int(Double(Clock.monotonicNanos() - t0) / 1e3 / Double(count)))
    }
}
