import CPlexus
import Glibc
import Logging
import PlexusCore
import PlexusHost
import PlexusThreads
import Synchronization

/// This host as one node of a cluster over NATS (`plexus run --nats`):
/// joins under a unique node name, announces its agents every second,
/// hears the others', and carries messages between this host's router and
/// theirs. The payload on NATS is the envelope's wire frame, as the router
/// encoded it; what arrives is routed here as a message from `node/agent`,
/// within `nats.grants`, to local agents only (never sent on).
public final class ClusterNode: RemoteRoutes, @unchecked Sendable {
    public let node: String
    public let cluster: String
    /// Where this host is: machine, process, socket and NATS client address.
    public let address: String
    let subjects: Subjects
    private let conn: NatsConnection
    /// Cross-host sends held while NATS is down (Outbox.swift).
    let outbox: Outbox
    private let url: String
    private let host: Host
    private let peerGrants: [Grants.Action: [String]]?
    /// `nats.replicas`: copies of every stream and bucket this host makes.
    let replicas: Int
    private let instance = UInt64.random(in: 1...UInt64.max)
    private let logger = Logger(label: "plexus.cluster")

    /// A request sent to another host, until its answer comes back.
    struct Flight {
        /// The host handling it: known when sent to an agent by name, told
        /// by the host that took it for a capability call (`took`).
        var node: String?
        var deadlineMono: Int64
    }

    /// A request another host sent here, until its final answer goes back.
    struct PeerRequest: Hashable {
        var node: String
        var id: plexus_id
    }
    struct PeerRequestState {
        /// Its id here (nil until the router has taken it).
        var localID: plexus_id?
        /// Its caller cancelled it: no answer goes back.
        var cancelled = false
    }

    private struct State {
        var directory = Directory()
        var peerRequests: [PeerRequest: PeerRequestState] = [:]
        var flights: [plexus_id: Flight] = [:]
        /// Capability -> its queue-group subscription.
        var capabilitySubs: [String: Int] = [:]
        /// Grants of each sending node, made on first use.
        var grants: [String: Grants] = [:]
        var lastAnnouncement: Announcement?
        var stopping = false
        /// When the NATS connection came back, until the outbox may be sent.
        var reconnectedMono: Int64?
    }
    private let state = Mutex(State())
    /// Capability calls kept on this host and sent to another (plexus nodes, plexus_cluster_picks_total).
    private let localPicks = Atomic<Int>(0)
    private let remotePicks = Atomic<Int>(0)
    private let wake = ConditionLock()
    /// Sends are held in the outbox (not handed to libnats): from the
    /// moment the connection drops until the other hosts are heard again
    /// after it is back (a message to a host not yet resubscribed on the
    /// server would be lost), or 3 s passed.
    private let holding = Atomic<Bool>(false)
    private var ticker: OwnedThread?
    /// The cluster's event log on JetStream (EventStream.swift); nil only when libnats could not make a JetStream context.
    let eventStream: EventStream?
    /// Reads of the event stream for `plexus events --cluster`: off the dispatcher threads, bounded.
    private let eventReads = WorkPool(name: "plexus-events-read", threads: 2, queueLimit: 64)
    /// Which agents may run on libnats' delivery threads (InlineDelivery.swift).
    private let inlinePolicy = InlineDeliveryPolicy()
    /// One runner per subscription (its deliveries never overlap).
    private func inline() -> InlineDelivery { InlineDelivery(host.inlineRunner(), policy: inlinePolicy) }

    /// A connection that holds its node name: made before the host, so a
    /// refused name or an unreachable server stops `plexus run` before any
    /// worker starts.
    public struct Join: Sendable {
        let conn: NatsConnection
        let node: String
        let url: String
        let address: String
        let settings: NATSSettings

