import Glibc
import Synchronization
import GRDB
import Logging
import PlexusCore
import PlexusThreads

/// A store that cannot be used, and why: the file, and what is wrong with it.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
}

/// The host's durable state in one SQLite file in WAL mode: tasks and their
/// attempts, the event log, and the agents' key-value store.
///
/// Writes that acknowledge durable work go through `commit`: a single writer
/// thread gathers every write waiting at that moment into one transaction
/// (group commit), so one fsync (synchronous=FULL) acknowledges many
/// submissions and durability stays fast. Reads run concurrently on the
/// pool's reader connections.
public final class Store: @unchecked Sendable {
    public let path: String
    let pool: DatabasePool
    let logger = Logger(label: "plexus.store")
    /// What opening found: "ok", or what a damaged file lost (Recovery.swift).
    public let openReport: String
    /// Held from open to close: a second host on this file is refused.
    private let holder: StoreLock

    private let lock = ConditionLock()
    private var pending: [Write] = []
    private var closed = false
    private var writer: OwnedThread?
    /// Wakes timers (retention) sleeping between passes when the store closes.
    private let idle = ConditionLock()
    /// Transactions written and writes they carried, for the group-commit figures.
    public private(set) var transactions = 0
    public private(set) var writes = 0
    /// Hears each group commit: its time (ns) and how many writes it carried
    /// (plexus_store_commit_seconds, plexus_store_batch_size); read once per batch.
    private let commitObserver = Mutex<(@Sendable (Int64, Int) -> Void)?>(nil)

    /// Sets who hears of each group commit (the host's metrics).
    public func observeCommits(_ f: @escaping @Sendable (_ nanos: Int64, _ writes: Int) -> Void) {
        commitObserver.withLock { $0 = f }
    }

    struct Write {
        let work: (Database) throws -> Void
        let done: (Error?) -> Void
    }

    /// Opens (creating) the store at path. A damaged file is detected with
    /// SQLite's integrity check; its intact rows are copied into a fresh
    /// file, the damaged one is kept beside it, and `openReport` says what
    /// was lost. A store another host holds open is refused, naming the
    /// holder's pid (StoreLock), before anything reads or repairs it.
    public init(path: String) throws(StoreError) {
        self.path = path
        holder = try StoreLock(store: path)
        var report = "ok"
        do {
            if let damage = try Store.damage(at: path) {
                report = try Recovery.salvage(path: path, damage: damage)
            }
            pool = try DatabasePool(path: path, configuration: Store.configuration)
            try Schema.migrate(pool)
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError("\(path): cannot open the store: \(error)")
        }
        openReport = report
        if report != "ok" { logger.error("store recovered", metadata: ["file": "\(path)", "report": "\(report)"]) }
        // unowned(unsafe): the writer never outlives the store (deinit's
        // close() joins it), but it may still be finishing while deinit
        // runs, when a checked unowned read would abort the process (a
        // `plexus run` that failed right after opening its store did).
        do { writer = try startThread(name: "plexus-store") { [unowned(unsafe) self] in writeLoop() } } catch {
            throw StoreError("\(path): \(error)")
        }
    }

