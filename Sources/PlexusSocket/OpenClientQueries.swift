import PlexusCore
import Synchronization

/// A connection's queries that still wait for their final answer: the
/// client's frame id and the id the host gave the request, so a CANCEL
/// frame (which names the client's id) reaches the right request, and only
/// this connection's. Answers arrive on other threads, hence the lock.
final class OpenClientQueries: Sendable {
    /// nil: made, but its host id is not known yet (the answer may even
    /// come first: then the entry is gone before `started`, and stays gone).
    private let open = Mutex<[plexus_id: plexus_id?]>([:])

    func begin(_ clientID: plexus_id) { open.withLock { $0[clientID] = .some(nil) } }

    func started(_ clientID: plexus_id, _ hostID: plexus_id) {
        open.withLock { if $0[clientID] != nil { $0[clientID] = hostID } }
    }

    func end(_ clientID: plexus_id) { open.withLock { _ = $0.removeValue(forKey: clientID) } }

    func hostID(_ clientID: plexus_id) -> plexus_id? { open.withLock { $0[clientID] ?? nil } }
}
