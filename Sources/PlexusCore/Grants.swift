/// What one sender may do: call agents and capabilities, publish to and
/// subscribe to subjects, register agents (socket clients only). Each action
/// has a list of patterns in the subject syntax: "*" stands for exactly one
/// token, a final ">" for one or more, so "report.>" grants every name under
/// report and ">" grants everything. Answering a request one was sent needs
/// no grant. Immutable once built; shared by reference on the hot path.
///
/// The host's own names (`plexus.*`, `_plexus.*`: its key-value store,
/// tasks, workflows, audit) are reached only through a pattern that names
/// them: a wildcard first token ("*", ">") never matches them, so `call >`
/// does not let a plugin read every namespace through `plexus.kv.get`.
/// Only `Grants.all` (the host, its own user) reaches them by ">".
public final class Grants: Sendable {
    public enum Action: String, Sendable, CaseIterable, Codable {
        case call, publish, subscribe, register
    }

    /// The patterns as configured, per action.
    public let patterns: [Action: [String]]
    /// Who holds these grants, for errors: "agent 'summarizer'", "client 'reporter'".
    public let holder: String
    /// What to change to grant more, for errors: "plugins.summarizer.grants".
    public let source: String
    /// Said after the key in a refusal: what the key's absence means.
    public let note: String?
    /// Per action (Action.allCases order): each pattern split into tokens.
    private let compiled: [[[UInt8]]]
    /// Per action: true when one pattern is ">" (the hot path skips matching).
    private let everything: [Bool]
    /// Per action: the patterns whose first token is "plexus" or "_plexus",
    /// the only ones a host name is matched against (all of them for `all`).
    private let hostCompiled: [[[UInt8]]]
    /// `all`: ">" reaches the host's names too.
    private let reachesHost: Bool

    /// Throws INVALID_ARGUMENT naming the pattern when one is malformed.
    public convenience init(_ patterns: [Action: [String]], holder: String, source: String, note: String? = nil) throws(PlexusError) {
        try self.init(patterns, holder: holder, source: source, note: note, hostNames: false)
    }

    private init(_ patterns: [Action: [String]], holder: String, source: String, note: String? = nil, hostNames: Bool) throws(PlexusError) {
        for (action, list) in patterns {
            for p in list {
                do throws(PlexusError) { try Subject.validatePattern(p) } catch {
                    throw PlexusError(.INVALID_ARGUMENT, "\(source).\(action.rawValue): \(error.detail)")
                }
            }
        }
        self.patterns = patterns
        self.holder = holder
        self.source = source
        self.note = note
        compiled = Action.allCases.map { a in (patterns[a] ?? []).map { Array($0.utf8) } }
        everything = Action.allCases.map { a in patterns[a]?.contains(">") ?? false }
        reachesHost = hostNames
        hostCompiled = compiled.map { list in hostNames ? list : list.filter { Grants.namesHost(Array($0.split(separator: UInt8(ascii: ".")).first ?? [])) } }
    }

    /// Whether a name or pattern's first token is the host's: plexus or _plexus.
    public static func namesHost(_ firstToken: [UInt8]) -> Bool {
        firstToken == Array("plexus".utf8) || firstToken == Array("_plexus".utf8)
    }

    /// Whether the name starts with "plexus." or "_plexus." (or is one of them).
    static func isHostName(_ s: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        var k = 0
        if n > 0 && s[0] == UInt8(ascii: "_") { k = 1 }
        // Spelled out, not Array("plexus".utf8): this runs on every routed
        // message, and building the array allocated each time.
        guard n - k >= 6, s[k] == UInt8(ascii: "p"), s[k + 1] == UInt8(ascii: "l"), s[k + 2] == UInt8(ascii: "e"),
              s[k + 3] == UInt8(ascii: "x"), s[k + 4] == UInt8(ascii: "u"), s[k + 5] == UInt8(ascii: "s") else { return false }
        return n - k == 6 || s[k + 6] == UInt8(ascii: ".")
    }

    /// Every action on everything: the host's own user, the host itself.
    public static func all(holder: String, source: String) -> Grants {
        try! Grants(Dictionary(uniqueKeysWithValues: Action.allCases.map { ($0, [">"]) }), holder: holder, source: source, hostNames: true)
    }

