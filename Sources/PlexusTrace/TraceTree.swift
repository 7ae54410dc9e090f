/// A trace's spans as a tree, for printing: each span after its parent,
/// siblings in start order, with its depth. A span whose parent was not
/// recorded (overwritten, or outside the rate) is shown as a root.
public enum TraceTree {
    public static func ordered(_ spans: [Span]) -> [(depth: Int, span: Span)] {
        let sorted = spans.sorted(by: Tracer.startOrder)
        let ids = Set(sorted.map(\.span))
        var children: [String: [Span]] = [:]
        var roots: [Span] = []
        for s in sorted {
            if let p = s.parent, ids.contains(p), p != s.span { children[p, default: []].append(s) } else { roots.append(s) }
        }
        var out: [(Int, Span)] = []
        var seen = Set<String>()
        func walk(_ s: Span, _ depth: Int) {
            guard seen.insert(s.span).inserted else { return }   // a repeated id is shown once
            out.append((depth, s))
            for c in children[s.span] ?? [] { walk(c, depth + 1) }
        }
        for r in roots { walk(r, 0) }
        return out
    }

    /// "1.234 ms", "56 µs", "2.5 s": a duration for people.
    public static func duration(_ ns: Int64) -> String {
        if ns < 1_000 { return "\(ns) ns" }
        if ns < 1_000_000 { return "\(ns / 1_000) µs" }
        if ns < 1_000_000_000 { return fixed(Double(ns) / 1e6, 3) + " ms" }
        return fixed(Double(ns) / 1e9, 3) + " s"
    }

    private static func fixed(_ v: Double, _ digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let r = (v * scale).rounded() / scale
        var s = String(r)
        if let dot = s.firstIndex(of: ".") {
            let decimals = s.distance(from: dot, to: s.endIndex) - 1
            if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
        }
        return s
    }
}
