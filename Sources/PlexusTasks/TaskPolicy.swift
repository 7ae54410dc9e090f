import CPlexus

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
    /// the task goes to another instance at once, with no backoff.
    public static func reassigns(_ status: plexus_status) -> Bool {
        status == PLEXUS_AGENT_CRASHED.rawValue || status == PLEXUS_UNAVAILABLE.rawValue || status == PLEXUS_SHUTTING_DOWN.rawValue
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