    /// Whether the concrete name (an agent, a capability or a subject) is granted.
    public func allows(_ action: Action, _ name: UnsafePointer<CChar>) -> Bool {
        let i = action.index
        let n = strlenBytes(name)
        return name.withMemoryRebound(to: UInt8.self, capacity: n) { s in
            if Grants.isHostName(s, n) { return hostCompiled[i].contains { Grants.matches($0, s, n) } }
            return everything[i] || compiled[i].contains { Grants.matches($0, s, n) }
        }
    }

    public func allows(_ action: Action, _ name: String) -> Bool {
        name.withCString { allows(action, $0) }
    }

    /// Whether every subject a subscription pattern can match is granted.
    public func covers(_ action: Action, pattern: String) -> Bool {
        let p = pattern.split(separator: ".", omittingEmptySubsequences: false).map { Array($0.utf8) }
        let host = !reachesHost && Grants.namesHost(p.first ?? [])
        return (patterns[action] ?? []).contains { g in
            let gt = g.split(separator: ".", omittingEmptySubsequences: false).map { Array($0.utf8) }
            return (!host || Grants.namesHost(gt.first ?? [])) && Grants.covers(gt, p)
        }
    }

    /// The one decision: a subscription pattern must be covered whole;
    /// any other name must match a pattern.
    public func permits(_ action: Action, _ name: String) -> Bool {
        action == .subscribe ? covers(.subscribe, pattern: name) : allows(action, name)
    }

    /// PERMISSION_DENIED naming the grant that is missing, unless it is held.
    public func check(_ action: Action, _ name: String) throws(PlexusError) {
        if !permits(action, name) { throw denial(action, name) }
    }

    /// The error a refused action gets; the grant is written as it would be
    /// configured: `call report.summarize`.
    public func denial(_ action: Action, _ name: String) -> PlexusError {
        let held = patterns[action] ?? []
        return PlexusError(.PERMISSION_DENIED,
            "\(holder) is not granted \"\(action.rawValue) \(name)\" (it may \(action.rawValue) "
            + "\(held.isEmpty ? "nothing" : held.joined(separator: ", "))); grant it in \(source).\(action.rawValue) of plexus.yaml\(note.map { " (\($0))" } ?? "")")
    }

    // MARK: matching

    /// Pattern tokens against a concrete name's bytes, with no allocation.
    static func matches(_ pattern: [UInt8], _ s: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        var pos = 0          // start of the name's current token; n + 1 when none is left
        var p = 0            // start of the pattern's current token
        let dot = UInt8(ascii: "."), star = UInt8(ascii: "*"), tail = UInt8(ascii: ">")
        while p < pattern.count {
            var pe = p
            while pe < pattern.count && pattern[pe] != dot { pe += 1 }
            if pe - p == 1 && pattern[p] == tail { return pos <= n }
            if pos > n { return false }
            var e = pos
            while e < n && s[e] != dot { e += 1 }
            if !(pe - p == 1 && pattern[p] == star) {
                if e - pos != pe - p { return false }
                for k in 0..<(e - pos) where s[pos + k] != pattern[p + k] { return false }
            }
            pos = e + 1
            p = pe + 1
        }
        return pos > n
    }

    /// Whether grant pattern g covers every subject pattern p can match.
    static func covers(_ g: [[UInt8]], _ p: [[UInt8]]) -> Bool {
        let star: [UInt8] = [UInt8(ascii: "*")], tail: [UInt8] = [UInt8(ascii: ">")]
        for i in g.indices {
            if g[i] == tail { return p.count > i }
            if i >= p.count || p[i] == tail { return false }
            if g[i] == star { continue }
            if p[i] != g[i] { return false }   // p's "*" is wider than g's literal
        }
        return p.count == g.count
    }
}

extension Grants.Action {
    var index: Int {
        switch self { case .call: 0; case .publish: 1; case .subscribe: 2; case .register: 3 }
    }
}

private func strlenBytes(_ s: UnsafePointer<CChar>) -> Int {
    var n = 0
    while s[n] != 0 { n += 1 }
    return n
}
