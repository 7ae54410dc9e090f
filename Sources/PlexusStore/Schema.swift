import GRDB

/// The store's tables. Migrations only ever append, so a newer host opens
/// an older file.
enum Schema {
    static let tables = ["tasks", "task_attempts", "events", "kv"]

    static func migrate(_ db: DatabaseWriter) throws {
        var m = DatabaseMigrator()
        m.registerMigration("1: tasks, events, key-value") { db in
            try db.execute(sql: """
                CREATE TABLE tasks(
                    id TEXT PRIMARY KEY,                 -- 32 hex digits; the trace id its messages carry
                    seq INTEGER NOT NULL UNIQUE,         -- submission order
                    capability TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    content_type TEXT NOT NULL,
                    priority INTEGER NOT NULL,
                    deadline_unix_ns INTEGER NOT NULL,   -- 0: none
                    max_attempts INTEGER NOT NULL,
                    backoff_ms INTEGER NOT NULL,
                    backoff_max_ms INTEGER NOT NULL,
                    timeout_ms INTEGER NOT NULL,
                    idempotency_key TEXT UNIQUE,
                    depends_on TEXT NOT NULL,            -- JSON array of task ids
                    state TEXT NOT NULL,                 -- waiting, queued, running, completed, dead, cancelled
                    attempts INTEGER NOT NULL DEFAULT 0,
                    not_before_unix_ns INTEGER NOT NULL DEFAULT 0,
                    submitted_unix_ns INTEGER NOT NULL,
                    finished_unix_ns INTEGER NOT NULL DEFAULT 0,
                    agent TEXT,
                    result BLOB,
                    result_type TEXT,
                    error TEXT);
                CREATE INDEX tasks_open ON tasks(state) WHERE state IN ('waiting', 'queued', 'running');
                CREATE TABLE task_attempts(
                    task_id TEXT NOT NULL,
                    attempt INTEGER NOT NULL,
                    agent TEXT,
                    started_unix_ns INTEGER NOT NULL,
                    finished_unix_ns INTEGER NOT NULL,
                    outcome TEXT NOT NULL,               -- completed, failed, crashed, expired
                    detail TEXT NOT NULL,
                    PRIMARY KEY(task_id, attempt));
                CREATE TABLE events(
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    at_unix_ns INTEGER NOT NULL,
                    kind TEXT NOT NULL,                  -- task.queued, agent.restarted, workflow.step.finished, ...
                    subject TEXT NOT NULL,               -- the task, agent or run it is about
                    data TEXT NOT NULL);                 -- JSON object
                CREATE TABLE kv(
                    namespace TEXT NOT NULL,
                    key TEXT NOT NULL,
                    value BLOB NOT NULL,
                    version INTEGER NOT NULL,            -- 1 on creation, +1 on every write
                    updated_unix_ns INTEGER NOT NULL,
                    PRIMARY KEY(namespace, key));
                """)
        }
        try m.migrate(db)
    }
}
