import GRDB

/// The store's tables. Migrations only ever append, so a newer host opens
/// an older file.
enum Schema {
    static let tables = ["tasks", "task_attempts", "events", "kv", "workflow_runs", "workflow_steps", "workflow_signals"]

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
        m.registerMigration("2: workflow runs and their checkpoints") { db in
            try db.execute(sql: """
                CREATE TABLE workflow_runs(
                    id TEXT PRIMARY KEY,                 -- 32 hex digits
                    seq INTEGER NOT NULL UNIQUE,
                    workflow TEXT NOT NULL,              -- its name
                    file TEXT NOT NULL,
                    source TEXT NOT NULL,                -- the YAML it runs: a resume never rereads the file
                    input TEXT NOT NULL,                 -- JSON object
                    state TEXT NOT NULL,                 -- running, completed, failed
                    generation INTEGER NOT NULL DEFAULT 0,  -- +1 each time a failed run is resumed
                    created_unix_ns INTEGER NOT NULL,
                    finished_unix_ns INTEGER NOT NULL DEFAULT 0,
                    error TEXT,
                    outputs TEXT);                       -- JSON object: file name -> content
                CREATE INDEX workflow_runs_open ON workflow_runs(state) WHERE state = 'running';
                CREATE TABLE workflow_steps(             -- one row per checkpoint
                    run_id TEXT NOT NULL,
                    step TEXT NOT NULL,                  -- "clean", or "analyse.climate" for a branch
                    item INTEGER NOT NULL,               -- -1: the step; n >= 0: item n of its for_each
                    state TEXT NOT NULL,                 -- done, skipped, failed, awaiting_approval, approved
                    output TEXT,                         -- JSON
                    error TEXT,
                    task_id TEXT,
                    started_unix_ns INTEGER NOT NULL,
                    finished_unix_ns INTEGER NOT NULL,
                    PRIMARY KEY(run_id, step, item));
                """)
        }
        m.registerMigration("3: tasks.retry_on") { db in
            // JSON array of status names a failure is retried on; NULL: the default.
            try db.execute(sql: "ALTER TABLE tasks ADD COLUMN retry_on TEXT")
        }
        m.registerMigration("4: workflow sub-runs, their files, and signals") { db in
            try db.execute(sql: """
                ALTER TABLE workflow_runs ADD COLUMN parent_run TEXT;    -- a sub-workflow's run: the run that started it
                ALTER TABLE workflow_runs ADD COLUMN parent_step TEXT;   -- and its step
                ALTER TABLE workflow_runs ADD COLUMN includes TEXT;      -- JSON object: path -> text of each file its workflow: steps run
                CREATE INDEX workflow_runs_parent ON workflow_runs(parent_run) WHERE parent_run IS NOT NULL;
                CREATE TABLE workflow_signals(
                    run_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,                -- 1, 2, ... per run, in the order they came
                    name TEXT NOT NULL,
                    payload TEXT NOT NULL,               -- JSON
                    sent_unix_ns INTEGER NOT NULL,
                    step TEXT,                           -- the wait_for step that took it; NULL: not taken yet
                    PRIMARY KEY(run_id, seq));
                """)
        }
        try m.migrate(db)
    }
}
