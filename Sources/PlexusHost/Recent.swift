import PlexusThreads

/// The most recent records of something, bounded so a storm cannot grow the
/// host without limit; `recorded` counts every one ever added.
final class Recent<Element: Sendable>: @unchecked Sendable {
    private let lock = ConditionLock()
    private var ring: [Element] = []
    private var head = 0
    private var total = 0
    let capacity: Int

    init(capacity: Int = 1024) { self.capacity = capacity }

    func add(_ e: Element) {
        lock.withLock {
            total += 1
            if ring.count < capacity { ring.append(e) } else { ring[head] = e; head = (head + 1) % capacity }
        }
    }

    /// Oldest first.
    func snapshot() -> [Element] {
        lock.withLock { Array(ring[head...] + ring[..<head]) }
    }

    var recorded: Int { lock.withLock { total } }
}
