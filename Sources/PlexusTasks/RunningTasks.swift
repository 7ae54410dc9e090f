import PlexusCore
import PlexusStore
import PlexusThreads

/// The request each running task is waiting on, so `cancel` (any thread)
/// can reach its agent; and the cancels waiting for the scheduler to record
/// their task as cancelled. The scheduler's thread adds and removes
/// requests; cancel waits here for the record to be on disk.
final class RunningTasks: @unchecked Sendable {
    private let lock = ConditionLock()
    private var requests: [String: plexus_id] = [:]   // guarded by lock
    private var cancelling: Set<String> = []
    private var cancelled: [String: TaskRecord] = [:]

    func started(_ task: String, request: plexus_id) { lock.withLock { requests[task] = request } }
    func ended(_ task: String) { lock.withLock { _ = requests.removeValue(forKey: task) } }

    /// The running task's request, now marked as being cancelled; nil when
    /// the task is not running (any more).
    func beginCancel(_ task: String) -> plexus_id? {
        lock.withLock {
            guard let r = requests[task] else { return nil }
            cancelling.insert(task)
            return r
        }
    }

    /// Whether an answer of CANCELLED for task is the hand cancel's (and
    /// not an agent that answered CANCELLED of its own accord).
    func isCancelling(_ task: String) -> Bool { lock.withLock { cancelling.contains(task) } }

    /// The cancel could not be made (the answer came first): forget it.
    func abandonCancel(_ task: String) { lock.withLock { _ = cancelling.remove(task) } }

    /// The scheduler recorded the task as cancelled, on disk.
    func recorded(_ t: TaskRecord) {
        lock.withLock {
            cancelling.remove(t.id)
            cancelled[t.id] = t
            lock.broadcast()
        }
    }

    /// Waits until the task's cancel is recorded; nil at the deadline.
    func awaitRecorded(_ task: String, untilMonotonic deadline: Int64) -> TaskRecord? {
        lock.withLock {
            while cancelled[task] == nil && Clock.monotonicNanos() < deadline { lock.wait(untilMonotonic: deadline) }
            return cancelled.removeValue(forKey: task)
        }
    }
}
