import PlexusThreads
import PlexusCore

/// A message that could not be delivered, and why.
public struct DeadLetter: Sendable {
    public let envelope: Envelope
    public let reason: String
    public let atUnixNs: Int64
}

/// The most recent dead letters, bounded so a storm of failures cannot grow
/// the host without limit; `total` counts every one ever recorded.
final class DeadLetters: @unchecked Sendable {
    private let lock = ConditionLock()
    private var ring: [DeadLetter] = []
    private var head = 0
    private(set) var total = 0
    let capacity: Int

    init(capacity: Int = 1024) { self.capacity = capacity }

    func record(_ m: Message, reason: String) {
        let d = DeadLetter(envelope: m.envelope, reason: reason, atUnixNs: Clock.unixNanos())
        lock.withLock {
            total += 1
            if ring.count < capacity { ring.append(d) } else { ring[head] = d; head = (head + 1) % capacity }
        }
    }

    /// Oldest first.
    func snapshot() -> [DeadLetter] {
        lock.withLock { Array(ring[head...] + ring[..<head]) }
    }

    var recorded: Int { lock.withLock { total } }
}
