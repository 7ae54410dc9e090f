import PlexusCore
import PlexusThreads

/// What a submitter asks for: the capability to run, its payload, and how
/// hard to try. Read from JSON (the socket, the CLI) with every field checked.
public struct TaskSpec: Sendable, Equatable {
    public var capability: String
    public var payload: [UInt8]
    public var contentType = "application/json"
    /// 0 low, 1 normal, 2 high, 3 critical.
    public var priority = 1
    /// The task is dead-lettered if it has not completed by then (0: never).
    public var deadlineUnixNs: Int64 = 0
    public var maxAttempts = 3
    /// Backoff before attempt n+1: backoffMs * 2^(n-1), at most backoffMaxMs, with ±50% jitter.
    public var backoffMs: Int64 = 200
    public var backoffMaxMs: Int64 = 30_000
    /// How long one attempt may take.
    public var timeoutMs: Int64 = 30_000
    /// A second submission with the same key returns the first task.
    public var idempotencyKey: String?
    /// Tasks that must complete first.
    public var dependsOn: [String] = []
    /// The statuses a failure is retried on; nil: all but those no retry
    /// can fix (TaskPolicy.final).
    public var retryOn: [String]?

    public init(capability: String, payload: [UInt8], priority: Int = 1) {
        self.capability = capability
        self.payload = payload
        self.priority = priority
    }

    static let priorities = ["low": 0, "normal": 1, "high": 2, "critical": 3]

    /// `{"capability": "text.stats", "payload": "...", "priority": "high",
    /// "attempts": 5, "backoff_ms": 100, "timeout_ms": 5000, "deadline_s": 60,
    /// "key": "doc-42", "after": ["<task id>", ...], "content_type": "text/plain",
    /// "retry_on": ["INVALID_ARGUMENT", "TIMEOUT"]}`.
    /// A payload that is not a string is sent as its JSON text.
    public init(json: JSONValue) throws(PlexusError) {
        guard case .object(let o) = json else { throw PlexusError(.INVALID_ARGUMENT, "a task is a JSON object with at least \"capability\"") }
        let known: Set<String> = ["capability", "payload", "content_type", "priority", "attempts", "backoff_ms", "backoff_max_ms",
                                  "timeout_ms", "deadline_s", "key", "after", "retry_on"]
        if let k = o.keys.sorted().first(where: { !known.contains($0) }) {
            throw PlexusError(.INVALID_ARGUMENT, "task field \"\(k)\" is unknown; expected one of: \(known.sorted().joined(separator: ", "))")
        }
        guard case .string(let cap)? = o["capability"] else { throw PlexusError(.INVALID_ARGUMENT, "task field \"capability\" must be a string") }
        try Names.check(cap, what: "capability")
        switch o["payload"] {
        case .string(let s)?: payload = Array(s.utf8); contentType = "text/plain"
        case nil: payload = []
        case let v?: payload = Array(v.text.utf8)
        }
        capability = cap
        if case .string(let t)? = o["content_type"] { contentType = t }
        if let p = o["priority"] {
            guard case .string(let name) = p, let level = TaskSpec.priorities[name] else {
                throw PlexusError(.INVALID_ARGUMENT, "task field \"priority\" must be low, normal, high or critical")
            }
            priority = level
        }
        maxAttempts = Int(try TaskSpec.int(o, "attempts", 1...1000) ?? 3)
        backoffMs = try TaskSpec.int(o, "backoff_ms", 0...3_600_000) ?? backoffMs
        backoffMaxMs = try TaskSpec.int(o, "backoff_max_ms", 0...86_400_000) ?? max(backoffMaxMs, backoffMs)
        timeoutMs = try TaskSpec.int(o, "timeout_ms", 1...86_400_000) ?? timeoutMs
        if let s = try TaskSpec.int(o, "deadline_s", 1...31_536_000) { deadlineUnixNs = PlexusThreads.Clock.unixNanos() + s * 1_000_000_000 }
        if let k = o["key"] {
            guard case .string(let key) = k, !key.isEmpty, key.utf8.count <= 255 else {
                throw PlexusError(.INVALID_ARGUMENT, "task field \"key\" must be a string of 1 to 255 bytes")
            }
            idempotencyKey = key
        }
        if let r = o["retry_on"] {
            guard case .array(let items) = r else { throw PlexusError(.INVALID_ARGUMENT, "task field \"retry_on\" must be a list of status names such as [\"TIMEOUT\"]") }
            let names = items.map { v -> String in if case .string(let s) = v { s } else { v.text } }
            if let problem = TaskPolicy.checkRetryOn(names) { throw PlexusError(.INVALID_ARGUMENT, "task field \"retry_on\": \(problem)") }
            retryOn = names
        }
        if let a = o["after"] {
            guard case .array(let items) = a else { throw PlexusError(.INVALID_ARGUMENT, "task field \"after\" must be an array of task ids") }
            for item in items {
                guard case .string(let id) = item, plexus_id(hex: id) != nil else {
                    throw PlexusError(.INVALID_ARGUMENT, "task field \"after\": \(item.text) is not a task id (32 hex digits)")
                }
                dependsOn.append(id)
            }
        }
    }

    private static func int(_ o: [String: JSONValue], _ key: String, _ range: ClosedRange<Int64>) throws(PlexusError) -> Int64? {
        guard let v = o[key] else { return nil }
        guard case .int(let n) = v, range.contains(n) else {
            throw PlexusError(.INVALID_ARGUMENT, "task field \"\(key)\" must be a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }
}
