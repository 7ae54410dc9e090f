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
    private struct State {
        var ids = Set<plexus_id>()
        /// Pruned when it grows past this: twice what the last pruning
        /// kept (at least 256), so an agent holding thousands of requests
        /// open costs amortized O(1) per note, not a scan per note.
        var pruneAt = 256
    }
    private let state = Mutex(State())

    func note(_ id: plexus_id, pending: PendingRequests, responder: Agent) {
        state.withLock { s in
            s.ids.insert(id)
            if s.ids.count > s.pruneAt {
                s.ids = s.ids.filter { pending.isOpen($0, responder: responder) }
                s.pruneAt = max(256, 2 * s.ids.count)
            }
        }
    }

    /// The promised requests still open.
    func open(in pending: PendingRequests, responder: Agent) -> [plexus_id] {
        state.withLock { s in
            s.ids = s.ids.filter { pending.isOpen($0, responder: responder) }
            s.pruneAt = max(256, 2 * s.ids.count)
            return Array(s.ids)
        }
    }

    /// Takes every promised id (the worker has ended).
    func takeAll() -> [plexus_id] {
        state.withLock { s in
            defer { s.ids.removeAll(); s.pruneAt = 256 }
            return Array(s.ids)
        }
    }
}

extension Router {
    /// Ends requests whose answerer can no longer answer them, with why.
    /// One already answered is skipped (the table no longer has it).
    func failOrphans(_ ids: [plexus_id], of agent: Agent, status: plexus_status, detail: String) {
        for id in ids { fail(requestID: id, responder: agent, status: status, detail: detail) }
    }
}