        /// Connects and claims the node name: refused (INVALID_ARGUMENT
        /// naming the holder's address) when a running host answers on the
        /// name's ping subject; from then on this one answers there.
        public init(settings: NATSSettings, socketPath: String) throws(PlexusError) {
            guard let url = settings.url else { throw PlexusError(.INVALID_ARGUMENT, "no NATS URL: give --nats nats://HOST:PORT or nats.url in plexus.yaml") }
            try NATSSettings.checkURL(url)
            let node = settings.node ?? ClusterNode.hostname()
            try NATSSettings.checkToken(node, what: "the node name")
            try NATSSettings.checkToken(settings.cluster, what: "the cluster name")
            let subjects = Subjects(cluster: settings.cluster, node: node)
            let conn = try NatsConnection(url: url, name: "plexus \(settings.cluster)/\(node)", credentials: settings.credentials)
            let address = "\(ClusterNode.hostname()) pid \(getpid()) socket \(socketPath) nats-client \(conn.localAddress)"
            if let holder = conn.request(subjects.ping, Array("{}".utf8), timeoutMs: 1_000) {
                conn.close()
                let at = (try? JSONValue.parse(holder)).flatMap { v -> String? in
                    if case .object(let o) = v, case .string(let a)? = o["address"] { return a } else { return nil }
                } ?? String(decoding: holder, as: UTF8.self)
                throw PlexusError(.INVALID_ARGUMENT, "node name '\(node)' is taken in cluster '\(settings.cluster)' by the host at \(at); "
                                  + "start this one with another --node (or nats.node in plexus.yaml)")
            }
            // Holding the name from here: a newcomer asking for it is told where this host is.
            let body = Array(JSONValue.object(["node": .string(node), "address": .string(address)]).text.utf8)
            do {
                _ = try conn.subscribe(subjects.ping) { [weak conn] _, reply, _ in
                    guard let reply else { return }
                    try? conn?.publish(reply, body)
                }
            } catch {
                conn.close()
                throw error
            }
            self.conn = conn; self.node = node; self.url = url; self.address = address; self.settings = settings
        }
    }

    /// This host in the cluster it joined. Nothing is routed until start().
    public init(_ join: Join, host: Host) {
        node = join.node
        cluster = join.settings.cluster
        url = join.url
        address = join.address
        conn = join.conn
        self.host = host
        peerGrants = join.settings.peerGrants
        replicas = join.settings.replicas
        subjects = Subjects(cluster: join.settings.cluster, node: join.node)
        outbox = Outbox(maxMessages: join.settings.outboxMessages, maxBytes: join.settings.outboxBytes,
                        what: "NATS at \(NatsConnection.redacted(join.url))")
        do { eventStream = try EventStream(conn: join.conn, cluster: join.settings.cluster, node: join.node, settings: join.settings.events,
                                                replicas: join.settings.replicas) } catch {
            eventStream = nil
            logger.error("the event log is not published to the cluster", metadata: ["error": "\(error.detail)"])
        }
    }

    /// The NATS connection, for JetStream: durable tasks (ClusterTasks), the key-value store (ClusterKeyValue).
    var connection: NatsConnection { conn }

    /// Publishes every event the host appends to its log to the cluster's
    /// event stream from now on (catching up on the ones it missed).
    public func publishEvents(from log: EventLog) throws(PlexusError) {
        try eventStream?.start(log)
    }

    /// Sends through the outbox: at once while connected, held (in order)
    /// while NATS is down, refused when the outbox is full.
    private func send(_ subject: String, _ frame: UnsafeRawBufferPointer, request: plexus_id? = nil, deadlineMono: Int64? = nil) throws(PlexusError) {
        try outbox.send(subject, frame, request: request, deadlineMono: deadlineMono) { s, b in
            holding.load(ordering: .acquiring) ? .down : conn.tryPublish(s, b)
        }
    }

    private func send(_ subject: String, _ bytes: [UInt8]) throws(PlexusError) {
        let r: Result<Void, PlexusError> = bytes.withUnsafeBytes { b in
            do throws(PlexusError) { try send(subject, b); return .success(()) } catch { return .failure(error) }
        }
        try r.get()
    }

    /// NATS is back: sends what the outbox holds, in order; requests whose
    /// deadline passed meanwhile are dropped (their callers had TIMEOUT).
    private func drainOutbox() {
        guard outbox.depth.messages > 0 else { return }
        let d = outbox.drain(nowMono: Clock.monotonicNanos()) { conn.tryPublish($0, $1) }
        forgetExpired(d.expired)
        for id in d.sentRequests { logger.debug("request sent from the outbox", metadata: ["id": "\(id.hex)"]) }
        for (item, error) in d.failed {
            if let id = item.request {
                state.withLock { _ = $0.flights.removeValue(forKey: id) }
                host.failRemote(requestID: id, status: error.status, detail: error.detail)
            }
        }
        if d.sent > 0 || !d.expired.isEmpty {
            logger.notice("NATS is back: the outbox was sent", metadata: [
                "sent": "\(d.sent)", "expired": "\(d.expired.count)", "failed": "\(d.failed.count)", "still_held": "\(d.left)"])
        }
    }

