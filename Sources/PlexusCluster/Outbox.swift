import CPlexus
import PlexusCore
import Synchronization

/// What one attempt to hand bytes to NATS came to.
enum PublishOutcome {
    case sent
    /// Not connected now (reconnecting): hold it and try again later.
    case down
    /// Refused for good (connection closed, bad subject): tell the sender.
    case failed(PlexusError)
}

/// The cross-host sends held while the NATS connection is down (FAULTS.md 34).
/// A send goes straight to NATS while connected and nothing is held;
/// otherwise it waits here, in order, with the frame the router encoded
/// (same message id), until the connection is back. Bounded by count and
/// bytes: a full outbox refuses the send at once (UNAVAILABLE), it never
/// blocks the caller and never drops silently. A request held past its
/// deadline is dropped, not sent late: the router's own timer has answered
/// its caller TIMEOUT already.
final class Outbox: Sendable {
    struct Item {
        var subject: String
        var frame: [UInt8]
        /// A query's id (its answer comes back; cancel removes it).
        var request: plexus_id?
        /// Monotonic deadline of a query; nil: kept until sent.
        var deadlineMono: Int64?
    }

    let maxMessages: Int
    let maxBytes: Int
    /// Names NATS in refusals: "NATS at nats://…".
    let what: String

    private struct State {
        var items: [Item] = []
        /// items[..<head] are sent; compacted once they are half the array.
        var head = 0
        var bytes = 0
        var count: Int { items.count - head }
        mutating func popFirst() -> Item {
            let it = items[head]
            head += 1
            bytes -= it.frame.count
            if head >= 64 && head * 2 >= items.count { items.removeFirst(head); head = 0 }
            return it
        }
    }
    private let state = Mutex(State())

    init(maxMessages: Int, maxBytes: Int, what: String) {
        self.maxMessages = maxMessages
        self.maxBytes = maxBytes
        self.what = what
    }

    /// (messages, bytes) held now.
    var depth: (messages: Int, bytes: Int) { state.withLock { ($0.count, $0.bytes) } }

    /// Sends frame now when nothing is held and `publish` takes it, else
    /// holds it; throws UNAVAILABLE when the outbox is full, or what
    /// `publish` refused for good. The lock is held across `publish` so a
    /// send never overtakes a held one.
    func send(_ subject: String, _ frame: UnsafeRawBufferPointer, request: plexus_id?, deadlineMono: Int64?,
              publish: (String, UnsafeRawBufferPointer) -> PublishOutcome) throws(PlexusError) {
        let r: Result<Void, PlexusError> = state.withLock { s in
            if s.count == 0 {
                switch publish(subject, frame) {
                case .sent: return .success(())
                case .failed(let e): return .failure(e)
                case .down: break
                }
            }
            guard s.count < maxMessages, s.bytes + frame.count <= maxBytes else {
                return .failure(PlexusError(.UNAVAILABLE,
                    "\(what) is unreachable (reconnecting) and the outbox holding cross-host sends until it is back is full "
                    + "(\(s.count) of \(maxMessages) messages, \(s.bytes) of \(maxBytes) bytes; nats.outbox in plexus.yaml): not sent to \(Outbox.destination(subject))"))
            }
            s.items.append(Item(subject: subject, frame: Array(frame.bindMemory(to: UInt8.self)), request: request, deadlineMono: deadlineMono))
            s.bytes += frame.count
            return .success(())
        }
        try r.get()
    }

    /// What one drain did: requests dropped as expired, sends refused for good.
    struct Drained {
        var sent = 0
        /// The requests among them (their ids, as the router assigned them).
        var sentRequests: [plexus_id] = []
        var expired: [plexus_id] = []
        var failed: [(Item, PlexusError)] = []
        /// Still held: the connection went down again meanwhile.
        var left = 0
    }

    /// Sends what is held, oldest first, in batches (a send arriving
    /// meanwhile waits for one batch at most, then queues behind), until
    /// empty or `publish` says the connection is down again.
    func drain(nowMono: Int64, batch: Int = 256, publish: (String, UnsafeRawBufferPointer) -> PublishOutcome) -> Drained {
        var d = Drained()
        while true {
            let more = state.withLock { s -> Bool in
                var n = 0
                while s.count > 0 && n < batch {
                    let head = s.items[s.head]
                    if let dl = head.deadlineMono, dl <= nowMono, let id = head.request {
                        _ = s.popFirst()
                        d.expired.append(id)
                        continue
                    }
                    let outcome = head.frame.withUnsafeBytes { publish(head.subject, $0) }
                    switch outcome {
                    case .down: return false
                    case .sent:
                        _ = s.popFirst()
                        d.sent += 1
                        if let id = head.request { d.sentRequests.append(id) }
                    case .failed(let e): d.failed.append((s.popFirst(), e))
                    }
                    n += 1
                }
                return s.count > 0
            }
            if !more { break }
        }
        d.left = state.withLock { $0.count }
        return d
    }

    /// Drops held requests whose deadline passed (while NATS stays down);
    /// returns their ids.
    func sweep(nowMono: Int64) -> [plexus_id] {
        state.withLock { s in
            guard s.items[s.head...].contains(where: { ($0.deadlineMono ?? .max) <= nowMono && $0.request != nil }) else { return [] }
            var expired: [plexus_id] = []
            var keep: [Item] = []
            for it in s.items[s.head...] {
                if let dl = it.deadlineMono, dl <= nowMono, let id = it.request { expired.append(id) } else { keep.append(it) }
            }
            s.items = keep
            s.head = 0
            s.bytes = keep.reduce(0) { $0 + $1.frame.count }
            return expired
        }
    }

    /// Removes a held request (its caller cancelled it); true when it was held.
    @discardableResult
    func remove(request id: plexus_id) -> Bool {
        state.withLock { s in
            guard let i = s.items[s.head...].firstIndex(where: { $0.request == id }) else { return false }
            s.bytes -= s.items[i].frame.count
            s.items.remove(at: i)
            return true
        }
    }

    /// What a cross-host subject sends to, in the words a caller used
    /// ("capability text.stats", "agent b/summarizer", "topic news.flash").
    static func destination(_ subject: String) -> String {
        guard let r = subject.range(of: ".from.") else { return subject }
        let t = subject[r.upperBound...].split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard t.count == 3 else { return subject }
        let rest = t[2]
        switch t[1] {
        case "cap": return "capability \(rest)"
        case "topic": return "topic \(rest)"
        case "agent", "capon":
            guard let dot = rest.firstIndex(of: ".") else { return subject }
            let node = rest[..<dot], name = rest[rest.index(after: dot)...]
            return t[1] == "agent" ? "agent \(node)/\(name)" : "capability \(name) on node \(node)"
        case "reply": return "an answer to node \(rest)"
        case "cancel": return "a cancel to node \(rest)"
        default: return subject
        }
    }
}
