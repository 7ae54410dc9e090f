/// The closest of some names to one that was not found, for "did you mean".
public enum Closest {
    /// The candidate with the fewest single-character edits from `name`,
    /// when it is near enough to be a typo (at most 2 edits, or a third of
    /// the name's length for long names); nil otherwise. Ties go to the
    /// first in sorted order, so the answer is the same on every run.
    public static func name(to name: String, in candidates: [String]) -> String? {
        let limit = max(2, name.count / 3)
        var best: (d: Int, n: String)?
        for c in candidates.sorted() where c != name {
            let d = distance(Array(name.utf8), Array(c.utf8))
            if d <= limit && d < (best?.d ?? Int.max) { best = (d, c) }
        }
        return best?.n
    }

    /// Levenshtein distance over bytes, two rows.
    public static func distance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}
