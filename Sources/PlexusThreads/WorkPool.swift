import Glibc

/// A small, bounded pool for per-call work that may block (a submission
/// waiting for the disk): at most `threads` threads and `queueLimit` jobs
/// waiting. A full pool refuses at once instead of growing, so a burst of
/// calls can never create threads without bound. Threads start on demand
/// and end (detached) after `idleNanos` without work, so an idle host holds
/// none and nothing needs stopping.
public final class WorkPool: @unchecked Sendable {
    public enum Refusal: Error, Sendable {
        /// `queueLimit` jobs are already waiting.
        case full(limit: Int)
        /// No thread runs and none could be started.
        case noThread(ThreadStartError)
    }

    public let name: String
    public let maxThreads: Int
    public let queueLimit: Int
    private let idleNanos: Int64
    // State below is guarded by lock (it needs a condition to sleep on).
    private let lock = ConditionLock()
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0
    private var threads = 0
    private var idle = 0

    public init(name: String, threads: Int, queueLimit: Int, idleMs: Int64 = 5_000) {
        self.name = name
        self.maxThreads = max(1, threads)
        self.queueLimit = max(1, queueLimit)
        self.idleNanos = max(1, idleMs) * 1_000_000
    }

    /// Threads running now (for tests and reports).
    public var threadCount: Int { lock.withLock { threads } }

    /// Queues job; throws when the queue is full or no thread can run it.
    public func submit(_ job: @escaping @Sendable () -> Void) throws(Refusal) {
        lock.lock()
        if jobs.count - head >= queueLimit { lock.unlock(); throw .full(limit: queueLimit) }
        jobs.append(job)
        if idle > 0 { lock.unlock(); lock.signal(); return }   // woken under the lock, it would block on it
        guard threads < maxThreads else { lock.unlock(); return }   // a busy thread will take it
        threads += 1
        lock.unlock()
        do throws(ThreadStartError) {
            try startDetachedThread(name: name) { [self] in run() }
        } catch {
            // Another running thread will take the job; with none, it is taken back.
            let orphaned = lock.withLock { () -> Bool in
                threads -= 1
                guard threads == 0, jobs.count > head else { return false }
                jobs.removeLast()
                return true
            }
            if orphaned { throw .noThread(error) }
        }
    }

    private func run() {
        lock.lock()
        while true {
            if head < jobs.count {
                let job = jobs[head]
                head += 1
                if head == jobs.count { jobs.removeAll(keepingCapacity: true); head = 0 }
                lock.unlock()
                job()
                lock.lock()
                continue
            }
            idle += 1
            let deadline = Clock.monotonicNanos() + idleNanos
            while head == jobs.count && Clock.monotonicNanos() < deadline { lock.wait(untilMonotonic: deadline) }
            idle -= 1
            if head == jobs.count { break }   // idle too long: end
        }
        threads -= 1
        lock.unlock()
    }
}
