import Glibc
import PlexusCore

/// Who is waiting for a reply.
enum Requester: @unchecked Sendable {
    case agent(Agent)
    /// An external caller (CLI, socket client, Swift API). Called once, on
    /// whichever thread resolves the request: it must not block.
    case callback(@Sendable (Envelope) -> Void)
}

/// Requests waiting for their reply, and the timer that ends those whose
/// deadline passes. Deadlines sit in a wheel of 1 ms slots: a request costs
/// one append; a resolved request leaves a stale id behind that the wheel
/// drops when it passes its slot.
final class PendingRequests: @unchecked Sendable {
    struct Entry {
        let requester: Requester
        let responder: Agent?      // who may reply; nil when any agent may (topics)
        let deadlineMono: Int64
        let target: String         // for the timeout message
        let timeoutMs: Int64
    }

    private let lock = ConditionLock()
    private var table: [plexus_id: Entry] = [:]
    private static let slots = 64
    private var wheel: [[plexus_id]] = Array(repeating: [], count: slots)
    private var lastTickMs: Int64 = Clock.monotonicNanos() / 1_000_000
    private var stopping = false
    private var timer: pthread_t?

    /// Called (outside the lock) for each request whose deadline passed.
    var onTimeout: ((plexus_id, Entry) -> Void)?

    var count: Int { lock.withLock { table.count } }

    func start() {
        timer = startThread(name: "plexus-timer") { [self] in self.timerLoop() }
    }

    func stop() {
        lock.withLock { stopping = true; lock.signal() }
        if let t = timer { pthread_join(t, nil) }
        timer = nil
    }

    func add(_ id: plexus_id, _ e: Entry) {
        lock.lock()
        table[id] = e
        wheel[Int((e.deadlineMono / 1_000_000) % Int64(Self.slots))].append(id)
        lock.unlock()
    }

    /// Removes and returns the entry if `responder` may answer it.
    func take(_ id: plexus_id, responder: Agent?) -> Entry? {
        lock.lock()
        defer { lock.unlock() }
        guard let e = table[id] else { return nil }
        if let r = e.responder, r !== responder { return nil }
        table[id] = nil
        return e
    }

    /// Removes every entry (at shutdown) and returns them.
    func takeAll() -> [(plexus_id, Entry)] {
        lock.withLock {
            let all = table.map { ($0.key, $0.value) }
            table.removeAll()
            return all
        }
    }

    private func timerLoop() {
        while true {
            var expired: [(plexus_id, Entry)] = []
            lock.lock()
            if stopping { lock.unlock(); return }
            let nowMs = Clock.monotonicNanos() / 1_000_000
            var ms = lastTickMs + 1
            // After a long stall every slot has been passed once: visit each at most once.
            if nowMs - lastTickMs > Int64(Self.slots) { ms = nowMs - Int64(Self.slots) + 1 }
            while ms <= nowMs {
                let slot = Int(ms % Int64(Self.slots))
                let ids = wheel[slot]
                wheel[slot].removeAll(keepingCapacity: true)
                for id in ids {
                    guard let e = table[id] else { continue }  // already answered
                    if e.deadlineMono / 1_000_000 <= nowMs {
                        table[id] = nil
                        expired.append((id, e))
                    } else {
                        wheel[Int((e.deadlineMono / 1_000_000) % Int64(Self.slots))].append(id)
                    }
                }
                ms += 1
            }
            lastTickMs = nowMs
            if expired.isEmpty { lock.wait(untilMonotonic: (nowMs + 1) * 1_000_000) }
            lock.unlock()
            for (id, e) in expired { onTimeout?(id, e) }
        }
    }
}
