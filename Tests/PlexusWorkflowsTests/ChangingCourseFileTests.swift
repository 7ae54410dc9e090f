import Foundation
import PlexusConfig
import PlexusCore
import PlexusTestSupport
import Testing
@testable import PlexusWorkflows

/// What `plexus workflow check` says about loops, sub-workflows and
/// signal waits: each mistake named with file, line, field; sub-workflow
/// files read relative to the file naming them; a circle of files refused.
@Suite struct ChangingCourseFileTests {
    func refusal(_ yaml: String) -> String {
        do { _ = try WorkflowFile.parse(yaml, file: "wf.yaml", includes: [:]); return "accepted" } catch { return error.description }
    }

    @Test func aLoopReadsItsOwnLastOutputAndWaitsForWhatElseItReads() throws {
        let w = try WorkflowFile.parse("""
            workflow: loops
            steps:
              seed: { call: x.seed }
              poll:
                call: x.poll
                input: { last: "${steps.poll.output}", seed: "${steps.seed.output}" }
                repeat: { until: "steps.poll.output.ready || steps.poll.iterations >= input.most", max: 5 }
              after_it: { call: x.done, input: "${steps.poll.output}" }
            """, file: "wf.yaml", includes: [:])
        let poll = try #require(w.step("poll"))
        #expect(poll.repeatMax == 5)
        #expect(poll.after == ["seed"])   // its own output is no dependency
        #expect(poll.kindName == "repeat")
        #expect(w.step("after_it")?.after == ["poll"])
        let mermaid = WorkflowGraph.mermaid(w)
        #expect(mermaid.contains("poll -.->|repeat until steps.poll.output.ready ¦¦ steps.poll.iterations >= input.most (≤5)| poll"), "\(mermaid)")
        #expect(WorkflowGraph.dot(w).contains("\"poll\" -> \"poll\" [label=\"repeat until"))
        // The dashboard's graph: the loop's node says so; no edge into itself to lay out.
        guard case .array(let nodes)? = WorkflowGraph.json(w)["nodes"], case .array(let edges)? = WorkflowGraph.json(w)["edges"] else { Issue.record("no graph"); return }
        #expect(nodes.first { $0["name"] == .string("poll") }?["shape"] == .string("repeat"))
        #expect(!edges.contains { $0["from"] == $0["to"] })
    }

    @Test func loopMistakesAreRefusedWithFileLineAndField() {
        let cases: [(String, String)] = [
            ("workflow: w\nsteps:\n  a:\n    call: x.a\n    repeat: { until: \"steps.a.output.ok\" }\n",
             "wf.yaml:5:13: steps.a.repeat.max: missing: bound the loop (max: N, 1 to 10000)"),
            ("workflow: w\nsteps:\n  a:\n    call: x.a\n    repeat: { until: \"steps.a.output.ok\", max: 0 }\n",
             "wf.yaml:5:48: steps.a.repeat.max: 0 is out of range 1...10000"),
            ("workflow: w\nsteps:\n  a:\n    call: x.a\n    repeat: { until: \"steps.a.output.ok\", max: 1000000 }\n",
             "steps.a.repeat.max: 1000000 is out of range 1...10000"),
            ("workflow: w\nsteps:\n  a:\n    call: x.a\n    repeat: { max: 3 }\n",
             "steps.a.repeat.until: missing: the condition that ends the loop"),
            ("workflow: w\nsteps:\n  a:\n    call: x.a\n    repeat: { until: \"steps.a.output >\", max: 3 }\n",
             "wf.yaml:5:39: steps.a.repeat.until: the expression ends where a value was expected"),
            ("workflow: w\nsteps:\n  a:\n    call: x.a\n    repeat: { until: \"steps.nope.output\", max: 3 }\n",
             "steps.a.repeat.until: no step named 'nope'"),
            ("workflow: w\nsteps:\n  a:\n    call: x.a\n    repeat: { until: \"true\", max: 3, every: 2 }\n",
             "steps.a.repeat.every: unknown field; expected one of: until, max"),
            ("workflow: w\nsteps:\n  a:\n    call: x.a\n    for_each: \"[1, 2]\"\n    repeat: { until: \"true\", max: 3 }\n",
             "steps.a.repeat: repeat goes with call: alone (not with for_each)"),
            ("workflow: w\nsteps:\n  b: { call: x.b }\n  a:\n    call: x.a\n    input: \"${steps.b.output}\"\n    after: [b]\n  c:\n    call: x.c\n    input: \"${steps.c.output}\"\n",
             "steps.c.input: a step cannot read its own output (steps.c)"),
        ]
        for (yaml, expected) in cases {
            let got = refusal(yaml)
            #expect(got.contains(expected), "\(yaml)\n→ \(got)")
        }
    }

