import FoundationEssentials
import PlexusCore
import PlexusHost
import PlexusStore
import PlexusThreads

/// The scheduler and the event log as capabilities of the host's agent
/// "plexus.tasks": what `plexus tasks` and `plexus events` call over the
/// socket, and what any client or plugin granted them may call.
public enum TaskService {
    public static let capabilities: [(name: String, description: String)] = [
        ("plexus.tasks.submit", "store and schedule tasks: a task object, or an array of them"),
        ("plexus.tasks.list", "tasks, newest first: {state?, limit?}"),
        ("plexus.tasks.show", "one task with its attempts: {id}"),
        ("plexus.tasks.retry", "run a dead-lettered or cancelled task again: {id}"),
        ("plexus.tasks.cancel", "cancel a queued, waiting or running task (its agent gets CANCEL): {id}"),
        ("plexus.events", "the event log, oldest first: {after?, limit?, kind?: a prefix such as \"task.\"} or the newest {last: N, kind?}"),
    ]

    /// Adds the capabilities to the host; records the host's lifecycle
    /// events in the event log.
    public static func install(on host: Host, scheduler: Scheduler) throws(PlexusError) {
        let store = scheduler.store
        host.observeLifecycle { e in
            store.enqueue { db in try Store.appendEvent(db, kind: e.kind, subject: e.agent, data: e.data, at: Clock.unixNanos()) }
        }
        // Submissions wait for the disk: off the dispatcher thread, on a bounded pool.
        let pool = ServicePool(name: "plexus-task-call", threads: 4, queueLimit: 1_024)
        try host.provide(name: "plexus.tasks", capabilities: capabilities) { env, answer in
            pool.run("plexus.tasks", answer: answer) { () throws(PlexusError) in try handle(env, scheduler, host) }
        }
    }

