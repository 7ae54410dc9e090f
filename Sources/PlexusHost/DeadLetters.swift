import PlexusThreads
import PlexusCore

/// A message that could not be delivered, and why.
public struct DeadLetter: Sendable {
    public let envelope: Envelope
    public let reason: String
    public let atUnixNs: Int64
}

/// The most recent dead letters (Recent bounds them).
final class DeadLetters: @unchecked Sendable {
    private let recent: Recent<DeadLetter>

    private let metrics: HostMetrics?

    init(capacity: Int = 1024, metrics: HostMetrics? = nil) {
        recent = Recent(capacity: capacity)
        self.metrics = metrics
    }

    /// cause: the status that stopped it (its reason label on /metrics), or
    /// HostMetrics.deadLetterInitFailed.
    func record(_ m: Message, reason: String, cause: Int) {
        if let metrics { metrics.deadLettered.increment(cause) }
        recent.add(DeadLetter(envelope: m.envelope, reason: reason, atUnixNs: Clock.unixNanos()))
    }

    /// Oldest first.
    func snapshot() -> [DeadLetter] { recent.snapshot() }

    var recorded: Int { recent.recorded }
    var capacity: Int { recent.capacity }
}
