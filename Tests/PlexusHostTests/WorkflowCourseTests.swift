import Foundation
import PlexusCore
import PlexusStore
import PlexusTasks
import PlexusWorkflows
import Testing

/// Loops, sub-workflows, signals and cancel on real sandboxed agents
/// (Tests/Fixtures/steps.c), in process (WorkflowTests.Rig).
@Suite("Workflows that change course", .serialized)
struct WorkflowCourseTests {
    typealias Rig = WorkflowTests.Rig

    func tasks(_ rig: Rig, _ run: String) throws -> [TaskRecord] {
        try rig.store.tasks(limit: 10_000).filter { $0.idempotency_key?.hasPrefix("wf/\(run)/") == true }
    }

    @Test func aLoopRunsUntilItsConditionHoldsReadingItsLastOutput() throws {
        let rig = try Rig()
        defer { rig.stop() }
        // Each run echoes a count one higher than the last: 1, 2, 3, then until holds.
        let id = try rig.run("""
            workflow: counting
            steps:
              count:
                call: wf.echo
                input: { n: "${(steps.count.output.n ?? 0) + 1}" }
                repeat: { until: "steps.count.output.n >= 3", max: 10 }
              report: { call: wf.echo, input: { n: "${steps.count.output.n}", runs: "${steps.count.iterations}" } }
              bounded:
                call: wf.echo
                input: same
                repeat: { until: "steps.bounded.output == 'never'", max: 2 }
            outputs:
              report.json: "${steps.report.output}"
            """)
        let s = try rig.wait(id)
        #expect(s["state"] == .string("completed"), "\(s.text)")
        #expect(try rig.engine.outputs(id)["report.json"] == .object(["n": .int(3), "runs": .int(3)]))
        #expect(rig.step(s, "count")["iterations"] == .int(3))
        #expect(rig.step(s, "count")["kind"] == .string("repeat"))
        // A condition that never holds ends at max: the step is done with its last output.
        #expect(rig.step(s, "bounded")["iterations"] == .int(2))
        #expect(rig.step(s, "bounded")["state"] == .string("done"))
        // One task per run of the loop, keyed by its number.
        let keys = try tasks(rig, id).compactMap(\.idempotency_key).filter { $0.contains("/count/") }.sorted()
        #expect(keys == ["wf/\(id)/0/count/0", "wf/\(id)/0/count/1", "wf/\(id)/0/count/2"])
    }

    @Test func aSubWorkflowRunsAsItsOwnLinkedRunAndItsOutputsAreTheStepsOutput() throws {
        let rig = try Rig()
        defer { rig.stop() }
        try FileManager.default.createDirectory(atPath: rig.dir + "/lib", withIntermediateDirectories: true)
        try """
            workflow: child
            input: { n: 0 }
            steps:
              twice: { call: wf.echo, input: { doubled: "${input.n * 2}" } }
            outputs:
              result: "${steps.twice.output.doubled}"
            """.write(toFile: rig.dir + "/lib/child.yaml", atomically: true, encoding: .utf8)
        try """
            workflow: parent
            steps:
              first: { call: wf.echo, input: { n: 21 } }
              sub: { workflow: lib/child.yaml, input: { n: "${steps.first.output.n}" } }
              last: { call: wf.echo, input: "${steps.sub.output.result}" }
            outputs:
              answer.txt: "${steps.last.output}"
            """.write(toFile: rig.dir + "/parent.yaml", atomically: true, encoding: .utf8)
        let id = try rig.engine.run(try WorkflowFile.load(path: rig.dir + "/parent.yaml"), input: nil).id
        let s = try rig.wait(id)
        #expect(s["state"] == .string("completed"), "\(s.text)")
        let answer = try rig.engine.outputs(id)["answer.txt"]
        #expect(answer == .int(42), "\(answer?.text ?? "none")")
        let sub = rig.step(s, "sub")
        #expect(sub["kind"] == .string("workflow"))
        guard case .string(let child)? = sub["run"] else { Issue.record("no sub-run in \(sub.text)"); return }
        let c = try rig.engine.status(child)
        #expect(c["state"] == .string("completed"))
        #expect(c["parent_run"] == .string(id) && c["parent_step"] == .string("sub"))
        #expect(try rig.store.childRuns(of: id).map(\.id) == [child])
        // Its own checkpoints and its own task keys.
        #expect(try rig.store.checkpoints(of: child).contains { $0.step == "twice" && $0.state == "done" })
        #expect(try tasks(rig, child).count == 1)
    }

