import CPlexus
import PlexusCore
import Synchronization

/// Streaming requests and cancellation for callers outside any agent: the
/// Swift API, socket clients (PlexusSocket's Session), the task service.
extension Host {
    /// Sends a query whose answer may come as a stream: `onAnswer` gets each
    /// partial answer (`isPartial`), in order, then exactly one final
    /// RESPONSE or ERROR, unless this throws (then it is never called).
    /// Nothing reaches it after the final answer. It must not block.
    @discardableResult
    public func requestStream(_ env: Envelope, timeoutMs: Int64 = 0, as sender: String? = nil, grants: Grants? = nil,
                              parentSpan: UInt64 = 0,
                              onAnswer: @escaping @Sendable (Envelope) -> Void) throws(PlexusError) -> plexus_id {
        let gate = StreamGate()
        let guarded: @Sendable (Envelope) -> Void = { a in gate.pass(a, to: onAnswer) }
        func route(_ origin: Router.Origin) -> Result<plexus_id, PlexusError> {
            var o = origin
            o.parentSpan = parentSpan
            o.admitted = parentSpan != 0
            return env.withCEnvelope { e in
                do throws(PlexusError) { return .success(try router.route(e, from: o, request: (.stream(guarded), timeoutMs))) }
                catch { return .failure(error) }
            }
        }
        guard let sender else { return try route(apiOrigin).get() }
        return try sender.withCString { s in route(Router.Origin(cName: s, agent: nil, trace: .none, grants: grants)) }.get()
    }

    /// Cancels a request made through this API (request, requestStream,
    /// call): its answer becomes ERROR CANCELLED, and the agent handling it
    /// receives a CANCEL envelope. NOT_A_REQUEST when it is no longer open,
    /// or was made by an agent (an agent cancels its own with the host
    /// function). `who` names the canceller in the answer's message.
    public func cancel(_ requestID: plexus_id, by who: String = "its caller") throws(PlexusError) {
        try router.cancel(requestID, requesterID: nil, by: who)
    }

    /// Sends a partial answer (PLEXUS_FLAG_MORE) to a request delivered to
    /// x: the request stays open for more, and for the final reply.
    public func replyPartial(_ env: Envelope, from x: ExternalAgent) throws(PlexusError) {
        let r: Result<Void, PlexusError> = env.withCEnvelope { e in
            do throws(PlexusError) { return .success(try router.replyPartial(e, from: HostTable.origin(x.agent))) }
            catch { return .failure(error) }
        }
        try r.get()
    }
}

/// One stream's answers, handed on one at a time: a partial that races the
/// final answer (a TIMEOUT or CANCELLED from another thread) is either
/// handed on before it or dropped, never after it.
final class StreamGate: Sendable {
    private let finished = Mutex(false)

    func pass(_ a: Envelope, to onAnswer: @Sendable (Envelope) -> Void) {
        finished.withLock { done in
            guard !done else { return }
            if !a.isPartial { done = true }
            onAnswer(a)
        }
    }
}
