import CPlexus
import CPlexusInternal
import Glibc
import PlexusCore
import PlexusSandbox
import PlexusThreads

/// A blocking `Host.call` in flight. While its query is routed the call is
/// its thread's `plexus_tls_call`, so a worker the query goes to straight
/// from this thread is noted; the caller then reads that worker's ring
/// itself while it waits (`WorkerProcess.readWhileWaiting`), and the worker
/// wakes it directly: on a shared core, two switches per round trip, where
/// going through the worker's I/O thread took four.
final class BlockingCall {
    private var worker: WorkerProcess?
    private var waited = false
    /// The call's request id, once routed: its final answer is the one
    /// frame of the worker's that this thread reports itself.
    var id: plexus_id = .none

    deinit {
        if let worker, !waited { worker.forgetCaller() }   // routing failed after the write
    }

    /// Runs route with this call as the thread's.
    func routing<R>(_ route: () throws(PlexusError) -> R) throws(PlexusError) -> R {
        let previous = plexus_tls_call()
        plexus_tls_set_call(Unmanaged.passUnretained(self).toOpaque())
        defer { plexus_tls_set_call(previous) }
        return try route()
    }

    /// A worker link about to write a delivery on this thread: the first
    /// one a call routes is the one its answer comes from (a query has one
    /// target). Counted before the write: the worker may answer at once.
    static func note(_ w: WorkerProcess) {
        guard let raw = plexus_tls_call() else { return }
        let call = Unmanaged<BlockingCall>.fromOpaque(raw).takeUnretainedValue()
        guard call.worker == nil else { return }
        call.worker = w
        w.expectCaller()
    }

    /// Waits for answer: reading the worker's ring while its channel is
    /// open, then (or for any other target) on the answer alone. An answer
    /// set elsewhere (a timeout, the I/O thread, another agent) wakes it.
    func wait<V>(for answer: OneShot<V>) -> V {
        if let w = worker {
            waited = true
            answer.wakeAlso { w.wakeWaitingCallers() }
            let id = self.id
            w.readWhileWaiting(until: { answer.isSet }, accepting: { Self.isOwn($0, id: id) })
        }
        return answer.wait()
    }

    /// What the calling thread itself reports of a worker's frames: the
    /// call's final answer, and the worker's DONE bookkeeping (a host-side
    /// count, no one else's code). Everything else is the I/O thread's.
    static func isOwn(_ e: UnsafePointer<plexus_envelope>, id: plexus_id) -> Bool {
        let env = e.pointee
        if env.target_kind == UInt8(PLEXUS_TARGET_REPLY.rawValue) {
            return env.correlation_id == id && env.flags & UInt8(PLEXUS_FLAG_MORE) == 0
        }
        guard env.target_kind == UInt8(PLEXUS_TARGET_TOPIC.rawValue), let t = env.target else { return false }
        return strcmp(t, PLEXUS_CONTROL_DONE) == 0
    }
}
