import CPlexus
import PlexusCore
import PlexusThreads

/// Where a message that leaves this host goes: the NATS subject and, when
/// known when it is sent, the node that will handle it.
public struct RemoteTarget: Sendable, Equatable {
    public var subject: String
    /// nil: a queue group picks the host (a capability); the receiver says which.
    public var node: String?
    public init(subject: String, node: String?) { self.subject = subject; self.node = node }
}

/// The other hosts of a cluster, as the router sees them (PlexusCluster
/// implements it over NATS). Asked only when a message may leave this host:
/// an agent name not found here, or a capability with no local provider
/// with spare capacity. A host alone never has one, and pays one nil check.
public protocol RemoteRoutes: AnyObject, Sendable {
    /// Where agent `name` ("NAME" or "NODE/NAME") runs if not here; nil when
    /// no host announces it. Throws when the name is ambiguous.
    func agentRoute(_ name: String) throws(PlexusError) -> RemoteTarget?
    /// Where a capability call goes: nil keeps it on this host. `hasLocal`:
    /// a local agent provides it; `localSpare`: one of them could start it now.
    func capabilityRoute(_ name: String, hasLocal: Bool, localSpare: Bool) -> RemoteTarget?
    /// Sends one envelope frame, encoded once by the router. A query's id is
    /// `request`: its answer comes back through Host.replyFromPeer.
    func forward(_ frame: UnsafeRawBufferPointer, to target: RemoteTarget, request: plexus_id?, deadlineUnixNs: Int64) throws(PlexusError)
    /// A topic publish from this host, for the other hosts' subscribers.
    func publish(_ frame: UnsafeRawBufferPointer, subject: String)
    /// The caller of `request` (sent with forward) cancelled it here: tell
    /// the host handling it.
    func cancel(request: plexus_id)
}

/// The router's link to other hosts: the routes, and the stand-in agent
/// every request sent away waits on as its responder (only answers that
/// come back from a peer, through Host.replyFromPeer, may end it).
final class RemoteLink: @unchecked Sendable {
    let routes: any RemoteRoutes
    let peer: Agent
    init(_ routes: any RemoteRoutes, mailboxCapacity: Int) {
        self.routes = routes
        peer = Agent(name: "nats", behavior: .builtin(PeerStandIn()), capabilities: [], exports: [], mailboxCapacity: 1)
    }
}

/// Never registered and never sent to: it only names "a peer host" as a
/// pending request's responder.
private struct PeerStandIn: BuiltinBehavior {
    var capabilities: [PluginDescriptor.Capability] { [] }
    func handle(_ m: Message, agent: Agent, router: Router) -> plexus_status { PLEXUS_UNSUPPORTED.status }
}

extension Router {
    /// Sends c to another host when no local agent should take it; returns
    /// the message's id then, nil to go on with the local path (which also
    /// gives the local errors: no such agent, no such capability).
    func routeRemote(_ r: RemoteLink, _ c: inout plexus_envelope, _ target: UnsafePointer<CChar>,
                     request: (Requester, timeoutMs: Int64)?, timeoutMs: Int64, nowUnix: Int64) throws(PlexusError) -> plexus_id? {
        let name = String(cString: target)
        let dest: RemoteTarget?
        if UInt32(c.target_kind) == PLEXUS_TARGET_AGENT.rawValue {
            if registry.agent(cName: target) != nil { return nil }
            dest = try r.routes.agentRoute(name)
        } else {
            // Local first while one of its providers has room to start it now
            // (what it holds, queued or running, is under its concurrency).
            let local = registry.leastLoaded(cName: target)?.0
            let spare = local.map { $0.load.load(ordering: .relaxed) < ($0.link?.policy.concurrency ?? $0.concurrency) } ?? false
            dest = r.routes.capabilityRoute(name, hasLocal: local != nil, localSpare: spare)
        }
        guard let dest else { return nil }
        if let request {
            let entry = PendingRequests.Entry(requester: request.0, responder: r.peer,
                                              deadlineMono: Clock.coarseMonotonicNanos() + Clock.coarseLagNanos / 2 + (c.deadline_unix_ns - nowUnix),
                                              target: dest.node.map { "\(name) on node '\($0)'" } ?? name,
                                              timeoutMs: timeoutMs, trace: c.trace_id, traced: false)
            c.id = try pending.add(consume entry)
        }
        do throws(PlexusError) {
            let m = try Message.make(&c, maxPayload: limits.maxPayload)
            let deadline = c.deadline_unix_ns
            let isQuery = request != nil
            let sent: Result<Void, PlexusError> = m.withFrame { f in
                do throws(PlexusError) {
                    try r.routes.forward(f, to: dest, request: isQuery ? m.id : nil, deadlineUnixNs: deadline)
                    return .success(())
                } catch { return .failure(error) }
            }
            try sent.get()
        } catch {
            if request != nil { _ = pending.take(c.id, responder: r.peer) }
            throw error
        }
        if let mr = metricsRef { let k = c.kind; mr._withUnsafeGuaranteedRef { $0.countRouted(k) } }
        return c.id
    }

