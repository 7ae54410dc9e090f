import PlexusConfig
import PlexusCore
import Testing
@testable import PlexusWorkflows

@Suite struct WorkflowFileTests {
    func refusal(_ yaml: String) -> String {
        do { _ = try WorkflowFile.parse(yaml, file: "wf.yaml"); return "accepted" } catch { return error.description }
    }

    @Test func dependenciesAreDeclaredOrImpliedByWhatAStepReads() throws {
        let w = try WorkflowFile.parse("""
            workflow: deps
            steps:
              a: { call: x.a }
              b: { call: x.b, input: "${steps.a.output}" }
              p:
                parallel:
                  l: { call: x.l, input: "${steps.b.output}" }
                  r: { call: x.r }
              m: { merge: p }
              c: { call: x.c, after: [a], when: "steps.p.l.output.ok" }
            """, file: "wf.yaml")
        #expect(w.step("b")?.after == ["a"])
        #expect(w.step("p")?.after == ["b"])
        #expect(w.step("m")?.after == ["p"])
        #expect(w.step("c")?.after == ["a", "p"])
        #expect(w.nodes.map(\.name) == ["a", "b", "p", "p.l", "p.r", "m", "c"])
        let mermaid = WorkflowGraph.mermaid(w)
        #expect(mermaid.contains("subgraph p[\"p (parallel)\"]"))
        #expect(mermaid.contains("p__l --> m") && mermaid.contains("p__r --> m"))
        #expect(mermaid.contains("p__l -->|steps.p.l.output.ok| c"))
        let dot = WorkflowGraph.dot(w)
        #expect(dot.contains("subgraph \"cluster_p\"") && dot.contains("\"b\" -> \"p.l\";"))
        #expect(dot.contains("shape=diamond"))
    }

    @Test func everyMistakeIsRefusedWithItsLineAndField() {
        let cases: [(String, String)] = [
            ("workflow: w\nsteps:\n  a: { call: x.a, retries: 3 }\n",
             "wf.yaml:3:19: steps.a.retries: unknown field; expected one of: call, input, after"),
            ("workflow: w\nsteps:\n  a: { call: x.a, after: [b] }\n",
             "wf.yaml:3:27: steps.a.after: no step named 'b'; the steps are a"),
            ("workflow: w\nsteps:\n  a: { call: x.a, after: [b] }\n  b: { call: x.b, input: \"${steps.a.output}\" }\n",
             "wf.yaml:3:1: steps.a: the steps wait for each other in a circle: a -> b -> a"),
            ("workflow: w\nsteps:\n  a:\n    call: x.a\n    when: steps.a.output >\n",
             "wf.yaml:5:27: steps.a.when: the expression ends where a value was expected"),
            ("workflow: w\nsteps:\n  a: { call: x.a }\n  b:\n    call: x.b\n    when: lenn(steps.a.output) > 0\n",
             "wf.yaml:6:11: steps.b.when: unknown function 'lenn'"),
            ("workflow: w\nsteps:\n  p: { parallel: { l: { call: x.l }, r: { call: x.r } } }\n  b: { call: x.b, input: \"${steps.p.output}\" }\n",
             "steps.b.input: steps.p is a parallel step: read one branch (steps.p.l.output) or combine them with a merge step (merge: p)"),
            ("workflow: w\nsteps:\n  a: { call: x.a, input: \"${item}\" }\n",
             "wf.yaml:3:26: steps.a.input: 'item' exists only in the input of a for_each step"),
            ("workflow: w\nsteps:\n  a: { call: x.a }\n  m: { merge: a }\n",
             "wf.yaml:4:15: steps.m.merge: 'a' is not a parallel step; this workflow has none"),
            ("workflow: w\nsteps:\n  a: { call: x.a, concurrency: 2 }\n",
             "steps.a.concurrency: concurrency limits a for_each step; this step has no for_each"),
            ("workflow: w\nsteps:\n  a: { input: 1 }\n",
             "wf.yaml:3:6: steps.a: a step needs call: (a capability), parallel: (branches), merge: (a parallel step), workflow: (a file) or wait_for: (a signal)"),
            ("workflow: w\nsteps:\n  a: { call: \"bad name\" }\n",
             "wf.yaml:3:14: steps.a.call:"),
            ("workflow: w\nsteps:\n  a: { call: x.a\n",
             "wf.yaml:4:1: not valid YAML"),
            ("steps:\n  a: { call: x.a }\n", "wf.yaml:1:1: workflow: missing: name the workflow"),
            ("workflow: w\nsteps:\n  a: { call: x.a, input: \"n=${len(}\" }\n",
             "steps.a.input: the expression ends where a value was expected"),
            ("workflow: w\nsteps:\n  a: { call: x.a }\noutputs:\n  ../x: \"${steps.a.output}\"\n",
             "wf.yaml:5:9: outputs.../x: an output is a plain file name, without '/'"),
        ]
        for (yaml, expected) in cases {
            let got = refusal(yaml)
            #expect(got.contains(expected), "\(yaml)\n→ \(got)")
        }
    }
}
