import CPlexus
import PlexusCore
import PlexusThreads
import Synchronization

/// Streaming replies and cancellation (ABI 1.2): partial answers that leave
/// a request open, a caller ending its own request, and what happens to an
/// answer that comes after its request ended. Nothing here runs for a plain
/// request and its single reply: the hot path does not change.
extension Router {
    /// Sends one partial answer (PLEXUS_FLAG_MORE) to a pending query on
    /// behalf of `o`, which must be its responder. The request stays open;
    /// its deadline still covers the whole stream. A caller that does not
    /// read streams (a plugin built before 1.2, a single-answer callback)
    /// never sees the partial.
    func replyPartial(_ e: UnsafePointer<plexus_envelope>, from o: Origin) throws(PlexusError) {
        guard e.pointee.struct_size >= UInt32(MemoryLayout<plexus_envelope>.size) else {
            throw PlexusError(.INVALID_ARGUMENT, "envelope struct_size \(e.pointee.struct_size) is smaller than \(MemoryLayout<plexus_envelope>.size)")
        }
        var c = e.pointee
        let rid = c.correlation_id
        c.struct_size = UInt32(MemoryLayout<plexus_envelope>.size)
        c.kind = MessageKind.response.rawValue
        c.status = 0
        c.flags = UInt8(PLEXUS_FLAG_MORE)
        c.target_kind = UInt8(PLEXUS_TARGET_REPLY.rawValue)
        c.target = nil
        c.id = ids.next()
        c.sender = o.cName
        c.deadline_unix_ns = 0
        if c.trace_id.isNone { c.trace_id = o.trace }
        // Made before the request is looked up: a refused partial leaves the
        // request open, and nothing reaches the caller.
        let m = try Message.make(&c, maxPayload: limits.maxPayload)
        // An agent's copy is enqueued under the request's lock, so a partial
        // can never land after the final answer or a TIMEOUT/CANCELLED that
        // ends the request on another thread. Waking the agent (which may run
        // a worker batch) happens after the lock is released.
        enum Next { case wake(Agent), callback(@Sendable (Envelope) -> Void), none }
        let next: Next? = pending.withOpen(rid, responderID: o.agentID) { entry in
            switch entry.requester {
            case .agent(let a):
                guard a.streams else { return Next.none }
                switch a.admit(Unmanaged.passRetained(m), force: true) {
                case .accepted(let wake): return wake ? Next.wake(a) : Next.none
                case .full, .closed, .redirected: return Next.none   // the final answer will say why, or the agent is gone (force never redirects)
                }
            case .stream(let f): return Next.callback(f)
            case .callback: return Next.none   // a single-answer caller: only the final reply
            }
        }
        guard let next else { throw lateAnswer(m, from: o, partial: true) }
        switch next {
        case .wake(let a):
            if let link = a.link { runWorkerBatch(a, link) } else { dispatcher.schedule(a) }
        case .callback(let f):
            // A stream callback hears the partial outside the lock; the
            // callers that make .stream requesters (Host.requestStream, the
            // socket session) drop anything after their final answer.
            f(m.envelope)
        case .none: break
        }
        if let r = metricsRef { r._withUnsafeGuaranteedRef { $0.countRouted(MessageKind.response.rawValue) } }
    }

    /// Cancels a pending query. `requesterID` is the requesting agent's
    /// identity (Unmanaged.toOpaque), or nil for a caller outside any agent
    /// (the Swift API, a socket client, the task service), which may cancel
    /// only requests made that way. The handler's agent gets a CANCEL
    /// envelope (if it reads them); the caller gets ERROR CANCELLED.
    func cancel(_ rid: plexus_id, requesterID: UnsafeMutableRawPointer?, by who: String) throws(PlexusError) {
        guard !rid.isNone else { throw PlexusError(.INVALID_ARGUMENT, "the request id to cancel is all zero") }
        guard let entry = pending.take(rid, requesterID: requesterID) else {
            throw PlexusError(.NOT_A_REQUEST, "no request \(rid.hex) of \(who)'s is waiting for an answer (answered already, timed out or cancelled)")
        }
        Router.observeAnswer(entry)
        cancelled.remember(rid)
        if let r = entry.responder, r.streams { tellCancelled(r, requestID: rid, trace: entry.trace) }
        if remote != nil { cancelRemote(entry, rid) }   // sent to another host (Router+Remote.swift)
        answer(entry.requester, requestID: rid, status: PLEXUS_CANCELLED.status,
               detail: "the request to '\(entry.target)' was cancelled by \(who)")
    }

