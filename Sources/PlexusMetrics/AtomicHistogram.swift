import CoreMetrics
import Synchronization

/// A Prometheus histogram that records without a lock: fixed buckets, one
/// atomic counter per bucket, and the sum as an atomic integer (nanoseconds
/// for durations, the value itself otherwise). A record is a short scan of
/// the bounds and two relaxed atomic adds; swift-prometheus's own Histogram
/// takes a lock on every record instead.
///
/// Counts are kept per bucket (not cumulative) and made cumulative when read,
/// so a record touches one bucket; `_count` is their total, so at a scrape
/// the count and the buckets always agree (the sum may be a record behind).
public final class AtomicHistogram: @unchecked Sendable {
    public let name: String
    public let labels: [(String, String)]
    /// Upper bounds, ascending, in the recorded unit (nanoseconds for timers).
    public let bounds: [Int64]
    /// How a bound and the sum print: divided by this (1e9: nanoseconds as
    /// seconds; a division, not a multiplication by 1e-9, so 1 µs prints 1e-06).
    let divisor: Double
    /// A timer's recorded unit per tick of the host's meter clock
    /// (plexus_ticks.h: the TSC where the kernel trusts it); 1 otherwise.
    public let unitsPerTick: Double
    /// bounds.count + 1 counters: the last one is +Inf.
    @usableFromInline let counts: UnsafeMutablePointer<Atomic<UInt64>>
    @usableFromInline let total = Atomic<Int64>(0)
    /// The series' text up to the bucket bound, rendered once.
    private let prefix: String
    private let labelText: String

    /// bounds in the recorded unit; `divisor` divides them (and the sum) for the text.
    public init(name: String, labels: [(String, String)], bounds: [Int64], divisor: Double, unitsPerTick: Double = 1) {
        precondition(!bounds.isEmpty && zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "histogram bounds must ascend")
        self.name = name
        self.labels = labels
        self.bounds = bounds
        self.divisor = divisor
        self.unitsPerTick = unitsPerTick
        counts = .allocate(capacity: bounds.count + 1)
        for i in 0...bounds.count { (counts + i).initialize(to: Atomic(0)) }
        labelText = labels.map { "\($0.0)=\"\(Exposition.escape($0.1))\"" }.joined(separator: ",")
        prefix = name + "_bucket{" + (labelText.isEmpty ? "" : labelText + ",") + "le=\""
    }

    deinit {
        counts.deinitialize(count: bounds.count + 1)
        counts.deallocate()
    }

    /// Records one observation in the histogram's unit (nanoseconds for a timer).
    /// Inlinable, as the three below: the router records per message.
    @inlinable @inline(__always)
    public func observe(_ v: Int64) {
        var i = 0
        let n = bounds.count
        while i < n && v > bounds[i] { i += 1 }
        counts[i].wrappingAdd(1, ordering: .relaxed)
        total.wrappingAdd(v, ordering: .relaxed)
    }

    /// A duration measured in ticks of the meter clock (one multiplication).
    @inlinable @inline(__always)
    public func observeTicks(_ t: Int64) { observe(Int64(Double(t) * unitsPerTick)) }

    /// observeTicks, recorded as observeExclusive.
    @inlinable @inline(__always)
    public func observeTicksExclusive(_ t: Int64) { observeExclusive(Int64(Double(t) * unitsPerTick)) }

    /// observe(_:) for a histogram only one thread records into at a time,
    /// each record ordered after the last (an in-process agent that is not
    /// concurrent: its mailbox hands it from thread to thread with a
    /// release and an acquire). Loads and stores instead of locked adds:
    /// the same counts, a fraction of the cost. Readers may see a record's
    /// bucket before its sum, as with observe.
    @inlinable @inline(__always)
    public func observeExclusive(_ v: Int64) {
        var i = 0
        let n = bounds.count
        while i < n && v > bounds[i] { i += 1 }
        counts[i].store(counts[i].load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        total.store(total.load(ordering: .relaxed) &+ v, ordering: .relaxed)
    }

    /// Per-bucket counts (not cumulative), the last one +Inf.
    public func snapshot() -> [UInt64] {
        (0...bounds.count).map { counts[$0].load(ordering: .relaxed) }
    }

    public var count: UInt64 { snapshot().reduce(0, &+) }
    public var sum: Double { Double(total.load(ordering: .relaxed)) / divisor }

    /// The q-quantile of the observations counted in `delta` (per-bucket
    /// counts, as snapshot() gives them, perhaps minus an earlier snapshot),
    /// interpolated linearly inside its bucket as Prometheus's
    /// histogram_quantile does; nil when there are none. In the recorded unit.
    public func quantile(_ q: Double, of delta: [UInt64]) -> Double? {
        let all = delta.reduce(0, &+)
        guard all > 0 else { return nil }
        let rank = q * Double(all)
        var seen: UInt64 = 0
        for (i, c) in delta.enumerated() {
            guard c > 0 else { continue }
            if Double(seen + c) >= rank {
                // Past the last bound: the last bound is all we know.
                guard i < bounds.count else { return Double(bounds[bounds.count - 1]) }
                let lower = i == 0 ? 0 : Double(bounds[i - 1])
                let upper = Double(bounds[i])
                return lower + (upper - lower) * max(0, rank - Double(seen)) / Double(c)
            }
            seen += c
        }
        return Double(bounds[bounds.count - 1])
    }

    /// The series' lines (_bucket, _sum, _count), without # HELP and # TYPE.
    public func emit(into out: inout String) {
        let c = snapshot()
        var cumulative: UInt64 = 0
        for (i, b) in bounds.enumerated() {
            cumulative &+= c[i]
            out += prefix + Exposition.number(Double(b) / divisor) + "\"} " + String(cumulative) + "\n"
        }
        cumulative &+= c[bounds.count]
        out += prefix + "+Inf\"} " + String(cumulative) + "\n"
        let braces = labelText.isEmpty ? "" : "{" + labelText + "}"
        out += name + "_sum" + braces + " " + Exposition.number(sum) + "\n"
        out += name + "_count" + braces + " " + String(cumulative) + "\n"
    }
}

extension AtomicHistogram: CoreMetrics.TimerHandler {
    public func recordNanoseconds(_ duration: Int64) { observe(max(0, duration)) }
}

extension AtomicHistogram: CoreMetrics.RecorderHandler {
    public func record(_ value: Int64) { observe(value) }
    public func record(_ value: Double) { observe(Int64(value.rounded())) }
}

/// Bucket bounds the host's histograms use.
public enum Buckets {
    /// 1 µs to 10 s, in nanoseconds: an in-process handler takes about a
    /// microsecond, a sandboxed round trip tens, a slow agent seconds.
    public static let durationNanos: [Int64] = [
        1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
        1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000, 100_000_000,
        250_000_000, 500_000_000, 1_000_000_000, 2_500_000_000, 5_000_000_000, 10_000_000_000,
    ]
    /// Batch sizes: 1 to 4096.
    public static let sizes: [Int64] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
}
