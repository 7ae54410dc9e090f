import PlexusThreads
import PlexusMetrics
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
    /// plexus_request_seconds{capability=name}; nil when metrics are off.
    let requestsHeld: AtomicHistogram?
    /// The same, for pending entries (which do not retain it: the capability lives on).
    let requests: Unmanaged<AtomicHistogram>?
    init(_ name: String, requests: AtomicHistogram? = nil) {
        self.name = name; cName = strdup(name)
        requestsHeld = requests
        self.requests = requests.map { Unmanaged.passUnretained($0) }
    }
    deinit { free(cName) }
}

/// Who is here and what they provide. Plugin agents and their capabilities
/// are registered while the host starts, before any message moves, and read
/// without a lock afterwards. Agents that join a running host (socket clients)
/// live in a separate, locked table that lookups consult only while it is
/// non-empty, so a host without them pays one atomic load. Subscriptions
/// change at any time and are guarded.
final class Registry: @unchecked Sendable {
    /// Agents attached while the host runs, and what they provide.
    private struct Attached {
        var agents: [String: Agent] = [:]
        var order: [Agent] = []
        var providers: [String: [Agent]] = [:]
    }
    private let attached = Mutex(Attached())
    /// Messages per (sender, target), for the dashboard's topology.
    let traffic = Traffic()
    private let attachedCount = Atomic<Int>(0)

    private(set) var agents: [String: Agent] = [:]
    private(set) var order: [Agent] = []
    private var byCName: [CNameKey: Agent] = [:]
    private var capabilities: [CNameKey: Capability] = [:]
    private let subLock = ConditionLock()
    private var subscriptions = SubjectIndex<Agent>()
    private var patternsByAgent: [ObjectIdentifier: Set<String>] = [:]
    /// Agents whose subscriptions are recorded but not live: a new version
    /// during its init, an old one after it was replaced (Registry+Reload).
    private var staged = Set<ObjectIdentifier>()
    private let rotation = Atomic<Int>(0)
    /// Set by the router before any agent registers: each agent's meters
    /// are made when it registers.
    var metrics: HostMetrics?

    /// Fails with the holder's name when the agent name is taken, and when
    /// anyone but the host (`byHost`) claims a reserved name.
    func register(_ a: Agent, byHost: Bool = false, holder: (String) -> String) throws(PlexusError) {
        if !byHost { try Registry.checkClaims(a) }
        if agents[a.name] != nil {
            throw PlexusError(.BAD_DESCRIPTOR, "duplicate agent name '\(a.name)': already provided by \(holder(a.name))")
        }
        a.meters = metrics?.agent(a.name, exclusive: a.link == nil && a.concurrency == 1)
        a.trafficSlot = traffic.slot(for: a.name)
        agents[a.name] = a
        byCName[CNameKey(p: a.cName)] = a
        order.append(a)
        for c in a.capabilities { capability(c).providers.append(a) }
    }

    /// The one reserved-name check for agents: plugins at load, socket
    /// clients when they register.
    private static func checkClaims(_ a: Agent) throws(PlexusError) {
        try ReservedNames.check(a.name, as: .agent)
        for c in a.capabilities { try ReservedNames.check(c, as: .capability) }
    }

