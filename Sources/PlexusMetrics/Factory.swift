import CoreMetrics
import Prometheus
import Synchronization

/// The swift-metrics factory of one host: counters and gauges are
/// swift-prometheus's (atomics, no lock when updated), timers and aggregating
/// recorders are AtomicHistograms (swift-prometheus's histogram locks per
/// record). One per host rather than MetricsSystem.bootstrap's process-wide
/// one, so several hosts in one process (the tests) keep apart; its handles
/// are made once (an agent's when the agent is created) and kept.
public final class PlexusMetricsFactory: CoreMetrics.MetricsFactory, Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// # HELP text by family name; every family this host makes is listed.
    private let help: [String: String]
    private struct Histograms {
        var order: [String] = []
        var byName: [String: [AtomicHistogram]] = [:]
    }
    private let histograms = Mutex(Histograms())

    /// Nanoseconds per tick of the clock the host times messages with
    /// (plexus_ticks.h); its timers convert with it.
    private let nanosPerTick: Double

    public init(help: [String: String], nanosPerTick: Double = 1) { self.help = help; self.nanosPerTick = nanosPerTick }

    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: help[label] ?? label)
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        return histogram(label, dimensions, bounds: Buckets.sizes, divisor: 1)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        histogram(label, dimensions, bounds: Buckets.durationNanos, divisor: 1e9, unitsPerTick: nanosPerTick)
    }

    /// makeTimer's histogram as its own type, for a site that records into it directly.
    public func timer(_ label: String, _ dimensions: [(String, String)] = []) -> AtomicHistogram {
        histogram(label, dimensions, bounds: Buckets.durationNanos, divisor: 1e9, unitsPerTick: nanosPerTick)
    }

    /// makeRecorder(aggregate: true)'s histogram as its own type.
    public func valueHistogram(_ label: String, _ dimensions: [(String, String)] = []) -> AtomicHistogram {
        histogram(label, dimensions, bounds: Buckets.sizes, divisor: 1)
    }

    /// The series of this name and labels: the same object when asked twice.
    private func histogram(_ name: String, _ labels: [(String, String)], bounds: [Int64], divisor: Double,
                           unitsPerTick: Double = 1) -> AtomicHistogram {
        histograms.withLock { h in
            let series = h.byName[name] ?? []
            if let same = series.first(where: { $0.labels.elementsEqual(labels, by: { $0 == $1 }) }) { return same }
            let made = AtomicHistogram(name: name, labels: labels, bounds: bounds, divisor: divisor, unitsPerTick: unitsPerTick)
            if h.byName[name] == nil { h.order.append(name) }
            h.byName[name, default: []].append(made)
            return made
        }
    }

    public func destroyCounter(_ handler: any CounterHandler) {
        if let c = handler as? Prometheus.Counter { registry.unregisterCounter(c) }
    }
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let c = handler as? Prometheus.Counter { registry.unregisterCounter(c) }
    }
    public func destroyMeter(_ handler: any MeterHandler) {
        if let g = handler as? Prometheus.Gauge { registry.unregisterGauge(g) }
    }
    public func destroyRecorder(_ handler: any RecorderHandler) {
        if let g = handler as? Prometheus.Gauge { registry.unregisterGauge(g) }
        if let h = handler as? AtomicHistogram { forget(h) }
    }
    public func destroyTimer(_ handler: any TimerHandler) {
        if let h = handler as? AtomicHistogram { forget(h) }
    }

    private func forget(_ x: AtomicHistogram) {
        histograms.withLock { h in
            h.byName[x.name]?.removeAll { $0 === x }
            if h.byName[x.name]?.isEmpty == true { h.byName[x.name] = nil; h.order.removeAll { $0 == x.name } }
        }
    }

    /// The text exposition of every counter, gauge and histogram made here.
    public func render(into out: inout String) {
        out += registry.emitToString()
        let families = histograms.withLock { h in h.order.map { ($0, h.byName[$0] ?? []) } }
        for (name, series) in families {
            Exposition.header(&out, name, type: "histogram", help: help[name] ?? name)
            for s in series { s.emit(into: &out) }
        }
    }
}

/// Text exposition format 0.0.4 helpers, for what is rendered by hand
/// (histograms, and values read at scrape time).
public enum Exposition {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func header(_ out: inout String, _ name: String, type: String, help: String) {
        out += "# HELP " + name + " "
        for ch in help.unicodeScalars {   // HELP escapes backslash and line feed only
            switch ch {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        out += "\n"
        out += "# TYPE " + name + " " + type + "\n"
    }

    public static func sample(_ out: inout String, _ name: String, _ labels: [(String, String)], _ value: Double) {
        out += name
        if !labels.isEmpty {
            out += "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        out += " " + number(value) + "\n"
    }

    /// A label value: backslash, double quote and line feed escaped.
    public static func escape(_ s: String) -> String {
        var r = ""
        for ch in s.unicodeScalars {
            switch ch {
            case "\\": r += "\\\\"
            case "\"": r += "\\\""
            case "\n": r += "\\n"
            default: r.unicodeScalars.append(ch)
            }
        }
        return r
    }

    /// Integers without a fraction; others as Swift prints a Double.
    public static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}
