import CPlexus
import Synchronization

extension plexus_id: @retroactive Equatable, @retroactive Hashable, @unchecked @retroactive Sendable {
    public static let none = plexus_id(hi: 0, lo: 0)
    public var isNone: Bool { hi == 0 && lo == 0 }

    public static func == (a: plexus_id, b: plexus_id) -> Bool { a.hi == b.hi && a.lo == b.lo }
    public func hash(into h: inout Hasher) { h.combine(hi); h.combine(lo) }

    /// 32 lowercase hex digits, the form logs and JSON use.
    public var hex: String {
        func h(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return h(hi) + h(lo)
    }

    public init?(hex: String) {
        guard hex.count == 32, let hi = UInt64(hex.prefix(16), radix: 16),
              let lo = UInt64(hex.suffix(16), radix: 16) else { return nil }
        self.init(hi: hi, lo: lo)
    }
}

/// Makes ids unique across hosts: a random 64-bit node half and a counter.
public final class IDGenerator: Sendable {
    public let node: UInt64
    private let counter = Atomic<UInt64>(0)

    public init(node: UInt64 = UInt64.random(in: 1...UInt64.max)) { self.node = node }

    public func next() -> plexus_id {
        plexus_id(hi: node, lo: counter.wrappingAdd(1, ordering: .relaxed).newValue)
    }
}