    private func forgetExpired(_ ids: [plexus_id]) {
        guard !ids.isEmpty else { return }
        state.withLock { s in for id in ids { s.flights[id] = nil } }
    }

    static func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        let h = String(cString: buf).split(separator: ".").first.map(String.init) ?? "host"
        let clean = String(h.unicodeScalars.map { c -> Character in
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "-" || c == "_" ? Character(c) : "-"
        })
        return clean.isEmpty ? "host" : clean
    }

    // MARK: running

    /// Starts hearing the cluster and announcing this host. Call after
    /// host.start() (messages from other hosts go to started agents).
    public func start() throws(PlexusError) {
        conn.events.on(down: { [weak self] in
            guard let self else { return }
            self.holding.store(true, ordering: .releasing)
            // close() at shutdown disconnects too: not an outage.
            if self.state.withLock({ $0.stopping }) { return }
            self.logger.warning("NATS connection lost: cross-host sends are held in the outbox until it is back",
                                metadata: ["limit_messages": "\(self.outbox.maxMessages)", "limit_bytes": "\(self.outbox.maxBytes)"])
        }, back: { [weak self] in
            guard let self else { return }
            self.logger.notice("NATS connection back", metadata: ["server": "\(self.conn.connectedURL)", "outbox": "\(self.outbox.depth.messages)"])
            // The ticker announces this host and drains the outbox once the
            // others are heard: libnats' callback thread must not be held.
            self.state.withLock { $0.reconnectedMono = Clock.monotonicNanos() }
            self.wake.withLock { self.wake.signal() }
        })
        // What arrives for agents runs them on the delivery thread (InlineDelivery.swift).
        let toAgents = inline(), toCapabilities = inline(), toTopics = inline(), replies = inline()
        _ = try conn.subscribe(subjects.agentsHere) { [unowned self] s, _, d in toAgents.deliver { self.onAgent(s, d) } }
        _ = try conn.subscribe(subjects.capabilitiesHere) { [unowned self] s, _, d in toCapabilities.deliver { self.onCapabilityHere(s, d) } }
        _ = try conn.subscribe(subjects.topics) { [unowned self] s, _, d in toTopics.deliver { self.onTopic(s, d) } }
        _ = try conn.subscribe(subjects.repliesHere) { [unowned self] s, _, d in replies.deliver { self.onReply(s, d) } }
        _ = try conn.subscribe(subjects.tookHere) { [unowned self] s, _, d in self.onTook(s, d) }
        _ = try conn.subscribe(subjects.cancelsHere) { [unowned self] s, _, d in self.onCancel(s, d) }
        _ = try conn.subscribe(subjects.announcements) { [unowned self] s, _, d in self.onAnnouncement(s, d) }
        try syncCapabilities()
        announce()
        conn.flush(timeoutMs: 2_000)
        do { ticker = try startThread(name: "plexus-cluster") { [unowned self] in self.tick() } } catch {
            throw PlexusError(.INTERNAL, "\(error)")
        }
    }

    /// Says goodbye (the others drop this host at once), then disconnects.
    public func stop() {
        let first = wake.withLock { () -> Bool in
            let was = state.withLock { s -> Bool in let w = s.stopping; s.stopping = true; return w }
            wake.signal()
            return !was
        }
        guard first else { return }
        ticker?.join()
        ticker = nil
        eventStream?.stop()
        announce(leaving: true)
        conn.close()
    }

    /// Every 250 ms: drop silent hosts (ending what is in flight there);
    /// every second: announce, and follow this host's capabilities.
    private func tick() {
        var last = Clock.monotonicNanos()
        while true {
            let now = Clock.monotonicNanos()
            let connected = conn.isConnected
            let dropped = state.withLock { s -> [String] in
                // Requests past their deadline were ended by the router's own
                // timer (TIMEOUT); here they are only forgotten, a second later.
                s.flights = s.flights.filter { now - $0.value.deadlineMono <= 1_000_000_000 }
                // This host cut off from NATS hears no one: no peer is dropped for it.
                if !connected { s.directory.excuseSilence(nowMono: now); return [] }
                return s.directory.sweep(nowMono: now)
            }
            for n in dropped { nodeLeft(n, why: "stopped heartbeating (silent for 3 s)") }
            if connected, let since = state.withLock({ $0.reconnectedMono }) {
                let heard = state.withLock { $0.directory.allLiveHeard(since: since) }
                announce()   // while waiting to hear the others: be heard by them at once too
                if heard || now - since >= 3_000_000_000 {
                    state.withLock { $0.reconnectedMono = nil }
                    holding.store(false, ordering: .releasing)
                    drainOutbox()
                }
            } else if connected && !holding.load(ordering: .acquiring) {
                drainOutbox()
            } else if !connected {
                holding.store(true, ordering: .releasing)
                forgetExpired(outbox.sweep(nowMono: now))
            }
            if now - last >= 1_000_000_000 {
                last = now
                try? syncCapabilities()
                announce()
            }
            let stop = wake.withLock { () -> Bool in
                if state.withLock({ $0.stopping }) { return true }
                wake.wait(untilMonotonic: now + 250_000_000)
                return state.withLock { $0.stopping }
            }
            if stop { return }
        }
    }

    /// Ends every request in flight on `left` with UNAVAILABLE naming it.
    private func nodeLeft(_ left: String, why: String) {
        let ids = state.withLock { s -> [plexus_id] in
            let ids = s.flights.filter { $0.value.node == left }.map(\.key)
            for id in ids { s.flights[id] = nil }
            return ids
        }
        logger.warning("node dropped from routing", metadata: ["node": "\(left)", "reason": "\(why)", "requests_failed": "\(ids.count)"])
        for id in ids {
            host.failRemote(requestID: id, status: PLEXUS_UNAVAILABLE.status,
                            detail: "node '\(left)' \(why) while handling the request; it was dropped from cluster '\(cluster)'")
        }
    }

    /// The agents and capabilities this host offers the others (its own
    /// names, `plexus.*`, stay here).
    private func currentAnnouncement(leaving: Bool) -> Announcement {
        let agents = host.agentReports.filter { $0.kind != "builtin" && !ReservedNames.isHostOwned($0.name) }.map { r in
            Announcement.AgentInfo(name: r.name, state: r.state, capabilities: r.capabilities.filter { !ReservedNames.isHostOwned($0) },
                                   load: r.queued + r.in_flight)
        }
        return Announcement(node: node, address: address, agents: agents, instance: instance, leaving: leaving)
    }

    private func announce(leaving: Bool = false) {
        let a = currentAnnouncement(leaving: leaving)
        state.withLock { $0.lastAnnouncement = a }
        // Not held while NATS is down: the next one, a second later, says the same.
        if conn.isConnected || leaving { try? conn.publish(subjects.announce, Array(a.json.text.utf8)) }
        if leaving { conn.flush(timeoutMs: 1_000) }
    }

    /// One queue-group subscription per capability this host provides.
    private func syncCapabilities() throws(PlexusError) {
        let want = Set(host.capabilityNames.filter { !ReservedNames.isHostOwned($0) })
        let (add, remove) = state.withLock { s in
            (want.subtracting(s.capabilitySubs.keys).sorted(), s.capabilitySubs.filter { !want.contains($0.key) })
        }
        for (cap, id) in remove { conn.unsubscribe(id); state.withLock { _ = $0.capabilitySubs.removeValue(forKey: cap) } }
        for cap in add {
            let via = inline()
            let id = try conn.subscribe(subjects.capabilityHere(cap), queue: cap) { [unowned self] s, _, d in via.deliver { self.onCapability(s, d) } }
            state.withLock { $0.capabilitySubs[cap] = id }
        }
    }

    // MARK: RemoteRoutes (on the router's threads)

    public func agentRoute(_ name: String) throws(PlexusError) -> RemoteTarget? {
        if let slash = name.firstIndex(of: "/") {
            let n = String(name[..<slash]), agent = String(name[name.index(after: slash)...])
            if n == node { return RemoteTarget(subject: subjects.agent(agent, on: n), node: n) }
            let (live, has, all) = state.withLock { s in
                (s.directory.isLive(n), s.directory.peers[n]?.announcement.agents.contains { $0.name == agent } ?? false, s.directory.liveNodes)
            }
            guard live else {
                throw PlexusError(.NO_SUCH_AGENT, "no node '\(n)' in cluster '\(cluster)' (live nodes: \(([node] + all).sorted().joined(separator: ", ")))")
            }
            guard has else { throw PlexusError(.NO_SUCH_AGENT, "node '\(n)' has no agent named '\(agent)'") }
            return RemoteTarget(subject: subjects.agent(agent, on: n), node: n)
        }
        let nodes = state.withLock { $0.directory.nodes(withAgent: name) }
        if nodes.isEmpty { return nil }
        guard nodes.count == 1 else {
            throw PlexusError(.INVALID_ARGUMENT, "agent '\(name)' runs on nodes \(nodes.joined(separator: ", ")): address it as agent:NODE/\(name), such as agent:\(nodes[0])/\(name)")
        }
        return RemoteTarget(subject: subjects.agent(name, on: nodes[0]), node: nodes[0])
    }

    /// The local preference: a local provider with room to start the call
    /// now keeps it here. One whose providers are all busy sends it to the
    /// host announcing the least load on its providers (announced each
    /// second), or keeps it when no other host provides it. A host with no
    /// provider of its own publishes it to the capability's queue group,
    /// where NATS picks one of the providing hosts.
    public func capabilityRoute(_ name: String, hasLocal: Bool, localSpare: Bool) -> RemoteTarget? {
        if ReservedNames.isHostOwned(name) { return nil }
        if localSpare { localPicks.add(1, ordering: .relaxed); return nil }
        if hasLocal {
            let turn = remotePicks.load(ordering: .relaxed)
            guard let n = state.withLock({ $0.directory.leastLoadedProvider(of: name, turn: turn) }) else {
                localPicks.add(1, ordering: .relaxed)
                return nil
            }
            remotePicks.add(1, ordering: .relaxed)
            return RemoteTarget(subject: subjects.capability(name, on: n), node: n)
        }
        guard state.withLock({ !$0.directory.providers(of: name).isEmpty }) else { return nil }
        remotePicks.add(1, ordering: .relaxed)
        return RemoteTarget(subject: subjects.capability(name), node: nil)
    }

    public func forward(_ frame: UnsafeRawBufferPointer, to target: RemoteTarget, request: plexus_id?, deadlineUnixNs: Int64) throws(PlexusError) {
        if let request {
            let deadlineMono = Clock.monotonicNanos() + max(0, deadlineUnixNs - Clock.unixNanos())
            state.withLock { $0.flights[request] = Flight(node: target.node, deadlineMono: deadlineMono) }
            do throws(PlexusError) { try send(target.subject, frame, request: request, deadlineMono: deadlineMono) } catch {
                state.withLock { _ = $0.flights.removeValue(forKey: request) }
                throw error
            }
        } else {
            try send(target.subject, frame)
        }
    }

    public func cancel(request: plexus_id) {
        guard let flight = state.withLock({ $0.flights.removeValue(forKey: request) }) else { return }
        // Still held: it never left this host, so it is simply not sent.
        if outbox.remove(request: request) { return }
        guard let node = flight.node else { return }
        try? send(subjects.cancel(to: node), ClusterNode.bytes(of: request))
    }

    static func bytes(of id: plexus_id) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: id.hi.littleEndian) { b.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: id.lo.littleEndian) { b.replaceSubrange(8..<16, with: $0) }
        return b
    }

    static func id(of d: UnsafeRawBufferPointer) -> plexus_id? {
        guard d.count == 16 else { return nil }
        return plexus_id(hi: d.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian,
                         lo: d.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian)
    }

    public func publish(_ frame: UnsafeRawBufferPointer, subject: String) {
        do { try send(subjects.topic(subject), frame) } catch {
            logger.warning("topic not sent to other hosts", metadata: ["subject": "\(subject)", "error": "\(error.detail)"])
        }
    }

    // MARK: what other hosts send (on libnats' delivery thread)

    private func grants(for from: String) -> Grants? {
        guard let patterns = peerGrants else { return nil }
        return state.withLock { s in
            if let g = s.grants[from] { return g }
            let g = try? Grants(patterns, holder: "node '\(from)'", source: "nats.grants")
            s.grants[from] = g
            return g
        }
    }

    private func decode(_ d: UnsafeRawBufferPointer, from: String, subject: String) -> Envelope? {
        do { return try Envelope(frame: Array(d.bindMemory(to: UInt8.self))) } catch {
            logger.warning("malformed frame from another host", metadata: ["node": "\(from)", "subject": "\(subject)", "error": "\(error.detail)"])
            return nil
        }
    }

    private func onAgent(_ subject: String, _ d: UnsafeRawBufferPointer) {
        guard let (from, _, rest) = subjects.parse(subject), rest.hasPrefix(node + "."), var env = decode(d, from: from, subject: subject) else { return }
        env.target = .agent(String(rest.dropFirst(node.count + 1)))
        deliver(env, from: from, announceTook: false)
    }

    private func onCapability(_ subject: String, _ d: UnsafeRawBufferPointer) {
        guard let (from, _, rest) = subjects.parse(subject), var env = decode(d, from: from, subject: subject) else { return }
        env.target = .capability(rest)
        deliver(env, from: from, announceTook: true)
    }

    private func onCapabilityHere(_ subject: String, _ d: UnsafeRawBufferPointer) {
        guard let (from, _, rest) = subjects.parse(subject), rest.hasPrefix(node + "."), var env = decode(d, from: from, subject: subject) else { return }
        env.target = .capability(String(rest.dropFirst(node.count + 1)))
        deliver(env, from: from, announceTook: false)
    }

    private func onTopic(_ subject: String, _ d: UnsafeRawBufferPointer) {
        guard let (from, _, rest) = subjects.parse(subject), from != node,   // this host's subscribers had it already
              var env = decode(d, from: from, subject: subject) else { return }
        env.target = .topic(rest)
        env.kind = .event
        deliver(env, from: from, announceTook: false)
    }

    /// Routes a message from node `from` here, as `from/sender`. The host's
    /// own agents and capabilities (`plexus.*`: control, tasks, key-value)
    /// are never announced, and a peer that names one anyway is refused:
    /// they answer this host's own clients only.
    private func deliver(_ env: Envelope, from: String, announceTook: Bool) {
        let sender = "\(from)/\(env.sender)"
        let requestID = env.id
        logger.debug("message from another host", metadata: ["node": "\(from)", "id": "\(requestID.hex)", "target": "\(env.target)"])
        let refusal: PlexusError? = env.target.kind != PLEXUS_TARGET_TOPIC && ReservedNames.isHostOwned(env.target.name)
            ? PlexusError(.PERMISSION_DENIED, "'\(env.target.name)' is the host's own and answers its own clients only, not other hosts")
            : nil
        if let refusal {
            host.audit(holder: "node '\(from)'", sender: sender, action: "call", name: env.target.name, reason: refusal.detail)
        }
        if env.kind == .query {
            if announceTook {   // the requester learns which host has it: if this one dies, it hears UNAVAILABLE
                try? send(subjects.took(to: from), ClusterNode.bytes(of: requestID))
            }
            let key = PeerRequest(node: from, id: requestID)
            state.withLock { $0.peerRequests[key] = PeerRequestState() }
            do throws(PlexusError) {
                if let refusal { throw refusal }
                let local = try host.routeFromPeer(env, sender: sender, grants: grants(for: from)) { [weak self] answer in
                    guard let self else { return }
                    // Once per answer; the final one ends the record. A request its caller cancelled answers no one.
                    let send = self.state.withLock { s -> Bool in
                        guard let st = s.peerRequests[key] else { return false }
                        if !answer.isPartial { s.peerRequests[key] = nil }
                        return !st.cancelled
                    }
                    if send { self.answer(answer, to: from, requestID: requestID, target: env.target.description) }
                }
                let cancelNow = state.withLock { s -> Bool in
                    guard s.peerRequests[key] != nil else { return false }
                    s.peerRequests[key]?.localID = local
                    return s.peerRequests[key]?.cancelled == true
                }
                if cancelNow { host.cancelFromPeer(local, by: "its caller on node '\(from)'") }
            } catch {
                state.withLock { _ = $0.peerRequests.removeValue(forKey: key) }
                let err = Envelope(kind: .error, target: .reply,
                                   payload: Array(JSONValue.object(["error": .string(error.name), "message": .string(error.detail)]).text.utf8),
                                   contentType: "application/json", sender: "plexus", correlationID: requestID, traceID: env.traceID,
                                   status: error.status)
                answer(err, to: from, requestID: requestID, target: env.target.description)
            }
            return
        }
        if refusal != nil { return }
        do { try host.routeFromPeer(env, sender: sender, grants: grants(for: from), onAnswer: nil) } catch {
            logger.notice("message from another host not delivered", metadata: ["node": "\(from)", "target": "\(env.target)", "error": "\(error.detail)"])
        }
    }

    /// Sends an answer back to the requesting host, or dead-letters it
    /// with the reason when that host has left.
    private func answer(_ reply: Envelope, to node: String, requestID: plexus_id, target: String) {
        var r = reply
        r.correlationID = requestID
        // A node not heard yet (its first announcement may come after its
        // first request) is answered; one dropped is not.
        let gone = node != self.node && state.withLock { $0.directory.peers[node]?.droppedMono != nil }
        guard !gone else {
            host.deadLetter(r, reason: "the answer from '\(target)' to request \(requestID.hex) had no one to go to: the caller's node '\(node)' left cluster '\(cluster)'",
                            status: PLEXUS_UNAVAILABLE.status)
            return
        }
        do {
            let frame = try r.encode()
            try send(subjects.reply(to: node), frame)
        } catch {
            host.deadLetter(r, reason: "the answer from '\(target)' to node '\(node)' could not be sent: \(error.detail)", status: error.status)
        }
    }

    private func onReply(_ subject: String, _ d: UnsafeRawBufferPointer) {
        guard let (from, _, _) = subjects.parse(subject), let env = decode(d, from: from, subject: subject) else { return }
        let id = env.correlationID
        // Only the host the request went to may answer it (when known); a
        // partial answer of a stream leaves it waiting for the rest.
        let partial = env.isPartial
        let ok = state.withLock { s -> Bool in
            guard let f = s.flights[id] else { return false }
            if let n = f.node, n != from { return false }
            if partial { s.flights[id]?.node = from } else { s.flights[id] = nil }
            return true
        }
        guard ok else {
            host.deadLetter(env, reason: "a late or unexpected answer from node '\(from)': no request \(id.hex) sent there waits for it", status: PLEXUS_NOT_A_REQUEST.status)
            return
        }
        // Cancelled or timed out here meanwhile: the router dead-letters it as late.
        host.replyFromPeer(env, sender: "\(from)/\(env.sender)")
    }

    /// The caller of a request sent here cancelled it: its handler is told
    /// as for a local caller, and its answer stays here (dead-lettered as late).
    private func onCancel(_ subject: String, _ d: UnsafeRawBufferPointer) {
        guard let (from, _, _) = subjects.parse(subject), let id = ClusterNode.id(of: d) else { return }
        let local = state.withLock { s -> plexus_id? in
            let key = PeerRequest(node: from, id: id)
            guard s.peerRequests[key] != nil else { return nil }
            s.peerRequests[key]?.cancelled = true
            return s.peerRequests[key]?.localID
        }
        if let local { host.cancelFromPeer(local, by: "its caller on node '\(from)'") }
    }

    private func onTook(_ subject: String, _ d: UnsafeRawBufferPointer) {
        guard let (from, _, _) = subjects.parse(subject), let id = ClusterNode.id(of: d) else { return }
        let live = state.withLock { s -> Bool in
            if s.flights[id] != nil { s.flights[id]?.node = from }
            return s.directory.isLive(from)
        }
        // Taken by a host already dropped: it will not answer.
        if !live { nodeLeft(from, why: "is not in the cluster any more") }
    }

    private func onAnnouncement(_ subject: String, _ d: UnsafeRawBufferPointer) {
        guard let (from, _, _) = subjects.parse(subject),
              let v = try? JSONValue.parse(Array(d.bindMemory(to: UInt8.self))), let a = Announcement(v), a.node == from else { return }
        if from == node {
            if a.instance != instance {
                logger.error("another host announces itself under this node name", metadata: ["node": "\(node)", "address": "\(a.address)"])
            }
            return
        }
        let (joined, waiting) = state.withLock { ($0.directory.heard(a, nowMono: Clock.monotonicNanos()), $0.reconnectedMono != nil) }
        // Back from a NATS outage: hearing the others again may let the outbox go now.
        if waiting { wake.withLock { wake.signal() } }
        if joined { logger.info("node joined", metadata: ["node": "\(from)", "address": "\(a.address)"]) }
        if a.leaving { nodeLeft(from, why: "left (shut down)") }
    }

    // MARK: what `plexus nodes` shows

    /// What the outbox holds now (messages, bytes), for /metrics.
    public var outboxDepth: (messages: Int, bytes: Int) { outbox.depth }
    /// This host's events published to the cluster's stream and lost, for /metrics (nil: no stream).
    public var eventStreamCounts: (published: Int, lost: Int)? { eventStream?.counts }
    /// Whether the NATS connection is up now, for /metrics.
    public var natsConnected: Bool { conn.isConnected }

    /// This node and every other one heard, with their agents.
    public var report: JSONValue {
        let now = Clock.monotonicNanos()
        let (dir, mine) = state.withLock { ($0.directory, $0.lastAnnouncement) }
        func agents(_ a: Announcement?) -> JSONValue {
            .array((a?.agents ?? []).map { x in
                .object(["name": .string(x.name), "state": .string(x.state), "load": .int(Int64(x.load)),
                         "capabilities": .array(x.capabilities.map { .string($0) })])
            })
        }
        var nodes: [JSONValue] = [.object(["node": .string(node), "address": .string(address), "state": .string("self"),
                                           "heartbeat_age_ms": .int(0), "agents": agents(mine)])]
        for (name, p) in dir.peers.sorted(by: { $0.key < $1.key }) {
            nodes.append(.object(["node": .string(name), "address": .string(p.announcement.address),
                                  "state": .string(p.droppedMono == nil ? "up" : "gone"),
                                  "heartbeat_age_ms": .int((now - p.lastHeardMono) / 1_000_000),
                                  "agents": agents(p.announcement)]))
        }
        let inFlight = state.withLock { $0.flights.count }
        let held = outbox.depth
        return .object(["node": .string(node), "cluster": .string(cluster), "url": .string(NatsConnection.redacted(url)),
                        "connected": .bool(conn.isConnected), "requests_in_flight": .int(Int64(inFlight)),
                        "nats_state": .string(conn.stateText), "nats_server": .string(conn.connectedURL),
                        "outbox": .object(["messages": .int(Int64(held.messages)), "bytes": .int(Int64(held.bytes)),
                                           "max_messages": .int(Int64(outbox.maxMessages)), "max_bytes": .int(Int64(outbox.maxBytes))]),
                        "capability_picks": .object(["local": .int(Int64(localPicks.load(ordering: .relaxed))),
                                                     "remote": .int(Int64(remotePicks.load(ordering: .relaxed)))]),
                        "events": eventStream?.report ?? .null,
                        "nodes": .array(nodes)])
    }
}