    private func capability(_ name: String) -> Capability {
        if let c = name.withCString({ capabilities[CNameKey(p: $0)] }) { return c }
        let c = Capability(name, requests: metrics.map { HostMetrics.requestTimer(name, $0.factory) })
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
            staged.remove(ObjectIdentifier(a))
        }
    }

    // MARK: agents that join a running host

    /// Adds an agent while messages move. Its name must be free among
    /// plugin agents and attached ones, and not reserved unless `byHost`.
    func attach(_ a: Agent, byHost: Bool = false) throws(PlexusError) {
        if !byHost { try Registry.checkClaims(a) }
        if a.meters == nil { a.meters = metrics?.agent(a.name, exclusive: a.link == nil && a.concurrency == 1) }   // before anyone can route to it
        a.trafficSlot = traffic.slot(for: a.name)
        let taken: Bool = attached.withLock { t in
            if agents[a.name].map({ !$0.isRetired }) == true || t.agents[a.name] != nil { return true }
            t.agents[a.name] = a
            t.order.append(a)
            for c in a.capabilities { t.providers[c, default: []].append(a) }
            return false
        }
        if taken { throw PlexusError(.INVALID_ARGUMENT, "agent name '\(a.name)' is already taken by a running agent") }
        attachedCount.add(1, ordering: .relaxed)
    }

    /// Removes an attached agent and its subscriptions.
    func detach(_ a: Agent) {
        let removed: Bool = attached.withLock { t in
            guard t.agents[a.name] === a else { return false }
            t.agents[a.name] = nil
            t.order.removeAll { $0 === a }
            for c in a.capabilities {
                t.providers[c]?.removeAll { $0 === a }
                if t.providers[c]?.isEmpty == true { t.providers[c] = nil }
            }
            return true
        }
        guard removed else { return }
        if let m = metrics { a.meters?.retire(m.factory) }
        attachedCount.subtract(1, ordering: .relaxed)
        subLock.withLock {
            for p in patternsByAgent[ObjectIdentifier(a)] ?? [] { subscriptions.remove(p, a) }
            patternsByAgent[ObjectIdentifier(a)] = nil
            staged.remove(ObjectIdentifier(a))
        }
    }

    private var anyAttached: Bool { attachedCount.load(ordering: .relaxed) > 0 }

    /// Plugin agents in start order, then attached ones.
    var everyAgent: [Agent] {
        let own = order.filter { !$0.isRetired }
        return anyAttached ? own + attached.withLock { $0.order } : own
    }

    // MARK: lookups

    func agent(named n: String) -> Agent? {
        if let a = agents[n], !a.isRetired { return a }
        return anyAttached ? attached.withLock { $0.agents[n] } : nil
    }

    func agent(cName: UnsafePointer<CChar>) -> Agent? {
        if let a = byCName[CNameKey(p: cName)], !a.isRetired { return a }
        return anyAttached ? attached.withLock { $0.agents[String(cString: cName)] } : nil
    }

    var capabilityNames: [String] {
        var names = Set(capabilities.values.filter { $0.providers.contains { !$0.isRetired } }.map(\.name))
        if anyAttached { names.formUnion(attached.withLock { $0.providers.keys }) }
        return names.sorted()
    }

    /// The provider of the capability named by cName with the fewest queued
    /// and running messages (ties rotate so equal providers share the work),
    /// and the capability's name.
    /// And the capability's request histogram (nil when metrics are off or
    /// only attached agents provide it).
    func leastLoaded(cName: UnsafePointer<CChar>) -> (Agent, String, Unmanaged<AtomicHistogram>?)? {
        let c = capabilities[CNameKey(p: cName)]
        guard anyAttached else {
            guard let c, let a = leastLoaded(c.providers) else { return nil }
            return (a, c.name, c.requests)
        }
        let name = c?.name ?? String(cString: cName)
        let all = (c?.providers ?? []) + attached.withLock { $0.providers[name] ?? [] }
        return leastLoaded(all).map { ($0, name, c?.requests) }
    }

    /// Every agent providing the capability, plugins and attached ones.
    func providers(of capability: String) -> [Agent] {
        let own = (capability.withCString { capabilities[CNameKey(p: $0)]?.providers } ?? []).filter { !$0.isRetired }
        return anyAttached ? own + attached.withLock { $0.providers[capability] ?? [] } : own
    }

    func leastLoaded(_ capability: String) -> Agent? {
        capability.withCString { leastLoaded(cName: $0)?.0 }
    }

    private func leastLoaded(_ list: [Agent]) -> Agent? {
        guard !list.isEmpty else { return nil }
        if list.count == 1 { return list[0].isRetired ? nil : list[0] }
        let start = rotation.add(1, ordering: .relaxed).newValue
        var best: Agent?
        var bestLoad = Int.max
        for i in 0..<list.count {
            let a = list[(start + i) % list.count]
            // A suspended provider is chosen only when every one is: its
            // mail would wait for an operator while the others serve.
            let l = a.load.load(ordering: .relaxed) &+ (a.hold.isOn ? Int.max / 2 : 0)
            if l < bestLoad && !a.isRetired { best = a; bestLoad = l }
        }
        return best
    }

    func subscribe(_ a: Agent, _ pattern: String) throws(PlexusError) {
        try Subject.validatePattern(pattern)
        try ReservedNames.check(pattern, as: .pattern)
        subLock.withLock {
            if !staged.contains(ObjectIdentifier(a)) { subscriptions.insert(pattern, a) }
            patternsByAgent[ObjectIdentifier(a), default: []].insert(pattern)
        }
    }

    func unsubscribe(_ a: Agent, _ pattern: String) -> Bool {
        subLock.withLock {
            let had = patternsByAgent[ObjectIdentifier(a)]?.remove(pattern) != nil
            let live = subscriptions.remove(pattern, a)
            return staged.contains(ObjectIdentifier(a)) ? had : live
        }
    }

    func subscribers(of subject: String) -> [Agent] {
        subLock.withLock { Array(subscriptions.match(subject)) }.sorted { $0.name < $1.name }
    }

    func subscriptions(of a: Agent) -> [String] {
        subLock.withLock { (patternsByAgent[ObjectIdentifier(a)] ?? []).sorted() }
    }

    // MARK: reload (Host+Reload.swift); called from the reload thread only

    /// Records what `a` subscribes to without making it live: a new
    /// version subscribes during its init, while the old one still serves.
    func stage(_ a: Agent) { subLock.withLock { _ = staged.insert(ObjectIdentifier(a)) } }

    /// Puts `new` where `old` was, in one step for lookups: names,
    /// capabilities and subscriptions. `old` nil: a new plugin's agent.
    /// A plugin agent of the start (lock-free tables) is retired and the
    /// new one joins the attached table, which lookups consult next.
    func swapIn(_ new: Agent, for old: Agent?) throws(PlexusError) {
        if new.meters == nil { new.meters = old?.meters ?? metrics?.agent(new.name, exclusive: new.link == nil && new.concurrency == 1) }
        new.trafficSlot = traffic.slot(for: new.name)
        let added: Bool = try attached.withLock { t throws(PlexusError) -> Bool in
            if let old, t.agents[old.name] === old {
                t.agents[old.name] = new
                if let i = t.order.firstIndex(where: { $0 === old }) { t.order[i] = new }
                for c in old.capabilities {
                    t.providers[c]?.removeAll { $0 === old }
                    if t.providers[c]?.isEmpty == true { t.providers[c] = nil }
                }
                for c in new.capabilities { t.providers[c, default: []].append(new) }
                return false
            }
            let staticHolder = agents[new.name].map { !$0.isRetired && $0 !== old } ?? false
            if staticHolder || t.agents[new.name] != nil {
                throw PlexusError(.INVALID_ARGUMENT, "agent name '\(new.name)' is already taken by a running agent")
            }
            t.agents[new.name] = new
            t.order.append(new)
            for c in new.capabilities { t.providers[c, default: []].append(new) }
            return true
        }
        if added { attachedCount.add(1, ordering: .releasing) }
        if let old, agents[old.name] === old { old.retired.store(true, ordering: .releasing) }
        moveSubscriptions(from: old, to: new)
    }

    /// Undoes swapIn (a rollback): `old` serves again, `new` is gone.
    func swapBack(_ old: Agent, over new: Agent) {
        if agents[old.name] === old {
            old.retired.store(false, ordering: .releasing)
            // As detach, but the meters stay: they are old's too.
            let removed: Bool = attached.withLock { t in
                guard t.agents[new.name] === new else { return false }
                t.agents[new.name] = nil
                t.order.removeAll { $0 === new }
                for c in new.capabilities {
                    t.providers[c]?.removeAll { $0 === new }
                    if t.providers[c]?.isEmpty == true { t.providers[c] = nil }
                }
                return true
            }
            if removed { attachedCount.subtract(1, ordering: .relaxed) }
        } else {
            attached.withLock { t in
                guard t.agents[new.name] === new else { return }
                t.agents[new.name] = old
                if let i = t.order.firstIndex(where: { $0 === new }) { t.order[i] = old }
                for c in new.capabilities {
                    t.providers[c]?.removeAll { $0 === new }
                    if t.providers[c]?.isEmpty == true { t.providers[c] = nil }
                }
                for c in old.capabilities { t.providers[c, default: []].append(old) }
            }
        }
        moveSubscriptions(from: new, to: old)
    }

    /// An unloaded agent: no longer found, no longer subscribed.
    func retire(_ a: Agent) {
        if agents[a.name] === a {
            a.retired.store(true, ordering: .releasing)
            moveSubscriptions(from: a, to: nil)
        } else {
            detach(a)
        }
    }

    /// The subscriptions of `from` stop (kept on record, staged, for a
    /// rollback); those `to` recorded start.
    private func moveSubscriptions(from: Agent?, to: Agent?) {
        subLock.withLock {
            if let from {
                for p in patternsByAgent[ObjectIdentifier(from)] ?? [] { subscriptions.remove(p, from) }
                staged.insert(ObjectIdentifier(from))
            }
            if let to {
                for p in patternsByAgent[ObjectIdentifier(to)] ?? [] { subscriptions.insert(p, to) }
                staged.remove(ObjectIdentifier(to))
            }
        }
    }
}

extension Agent {
    /// Replaced or unloaded by a reload; see Agent.retired.
    @inline(__always) var isRetired: Bool { retired.load(ordering: .acquiring) }
}
