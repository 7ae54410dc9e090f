import CoreMetrics
import Dispatch
import PlexusMetrics
import Testing

/// The lock-free histogram and counters /metrics is built from: exact under
/// many threads, rendered as Prometheus expects.
@Suite("Metrics: lock-free histogram")
struct AtomicHistogramTests {
    @Test func manyThreadsRecordingAtOnceLoseNoObservation() {
        let h = AtomicHistogram(name: "t_seconds", labels: [("agent", "a")], bounds: Buckets.durationNanos, divisor: 1e9)
        let threads = 8, each = 50_000
        // Each thread records the same spread of values: 0, 1 µs ... into every bucket and past the last.
        let values: [Int64] = [0, 999, 1_000, 1_001, 3_000, 70_000, 2_000_000, 700_000_000, 20_000_000_000]
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for i in 0..<each { h.observe(values[(i + t) % values.count]) }
        }
        let counts = h.snapshot()
        #expect(counts.reduce(0, +) == UInt64(threads * each))
        // Exactly: every value lands in the first bucket whose bound is >= it.
        var expected = [UInt64](repeating: 0, count: Buckets.durationNanos.count + 1)
        var sum: Int64 = 0
        for t in 0..<threads {
            for i in 0..<each {
                let v = values[(i + t) % values.count]
                expected[Buckets.durationNanos.firstIndex { v <= $0 } ?? Buckets.durationNanos.count] += 1
                sum += v
            }
        }
        #expect(counts == expected)
        #expect(h.sum == Double(sum) / 1e9)
    }

    @Test func itRendersCumulativeBucketsInSecondsWithSumAndCount() {
        let h = AtomicHistogram(name: "t_seconds", labels: [("agent", "a\"b")], bounds: [1_000, 1_000_000], divisor: 1e9)
        h.observe(500); h.observe(2_000); h.observe(5_000_000)
        var out = ""
        h.emit(into: &out)
        #expect(out == """
            t_seconds_bucket{agent="a\\"b",le="1e-06"} 1
            t_seconds_bucket{agent="a\\"b",le="0.001"} 2
            t_seconds_bucket{agent="a\\"b",le="+Inf"} 3
            t_seconds_sum{agent="a\\"b"} 0.0050025
            t_seconds_count{agent="a\\"b"} 3

            """)
    }

    @Test func quantilesInterpolateInsideTheirBucket() {
        let h = AtomicHistogram(name: "q", labels: [], bounds: [10, 20, 40], divisor: 1)
        for _ in 0..<50 { h.observe(5) }     // (0, 10]
        for _ in 0..<50 { h.observe(15) }    // (10, 20]
        let c = h.snapshot()
        #expect(h.quantile(0.5, of: c) == 10)
        #expect(h.quantile(0.99, of: c) == 19.8)
        #expect(h.quantile(0.5, of: [0, 0, 0, 0]) == nil)
        #expect(h.quantile(0.5, of: [0, 0, 0, 4]) == 40)   // past the last bound: the last bound
    }

    @Test func lazyCountersMadeFromManyThreadsAtOnceCountEveryIncrement() {
        let f = PlexusMetricsFactory(help: ["failed_total": "failures"])
        let counters = LazyCounters(slots: 4) { i in
            CoreMetrics.Counter(label: "failed_total", dimensions: [("status", "s\(i)")], factory: f)
        }
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<10_000 { counters.increment((i + t) % 3) }
        }
        counters.increment(99)   // out of range: the last slot
        var text = ""
        f.render(into: &text)
        #expect(text.contains("# HELP failed_total failures\n# TYPE failed_total counter\n"))
        let total = text.split(separator: "\n").filter { $0.hasPrefix("failed_total{") }
            .compactMap { Int($0.split(separator: " ").last!) }.reduce(0, +)
        #expect(total == 80_001)
        #expect(text.contains("failed_total{status=\"s3\"} 1\n"))
    }

    @Test func theFactoryGivesTimersAndAggregatingRecordersAsLockFreeHistograms() {
        let f = PlexusMetricsFactory(help: ["t_seconds": "a timer", "b": "a batch size"])
        let timer = CoreMetrics.Timer(label: "t_seconds", dimensions: [("x", "1")], factory: f)
        timer.recordMilliseconds(3)
        let batch = CoreMetrics.Recorder(label: "b", aggregate: true, factory: f)
        batch.record(5)
        #expect(f.timer("t_seconds", [("x", "1")]).count == 1)   // the same series
        var text = ""
        f.render(into: &text)
        #expect(text.contains("# HELP t_seconds a timer\n# TYPE t_seconds histogram\n"))
        #expect(text.contains("t_seconds_bucket{x=\"1\",le=\"0.005\"} 1\n"))
        #expect(text.contains("# TYPE b histogram\n") && text.contains("b_bucket{le=\"8\"} 1\n") && text.contains("b_count 1\n"))
    }
}
