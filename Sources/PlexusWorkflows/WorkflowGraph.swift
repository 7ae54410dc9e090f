import PlexusCore
/// A workflow drawn as a graph: Mermaid (for Markdown and GitHub) and DOT
/// (for Graphviz). Edges carry the condition of the step they lead to;
/// parallel steps are clusters of their branches.
public enum WorkflowGraph {
    public static func mermaid(_ w: Workflow) -> String {
        var out = ["flowchart TD"]
        for s in w.steps {
            if s.kind == .parallel {
                out.append("  subgraph \(id(s.name))[\"\(label(s.name)) (parallel)\"]")
                for b in s.branches { out.append("    \(id(b.name))[\"\(label(nodeText(b)))\"]") }
                out.append("  end")
            } else {
                out.append("  \(id(s.name))\(shape(s))")
            }
        }
        for (from, to, cond) in edges(w) {
            out.append(cond.map { "  \(id(from)) -->|\(label($0))| \(id(to))" } ?? "  \(id(from)) --> \(id(to))")
        }
        // A loop: an edge back into itself, labelled with what ends it.
        for s in w.steps where s.repeatMax > 0 { out.append("  \(id(s.name)) -.->|\(label(loopText(s)))| \(id(s.name))") }
        return out.joined(separator: "\n") + "\n"
    }

    public static func dot(_ w: Workflow) -> String {
        var out = ["digraph \"\(w.name)\" {", "  rankdir=TB;", "  node [shape=box, style=rounded, fontname=\"Helvetica\"];"]
        for s in w.steps {
            if s.kind == .parallel {
                out.append("  subgraph \"cluster_\(s.name)\" {")
                out.append("    label=\"\(escape(s.name)) (parallel)\";")
                for b in s.branches { out.append("    \"\(b.name)\" [label=\"\(escape(nodeText(b)))\"];") }
                out.append("  }")
            } else {
                let shape = s.when != nil ? ", shape=diamond" : (s.approval != nil ? ", shape=hexagon" : dotShape(s))
                out.append("  \"\(s.name)\" [label=\"\(escape(nodeText(s)))\"\(shape)];")
            }
        }
        for (from, to, cond) in edges(w) {
            out.append("  \"\(from)\" -> \"\(to)\"\(cond.map { " [label=\"\(escape($0))\", style=dashed]" } ?? "");")
        }
        for s in w.steps where s.repeatMax > 0 { out.append("  \"\(s.name)\" -> \"\(s.name)\" [label=\"\(escape(loopText(s)))\", style=dotted];") }
        out.append("}")
        return out.joined(separator: "\n") + "\n"
    }

    /// The same graph as data, for the dashboard: nodes (with the text
    /// `plexus workflow graph` puts in them, the parallel step they belong
    /// to, and their shape) and the edges between them.
    public static func json(_ w: Workflow) -> JSONValue {
        var nodes: [JSONValue] = []
        for s in w.steps {
            for n in s.kind == .parallel ? s.branches : [s] {
                var o: [String: JSONValue] = ["name": .string(n.name), "text": .string(nodeText(n))]
                if s.kind == .parallel { o["parallel"] = .string(s.name) }
                if n.when != nil { o["shape"] = .string("condition") } else if n.approval != nil { o["shape"] = .string("approval") }
                else if n.forEach != nil { o["shape"] = .string("for_each") }
                else if n.repeatMax > 0 { o["shape"] = .string("repeat") }
                else if case .workflow = n.kind { o["shape"] = .string("workflow") }
                else if case .wait = n.kind { o["shape"] = .string("wait_for") }
                nodes.append(.object(o))
            }
        }
        let links: [JSONValue] = edges(w).map { e in
            .object(["from": .string(e.0), "to": .string(e.1), "when": e.2.map(JSONValue.string) ?? .null])
        }
        return .object(["workflow": .string(w.name), "nodes": .array(nodes), "edges": .array(links)])
    }

    /// Edges between drawn nodes: into a parallel step means into each of
    /// its branches; out of it means out of each branch.
    static func edges(_ w: Workflow) -> [(String, String, String?)] {
        func exits(_ name: String) -> [String] {
            guard let s = w.step(name), s.kind == .parallel else { return [name] }
            return s.branches.map(\.name)
        }
        var out: [(String, String, String?)] = []
        for s in w.steps {
            let targets = s.kind == .parallel ? s.branches : [s]
            for t in targets {
                let deps = s.kind == .parallel ? s.after : t.after
                for d in deps { for e in exits(d) { out.append((e, t.name, t.whenText)) } }
            }
        }
        return out
    }

    static func nodeText(_ s: Step) -> String {
        var t = s.name.split(separator: ".").last.map(String.init) ?? s.name
        switch s.kind {
        case .call(let c): t += "\n\(c)"
        case .merge(let of, let c): t += "\nmerge \(of)" + (c.map { " via \($0)" } ?? "")
        case .parallel: break
        case .workflow(let path): t += "\nworkflow \(path)"
        case .wait(let signal): t += "\nwaits for signal \(signal)" + (s.waitTimeoutMs.map { " (≤\($0) ms)" } ?? "")
        }
        if s.repeatMax > 0 { t += "\n" + loopText(s) }
        if let f = s.forEachText { t += "\nfor each \(f) (≤\(s.concurrency) at once)" }
        if s.attempts > 1 { t += "\nretry ×\(s.attempts)" }
        if s.approval != nil { t += "\nawaits approval" }
        return t
    }

    static func shape(_ s: Step) -> String {
        let text = "\"\(label(nodeText(s)))\""
        if s.when != nil { return "{\(text)}" }
        if s.approval != nil { return "{{\(text)}}" }
        if s.forEach != nil { return "[[\(text)]]" }
        if case .workflow = s.kind { return "[/\(text)/]" }   // a parallelogram: another workflow runs here
        if case .wait = s.kind { return "([\(text)])" }     // a stadium: waits for the outside world
        return "[\(text)]"
    }

    static func dotShape(_ s: Step) -> String {
        switch s.kind {
        case .workflow: return ", shape=component"
        case .wait: return ", shape=oval"
        default: return ""
        }
    }

    /// "repeat until X (≤N)": what ends a loop, and its bound.
    static func loopText(_ s: Step) -> String { "repeat until \(s.repeatUntilText ?? "") (≤\(s.repeatMax))" }

    static func id(_ name: String) -> String { name.replacingOccurrences(of: ".", with: "__") }

    /// Mermaid labels: no double quotes or pipes; new lines as <br/>.
    static func label(_ s: String) -> String {
        s.replacingOccurrences(of: "\"", with: "'").replacingOccurrences(of: "|", with: "¦").replacingOccurrences(of: "\n", with: "<br/>")
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
