import Synchronization
import PlexusCore
import CPlexus

/// Requests a sandboxed agent finished handling without answering yet: a
/// handler may return OK and reply later, from another thread. If the
/// worker ends before it answers, no answer can come any more (a new
/// worker, or a new version, knows nothing of them), so their callers are
/// told at once instead of at their deadlines; and a drain waits for them
/// before it stops the worker.
///
/// Noted at the worker's DONE, which follows on the same channel any reply
/// the handler sent before returning: a request still open then is one the
/// agent means to answer later. Those answered since are pruned lazily.
final class PromisedAnswers: Sendable {
    private let ids = Mutex<Set<plexus_id>>([])
    private static let pruneAbove = 256

    func note(_ id: plexus_id, pending: PendingRequests, responder: Agent) {
        ids.withLock { s in
            s.insert(id)
            if s.count > Self.pruneAbove { s = s.filter { pending.isOpen($0, responder: responder) } }
        }
    }

    /// The promised requests still open.
    func open(in pending: PendingRequests, responder: Agent) -> [plexus_id] {
        ids.withLock { s in
            s = s.filter { pending.isOpen($0, responder: responder) }
            return Array(s)
        }
    }

    /// Takes every promised id (the worker has ended).
    func takeAll() -> [plexus_id] {
        ids.withLock { s in defer { s.removeAll() }; return Array(s) }
    }
}

extension Router {
    /// Ends requests whose answerer can no longer answer them, with why.
    /// One already answered is skipped (the table no longer has it).
    func failOrphans(_ ids: [plexus_id], of agent: Agent, status: plexus_status, detail: String) {
        for id in ids { fail(requestID: id, responder: agent, status: status, detail: detail) }
    }
}
