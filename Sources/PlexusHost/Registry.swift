import PlexusCore
import Synchronization

/// Who is here and what they provide. Agents and capabilities are registered
/// while the host starts, before any message moves, and read without a lock
/// afterwards; subscriptions change at any time and are guarded.
final class Registry: @unchecked Sendable {
    private(set) var agents: [String: Agent] = [:]
    private(set) var order: [Agent] = []
    private var providers: [String: [Agent]] = [:]
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
        order.append(a)
        for c in a.capabilities { providers[c, default: []].append(a) }
    }

    func unregister(_ a: Agent) {
        guard agents[a.name] === a else { return }
        agents[a.name] = nil
        order.removeAll { $0 === a }
        for c in a.capabilities {
            providers[c]?.removeAll { $0 === a }
            if providers[c]?.isEmpty == true { providers[c] = nil }
        }
        subLock.withLock {
            for p in patternsByAgent[ObjectIdentifier(a)] ?? [] { subscriptions.remove(p, a) }
            patternsByAgent[ObjectIdentifier(a)] = nil
        }
    }

    func agent(named n: String) -> Agent? { agents[n] }

    var capabilityNames: [String] { providers.keys.sorted() }

    /// The provider with the fewest queued and running messages; ties rotate
    /// so equal providers share the work.
    func leastLoaded(_ capability: String) -> Agent? {
        guard let list = providers[capability], !list.isEmpty else { return nil }
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
