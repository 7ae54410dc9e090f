/// "Did you mean …?": the known name closest to a mistyped one, by edit
/// distance (insertions, deletions, substitutions and swaps of neighbours
/// each cost 1). Used wherever a user names something that does not exist:
/// commands, capabilities, agents, plexus.yaml keys.
public enum Suggestion {
    /// The closest of `candidates` to `name`, if it is close enough to be a
    /// typo: at most a third of the name's length, and never more than 3.
    /// Ties go to the first candidate in order.
    public static func closest(to name: String, among candidates: some Sequence<String>) -> String? {
        let limit = min(3, max(1, name.count / 3))
        var best: (String, Int)?
        for c in candidates where c != name {
            let d = distance(name, c, atMost: limit)
            if d <= limit && d < (best?.1 ?? Int.max) { best = (c, d) }
        }
        return best?.0
    }

    /// The optimal-string-alignment distance between a and b, or a value
    /// above `atMost` as soon as it is certain to exceed it.
    public static func distance(_ a: String, _ b: String, atMost: Int = .max) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if abs(x.count - y.count) > atMost { return atMost + 1 }
        if x.isEmpty || y.isEmpty { return max(x.count, y.count) }
        var prev2 = [Int](repeating: 0, count: y.count + 1)
        var prev = Array(0...y.count)
        var cur = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            cur[0] = i
            var rowMin = cur[0]
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                var v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] { v = min(v, prev2[j - 2] + 1) }
                cur[j] = v
                rowMin = min(rowMin, v)
            }
            if rowMin > atMost { return atMost + 1 }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev[y.count]
    }
}
