import PlexusCore

/// What one host says of itself every second (its announcement, JSON on
/// `plexus.<cluster>.from.<node>.announce`).
struct Announcement: Sendable, Equatable {
    struct AgentInfo: Sendable, Equatable {
        var name: String
        var state: String
        var capabilities: [String]
        /// Messages it holds: queued and being handled.
        var load: Int
    }
    var node: String
    /// Where the host is: its machine, process, socket and NATS client address.
    var address: String
    var agents: [AgentInfo]
    /// A random number per host process: a second host claiming the same
    /// node name is told apart from the holder by it.
    var instance: UInt64
    /// Sent once, as the host shuts down: drop it now rather than in 3 s.
    var leaving = false

    var json: JSONValue {
        .object(["node": .string(node), "address": .string(address), "instance": .uint(instance), "leaving": .bool(leaving),
                 "agents": .array(agents.map { a in
                     .object(["name": .string(a.name), "state": .string(a.state), "load": .int(Int64(a.load)),
                              "capabilities": .array(a.capabilities.map { .string($0) })])
                 })])
    }

    init(node: String, address: String, agents: [AgentInfo], instance: UInt64, leaving: Bool = false) {
        self.node = node; self.address = address; self.agents = agents; self.instance = instance; self.leaving = leaving
    }

    /// Reads an announcement; nil when it is not one.
    init?(_ v: JSONValue) {
        guard case .object(let o) = v, case .string(let node)? = o["node"], case .string(let address)? = o["address"],
              case .array(let list)? = o["agents"] else { return nil }
        self.node = node
        self.address = address
        switch o["instance"] { case .uint(let u)?: instance = u; case .int(let i)?: instance = UInt64(bitPattern: i); default: instance = 0 }
        if case .bool(let b)? = o["leaving"] { leaving = b }
        agents = list.compactMap { a in
            guard case .object(let ao) = a, case .string(let name)? = ao["name"] else { return nil }
            var caps: [String] = []
            if case .array(let cs)? = ao["capabilities"] { caps = cs.compactMap { if case .string(let s) = $0 { s } else { nil } } }
            var load = 0
            if case .int(let l)? = ao["load"] { load = Int(l) } else if case .uint(let l)? = ao["load"] { load = Int(l) }
            var state = "active"
            if case .string(let s)? = ao["state"] { state = s }
            return AgentInfo(name: name, state: state, capabilities: caps, load: load)
        }
    }
}

/// The other hosts of the cluster as their announcements describe them,
/// and which are still heard. Pure logic: the caller passes the monotonic
/// time, so a test drives it with a clock of its own.
struct Directory {
    struct Peer {
        var announcement: Announcement
        /// When its last announcement was heard (what `plexus nodes` shows).
        var lastHeardMono: Int64
        /// From when its silence counts: lastHeardMono, or later when this
        /// host's own connection was down (excuseSilence).
        var silentSinceMono: Int64
        /// Set when it was dropped (silent too long, or it said it was leaving).
        var droppedMono: Int64?
        var capabilities: Set<String>
    }

    /// A host silent this long is dropped from routing.
    static let silenceLimitNanos: Int64 = 3_000_000_000
    /// A dropped host stays listed (state "gone") this long.
    static let forgetAfterNanos: Int64 = 60_000_000_000

    private(set) var peers: [String: Peer] = [:]

    /// Records an announcement heard now. Returns true when it brings a
    /// host (back) into routing.
    @discardableResult
    mutating func heard(_ a: Announcement, nowMono: Int64) -> Bool {
        let caps = Set(a.agents.filter { $0.state == "active" }.flatMap(\.capabilities))
        let wasLive = peers[a.node].map { $0.droppedMono == nil } ?? false
        var p = Peer(announcement: a, lastHeardMono: nowMono, silentSinceMono: nowMono, droppedMono: nil, capabilities: caps)
        if a.leaving { p.droppedMono = nowMono; p.capabilities = [] }
        peers[a.node] = p
        return !wasLive && !a.leaving
    }

    /// Drops the hosts silent for silenceLimit or more, and forgets those
    /// gone for long. Returns the nodes dropped by this call.
    mutating func sweep(nowMono: Int64) -> [String] {
        var dropped: [String] = []
        for (node, p) in peers {
            if let d = p.droppedMono {
                if nowMono - d >= Self.forgetAfterNanos { peers[node] = nil }
            } else if nowMono - p.silentSinceMono >= Self.silenceLimitNanos {
                peers[node]?.droppedMono = nowMono
                dropped.append(node)
            }
        }
        return dropped.sorted()
    }

    /// While this host's own NATS connection is down nothing is heard from
    /// anyone: that is no sign the others stopped. Every live peer counts as
    /// silent from now only, so each has the full silence limit to be heard
    /// again once the connection is back; its last heartbeat's age still
    /// shows how long it has not been heard.
    mutating func excuseSilence(nowMono: Int64) {
        for (node, p) in peers where p.droppedMono == nil { peers[node]?.silentSinceMono = nowMono }
    }

    /// Every live peer has been heard at or after `t` (this host's NATS
    /// connection came back at t: they hear what is sent to them again).
    func allLiveHeard(since t: Int64) -> Bool {
        peers.values.allSatisfy { $0.droppedMono != nil || $0.lastHeardMono >= t }
    }

    func isLive(_ node: String) -> Bool { peers[node].map { $0.droppedMono == nil } ?? false }

    /// Live hosts whose active agents provide the capability.
    func providers(of capability: String) -> [String] {
        peers.filter { $0.value.droppedMono == nil && $0.value.capabilities.contains(capability) }.map(\.key).sorted()
    }

    /// The live host with the least announced load on its active providers
    /// of the capability (their queued and running messages); ties go to
    /// the `turn`-th of the tied hosts, so equal hosts share the calls.
    func leastLoadedProvider(of capability: String, turn: Int) -> String? {
        let loads = peers.compactMap { (node, p) -> (String, Int)? in
            guard p.droppedMono == nil, p.capabilities.contains(capability) else { return nil }
            let l = p.announcement.agents.filter { $0.state == "active" && $0.capabilities.contains(capability) }.map(\.load).min() ?? 0
            return (node, l)
        }
        guard let best = loads.map(\.1).min() else { return nil }
        let tied = loads.filter { $0.1 == best }.map(\.0).sorted()
        return tied[abs(turn) % tied.count]
    }

    /// Live hosts with an agent of that name.
    func nodes(withAgent name: String) -> [String] {
        peers.filter { $0.value.droppedMono == nil && $0.value.announcement.agents.contains { $0.name == name } }.map(\.key).sorted()
    }

    var liveNodes: [String] { peers.filter { $0.value.droppedMono == nil }.map(\.key).sorted() }
}