extension ClusterNode {
    /// `plexus.nodes` (agent plexus.cluster): the report above, for `plexus nodes`
    /// and `plexus agents --cluster`.
    public func installService() throws(PlexusError) {
        try host.provide(name: "plexus.cluster", capabilities: [
            ("plexus.nodes", "this host's cluster: every node heard, its state, heartbeat age and agents"),
            ("plexus.events.cluster", "every host's events from the cluster's JetStream stream, in order per host: {after: STREAM_SEQ, limit?, kind?} or the newest of each host {last: N, kind?}"),
        ]) { [unowned self] env, done in
            guard env.target.name == "plexus.events.cluster" else { done(.success(self.report)); return }
            do throws(WorkPool.Refusal) {
                try eventReads.submit { [unowned self] in done(Result { () throws(PlexusError) in try self.clusterEvents(env.payload) }) }
            } catch {
                done(.failure(PlexusError(.MAILBOX_FULL, "plexus.events.cluster is busy: \(eventReads.queueLimit) reads already wait; try again")))
            }
        }
    }

    /// `plexus.events.cluster`: {last: N, kind?} or {after: STREAM_SEQ, limit?, kind?}.
    func clusterEvents(_ payload: [UInt8]) throws(PlexusError) -> JSONValue {
        guard let stream = eventStream else { throw PlexusError(.UNAVAILABLE, "this host has no JetStream context: its log says why") }
        let args: JSONValue
        do { args = payload.isEmpty ? .object([:]) : try JSONValue.parse(payload) } catch {
            throw PlexusError(.INVALID_ARGUMENT, "plexus.events.cluster takes a JSON object: \(error)")
        }
        guard case .object(let o) = args else { throw PlexusError(.INVALID_ARGUMENT, "plexus.events.cluster takes a JSON object such as {\"last\": 20}") }
        func int(_ key: String, _ range: ClosedRange<Int64>) throws(PlexusError) -> Int64? {
            guard let v = o[key] else { return nil }
            guard case .int(let n) = v, range.contains(n) else { throw PlexusError(.INVALID_ARGUMENT, "\"\(key)\" must be a whole number in \(range), found \(v.text)") }
            return n
        }
        var kind = ""
        if let k = o["kind"] { guard case .string(let p) = k else { throw PlexusError(.INVALID_ARGUMENT, "\"kind\" must be a string") }; kind = p }
        if let last = try int("last", 0...10_000) { return try stream.latest(perNode: Int(last), kind: kind) }
        return try stream.page(after: UInt64(try int("after", 0...Int64.max) ?? 0), limit: Int(try int("limit", 1...10_000) ?? 500), kind: kind)
    }
}

extension ClusterNode {
    /// The live nodes (not this one) announcing a provider of capability.
    func providerNodes(of capability: String) -> [String] {
        state.withLock { $0.directory.providers(of: capability) }
    }
}
