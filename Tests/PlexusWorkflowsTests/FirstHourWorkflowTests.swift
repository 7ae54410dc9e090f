import PlexusConfig
import PlexusCore
import Testing
@testable import PlexusWorkflows

/// Workflow files and inputs as a new user gives them: a missing file, a
/// key twice, retry.on, and a relative path typed in another directory.
@Suite struct FirstHourWorkflowTests {
    func refusal(_ yaml: String) -> String {
        do { _ = try WorkflowFile.parse(yaml, file: "wf.yaml"); return "accepted" } catch { return error.description }
    }

    @Test func aMissingWorkflowFileSaysSoWithoutAPosition() {
        do { _ = try WorkflowFile.load(path: "/nonexistent.yaml"); Issue.record("read") } catch {
            #expect(error.description == "cannot read /nonexistent.yaml: no such file or directory")
        }
    }

    @Test func aStepGivenTwiceNamesItsSecondLine() {
        let e = refusal("""
            workflow: twice
            steps:
              a: { call: x.a }
              b: { call: x.b }
              a: { call: x.c }
            """)
        #expect(e == "wf.yaml:5:3: 'a' is given twice in one mapping (first at line 3); keep one", "\(e)")
    }

    @Test func retryOnTakesStatusNamesChecked() throws {
        let w = try WorkflowFile.parse("""
            workflow: r
            steps:
              a: { call: x.a, retry: { attempts: 3, on: [INVALID_ARGUMENT, TIMEOUT] } }
              b: { call: x.b }
            """, file: "wf.yaml")
        #expect(w.step("a")?.retryOn == ["INVALID_ARGUMENT", "TIMEOUT"])
        #expect(w.step("b")?.retryOn == nil)
        let e = refusal("""
            workflow: r
            steps:
              a:
                call: x.a
                retry: { attempts: 3, on: [INVALID_ARGUMNT] }
            """)
        #expect(e.hasPrefix("wf.yaml:5:32: steps.a.retry.on: 'INVALID_ARGUMNT' is not a status (did you mean INVALID_ARGUMENT?)"), "\(e)")
    }

    @Test func relativePathsThatExistWhereTheCLIRunsBecomeAbsolute() {
        let input = JSONValue.object([
            "path": .string("mine.csv"), "missing": .string("nothere.csv"), "url": .string("https://x/y.csv"),
            "list": .array([.string("./sub/../mine.csv"), .int(3)]), "abs": .string("/etc/hosts"),
        ])
        let (out, changed) = InputPaths.absolutize(input, cwd: "/home/me/work", exists: { $0 == "/home/me/work/mine.csv" })
        #expect(out["path"] == .string("/home/me/work/mine.csv"))
        #expect(out["missing"] == .string("nothere.csv"))   // the host's directory reads it, and its error says so
        #expect(out["url"] == .string("https://x/y.csv"))
        #expect(out["abs"] == .string("/etc/hosts"))
        #expect(out["list"] == .array([.string("/home/me/work/mine.csv"), .int(3)]))
        #expect(changed.map(\.field) == ["input.list[0]", "input.path"])
    }

    @Test func attemptsCountTheNewestGenerationOfEachStepAndAllItsItems() {
        let tally = RunAttempts.tally([
            (key: "wf/r/0/collect", attempts: 2, state: "completed", error: "UNAVAILABLE: busy"),
            (key: "wf/r/0/gate", attempts: 3, state: "dead", error: "TIMEOUT: slow"),
            (key: "wf/r/0/clean/0", attempts: 1, state: "completed", error: nil),
            (key: "wf/r/0/clean/1", attempts: 2, state: "completed", error: "HANDLER_FAILED: once"),
            (key: "wf/r/1/gate", attempts: 1, state: "completed", error: nil),   // resumed: tried afresh
        ])
        #expect(tally["collect"] == RunAttempts.Tally(attempts: 2, lastError: "UNAVAILABLE: busy"))
        #expect(tally["clean"] == RunAttempts.Tally(attempts: 3, lastError: "HANDLER_FAILED: once"))
        #expect(tally["gate"] == RunAttempts.Tally(attempts: 1, lastError: nil))
        let status = RunAttempts.annotate(.object(["steps": .array([.object(["name": .string("collect")]), .object(["name": .string("idle")])])]), tally)
        #expect(status["steps"] == .array([.object(["name": .string("collect"), "attempts": .int(2), "last_error": .string("UNAVAILABLE: busy")]),
                                          .object(["name": .string("idle")])]))
    }

    /// A finished run's status comes from its checkpoints, and a failed step
    /// has none: its dead task turns "pending" into "failed", with the error.
    @Test func aStepWhoseTaskDiedShowsAsFailedNotPending() {
        let tally = RunAttempts.tally([(key: "wf/r/0/typo", attempts: 1, state: "dead", error: "NO_SUCH_CAPABILITY: no agent provides txt.upper")])
        #expect(tally["typo"]?.failed == true)
        let status = RunAttempts.annotate(.object(["steps": .array([.object(["name": .string("typo"), "state": .string("pending")])])]), tally)
        #expect(status["steps"] == .array([.object(["name": .string("typo"), "state": .string("failed"), "attempts": .int(1),
                                                    "last_error": .string("NO_SUCH_CAPABILITY: no agent provides txt.upper"),
                                                    "error": .string("NO_SUCH_CAPABILITY: no agent provides txt.upper")])]))
    }
}