    /// A request sent to another host was cancelled by its caller: that host is told.
    func cancelRemote(_ entry: PendingRequests.Entry, _ rid: plexus_id) {
        guard let r = remote, entry.responder === r.peer else { return }
        r.routes.cancel(request: rid)
    }

    /// A topic message published here, handed to the other hosts too
    /// (the host's own subjects stay on this host).
    func publishRemote(_ r: RemoteLink, _ m: Message, subject: String) {
        if ReservedNames.isHostOwned(subject) { return }
        m.withFrame { r.routes.publish($0, subject: subject) }
    }
}

// MARK: - what a peer host sends here

extension Host {
    /// Joins this host to other hosts (PlexusCluster). Call before start.
    public func attach(remote routes: any RemoteRoutes) {
        router.remote = RemoteLink(routes, mailboxCapacity: configuration.mailboxCapacity)
    }

    /// Routes an envelope another host sent, as `sender` ("node/agent",
    /// named from the NATS subject it came on, never from the frame),
    /// within `grants` (nil: anything), to local agents only. A QUERY's
    /// answers go to onAnswer, which must not block: the partial ones of a
    /// stream (Envelope.isPartial), in order, then the final one. Its
    /// deadline is the envelope's own.
    /// Returns the id the message has here.
    @discardableResult
    public func routeFromPeer(_ env: Envelope, sender: String, grants: Grants?,
                              onAnswer: (@Sendable (Envelope) -> Void)?) throws(PlexusError) -> plexus_id {
        let r: Result<plexus_id, PlexusError> = sender.withCString { s in
            var o = Router.Origin(cName: s, agent: nil, trace: .none, grants: grants)
            o.fromPeer = true
            return env.withCEnvelope { e in
                do throws(PlexusError) {
                    if let onAnswer { return .success(try router.route(e, from: o, request: (.stream(onAnswer), 0))) }
                    return .success(try router.route(e, from: o))
                } catch { return .failure(error) }
            }
        }
        return try r.get()
    }

    /// An answer from another host to a request this host sent it (its
    /// correlation id): a partial one of a stream (Envelope.isPartial) leaves
    /// the request open. False when no such request waits any more (the
    /// router dead-letters it as late).
    @discardableResult
    public func replyFromPeer(_ env: Envelope, sender: String) -> Bool {
        guard let link = router.remote else { return false }
        return sender.withCString { s in
            env.withCEnvelope { e in
                let o = Router.Origin(cName: s, agent: link.peer, trace: .none)
                if env.isPartial { return (try? router.replyPartial(e, from: o)) != nil }
                return (try? router.reply(e, from: o)) != nil
            }
        }
    }

    /// Cancels a request another host sent here (its id here, as
    /// routeFromPeer returned it): its handler is told, as for a local caller.
    public func cancelFromPeer(_ id: plexus_id, by who: String) {
        try? router.cancel(id, requesterID: nil, by: who)
    }

    /// Ends a request sent to another host with `status` (the host left,
    /// or NATS refused it): the caller hears it now, not at its deadline.
    public func failRemote(requestID: plexus_id, status: plexus_status, detail: String) {
        guard let link = router.remote else { return }
        router.fail(requestID: requestID, responder: link.peer, status: status, detail: detail)
    }

    /// Keeps an envelope that could not be delivered (an answer whose
    /// caller's host left) in the dead letters, with the reason.
    public func deadLetter(_ env: Envelope, reason: String, status: plexus_status) {
        env.withCEnvelope { e in
            guard let m = try? Message.make(e, maxPayload: UInt64(PLEXUS_MAX_PAYLOAD_LEN)) else { return }
            router.deadLetters.record(m, reason: reason, cause: Int(status))
        }
    }
}
