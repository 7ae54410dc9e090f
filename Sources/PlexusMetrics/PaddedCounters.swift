import Synchronization

/// A few counters told apart by a small index, each alone on its cache line
/// (threads counting different slots never share a line), counted with one
/// relaxed atomic add and rendered by the owner at scrape time. For the
/// counts every routed message makes, where a swift-prometheus Counter's
/// increment costs a call and more than the add (perf: 1 % of an
/// in-process round trip for two of them).
public final class PaddedCounters: @unchecked Sendable {   // its state: atomics in memory it owns
    public let slots: Int
    /// 8 words (64 bytes) per slot; the first word counts.
    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>
    @usableFromInline static let stride = 8

    public init(slots: Int) {
        self.slots = slots
        let raw = UnsafeMutableRawPointer.allocate(byteCount: slots * Self.stride * 8, alignment: 64)
        words = raw.bindMemory(to: Atomic<UInt64>.self, capacity: slots * Self.stride)
        for i in 0..<(slots * Self.stride) { (words + i).initialize(to: Atomic(0)) }
    }

    deinit {
        words.deinitialize(count: slots * Self.stride)
        UnsafeMutableRawPointer(words).deallocate()
    }

    /// Counts one in slot i (0 ≤ i < slots: the caller's index is its own).
    @inlinable @inline(__always)
    public func increment(_ i: Int) { words[i &* Self.stride].wrappingAdd(1, ordering: .relaxed) }

    public func value(_ i: Int) -> UInt64 { words[i * Self.stride].load(ordering: .relaxed) }
}
