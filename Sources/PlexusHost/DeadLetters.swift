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

    init(capacity: Int = 1024) { recent = Recent(capacity: capacity) }

    func record(_ m: Message, reason: String) {
        recent.add(DeadLetter(envelope: m.envelope, reason: reason, atUnixNs: Clock.unixNanos()))
    }

    /// Oldest first.
    func snapshot() -> [DeadLetter] { recent.snapshot() }

    var recorded: Int { recent.recorded }
    var capacity: Int { recent.capacity }
}
