import PlexusThreads
import Glibc
import PlexusCore
import Synchronization

/// A C string as a dictionary key, hashed (FNV-1a) and compared by its bytes,
/// so resolving a plugin's `const char *` target builds no Swift String.
/// A stored key points at memory its value owns.
struct CNameKey: Hashable, @unchecked Sendable {
    let p: UnsafePointer<CChar>

    static func == (a: CNameKey, b: CNameKey) -> Bool { strcmp(a.p, b.p) == 0 }
    func hash(into h: inout Hasher) { h.combine(fnv) }
    func _rawHashValue(seed: Int) -> Int { Int(truncatingIfNeeded: fnv) ^ seed }

    private var fnv: UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var q = p
        while q.pointee != 0 {
            h = (h ^ UInt64(UInt8(bitPattern: q.pointee))) &* 0x100_0000_01b3
            q += 1
        }
        return h
    }
}

/// The agents providing one capability, under the name's own C copy.
final class Capability: @unchecked Sendable {
    let name: String
    let cName: UnsafeMutablePointer<CChar>
    var providers: [Agent] = []
    init(_ name: String) { self.name = name; cName = strdup(name) }
    deinit { free(cName) }
}

/// Who is here and what they provide. Agents and capabilities are registered
/// while the host starts, before any message moves, and read without a lock
/// afterwards; subscriptions change at any time and are guarded.
final class Registry: @unchecked Sendable {
    private(set) var agents: [String: Agent] = [:]
    private(set) var order: [Agent] = []
    private var byCName: [CNameKey: Agent] = [:]
    private var capabilities: [CNameKey: Capability] = [:]
    private let subLock = ConditionLock()
    private var subscriptions = SubjectIndex<Agent>()
    private var patternsByAgent: [ObjectIdentifier: Set<String>] = [:]
    private let rotation = Atomic<Int>(0)

    /// Fails with the holder's name when the agent name is taken.
    func register(_ a: Agent, holder: (String) -> String) throws(PlexusError) {
        if agents[a.name] != nil {
            throw PlexusError(.BAD_DESCRIPTOR, "duplicate agent name '\(a.name)': already provided by \(holder(a.name))")
        }
        agents[a.name] = a
        byCName[CNameKey(p: a.cName)] = a
        order.append(a)
        for c in a.capabilities { capability(c).providers.append(a) }
    }

    private func capability(_ name: String) -> Capability {
        if let c = name.withCString({ capabilities[CNameKey(p: $0)] }) { return c }
        let c = Capability(name)
        capabilities[CNameKey(p: c.cName)] = c
        return c
    }

    func unregister(_ a: Agent) {
        guard agents[a.name] === a else { return }
        agents[a.name] = nil
        byCName[CNameKey(p: a.cName)] = nil
        order.removeAll { $0 === a }
        for name in a.capabilities {
            let c = capability(name)
            c.providers.removeAll { $0 === a }
            if c.providers.isEmpty { capabilities[CNameKey(p: c.cName)] = nil }
        }
        subLock.withLock {
            for p in patternsByAgent[ObjectIdentifier(a)] ?? [] { subscriptions.remove(p, a) }
            patternsByAgent[ObjectIdentifier(a)] = nil
        }
    }

    func agent(named n: String) -> Agent? { agents[n] }
    func agent(cName: UnsafePointer<CChar>) -> Agent? { byCName[CNameKey(p: cName)] }

    var capabilityNames: [String] { capabilities.values.map(\.name).sorted() }

    /// The provider of the capability named by cName with the fewest queued
    /// and running messages (ties rotate so equal providers share the work),
    /// and the capability's name.
    func leastLoaded(cName: UnsafePointer<CChar>) -> (Agent, String)? {
        guard let c = capabilities[CNameKey(p: cName)], let a = leastLoaded(c.providers) else { return nil }
        return (a, c.name)
    }

    func leastLoaded(_ capability: String) -> Agent? {
        capability.withCString { leastLoaded(cName: $0)?.0 }
    }

    private func leastLoaded(_ list: [Agent]) -> Agent? {
        guard !list.isEmpty else { return nil }
        if list.count == 1 { return list[0] }
        let start = rotation.add(1, ordering: .relaxed).newValue
        var best: Agent?
        var bestLoad = Int.max
        for i in 0..<list.count {
            let a = list[(start + i) % list.count]
            let l = a.load.load(ordering: .relaxed)
            if l < bestLoad { best = a; bestLoad = l }
        }
        return best
    }

    func subscribe(_ a: Agent, _ pattern: String) throws(PlexusError) {
        try Subject.validatePattern(pattern)
        subLock.withLock {
            subscriptions.insert(pattern, a)
            patternsByAgent[ObjectIdentifier(a), default: []].insert(pattern)
        }
    }

    func unsubscribe(_ a: Agent, _ pattern: String) -> Bool {
        subLock.withLock {
            patternsByAgent[ObjectIdentifier(a)]?.remove(pattern)
            return subscriptions.remove(pattern, a)
        }
    }

    func subscribers(of subject: String) -> [Agent] {
        subLock.withLock { Array(subscriptions.match(subject)) }.sorted { $0.name < $1.name }
    }

    func subscriptions(of a: Agent) -> [String] {
        subLock.withLock { (patternsByAgent[ObjectIdentifier(a)] ?? []).sorted() }
    }
}
