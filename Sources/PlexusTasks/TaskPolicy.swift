import CPlexus
import PlexusCore

/// The scheduler's rules as pure functions of a clock reading and a random
/// number, so tests drive them with their own.
public enum TaskPolicy {
    /// The order ready tasks run in: smaller first. Each priority level is
    /// worth `agingMs` of waiting, so a low task that has waited 3 × agingMs
    /// longer runs before a fresh critical one: nothing starves.
    public static func rank(priority: Int, readySinceMs: Int64, agingMs: Int64) -> Int64 {
        readySinceMs - Int64(priority) * agingMs
    }

    /// The wait before attempt n + 1 after attempt n failed: base × 2^(n-1),
    /// capped at `max`, then jittered to [½, 1½) of that by `unit` in [0, 1).
    public static func backoffMs(afterAttempt n: Int, baseMs: Int64, maxMs: Int64, unit: Double) -> Int64 {
        guard baseMs > 0 else { return 0 }
        let shift = min(max(n - 1, 0), 40)
        let d = baseMs > (maxMs >> shift) ? maxMs : min(maxMs, baseMs << shift)
        return d / 2 + Int64(Double(d) * min(max(unit, 0), 0.999_999))
    }

    /// Failures that are the agent's death or absence, not the task's:
    /// the task goes to another instance at once, with no backoff. Only
    /// when the host says so (`byHost`): an agent that answers UNAVAILABLE
    /// itself ("the source is busy") asks for a retry with backoff.
    public static func reassigns(_ status: plexus_status, byHost: Bool = true) -> Bool {
        byHost && (status == PLEXUS_AGENT_CRASHED.rawValue || status == PLEXUS_UNAVAILABLE.rawValue || status == PLEXUS_SHUTTING_DOWN.rawValue)
    }

    /// Failures no retry can fix: the same input to the same code fails the
    /// same way. NO_SUCH_CAPABILITY is not among them: a provider may appear
    /// (a client registering, an agent restarting), and each attempt waits
    /// its timeout for one.
    public static let final = Set<plexus_status>([
        PLEXUS_INVALID_ARGUMENT, PLEXUS_ARITY_MISMATCH, PLEXUS_TYPE_MISMATCH, PLEXUS_PERMISSION_DENIED, PLEXUS_NO_SUCH_AGENT,
        PLEXUS_TOO_LARGE, PLEXUS_UNSUPPORTED, PLEXUS_ABI_MISMATCH, PLEXUS_BAD_DESCRIPTOR, PLEXUS_MALFORMED_FRAME,
    ].map(\.status))

    /// Whether a failed attempt is tried again (attempts and deadline
    /// allowing). A lost agent always is: the task was not at fault.
    /// `retryOn` (a task's `retry_on`, a step's `retry.on`), when given, is
    /// the whole list of statuses retried; otherwise every status but the
    /// `final` ones is.
    public static func retries(_ status: plexus_status, byHost: Bool, retryOn: Set<String>?) -> Bool {
        if reassigns(status, byHost: byHost) { return true }
        if let retryOn { return retryOn.contains(statusName(status)) }
        return !final.contains(status)
    }

    /// Why a failure was not retried, for the task's events and its
    /// dead-letter reason: "not retried: INVALID_ARGUMENT cannot succeed on retry".
    public static func whyNotRetried(_ status: plexus_status, retryOn: Set<String>?) -> String {
        let name = statusName(status)
        if let retryOn {
            return "not retried: \(name) is not in its retry_on (\(retryOn.sorted().joined(separator: ", ")))"
        }
        return "not retried: \(name) cannot succeed on retry; a step's retry.on or a task's retry_on that names it retries it anyway"
    }

    /// Every status a `retry_on` list may name: all but OK.
    public static var retryableNames: [String] {
        (1...Int(PLEXUS_CONFLICT.rawValue)).map { statusName(plexus_status($0)) }
    }

    /// Checks a `retry_on` list: known status names, nothing else.
    public static func checkRetryOn(_ names: [String]) -> String? {
        let known = retryableNames
        for n in names where !known.contains(n) {
            let hint = Suggestion.closest(to: n, among: known).map { " (did you mean \($0)?)" } ?? ""
            return "'\(n)' is not a status\(hint); expected names such as INVALID_ARGUMENT, TIMEOUT, HANDLER_FAILED"
        }
        return nil
    }
}

/// Where the scheduler reads time and chance; tests give their own.
public struct SchedulerClock: Sendable {
    public var unixNanos: @Sendable () -> Int64
    public var random: @Sendable () -> Double

    public init(unixNanos: @escaping @Sendable () -> Int64, random: @escaping @Sendable () -> Double) {
        self.unixNanos = unixNanos
        self.random = random
    }
}