    static var configuration: Configuration {
        var c = Configuration()
        c.prepareDatabase { db in
            // FULL: a commit is on disk (WAL fsync) before it returns, so an
            // acknowledgement survives power loss, not only a crash.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        c.busyMode = .timeout(10)
        return c
    }

    /// nil when the file is missing or sound; else what SQLite's check says.
    static func damage(at path: String) throws -> String? {
        guard access(path, F_OK) == 0 else { return nil }
        do {
            let q = try DatabaseQueue(path: path)
            defer { try? q.close() }
            let lines = try q.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
            return lines == ["ok"] ? nil : lines.prefix(5).joined(separator: "; ")
        } catch {
            return "\(error)"
        }
    }

    // MARK: writing

    /// Runs `work` in the next group transaction and blocks until that
    /// transaction is on disk. Throws what `work` threw (its changes are
    /// rolled back alone) or why the transaction failed.
    public func commit(_ work: @escaping (Database) throws -> Void) throws {
        try waitFor { done in enqueue(work) { e in done(e.map { .failure($0) } ?? .success(())) } }
    }

    /// Starts an asynchronous write and blocks until its `done` is called.
    func waitFor<T>(_ start: (@escaping (Result<T, Error>) -> Void) -> Void) throws -> T {
        let result = OneShot<Result<T, Error>>()
        start { result.set($0) }
        return try result.wait().get()
    }


    /// Like commit, but returns at once; `done` runs on the writer thread
    /// once the transaction is on disk (nil) or failed.
    public func enqueue(_ work: @escaping (Database) throws -> Void, done: @escaping (Error?) -> Void = { _ in }) {
        let accepted = lock.withLock { () -> Bool in
            if closed { return false }
            pending.append(Write(work: work, done: done))
            lock.signal()
            return true
        }
        if !accepted { done(StoreError("\(path): the store is closed")) }
    }

    public func read<T>(_ body: (Database) throws -> T) throws -> T { try pool.read(body) }

    private func writeLoop() {
        while let batch = nextBatch() {
            // Optimistic: the whole batch in one transaction, no savepoints.
            // Only when a write throws is the batch redone with a savepoint
            // each, so the failing write is rolled back alone.
            let observer = commitObserver.withLock { $0 }
            let started = observer == nil ? 0 : Clock.monotonicNanos()
            var outcomes = run(batch, isolated: false)
            if outcomes.contains(where: { $0 != nil }) { outcomes = run(batch, isolated: true) }
            observer?(Clock.monotonicNanos() - started, batch.count)
            for (w, e) in zip(batch, outcomes) { w.done(e) }
        }
    }

    /// One transaction for the batch; each write's error, or the
    /// transaction's for all. Not isolated: the first error rolls the
    /// transaction back and is reported for that write alone.
    private func run(_ batch: [Write], isolated: Bool) -> [Error?] {
        var outcomes = [Error?](repeating: nil, count: batch.count)
        do {
            try pool.writeWithoutTransaction { db in
                try db.inTransaction {
                    for (i, w) in batch.enumerated() {
                        guard isolated else {
                            do { try w.work(db) } catch { outcomes[i] = error; return .rollback }
                            continue
                        }
                        do { try db.inSavepoint { try w.work(db); return .commit } } catch { outcomes[i] = error }
                    }
                    return .commit
                }
            }
            if !outcomes.contains(where: { $0 != nil }) || isolated {
                transactions += 1
                writes += batch.count
            }
        } catch {
            outcomes = outcomes.map { $0 ?? error }
            logger.error("store transaction failed", metadata: ["error": "\(error)"])
        }
        return outcomes
    }

    private func nextBatch() -> [Write]? {
        lock.withLock {
            while pending.isEmpty && !closed { lock.wait() }
            if pending.isEmpty { return nil }
            let all = pending
            pending.removeAll(keepingCapacity: true)
            return all
        }
    }

    /// Writes what is queued, then stops the writer.
    public func close() {
        let t = lock.withLock { () -> OwnedThread? in
            closed = true
            lock.signal()
            defer { writer = nil }
            return writer
        }
        idle.withLock { idle.broadcast() }
        t?.join()
        holder.release()
    }

    public var isClosed: Bool { lock.withLock { closed } }

    /// Sleeps up to `seconds`; false when the store closed meanwhile.
    func sleep(seconds: Double) -> Bool {
        let deadline = Clock.monotonicNanos() + Int64(seconds * 1e9)
        return idle.withLock {
            while !isClosed && Clock.monotonicNanos() < deadline { idle.wait(untilMonotonic: deadline) }
            return !isClosed
        }
    }

    deinit { close() }
}
