import Foundation
import PlexusCore
import PlexusHost
import PlexusStore
import PlexusTasks
import PlexusWorkflows
import Testing

/// Which failures are retried (TaskPolicy), and that a retry is seen: a
/// failure no retry can fix ends the task at once and says why, a step may
/// ask to retry it anyway, an agent's own UNAVAILABLE waits the backoff the
/// file sets, and `workflow status` counts attempts and the last failure.
@Suite("Retries", .serialized)
struct RetryTests {
    // MARK: the policy, pure

    @Test func failuresNoRetryCanFixAreNotRetriedUnlessNamed() {
        for s in [PLEXUS_INVALID_ARGUMENT, PLEXUS_ARITY_MISMATCH, PLEXUS_TYPE_MISMATCH, PLEXUS_PERMISSION_DENIED, PLEXUS_NO_SUCH_AGENT, PLEXUS_TOO_LARGE] {
            #expect(!TaskPolicy.retries(s.status, byHost: false, retryOn: nil), "\(statusName(s.status))")
            #expect(TaskPolicy.retries(s.status, byHost: false, retryOn: [statusName(s.status)]))
        }
        for s in [PLEXUS_HANDLER_FAILED, PLEXUS_TIMEOUT, PLEXUS_INTERNAL, PLEXUS_MAILBOX_FULL, PLEXUS_UNAVAILABLE] {
            #expect(TaskPolicy.retries(s.status, byHost: false, retryOn: nil), "\(statusName(s.status))")
        }
        // A capability nobody provides yet: each attempt waits for a provider (NoProviderTests).
        #expect(TaskPolicy.retries(PLEXUS_NO_SUCH_CAPABILITY.status, byHost: true, retryOn: nil))
        // retry_on is the whole list: what it does not name is not retried...
        #expect(!TaskPolicy.retries(PLEXUS_TIMEOUT.status, byHost: false, retryOn: ["INVALID_ARGUMENT"]))
        // ...but a task whose agent the host lost always goes to another.
        #expect(TaskPolicy.retries(PLEXUS_AGENT_CRASHED.status, byHost: true, retryOn: ["INVALID_ARGUMENT"]))
        #expect(TaskPolicy.whyNotRetried(PLEXUS_INVALID_ARGUMENT.status, retryOn: nil).hasPrefix("not retried: INVALID_ARGUMENT cannot succeed on retry"))
        #expect(TaskPolicy.whyNotRetried(PLEXUS_TIMEOUT.status, retryOn: ["HANDLER_FAILED"]) == "not retried: TIMEOUT is not in its retry_on (HANDLER_FAILED)")
    }

    @Test func onlyTheHostsOwnAnswerReassignsWithoutBackoff() {
        #expect(TaskPolicy.reassigns(PLEXUS_UNAVAILABLE.status, byHost: true))
        #expect(!TaskPolicy.reassigns(PLEXUS_UNAVAILABLE.status, byHost: false))   // "the source is busy": backoff applies
        #expect(!TaskPolicy.reassigns(PLEXUS_SHUTTING_DOWN.status, byHost: false))
    }

