import Glibc
import PlexusSandbox
import PlexusThreads

/// Judges every worker's health on a wall clock: heartbeats and overdue
/// requests (WorkerLink.checkHealth), every tick. RLIMIT_CPU never fires on
/// a worker that sleeps or deadlocks; this does.
final class HealthMonitor: @unchecked Sendable {
    private let lock = ConditionLock()
    private var stopping = false
    private var thread: OwnedThread?
    private let links: () -> [WorkerLink]
    /// Warm workers are checked too: one that died waiting is reaped and replaced.
    private let pool: WarmPool?
    static let tickMs: Int64 = 100

    init(pool: WarmPool? = nil, links: @escaping () -> [WorkerLink]) { self.pool = pool; self.links = links }

    func start() throws(ThreadStartError) {
        thread = try startThread(name: "plexus-health") { [self] in
            while true {
                let next = Clock.monotonicNanos() + Self.tickMs * 1_000_000
                let stop: Bool = lock.withLock {
                    while !stopping && Clock.monotonicNanos() < next { lock.wait(untilMonotonic: next) }
                    return stopping
                }
                if stop { return }
                let now = Clock.monotonicNanos()
                for l in links() { l.checkHealth(now: now) }
                pool?.prune()
            }
        }
    }

    func stop() {
        lock.withLock { stopping = true; lock.broadcast() }
        thread?.join()
        thread = nil
    }
}