    @Test func signalWaitMistakesAreRefused() throws {
        let w = try WorkflowFile.parse("""
            workflow: waits
            steps:
              go: { wait_for: release.v2, timeout_ms: 5000 }
              forever: { wait_for: other }
              use: { call: x.use, input: "${steps.go.output.who}" }
            """, file: "wf.yaml", includes: [:])
        #expect(w.step("go")?.kind == .wait("release.v2"))
        #expect(w.step("go")?.waitTimeoutMs == 5000)
        #expect(w.step("forever")?.waitTimeoutMs == nil)
        #expect(WorkflowGraph.mermaid(w).contains("go([\"go<br/>waits for signal release.v2 (≤5000 ms)\"])"))
        let cases: [(String, String)] = [
            ("workflow: w\nsteps:\n  a: { wait_for: \"no spaces\" }\n", "wf.yaml:3:18: steps.a.wait_for: 'no spaces' is not a usable signal name"),
            ("workflow: w\nsteps:\n  a: { wait_for: go, input: 1 }\n", "steps.a.input: input goes with call:; a wait_for step has none"),
            ("workflow: w\nsteps:\n  a: { wait_for: go, call: x.a }\n", "steps.a: a wait_for step cannot also have call"),
            ("workflow: w\nsteps:\n  a: { wait_for: go, timeout_ms: 0 }\n", "steps.a.timeout_ms: 0 is out of range"),
        ]
        for (yaml, expected) in cases {
            let got = refusal(yaml)
            #expect(got.contains(expected), "\(yaml)\n→ \(got)")
        }
    }

    @Test func subWorkflowsAreReadRelativeToTheirFileAndACircleIsRefused() throws {
        let dir = TestDirectory.make("subwf")
        try FileManager.default.createDirectory(atPath: dir + "/lib", withIntermediateDirectories: true)
        func write(_ name: String, _ text: String) throws { try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }
        try write("main.yaml", """
            workflow: main
            steps:
              first: { call: x.a }
              sub: { workflow: lib/child.yaml, input: { n: "${steps.first.output}" } }
            """)
        try write("lib/child.yaml", """
            workflow: child
            input: { n: 0 }
            steps:
              grand: { workflow: ../leaf.yaml }
            outputs:
              n: "${input.n}"
            """)
        try write("leaf.yaml", "workflow: leaf\nsteps:\n  only: { call: x.leaf }\n")
        let w = try WorkflowFile.load(path: dir + "/main.yaml")
        #expect(w.step("sub")?.kind == .workflow(dir + "/lib/child.yaml"))
        #expect(w.step("sub")?.after == ["first"])
        #expect(Set(w.includedSources.keys) == [dir + "/lib/child.yaml", dir + "/leaf.yaml"])
        // What the host is sent reads the same without the disk.
        let again = try WorkflowFile.parse(w.source, file: w.file, includes: w.includedSources)
        #expect(again.subworkflows[dir + "/lib/child.yaml"]?.subworkflows[dir + "/leaf.yaml"]?.name == "leaf")
        #expect(WorkflowGraph.mermaid(w).contains("sub[/\"sub<br/>workflow \(dir)/lib/child.yaml\"/]"))
        #expect(WorkflowGraph.dot(w).contains("shape=component"))

        // leaf includes main: main -> child -> leaf -> main.
        try write("leaf.yaml", "workflow: leaf\nsteps:\n  back: { workflow: main.yaml }\n")
        do { _ = try WorkflowFile.load(path: dir + "/main.yaml"); Issue.record("a circle of files was accepted") } catch {
            #expect(error.description == "\(dir)/leaf.yaml:3:21: steps.back.workflow: the workflow files include each other in a circle: "
                    + "\(dir)/main.yaml -> \(dir)/lib/child.yaml -> \(dir)/leaf.yaml -> \(dir)/main.yaml", "\(error)")
        }
        // A file that is not there is named with the step that names it.
        try write("leaf.yaml", "workflow: leaf\nsteps:\n  gone: { workflow: nowhere.yaml }\n")
        do { _ = try WorkflowFile.load(path: dir + "/main.yaml"); Issue.record("a missing file was accepted") } catch {
            #expect(error.description.hasPrefix("\(dir)/leaf.yaml:3:21: steps.gone.workflow: cannot read \(dir)/nowhere.yaml: no such file"), "\(error)")
        }
        #expect(refusal("workflow: w\nsteps:\n  a: { workflow: sub.yaml, retry: { attempts: 2 } }\n").contains("steps.a.retry: retry goes with call:"))
        #expect(refusal("workflow: w\nsteps:\n  a: { workflow: notes.txt }\n").contains("steps.a.workflow: expected a workflow file (.yaml)"))
        #expect(refusal("workflow: w\nsteps:\n  a: { workflow: sub.yaml }\n").contains("steps.a.workflow: cannot read sub.yaml: the run was not given its text"))
    }
}
