import GRDB

/// One run of a workflow as stored.
public struct RunRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "workflow_runs"
    public var id: String
    public var seq: Int64
    public var workflow: String
    public var file: String
    public var source: String
    public var input: String
    public var state: String
    public var generation: Int
    public var created_unix_ns: Int64
    public var finished_unix_ns: Int64
    public var error: String?
    public var outputs: String?
    /// A sub-workflow's run: the run and step that started it.
    public var parent_run: String?
    public var parent_step: String?
    /// JSON object: the text of each file its `workflow:` steps (and theirs) run, by path.
    public var includes: String?

    public init(id: String, seq: Int64, workflow: String, file: String, source: String, input: String, state: String,
                generation: Int, created_unix_ns: Int64, finished_unix_ns: Int64 = 0, error: String? = nil, outputs: String? = nil,
                parent_run: String? = nil, parent_step: String? = nil, includes: String? = nil) {
        self.id = id
        self.seq = seq
        self.workflow = workflow
        self.file = file
        self.source = source
        self.input = input
        self.state = state
        self.generation = generation
        self.created_unix_ns = created_unix_ns
        self.finished_unix_ns = finished_unix_ns
        self.error = error
        self.outputs = outputs
        self.parent_run = parent_run
        self.parent_step = parent_step
        self.includes = includes
    }
}

/// A signal sent to a run (`plexus workflow signal RUN NAME JSON`), kept
/// until a `wait_for: NAME` step of the run takes it (`step` set then, in
/// the same transaction as that step's checkpoint), so a signal sent
/// before the step waits is not lost, and none is taken twice.
public struct SignalRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "workflow_signals"
    public var run_id: String
    public var seq: Int64
    public var name: String
    public var payload: String
    public var sent_unix_ns: Int64
    public var step: String?

    public init(run_id: String, seq: Int64, name: String, payload: String, sent_unix_ns: Int64, step: String? = nil) {
        self.run_id = run_id
        self.seq = seq
        self.name = name
        self.payload = payload
        self.sent_unix_ns = sent_unix_ns
        self.step = step
    }
}

/// A checkpoint: a step (item -1) or one item of a for_each step reached
/// a state that must survive the host: done with its output, skipped,
/// failed, or waiting for or given approval.
public struct CheckpointRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "workflow_steps"
    public var run_id: String
    public var step: String
    public var item: Int
    public var state: String
    public var output: String?
    public var error: String?
    public var task_id: String?
    public var started_unix_ns: Int64
    public var finished_unix_ns: Int64

    public init(run_id: String, step: String, item: Int, state: String, output: String?, error: String?, task_id: String?,
                started_unix_ns: Int64, finished_unix_ns: Int64) {
        self.run_id = run_id
        self.step = step
        self.item = item
        self.state = state
        self.output = output
        self.error = error
        self.task_id = task_id
        self.started_unix_ns = started_unix_ns
        self.finished_unix_ns = finished_unix_ns
    }
}

extension Store {
    public func run(_ id: String) throws -> RunRecord? {
        try read { db in try RunRecord.fetchOne(db, key: id) }
    }

    /// Newest first.
    public func runs(limit: Int = 50) throws -> [RunRecord] {
        try read { db in try RunRecord.order(Column("seq").desc).limit(limit).fetchAll(db) }
    }

    public func runningRuns() throws -> [RunRecord] {
        try read { db in try RunRecord.filter(Column("state") == "running").order(Column("seq")).fetchAll(db) }
    }

    public func checkpoints(of run: String) throws -> [CheckpointRecord] {
        try read { db in try CheckpointRecord.filter(Column("run_id") == run).order(Column("step"), Column("item")).fetchAll(db) }
    }

    /// Every task a run's steps submitted (keys "wf/RUN/..."), in submission
    /// order, without payloads or results: what `workflow status` counts
    /// attempts and last failures from.
    public func stepTasks(of run: String) throws -> [(key: String, attempts: Int, state: String, error: String?)] {
        try read { db in
            try Row.fetchAll(db, sql: """
                SELECT idempotency_key, attempts, state, error FROM tasks
                WHERE idempotency_key >= ? AND idempotency_key < ? ORDER BY seq
                """, arguments: ["wf/\(run)/", "wf/\(run)0"])
                .map { (key: $0[0], attempts: $0[1], state: $0[2], error: $0[3]) }
        }
    }

    /// Every signal sent to the run, taken or not, in the order they came.
    public func signals(of run: String) throws -> [SignalRecord] {
        try read { db in try SignalRecord.filter(Column("run_id") == run).order(Column("seq")).fetchAll(db) }
    }

    /// The runs a run's `workflow:` steps started, oldest first.
    public func childRuns(of run: String) throws -> [RunRecord] {
        try read { db in try RunRecord.filter(Column("parent_run") == run).order(Column("seq")).fetchAll(db) }
    }

    public func lastRunSeq() throws -> Int64 {
        try read { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM workflow_runs") ?? 0 }
    }
}
