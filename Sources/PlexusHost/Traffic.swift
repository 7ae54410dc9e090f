import Synchronization

/// Who sends to whom: messages counted per (sender agent, target agent),
/// for the dashboard's topology. Off unless `enable()` was called before
/// the host starts (plexus run --http); off, the router pays one branch.
///
/// Each agent name gets a slot when it registers (a client that comes back
/// under its name gets its old one); a count is one relaxed atomic add in
/// a fixed slots×slots matrix, no lock and no allocation per message.
/// Slot 0 is the host itself and every sender that is not an agent;
/// names past the last slot share `overflowSlot`.
public final class Traffic: @unchecked Sendable {
    public static let slots = 128
    static let overflowSlot = slots - 1
    public struct Edge: Sendable, Codable, Equatable {
        public var from: String
        public var to: String
        public var messages: Int
    }

    /// Read per message; written once, before the host starts.
    private(set) var enabled = false
    private var counts: UnsafeMutablePointer<Atomic<Int>>?
    private let names = Mutex<(bySlot: [String], byName: [String: Int])>((["plexus"], ["plexus": 0]))

    deinit {
        guard let counts else { return }
        counts.deinitialize(count: Self.slots * Self.slots)
        counts.deallocate()
    }

    /// Starts counting; call before the host starts (not thread-safe with routing).
    func enable() {
        guard !enabled else { return }
        let n = Self.slots * Self.slots
        let p = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: n)
        for i in 0..<n { (p + i).initialize(to: Atomic(0)) }
        counts = p
        enabled = true
    }

    /// The slot of an agent name, given at registration (not per message).
    func slot(for name: String) -> Int {
        names.withLock { t in
            if let s = t.byName[name] { return s }
            guard t.bySlot.count < Self.overflowSlot else { return Self.overflowSlot }
            t.bySlot.append(name)
            t.byName[name] = t.bySlot.count - 1
            return t.bySlot.count - 1
        }
    }

    @inline(__always)
    func count(from: Int, to: Int) {
        (counts! + from * Self.slots + to).pointee.add(1, ordering: .relaxed)
    }

    /// Every pair that has carried a message, with its count so far.
    public var edges: [Edge] {
        guard enabled, let counts else { return [] }
        let bySlot = names.withLock { $0.bySlot }
        func name(_ s: Int) -> String { s < bySlot.count ? bySlot[s] : s == Self.overflowSlot ? "(others)" : "?" }
        var out: [Edge] = []
        for f in 0..<Self.slots {
            for t in 0..<Self.slots {
                let n = (counts + f * Self.slots + t).pointee.load(ordering: .relaxed)
                if n > 0 { out.append(Edge(from: name(f), to: name(t), messages: n)) }
            }
        }
        return out
    }
}
