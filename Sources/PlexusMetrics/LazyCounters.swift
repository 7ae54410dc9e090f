import CoreMetrics
import Synchronization

/// Counters of one family told apart by a small integer (a status code),
/// made the first time a slot is counted and then reached without a lock:
/// each slot is an atomic holding a retained counter (0 until made). Two
/// threads making the same slot at once both ask the factory (whose registry
/// hands both the same series) and one keeps its counter.
public final class LazyCounters: @unchecked Sendable {
    public let slots: Int
    private let cells: UnsafeMutablePointer<Atomic<UInt>>
    private let make: @Sendable (Int) -> CoreMetrics.Counter

    /// slots counters; make(i) builds slot i's (its label chosen there).
    public init(slots: Int, make: @escaping @Sendable (Int) -> CoreMetrics.Counter) {
        self.slots = slots
        self.make = make
        cells = .allocate(capacity: slots)
        for i in 0..<slots { (cells + i).initialize(to: Atomic(0)) }
    }

    deinit {
        for i in 0..<slots {
            let bits = cells[i].load(ordering: .acquiring)
            if bits != 0 { Unmanaged<CoreMetrics.Counter>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).release() }
        }
        cells.deinitialize(count: slots)
        cells.deallocate()
    }

    /// Removes the counters made so far from their registry (their series
    /// leave /metrics); counting on afterwards is harmless but unseen.
    public func destroyAll() {
        for i in 0..<slots {
            let bits = cells[i].load(ordering: .acquiring)
            if bits != 0 { Unmanaged<CoreMetrics.Counter>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!)._withUnsafeGuaranteedRef { $0.destroy() } }
        }
    }

    /// Counts one in slot i (the last slot when i is out of range).
    public func increment(_ i: Int) {
        let i = i >= 0 && i < slots ? i : slots - 1
        var bits = cells[i].load(ordering: .acquiring)
        if bits == 0 {
            let made = UInt(bitPattern: Unmanaged.passRetained(make(i)).toOpaque())
            let (won, current) = cells[i].compareExchange(expected: 0, desired: made, ordering: .acquiringAndReleasing)
            if won { bits = made } else {
                Unmanaged<CoreMetrics.Counter>.fromOpaque(UnsafeRawPointer(bitPattern: made)!).release()
                bits = current
            }
        }
        Unmanaged<CoreMetrics.Counter>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!)._withUnsafeGuaranteedRef { $0.increment() }
    }
}
