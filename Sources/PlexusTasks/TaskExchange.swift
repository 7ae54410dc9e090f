import GRDB
import PlexusCore
import PlexusStore
import Synchronization

/// Durable tasks across hosts (`plexus run --nats`): where the scheduler
/// hands a ready task's attempt when this host is one node of a cluster.
/// Implemented on JetStream by PlexusCluster (ClusterTasks); nil on a host
/// alone, and then nothing of it runs.
///
/// In cluster mode every attempt goes through the exchange, the host's own
/// providers included (they fetch from the same queue): one mechanism, so
/// acknowledgement, redelivery after a host's death, the done-marker and
/// the idempotency key mean the same for every task wherever it runs.
public protocol TaskExchange: AnyObject, Sendable {
    /// This host's node name.
    var node: String { get }
    /// Why no host of the cluster (this one included) provides capability
    /// now; nil when one does.
    func whyUnprovided(_ capability: String) -> String?
    /// Hands attempt `attempt` of a ready task to the cluster. Returns once
    /// it is stored (JetStream file storage); the same (task, attempt) sent
    /// twice is stored once.
    func offer(_ task: TaskRecord, attempt: Int) throws(PlexusError)
    /// Claims an idempotency key for taskID cluster-wide: nil when this
    /// call claimed it, else who holds it. A holder for which `stale`
    /// answers true (this host's own claim for a task its store does not
    /// have: the host died between claim and commit) is replaced.
    func claim(key: String, taskID: String, stale: (KeyHolder) -> Bool) throws(PlexusError) -> KeyHolder?
}

/// The task an idempotency key belongs to, and the node that holds it.
public struct KeyHolder: Sendable, Equatable {
    public var node: String
    public var taskID: String
    public init(node: String, taskID: String) { self.node = node; self.taskID = taskID }
}

/// An attempt's end, told by the host that ran it to the submitting host.
public struct RemoteOutcome: Sendable {
    public var taskID: String
    public var attempt: Int
    /// The node whose agent ran it.
    public var node: String
    /// The agent's answer (a response, or an error); sender: the agent's name on that node.
    public var answer: Envelope
    public var startedNs: Int64
    public init(taskID: String, attempt: Int, node: String, answer: Envelope, startedNs: Int64) {
        self.taskID = taskID; self.attempt = attempt; self.node = node; self.answer = answer; self.startedNs = startedNs
    }
}

/// What a host records of the attempts it runs for other nodes' tasks: an
/// attempt row under the task's own id (agent `node/agent`, detail naming
/// the submitting node), and the task.* events. The task record itself
/// stays with the submitting host.
public enum ForeignAttempts {
    /// The attempt started here ("running" until it ends).
    public static func started(_ store: Store, id: String, attempt: Int, capability: String, origin: String, node: String,
                               deliveries: Int, at: Int64) {
        let a = AttemptRecord(task_id: id, attempt: attempt, agent: nil, started_unix_ns: at, finished_unix_ns: 0,
                              outcome: "running", detail: detail(origin: origin, deliveries: deliveries))
        store.enqueue { db in
            try replace(db, a)
            try Store.appendEvent(db, kind: "task.started", subject: id,
                                  data: ["capability": .string(capability), "attempt": .int(Int64(attempt)), "for_node": .string(origin),
                                         "node": .string(node), "delivery": .int(Int64(deliveries))], at: at)
        }
    }

    /// The attempt ended here: outcome "failed", or "completing" (the agent
    /// answered; whether this run is the task's completion is the
    /// done-marker's to say, then settle). On disk when this returns.
    public static func finished(_ store: Store, id: String, attempt: Int, capability: String, origin: String, agent: String?,
                                outcome: String, error: String, deliveries: Int, startedNs: Int64, at: Int64) throws {
        var d = detail(origin: origin, deliveries: deliveries)
        if !error.isEmpty { d += "; " + error }
        let a = AttemptRecord(task_id: id, attempt: attempt, agent: agent, started_unix_ns: startedNs, finished_unix_ns: at,
                              outcome: outcome, detail: d)
        try store.commit { db in
            try replace(db, a)
            if outcome != "completing" {
                try Store.appendEvent(db, kind: "task.attempt_ended", subject: id,
                                      data: ["capability": .string(capability), "attempt": .int(Int64(attempt)), "for_node": .string(origin),
                                             "agent": agent.map(JSONValue.string) ?? .null, "outcome": .string(outcome)], at: at)
            }
        }
    }

