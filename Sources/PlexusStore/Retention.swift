import GRDB
import Glibc
import PlexusCore
import PlexusThreads

/// Retention: what finished long enough ago leaves the store, so it does
/// not grow without bound. Open work (tasks not finished, runs still
/// running) and the agents' key-value data are never touched.
extension Store {
    /// What one pass removed.
    public struct Pruned: Sendable, Equatable {
        public var events = 0, tasks = 0, runs = 0
        public var total: Int { events + tasks + runs }
        public init(events: Int = 0, tasks: Int = 0, runs: Int = 0) { self.events = events; self.tasks = tasks; self.runs = runs }
    }

    /// Rows deleted per transaction: a long backlog is removed in slices,
    /// so durable acknowledgements queued behind it wait one slice at most.
    static let pruneSlice = 5_000

    /// Keeps the newest `keepEvents` events, finished tasks (with their
    /// attempts) that finished at or after `tasksBefore`, and finished
    /// workflow runs (with their checkpoints) that finished at or after
    /// `runsBefore` (unix ns). Blocks until it is all on disk.
    @discardableResult
    public func prune(keepEvents: Int, tasksBefore: Int64, runsBefore: Int64) throws -> Pruned {
        var p = Pruned()
        p.events = try sliced { db in
            let newest = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM events") ?? 0
            try db.execute(sql: "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ? ORDER BY seq LIMIT ?)",
                           arguments: [newest - Int64(keepEvents), Self.pruneSlice])
            return db.changesCount
        }
        p.tasks = try sliced { db in
            try Self.deleteFinished(db, "tasks", states: "'completed', 'dead', 'cancelled'", before: tasksBefore,
                                    children: ["task_attempts"], key: "task_id")
        }
        p.runs = try sliced { db in
            try Self.deleteFinished(db, "workflow_runs", states: "'completed', 'failed', 'cancelled'", before: runsBefore,
                                    children: ["workflow_steps", "workflow_signals"], key: "run_id")
        }
        return p
    }

    /// One slice of rows of `table` in `states` that finished before
    /// `before`, with the rows of `children` that name them by `key`.
    private static func deleteFinished(_ db: Database, _ table: String, states: String, before: Int64,
                                       children: [String], key: String) throws -> Int {
        let ids = try String.fetchAll(db, sql: "SELECT id FROM \(table) WHERE state IN (\(states)) AND finished_unix_ns < ? LIMIT ?",
                                      arguments: [before, pruneSlice])
        guard !ids.isEmpty else { return 0 }
        let list = databaseQuestionMarks(count: ids.count)
        for c in children { try db.execute(sql: "DELETE FROM \(c) WHERE \(key) IN (\(list))", arguments: StatementArguments(ids)) }
        try db.execute(sql: "DELETE FROM \(table) WHERE id IN (\(list))", arguments: StatementArguments(ids))
        return ids.count
    }

    /// Runs `slice` in its own transaction until a pass removes fewer than
    /// a slice's worth; `slice` returns how many it removed (events, tasks
    /// or runs, not their attempts or checkpoints).
    private func sliced(_ slice: @escaping (Database) throws -> Int) throws -> Int {
        var total = 0
        while true {
            nonisolated(unsafe) var n = 0
            try commit { db in n = try slice(db) }
            total += n
            if n < Self.pruneSlice { return total }
        }
    }

    /// Prunes by `r` now, then every r.intervalSeconds until the store
    /// closes; each pass that removes something is logged and recorded
    /// as a "store.pruned" event.
    /// The thread is detached: it ends when the store closes. Throws when
    /// it cannot start.
    public func startRetention(_ r: StoreSettings.Retention) throws(ThreadStartError) {
        try startDetachedThread(name: "plexus-retention") { [weak self] in
            while let self, !self.isClosed {
                let now = Clock.unixNanos()
                do {
                    let p = try self.prune(keepEvents: r.events, tasksBefore: now - r.finishedTasksSeconds * 1_000_000_000,
                                           runsBefore: now - r.finishedRunsSeconds * 1_000_000_000)
                    if p.total > 0 { self.recordPruned(p) }
                } catch {
                    if !self.isClosed { self.logger.error("retention failed", metadata: ["error": "\(error)"]) }
                }
                if !self.sleep(seconds: r.intervalSeconds) { return }
            }
        }
    }

    private func recordPruned(_ p: Pruned) {
        logger.info("retention removed old records", metadata: ["events": "\(p.events)", "tasks": "\(p.tasks)", "runs": "\(p.runs)"])
        enqueue { db in
            try Store.appendEvent(db, kind: "store.pruned", subject: "store",
                                  data: ["events": .int(Int64(p.events)), "tasks": .int(Int64(p.tasks)), "runs": .int(Int64(p.runs))],
                                  at: Clock.unixNanos())
        }
    }
}
