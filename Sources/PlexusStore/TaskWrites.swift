import FoundationEssentials
import GRDB
import PlexusCore

/// The writes every durable task makes (stored, started, ended), as
/// prepared statements kept by the connection and bound by hand: the
/// store's one writer thread runs them for every task, so they must not
/// parse SQL or go through Codable each time. Rare changes (a retry by
/// hand, a cancel) use the record's own update.
extension Store {
    public static func insertTask(_ db: Database, _ t: TaskRecord) throws {
        try db.run("""
            INSERT INTO tasks(id, seq, capability, payload, content_type, priority, deadline_unix_ns, max_attempts,
                backoff_ms, backoff_max_ms, timeout_ms, idempotency_key, depends_on, state, attempts, not_before_unix_ns,
                submitted_unix_ns, finished_unix_ns, agent, result, result_type, error, retry_on)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """) { b in
                b.add(t.id); b.add(t.seq); b.add(t.capability); b.add(t.payload); b.add(t.content_type); b.add(t.priority)
                b.add(t.deadline_unix_ns); b.add(t.max_attempts); b.add(t.backoff_ms); b.add(t.backoff_max_ms); b.add(t.timeout_ms)
                b.add(t.idempotency_key); b.add(t.depends_on); b.add(t.state.rawValue); b.add(t.attempts); b.add(t.not_before_unix_ns)
                b.add(t.submitted_unix_ns); b.add(t.finished_unix_ns); b.add(t.agent); b.add(t.result); b.add(t.result_type); b.add(t.error)
                b.add(t.retry_on)
            }
    }

    public static func markStarted(_ db: Database, id: String, attempt: Int) throws {
        try db.run("UPDATE tasks SET state = 'running', attempts = ? WHERE id = ?") { b in b.add(attempt); b.add(id) }
    }

    public static func setState(_ db: Database, id: String, _ state: TaskState) throws {
        try db.run("UPDATE tasks SET state = ? WHERE id = ?") { b in b.add(state.rawValue); b.add(id) }
    }

    /// A task's end (completed, dead) or its return to the queue for a
    /// retry: only the columns an attempt changes.
    public static func recordOutcome(_ db: Database, _ t: TaskRecord) throws {
        try db.run("""
            UPDATE tasks SET state = ?, attempts = ?, not_before_unix_ns = ?, finished_unix_ns = ?, agent = ?,
                result = ?, result_type = ?, error = ? WHERE id = ?
            """) { b in
                b.add(t.state.rawValue); b.add(t.attempts); b.add(t.not_before_unix_ns); b.add(t.finished_unix_ns); b.add(t.agent)
                b.add(t.result); b.add(t.result_type); b.add(t.error); b.add(t.id)
            }
    }

    public static func insertAttempt(_ db: Database, _ a: AttemptRecord) throws {
        try db.run("""
            INSERT INTO task_attempts(task_id, attempt, agent, started_unix_ns, finished_unix_ns, outcome, detail)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """) { b in
                b.add(a.task_id); b.add(a.attempt); b.add(a.agent); b.add(a.started_unix_ns); b.add(a.finished_unix_ns)
                b.add(a.outcome); b.add(a.detail)
            }
    }
}