    /// A "completing" attempt settled: "completed" (this host's run holds
    /// the done-marker) or "duplicate" (another's does). Written with the
    /// next group commit; until then the row says "completing", which the
    /// marker resolves.
    public static func settle(_ store: Store, id: String, attempt: Int, capability: String, origin: String, outcome: String, note: String, at: Int64) {
        store.enqueue { db in
            try db.execute(sql: "UPDATE task_attempts SET outcome = ?, detail = detail || ? WHERE task_id = ? AND attempt = ?",
                           arguments: [outcome, note.isEmpty ? "" : "; " + note, id, attempt])
            try Store.appendEvent(db, kind: outcome == "completed" ? "task.completed" : "task.attempt_ended", subject: id,
                                  data: ["capability": .string(capability), "attempt": .int(Int64(attempt)), "for_node": .string(origin),
                                         "outcome": .string(outcome)], at: at)
        }
    }

    /// At a host's start: the attempts for other nodes' tasks its store
    /// still says are "running" (the host was killed under them; the
    /// cluster gave them to another host after the ack wait) become
    /// "interrupted", with `why` added to their detail; "completing" ones
    /// are settled by `settled` (the done-marker's word: "completed",
    /// "duplicate", or nil when it has none: "interrupted" too). A task
    /// this host submitted itself is the scheduler's to recover, not this.
    /// Returns how many rows changed.
    @discardableResult
    public static func interruptLeftOver(_ store: Store, why: String, at: Int64,
                                         settled: (_ id: String, _ attempt: Int) -> (outcome: String, note: String)?) throws -> Int {
        let foreign = "task_id NOT IN (SELECT id FROM tasks)"
        let completing = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT task_id, attempt FROM task_attempts WHERE outcome = 'completing' AND \(foreign)")
                .map { (id: $0["task_id"] as String, attempt: $0["attempt"] as Int) }
        }
        let verdicts = completing.map { c in (c, settled(c.id, c.attempt)) }
        let changed = Mutex(0)
        try store.commit { db in
            try db.execute(sql: "UPDATE task_attempts SET outcome = 'interrupted', finished_unix_ns = ?, detail = detail || ? WHERE outcome = 'running' AND \(foreign)",
                           arguments: [at, "; " + why])
            var n = db.changesCount
            for (c, v) in verdicts {
                let (outcome, note) = v ?? ("interrupted", why)
                try db.execute(sql: "UPDATE task_attempts SET outcome = ?, detail = detail || ? WHERE task_id = ? AND attempt = ? AND outcome = 'completing'",
                               arguments: [outcome, note.isEmpty ? "" : "; " + note, c.id, c.attempt])
                n += db.changesCount
            }
            changed.withLock { $0 = n }
        }
        return changed.withLock { $0 }
    }

    static func detail(origin: String, deliveries: Int) -> String {
        "for node \(origin)" + (deliveries > 1 ? " (delivery \(deliveries))" : "")
    }

    /// A redelivery of the same attempt to this host (after its restart) replaces the row.
    static func replace(_ db: Database, _ a: AttemptRecord) throws {
        try db.execute(sql: """
            INSERT OR REPLACE INTO task_attempts(task_id, attempt, agent, started_unix_ns, finished_unix_ns, outcome, detail)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """, arguments: [a.task_id, a.attempt, a.agent, a.started_unix_ns, a.finished_unix_ns, a.outcome, a.detail])
    }
}