    /// Puts a CANCEL envelope for rid in the handler's mailbox, ahead of the
    /// mailbox limit as replies are (it frees work; it never adds any).
    private func tellCancelled(_ a: Agent, requestID rid: plexus_id, trace: plexus_id) {
        var c = plexus_envelope_init()
        c.kind = MessageKind.cancel.rawValue
        c.target_kind = UInt8(PLEXUS_TARGET_REPLY.rawValue)
        c.priority = Priority.high.rawValue
        c.correlation_id = rid
        c.trace_id = trace
        c.id = ids.next()
        c.sender = UnsafePointer(hostName)
        guard let m = try? Message.make(&c, maxPayload: UInt64(PLEXUS_MAX_PAYLOAD_LEN)) else { return }
        if let r = metricsRef { r._withUnsafeGuaranteedRef { $0.countRouted(MessageKind.cancel.rawValue) } }
        do throws(PlexusError) { try admit(Unmanaged.passRetained(m), to: a, force: true) } catch {
            deadLetters.record(m, reason: "cancel of \(rid.hex) for '\(a.name)': \(error.detail)", cause: Int(error.status))
        }
    }

    /// An answer (final or partial) whose request is no longer open: it is
    /// dead-lettered with the reason, and its sender hears NOT_A_REQUEST.
    func lateAnswer(_ c: inout plexus_envelope, from o: Origin) -> PlexusError {
        c.struct_size = UInt32(MemoryLayout<plexus_envelope>.size)
        c.kind = c.kind == MessageKind.error.rawValue ? c.kind : MessageKind.response.rawValue
        c.flags = 0
        c.target_kind = UInt8(PLEXUS_TARGET_REPLY.rawValue)
        c.target = nil
        c.sender = o.cName
        c.deadline_unix_ns = 0
        guard let m = try? Message.make(&c, maxPayload: limits.maxPayload) else {
            return PlexusError(.NOT_A_REQUEST, "no request \(c.correlation_id.hex) is waiting for a reply from \(o.agent?.name ?? "this caller")")
        }
        return lateAnswer(m, from: o, partial: false)
    }

    private func lateAnswer(_ m: Message, from o: Origin, partial: Bool) -> PlexusError {
        let rid = m.header.correlationID
        let who = o.agent?.name ?? String(cString: o.cName)
        let why = cancelled.contains(rid)
            ? "request \(rid.hex) was cancelled by its caller"
            : "request \(rid.hex) is not waiting for a reply from \(who) (answered already, timed out, or never sent there)"
        deadLetters.record(m, reason: "late \(partial ? "partial answer" : "reply"): \(why)", cause: Int(PLEXUS_NOT_A_REQUEST.status))
        return PlexusError(.NOT_A_REQUEST, "no request \(rid.hex) is waiting for a reply from \(who): \(why)")
    }
}

/// The most recent cancelled request ids, so a reply that arrives after a
/// cancel is dead-lettered as such. Bounded: only the newest are kept.
final class RecentCancels: Sendable {
    private struct State {
        var ring = [plexus_id](repeating: .none, count: RecentCancels.capacity)
        var next = 0
    }
    static let capacity = 1024
    private let state = Mutex(State())

    func remember(_ id: plexus_id) {
        state.withLock { s in
            s.ring[s.next] = id
            s.next = (s.next + 1) % Self.capacity
        }
    }

    func contains(_ id: plexus_id) -> Bool { state.withLock { $0.ring.contains(id) } }
}