    @Test func retryOnNamesAreChecked() throws {
        #expect(TaskPolicy.checkRetryOn(["TIMEOUT", "INVALID_ARGUMENT"]) == nil)
        #expect(TaskPolicy.checkRetryOn(["INVALID_ARGUMNT"])?.contains("did you mean INVALID_ARGUMENT?") == true)
        do {
            _ = try TaskSpec(json: try JSONValue.parse(Array(#"{"capability": "a.b", "retry_on": ["TIMEOUTS"]}"#.utf8)))
            Issue.record("a misspelt status was accepted")
        } catch {
            #expect(error.detail.contains("task field \"retry_on\": 'TIMEOUTS' is not a status (did you mean TIMEOUT?)"), "\(error.detail)")
        }
        let spec = try TaskSpec(json: try JSONValue.parse(Array(#"{"capability": "a.b", "retry_on": ["TIMEOUT"]}"#.utf8)))
        #expect(spec.retryOn == ["TIMEOUT"])
    }

    // MARK: on real workers

    @Test func anInvalidArgumentEndsTheStepAtOnceAndSaysWhy() throws {
        let rig = try WorkflowTests.Rig()
        defer { rig.stop(); try? FileManager.default.removeItem(atPath: rig.dir) }
        let id = try rig.run("""
            workflow: no-retry
            steps:
              gate: { call: wf.needs_file, input: /nonexistent/file, retry: { attempts: 3, backoff_ms: 10 } }
            """)
        let s = try rig.wait(id)
        #expect(s["state"] == .string("failed"))
        guard case .string(let e)? = s["error"] else { Issue.record("no error: \(s.text)"); return }
        #expect(e.contains("after 1 attempt(s)"), "\(e)")
        #expect(e.contains("INVALID_ARGUMENT: the file is missing (not retried: INVALID_ARGUMENT cannot succeed on retry"), "\(e)")
        let task = try #require(try rig.store.tasks(limit: 10).first { $0.capability == "wf.needs_file" })
        #expect(task.attempts == 1 && task.state == .dead)
        let kinds = try rig.store.events(after: 0, limit: 10_000).filter { $0.subject == task.id }.map(\.kind)
        #expect(kinds.contains("task.not_retried") && !kinds.contains("task.retried"), "\(kinds)")
        #expect(rig.step(s, "gate")["attempts"] == .int(1))
    }

    @Test func aStepThatNamesTheStatusIsRetriedOnIt() throws {
        let rig = try WorkflowTests.Rig()
        defer { rig.stop(); try? FileManager.default.removeItem(atPath: rig.dir) }
        let id = try rig.run("""
            workflow: retry-anyway
            steps:
              gate: { call: wf.needs_file, input: /nonexistent/file, retry: { attempts: 3, backoff_ms: 10, on: [INVALID_ARGUMENT] } }
            """)
        let s = try rig.wait(id)
        #expect(s["state"] == .string("failed"))
        let task = try #require(try rig.store.tasks(limit: 10).first { $0.capability == "wf.needs_file" })
        #expect(task.attempts == 3, "\(task)")
        #expect(task.retryOn == ["INVALID_ARGUMENT"])
        #expect(rig.step(s, "gate")["attempts"] == .int(3))
    }

    @Test func anAgentsOwnUnavailableWaitsTheBackoffAndTheRetryShowsInStatus() throws {
        let rig = try WorkflowTests.Rig()
        defer { rig.stop(); try? FileManager.default.removeItem(atPath: rig.dir) }
        let id = try rig.run("""
            workflow: busy-source
            steps:
              collect: { call: wf.busy, input: data, retry: { attempts: 3, backoff_ms: 100 } }
            """)
        let s = try rig.wait(id)
        #expect(s["state"] == .string("completed"), "\(s.text)")
        let task = try #require(try rig.store.tasks(limit: 10).first { $0.capability == "wf.busy" })
        let retried = try rig.store.events(after: 0, limit: 10_000).filter { $0.subject == task.id && $0.kind == "task.retried" }
        #expect(retried.count == 1)
        let data = try JSONValue.parse(Array((retried.first?.data ?? "{}").utf8))
        // 100 ms jittered to [50, 150): what the file says, not the 0 of a lost agent.
        guard case .int(let backoff)? = data["backoff_ms"] else { Issue.record("no backoff_ms: \(data.text)"); return }
        #expect((50..<150).contains(backoff), "backoff_ms=\(backoff)")
        // The run is over: its status comes from the store, attempts included.
        let step = rig.step(try rig.engine.status(id), "collect")
        #expect(step["attempts"] == .int(2))
        #expect(step["last_error"] == .string("UNAVAILABLE: the source is busy; try again"))
    }
}
