import FoundationEssentials
import GRDB
import PlexusCore

/// Where a task is in its life.
public enum TaskState: String, Codable, Sendable, CaseIterable {
    /// waiting: for the tasks it depends on; queued: ready, or backing off
    /// until not_before; running: sent to an agent.
    case waiting, queued, running, completed, dead, cancelled
    public var isOpen: Bool { self == .waiting || self == .queued || self == .running }
}

/// One task as stored: what to run, how to retry it, and how it ended.
public struct TaskRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "tasks"
    public var id: String
    public var seq: Int64
    public var capability: String
    public var payload: Data
    public var content_type: String
    public var priority: Int
    public var deadline_unix_ns: Int64
    public var max_attempts: Int
    public var backoff_ms: Int64
    public var backoff_max_ms: Int64
    public var timeout_ms: Int64
    public var idempotency_key: String?
    public var depends_on: String
    public var state: TaskState
    public var attempts: Int
    public var not_before_unix_ns: Int64
    public var submitted_unix_ns: Int64
    public var finished_unix_ns: Int64
    public var agent: String?
    public var result: Data?
    public var result_type: String?
    public var error: String?
    /// JSON array of the status names a failure is retried on; nil: the default
    /// (every status but those no retry can fix).
    public var retry_on: String?

    public init(id: String, seq: Int64, capability: String, payload: Data, content_type: String, priority: Int, deadline_unix_ns: Int64, max_attempts: Int, backoff_ms: Int64, backoff_max_ms: Int64, timeout_ms: Int64, idempotency_key: String?, depends_on: String, state: TaskState, attempts: Int, not_before_unix_ns: Int64, submitted_unix_ns: Int64, finished_unix_ns: Int64, agent: String?, result: Data?, result_type: String?, error: String?, retry_on: String? = nil) {
        self.id = id
        self.seq = seq
        self.capability = capability
        self.payload = payload
        self.content_type = content_type
        self.priority = priority
        self.deadline_unix_ns = deadline_unix_ns
        self.max_attempts = max_attempts
        self.backoff_ms = backoff_ms
        self.backoff_max_ms = backoff_max_ms
        self.timeout_ms = timeout_ms
        self.idempotency_key = idempotency_key
        self.depends_on = depends_on
        self.state = state
        self.attempts = attempts
        self.not_before_unix_ns = not_before_unix_ns
        self.submitted_unix_ns = submitted_unix_ns
        self.finished_unix_ns = finished_unix_ns
        self.agent = agent
        self.result = result
        self.result_type = result_type
        self.error = error
        self.retry_on = retry_on
    }

    /// retry_on as a set; nil when the task keeps the default.
    public var retryOn: Set<String>? {
        guard let r = retry_on, case .array(let a)? = try? JSONValue.parse(Array(r.utf8)) else { return nil }
        return Set(a.compactMap { if case .string(let s) = $0 { s } else { nil } })
    }

    public var dependencies: [String] {
        guard case .array(let a)? = try? JSONValue.parse(Array(depends_on.utf8)) else { return [] }
        return a.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }
}

/// One try of a task: which agent, how it ended.
public struct AttemptRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "task_attempts"
    public var task_id: String
    public var attempt: Int
    public var agent: String?
    public var started_unix_ns: Int64
    public var finished_unix_ns: Int64
    public var outcome: String
    public var detail: String

    public init(task_id: String, attempt: Int, agent: String?, started_unix_ns: Int64, finished_unix_ns: Int64, outcome: String, detail: String) {
        self.task_id = task_id
        self.attempt = attempt
        self.agent = agent
        self.started_unix_ns = started_unix_ns
        self.finished_unix_ns = finished_unix_ns
        self.outcome = outcome
        self.detail = detail
    }
}

/// One entry of the event log.
public struct EventRecord: Codable, Sendable, Equatable, FetchableRecord {
    public var seq: Int64
    public var at_unix_ns: Int64
    public var kind: String
    public var subject: String
    public var data: String
}

extension Store {
    // MARK: tasks

    public func task(_ id: String) throws -> TaskRecord? {
        try read { db in try TaskRecord.fetchOne(db, key: id) }
    }

    public func task(idempotencyKey key: String) throws -> TaskRecord? {
        try read { db in try TaskRecord.filter(Column("idempotency_key") == key).fetchOne(db) }
    }

    /// Newest first; `state` nil: every state.
    public func tasks(state: TaskState? = nil, limit: Int = 100) throws -> [TaskRecord] {
        try read { db in
            var q = TaskRecord.all()
            if let state { q = q.filter(Column("state") == state.rawValue) }
            return try q.order(Column("seq").desc).limit(limit).fetchAll(db)
        }
    }

    /// Every task not yet finished, in submission order: what a restarted host resumes.
    public func openTasks() throws -> [TaskRecord] {
        try read { db in
            try TaskRecord.filter([TaskState.waiting, .queued, .running].map(\.rawValue).contains(Column("state")))
                .order(Column("seq")).fetchAll(db)
        }
    }

    public func attempts(of id: String) throws -> [AttemptRecord] {
        try read { db in try AttemptRecord.filter(Column("task_id") == id).order(Column("attempt")).fetchAll(db) }
    }

    public func count(state: TaskState) throws -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM tasks WHERE state = ?", arguments: [state.rawValue]) ?? 0 }
    }

    public func lastTaskSeq() throws -> Int64 {
        try read { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM tasks") ?? 0 }
    }

    // MARK: events

    /// Appends an event inside a write (so it commits with what it reports).
    public static func appendEvent(_ db: Database, kind: String, subject: String, data: [String: JSONValue], at: Int64) throws {
        try appendEvent(db, kind: kind, subject: subject, json: JSONValue.object(data).text, at: at)
    }

    /// appendEvent with its data already JSON text: busy writers (the task
    /// scheduler) build it on their own thread, not the store's.
    public static func appendEvent(_ db: Database, kind: String, subject: String, json: String, at: Int64) throws {
        try db.run("INSERT INTO events(at_unix_ns, kind, subject, data) VALUES (?, ?, ?, ?)") { b in
            b.add(at); b.add(kind); b.add(subject); b.add(json)
        }
    }

    /// Events after `seq`, oldest first; `kind`: only kinds starting with it.
    public func events(after seq: Int64, limit: Int = 500, kind: String = "") throws -> [EventRecord] {
        try read { db in
            try EventRecord.fetchAll(db, sql: "SELECT * FROM events WHERE seq > ? AND substr(kind, 1, ?) = ? ORDER BY seq LIMIT ?",
                                     arguments: [seq, kind.utf8.count, kind, limit])
        }
    }

    /// The newest `count` events (of kinds starting with `kind`), oldest first.
    public func latestEvents(_ count: Int, kind: String = "") throws -> [EventRecord] {
        try read { db in
            try EventRecord.fetchAll(db, sql: "SELECT * FROM events WHERE substr(kind, 1, ?) = ? ORDER BY seq DESC LIMIT ?",
                                     arguments: [kind.utf8.count, kind, count]).reversed()
        }
    }
}