    @Test func aSignalSentBeforeTheStepWaitsIsKeptAndAWaitCanTimeOut() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let id = try rig.run("""
            workflow: signalled
            steps:
              slow: { call: wf.sleep, input: "300" }
              go: { wait_for: go, after: [slow] }
              use: { call: wf.echo, input: "${steps.go.output.who}" }
            """)
        // A name no step waits for could never be taken: refused, naming those that are.
        #expect { try rig.engine.signal(run: id, name: "og", payload: .null) } throws: {
            ($0 as? PlexusError)?.detail == "run \(id) of signalled has no step waiting for a signal 'og'; its wait_for steps wait for go"
        }
        try rig.engine.signal(run: id, name: "go", payload: .object(["who": .string("ops")]))   // slow still runs: nobody waits yet
        let kept = try rig.engine.status(id)
        #expect(kept["signals_pending"] == .array([.string("go")]) || rig.step(kept, "go")["state"] == .string("done"), "\(kept.text)")
        let s = try rig.wait(id)
        #expect(s["state"] == .string("completed"), "\(s.text)")
        #expect(rig.step(s, "use")["state"] == .string("done"))
        let sigs = try rig.store.signals(of: id)
        #expect(sigs.count == 1 && sigs[0].step == "go")
        // A finished run takes no signal; an unknown one neither.
        #expect { try rig.engine.signal(run: id, name: "go", payload: .null) } throws: { ($0 as? PlexusError)?.detail.contains("is completed; only a running run can be signalled") == true }
        #expect { try rig.engine.signal(run: "nope", name: "go", payload: .null) } throws: { ($0 as? PlexusError)?.detail == "no workflow run nope" }

        let timing = try rig.run("""
            workflow: impatient
            steps:
              go: { wait_for: never, timeout_ms: 300 }
            """)
        let t = try rig.wait(timing)
        #expect(t["state"] == .string("failed"))
        #expect(rig.step(t, "go")["error"] == .string("no signal 'never' came within 300 ms"), "\(t.text)")
    }

    @Test func cancelEndsTheRunItsStartedStepsTheirQueuedTasksAndItsSubRuns() throws {
        let rig = try Rig(instances: 2)
        defer { rig.stop() }
        try """
            workflow: inner
            steps:
              hold: { wait_for: never }
            """.write(toFile: rig.dir + "/inner.yaml", atomically: true, encoding: .utf8)
        try """
            workflow: cancellable
            steps:
              slow: { call: wf.sleep, input: "3000" }
              nobody: { call: wf.nobody_provides, timeout_ms: 60000 }
              gate: { wait_for: go }
              sub: { workflow: inner.yaml }
              later: { call: wf.echo, after: [slow] }
            """.write(toFile: rig.dir + "/outer.yaml", atomically: true, encoding: .utf8)
        let id = try rig.engine.run(try WorkflowFile.load(path: rig.dir + "/outer.yaml"), input: nil).id
        let started = try rig.wait(id) { s in
            rig.step(s, "gate")["state"] == .string("waiting") && rig.step(s, "sub")["run"] != nil
                && (try? tasks(rig, id).contains { $0.capability == "wf.sleep" && $0.state == .running }) == true
        }
        guard case .string(let child)? = rig.step(started, "sub")["run"] else { Issue.record("no sub-run: \(started.text)"); return }
        try rig.engine.cancel(run: id)
        let s = try rig.engine.status(id)
        #expect(s["state"] == .string("cancelled"))
        for step in ["slow", "nobody", "gate", "sub"] { #expect(rig.step(s, step)["state"] == .string("cancelled"), "\(step): \(s.text)") }
        #expect(rig.step(s, "later")["state"] == .string("pending"))
        // The queued task went through the scheduler's cancel; the sub-run is cancelled too.
        let nobody = try #require(try tasks(rig, id).first { $0.capability == "wf.nobody_provides" })
        #expect(nobody.state == .cancelled)
        #expect(try rig.wait(child)["state"] == .string("cancelled"))
        // Read back from the store once the engine let it go, it still says so.
        #expect(waitFor(seconds: 20) { (try? rig.engine.list(limit: 10).first { $0["id"] == .string(id) }?["steps"]) == .array([]) })
        let stored = try rig.engine.status(id)
        #expect(stored["state"] == .string("cancelled"))
        #expect(rig.step(stored, "slow")["state"] == .string("cancelled"), "\(stored.text)")
        #expect { try rig.engine.cancel(run: id) } throws: { ($0 as? PlexusError)?.detail.contains("is cancelled; only a running run can be cancelled") == true }
        #expect { try rig.engine.resume(id) } throws: { ($0 as? PlexusError)?.detail.contains("was cancelled") == true }
    }

    /// `plexus tasks cancel` of a step's task: the step shows cancelled
    /// (it showed pending before), the run fails and can be resumed.
    @Test func aStepWhoseTaskIsCancelledShowsCancelled() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let id = try rig.run("""
            workflow: by-hand
            steps:
              nobody: { call: wf.nobody_provides, timeout_ms: 60000 }
            """)
        var task: TaskRecord?
        #expect(waitFor(seconds: 20) { task = try? tasks(rig, id).first; return task != nil })
        _ = try rig.scheduler.cancel(try #require(task).id)
        let s = try rig.wait(id)
        #expect(s["state"] == .string("failed"))
        #expect(rig.step(s, "nobody")["state"] == .string("cancelled"), "\(s.text)")
        #expect(waitFor(seconds: 20) { (try? rig.engine.list(limit: 10).first { $0["id"] == .string(id) }?["steps"]) == .array([]) })
        #expect(rig.step(try rig.engine.status(id), "nobody")["state"] == .string("cancelled"))
    }
}
