import PlexusCore
import PlexusThreads

/// Runs the per-call work of a host service (a submission or a workflow
/// start waits for the disk) off the dispatcher thread, on a bounded
/// WorkPool: when `queueLimit` calls already wait, the caller is answered
/// MAILBOX_FULL at once rather than the host starting another thread.
public struct ServicePool: Sendable {
    public let pool: WorkPool

    public init(name: String, threads: Int, queueLimit: Int) {
        pool = WorkPool(name: name, threads: threads, queueLimit: queueLimit)
    }

    /// Runs work on the pool and answers with its result; answers the
    /// refusal itself when the pool cannot take it.
    public func run(_ what: String, answer: @escaping @Sendable (Result<JSONValue, PlexusError>) -> Void,
                    _ work: @escaping @Sendable () throws(PlexusError) -> JSONValue) {
        do throws(WorkPool.Refusal) {
            try pool.submit { answer(Result { () throws(PlexusError) in try work() }) }
        } catch {
            switch error {
            case .full(let limit):
                answer(.failure(PlexusError(.MAILBOX_FULL, "\(what) is busy: \(limit) calls already wait for its \(pool.maxThreads) threads; try again")))
            case .noThread(let e):
                answer(.failure(PlexusError(.INTERNAL, "\(what) cannot run the call: \(e)")))
            }
        }
    }
}