    static func handle(_ env: Envelope, _ s: Scheduler, _ host: Host) throws(PlexusError) -> JSONValue {
        let args: JSONValue = env.payload.isEmpty ? .object([:]) : try ServiceArguments.parse(env.payload)
        switch env.target.name {
        case "plexus.tasks.submit":
            let list: [JSONValue]
            if case .array(let a) = args { list = a } else { list = [args] }
            guard !list.isEmpty else { throw PlexusError(.INVALID_ARGUMENT, "submit at least one task") }
            var specs: [TaskSpec] = []
            for (i, t) in list.enumerated() {
                do throws(PlexusError) { specs.append(try TaskSpec(json: t)) } catch {
                    throw PlexusError(.INVALID_ARGUMENT, list.count > 1 ? "task \(i + 1): \(error.detail)" : error.detail)
                }
            }
            return .array(try s.submit(specs).map { t in
                var o = fields(t, full: false)
                if o["note"] == nil, let why = s.whyUnprovided(t.capability) {
                    o["note"] = .string("\(why) now; the task waits for one up to its timeout_ms (\(t.timeout_ms) ms) per attempt")
                }
                return .object(o)
            })
        case "plexus.tasks.list":
            let state = try args["state"].map { v throws(PlexusError) -> TaskState in
                guard case .string(let n) = v, let st = TaskState(rawValue: n) else {
                    throw PlexusError(.INVALID_ARGUMENT, "state must be one of \(TaskState.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return st
            }
            let limit = try ServiceArguments.int(args, "limit", default: 100, in: 1...10_000)
            return .array(try store { try s.store.tasks(state: state, limit: limit) }.map { summary($0) })
        case "plexus.tasks.show":
            let id = try ServiceArguments.string(args, "id")
            guard let t = try store({ try s.store.task(id) }) else {
                // In a cluster: a task another node submitted, attempts of which ran here.
                let ran = try store { try s.store.attempts(of: id) }
                guard !ran.isEmpty else { throw PlexusError(.INVALID_ARGUMENT, "no task \(id) on this host (a task is kept by the host it was submitted to)") }
                return .object(["id": .string(id), "state": .string("elsewhere"),
                                "note": .string("submitted on another node (\(ran[0].detail.split(separator: ";").first ?? "")); this host ran the attempts below; its record is there"),
                                "node": ran.compactMap(\.agent).last.flatMap(node).map(JSONValue.string) ?? .null,
                                "attempt_history": .array(ran.map(attempt))])
            }
            var o = fields(t, full: true)
            // Why it has not started: no provider yet, or NATS away (in a cluster).
            if let why = s.waitReason(id) { o["waiting"] = .string(why) }
            let history = try store { try s.store.attempts(of: id) }
            o["attempt_history"] = .array(history.map(attempt))
            return .object(o)
        case "plexus.tasks.retry": return summary(try s.retry(try ServiceArguments.string(args, "id")))
        case "plexus.tasks.cancel": return summary(try s.cancel(try ServiceArguments.string(args, "id")))
        default:   // plexus.events
            let after = Int64(try ServiceArguments.int(args, "after", default: 0, in: 0...Int.max))
            let limit = try ServiceArguments.int(args, "limit", default: 500, in: 1...10_000)
            var kind = ""
            if let k = args["kind"] { guard case .string(let p) = k else { throw PlexusError(.INVALID_ARGUMENT, "\"kind\" must be a string") }; kind = p }
            let events = try store { () throws -> [EventRecord] in
                if args["last"] != nil { return try s.store.latestEvents(try ServiceArguments.int(args, "last", default: 20, in: 0...10_000), kind: kind) }
                return try s.store.events(after: after, limit: limit, kind: kind)
            }
            return .array(events.map { e in
                .object(["seq": .int(e.seq), "at_unix_ns": .int(e.at_unix_ns), "kind": .string(e.kind), "subject": .string(e.subject),
                         "data": (try? JSONValue.parse(Array(e.data.utf8))) ?? .string(e.data)])
            })
        }
    }

    /// What `plexus tasks list` shows of a task; `full` adds payload and result.
    public static func summary(_ t: TaskRecord, full: Bool = false) -> JSONValue {
        .object(fields(t, full: full))
    }

    static func fields(_ t: TaskRecord, full: Bool) -> [String: JSONValue] {
        var o: [String: JSONValue] = [
            "id": .string(t.id), "state": .string(t.state.rawValue), "capability": .string(t.capability),
            "priority": .string(["low", "normal", "high", "critical"][max(0, min(3, t.priority))]),
            "attempts": .int(Int64(t.attempts)), "max_attempts": .int(Int64(t.max_attempts)),
            "submitted_unix_ns": .int(t.submitted_unix_ns), "finished_unix_ns": .int(t.finished_unix_ns),
            "agent": t.agent.map(JSONValue.string) ?? .null, "error": t.error.map(JSONValue.string) ?? .null,
            "key": t.idempotency_key.map(JSONValue.string) ?? .null,
            "after": .array(t.dependencies.map(JSONValue.string)),
        ]
        // In a cluster the agent is `node/agent`: the node it ran on. A task
        // answered by its idempotency key from another node is named by its
        // node alone (`b/`): it lives there.
        if let a = t.agent, let n = node(a) {
            o["node"] = .string(n)
            if a.hasSuffix("/") {
                o["agent"] = .null
                o["note"] = .string("the key '\(t.idempotency_key ?? "")' belongs to task \(t.id), submitted on node \(n): `plexus tasks show \(t.id)` there")
            }
        }
        if full {
            o["payload"] = text(t.payload)
            o["content_type"] = .string(t.content_type)
            o["result"] = t.result.map(text) ?? .null
        }
        return o
    }

    static func attempt(_ a: AttemptRecord) -> JSONValue {
        let agent: JSONValue = a.agent.map(JSONValue.string) ?? .null
        var o: [String: JSONValue] = ["attempt": .int(Int64(a.attempt)), "agent": agent, "outcome": .string(a.outcome), "detail": .string(a.detail),
                                      "ms": .int(max(0, a.finished_unix_ns - a.started_unix_ns) / 1_000_000)]
        if let n = a.agent.flatMap(node) { o["node"] = .string(n) }
        return .object(o)
    }

    /// The node of a `node/agent` name (a task run on another host); nil for a local agent.
    static func node(_ agent: String) -> String? {
        guard let slash = agent.firstIndex(of: "/") else { return nil }
        return String(agent[..<slash])
    }

    /// Bytes as JSON when they are JSON, else as text.
    static func text(_ d: Data) -> JSONValue {
        (try? JSONValue.parse([UInt8](d))) ?? .string(String(decoding: d, as: UTF8.self))
    }

    private static func store<T>(_ body: () throws -> T) throws(PlexusError) -> T {
        do { return try body() } catch { throw PlexusError(.INTERNAL, "the task store failed: \(error)") }
    }
}
