/// NATS-style subjects: tokens separated by ".", where a subscription pattern
/// may use "*" (exactly one token) and ">" (one or more tokens, last only).
public enum Subject {
    /// Checks a subject that is published to: non-empty tokens, no wildcards.
    public static func validateSubject(_ s: String) throws(PlexusError) {
        let tokens = try split(s, what: "subject")
        for (i, t) in tokens.enumerated() where t == "*" || t == ">" || t.contains("*") || t.contains(">") {
            throw PlexusError(.INVALID_ARGUMENT,
                              "subject '\(s)': token \(i + 1) ('\(t)') is a wildcard; only subscriptions may use '*' and '>'")
        }
    }

    /// Checks a subscription pattern: "*" and ">" only as whole tokens, ">" last.
    public static func validatePattern(_ s: String) throws(PlexusError) {
        let tokens = try split(s, what: "pattern")
        for (i, t) in tokens.enumerated() {
            if t != "*" && t != ">" && (t.contains("*") || t.contains(">")) {
                throw PlexusError(.INVALID_ARGUMENT,
                                  "pattern '\(s)': token \(i + 1) ('\(t)') mixes a wildcard with other characters")
            }
            if t == ">" && i != tokens.count - 1 {
                throw PlexusError(.INVALID_ARGUMENT, "pattern '\(s)': '>' may only be the last token")
            }
        }
    }

    /// Whether `subject` (no wildcards) matches `pattern`.
    public static func matches(pattern: String, subject: String) -> Bool {
        let p = pattern.split(separator: ".", omittingEmptySubsequences: false)
        let s = subject.split(separator: ".", omittingEmptySubsequences: false)
        var i = 0
        while i < p.count {
            if p[i] == ">" { return s.count > i }
            if i >= s.count { return false }
            if p[i] != "*" && p[i] != s[i] { return false }
            i += 1
        }
        return i == s.count
    }

    private static func split(_ s: String, what: String) throws(PlexusError) -> [Substring] {
        if s.isEmpty { throw PlexusError(.INVALID_ARGUMENT, "\(what) is empty") }
        if s.utf8.count > 255 { throw PlexusError(.TOO_LARGE, "\(what) '\(s.prefix(40))…' is longer than 255 bytes") }
        let tokens = s.split(separator: ".", omittingEmptySubsequences: false)
        if let i = tokens.firstIndex(where: \.isEmpty) {
            throw PlexusError(.INVALID_ARGUMENT, "\(what) '\(s)': token \(i + 1) is empty (leading, trailing or doubled '.')")
        }
        return tokens
    }
}

/// Subscriptions indexed as a token trie, so a publish visits only the
/// branches that can match instead of every pattern.
public struct SubjectIndex<Value: Hashable> {
    private final class Node {
        var children: [Substring: Node] = [:]
        var star: Node?
        var values: Set<Value> = []      // patterns ending here
        var tailValues: Set<Value> = []  // patterns ending here with ">"
        var isEmpty: Bool { children.isEmpty && star == nil && values.isEmpty && tailValues.isEmpty }
    }

    private var root = Node()
    public private(set) var count = 0

    public init() {}

    /// Adds value under a validated pattern. Returns false if it was already there.
    @discardableResult
    public mutating func insert(_ pattern: String, _ value: Value) -> Bool {
        var node = root
        for t in pattern.split(separator: ".") {
            if t == ">" {
                let added = node.tailValues.insert(value).inserted
                if added { count += 1 }
                return added
            }
            if t == "*" {
                if node.star == nil { node.star = Node() }
                node = node.star!
            } else {
                if let next = node.children[t] { node = next } else {
                    let next = Node(); node.children[t] = next; node = next
                }
            }
        }
        let added = node.values.insert(value).inserted
        if added { count += 1 }
        return added
    }

    @discardableResult
    public mutating func remove(_ pattern: String, _ value: Value) -> Bool {
        let tokens = Array(pattern.split(separator: "."))
        let removed = Self.remove(tokens[...], value, from: root)
        if removed { count -= 1 }
        return removed
    }

    private static func remove(_ tokens: ArraySlice<Substring>, _ value: Value, from node: Node) -> Bool {
        guard let t = tokens.first else { return node.values.remove(value) != nil }
        if t == ">" { return node.tailValues.remove(value) != nil }
        let child = t == "*" ? node.star : node.children[t]
        guard let child else { return false }
        let removed = remove(tokens.dropFirst(), value, from: child)
        if removed && child.isEmpty {
            if t == "*" { node.star = nil } else { node.children[t] = nil }
        }
        return removed
    }

    /// Every value whose pattern matches the concrete subject, each once.
    /// A wildcard in the first token ('>', '*.x') never matches the host's
    /// own subjects (first token `plexus` or `_plexus`): only a pattern that
    /// names them, such as `plexus.audit.denied`, hears them.
    public func match(_ subject: String) -> Set<Value> {
        var out = Set<Value>()
        let tokens = subject.split(separator: ".", omittingEmptySubsequences: false)
        if ReservedNames.isHostOwned(subject) {
            if let t = tokens.first, let c = root.children[t] { Self.collect(tokens.dropFirst(), node: c, into: &out) }
            return out
        }
        Self.collect(tokens[...], node: root, into: &out)
        return out
    }

    private static func collect(_ tokens: ArraySlice<Substring>, node: Node, into out: inout Set<Value>) {
        guard let t = tokens.first else { out.formUnion(node.values); return }
        out.formUnion(node.tailValues)  // ">" needs at least one remaining token: there is one
        let rest = tokens.dropFirst()
        if let c = node.children[t] { collect(rest, node: c, into: &out) }
        if let s = node.star { collect(rest, node: s, into: &out) }
    }
}
