import CPlexusTrace
import PlexusCore
import PlexusThreads
import Synchronization
import Tracing

/// Hands the spans the host records to a swift-distributed-tracing `Tracer`
/// (swift-otel's, Zipkin's, an in-memory one): the message path records into
/// the lock-free ring as before, and this reads the ring behind it and
/// replays each trace through the standard API, parents first, so that any
/// Tracer links the spans as the tree `plexus trace` prints.
///
/// Why replay instead of calling the Tracer on the message path: a Tracer
/// allocates a span object and takes its own locks per span, which the
/// router cannot afford per message; the ring costs one atomic add.
///
/// A trace is replayed once it has been quiet for `quietNanos` (its spans
/// arrive out of order: a handler's record is written when it ends, a
/// client's or a workflow run's when its answer comes back, after its
/// children). A span whose parent was replayed earlier is linked to it; one
/// whose parent never arrives (outside tracing.rate, or overwritten) is
/// replayed as a root. Spans keep their times (`at:`), kinds and status;
/// Plexus's own ids ride along as attributes (`plexus.trace_id`,
/// `plexus.span_id`) so `plexus trace ID` and the backend can be matched.
public final class SpanExporter: Sendable {
    private let source: Tracer
    private let sink: any Tracing.Tracer
    private let quietNanos: Int64
    private let intervalNanos: Int64
    private struct Pending {
        var spans: [Span] = []
        var lastSeen: Int64 = 0
    }
    private struct State {
        /// The next ring index to read.
        var cursor: UInt64 = 0
        /// Traces read and not replayed yet, by trace id (hex).
        var pending: [String: Pending] = [:]
        /// Replayed spans' contexts, for children that arrive later (bounded, oldest dropped).
        var replayed: [String: InstrumentationContext] = [:]
        var replayOrder: [String] = []
        var exported = 0
        var missed = 0
        var stopping = false
    }
    private let state: Mutex<State>
    private let wake = ConditionLock()
    private let thread = Mutex<OwnedThread?>(nil)
    /// Contexts kept for late children; and traces held at once before the oldest is replayed early.
    static let keptContexts = 65_536
    static let heldTraces = 4_096

    /// Replays `source`'s spans into `sink`, starting with those recorded from now on.
    public init(from source: Tracer, to sink: any Tracing.Tracer, quietMillis: Int = 500, intervalMillis: Int = 200) {
        self.source = source
        self.sink = sink
        quietNanos = Int64(quietMillis) * 1_000_000
        intervalNanos = Int64(intervalMillis) * 1_000_000
        state = Mutex(State(cursor: source.written))
    }

    /// Spans handed to the sink so far, and records the ring overwrote before they were read.
    public var counts: (exported: Int, missed: Int) { state.withLock { ($0.exported, $0.missed) } }

    /// Starts the thread that reads the ring every interval.
    public func start() throws(ThreadStartError) {
        let t = try startThread(name: "plexus-spans") { [self] in run() }
        thread.withLock { $0 = t }
    }

    /// Replays everything still held (quiet or not), then ends the thread.
    public func stop() {
        wake.withLock { state.withLock { $0.stopping = true } }
        wake.broadcast()
        let t = thread.withLock { t -> OwnedThread? in defer { t = nil }; return t }
        t?.join()
        flush()
    }

    /// Reads the ring now and replays every trace read, quiet or not (shutdown, tests).
    public func flush() { tick(now: Int64.max) }

    private func run() {
        while true {
            let stopping = wake.withLock { () -> Bool in
                if state.withLock({ $0.stopping }) { return true }
                wake.wait(untilMonotonic: Clock.monotonicNanos() + intervalNanos)
                return state.withLock { $0.stopping }
            }
            if stopping { return }
            tick(now: Clock.monotonicNanos())
        }
    }

    /// Reads new records, then replays the traces quiet since `now - quiet`.
    private func tick(now: Int64) {
        let from = state.withLock { $0.cursor }
        let (records, to, missed) = source.records(from: from)
        let seen = Clock.monotonicNanos()
        let due: [[Span]] = state.withLock { s in
            s.cursor = to
            s.missed += missed
            for r in records {
                let id = plexus_id(hi: r.trace_hi, lo: r.trace_lo).hex
                s.pending[id, default: Pending()].spans += source.expand(r)
                s.pending[id]!.lastSeen = seen
            }
            var ready = s.pending.filter { now == .max || now - $0.value.lastSeen >= quietNanos }.map(\.key)
            // Too many held (a flood of long traces): the oldest go now.
            if s.pending.count - ready.count > SpanExporter.heldTraces {
                let rest = s.pending.filter { !ready.contains($0.key) }.sorted { $0.value.lastSeen < $1.value.lastSeen }
                ready += rest.prefix(s.pending.count - ready.count - SpanExporter.heldTraces).map(\.key)
            }
            return ready.compactMap { s.pending.removeValue(forKey: $0)?.spans }
        }
        for spans in due { replay(spans) }
    }

    /// One trace's spans through the sink, each after its parent.
    private func replay(_ spans: [Span]) {
        var contexts: [String: InstrumentationContext] = [:]
        let earlier = state.withLock { s in Dictionary(uniqueKeysWithValues: spans.compactMap { sp in sp.parent.flatMap { p in s.replayed[p].map { (p, $0) } } }) }
        for (_, sp) in TraceTree.ordered(spans) {
            let parent = sp.parent.flatMap { contexts[$0] ?? earlier[$0] } ?? .topLevel
            let span = sink.startSpan(SpanExporter.operationName(sp), context: parent, ofKind: SpanExporter.kind(sp),
                                      at: UnixInstant(sp.start_unix_ns), function: "plexus", file: "plexus", line: 0)
            span.updateAttributes { a in
                a["plexus.trace_id"] = sp.trace
                a["plexus.span_id"] = sp.span
                a["plexus.kind"] = sp.kind
                a["plexus.agent"] = sp.agent
                if !sp.sender.isEmpty { a["plexus.sender"] = sp.sender }
                if let n = sp.attempt { a["plexus.attempt"] = n }
            }
            if sp.status != "OK" { span.setStatus(SpanStatus(code: .error, message: sp.status)) }
            span.end(at: UnixInstant(sp.start_unix_ns + sp.duration_ns))
            contexts[sp.span] = span.context
        }
        state.withLock { s in
            s.exported += spans.count
            for (id, c) in contexts where s.replayed.updateValue(c, forKey: id) == nil { s.replayOrder.append(id) }
            if s.replayOrder.count > SpanExporter.keptContexts {
                let drop = s.replayOrder.count - SpanExporter.keptContexts
                for id in s.replayOrder.prefix(drop) { s.replayed[id] = nil }
                s.replayOrder.removeFirst(drop)
            }
        }
    }

    /// "handle echo", "route math.pow", "run weather-report": what a backend lists.
    static func operationName(_ s: Span) -> String { s.name.isEmpty ? s.kind : "\(s.kind) \(s.name)" }

    static func kind(_ s: Span) -> SpanKind {
        switch s.kind {
        case "client": .client
        case "route": .producer
        case "handle", "wait": .consumer
        default: .internal
        }
    }
}

/// A span's time as swift-distributed-tracing takes it.
struct UnixInstant: TracerInstant {
    var nanosecondsSinceEpoch: UInt64
    init(_ unixNanos: Int64) { nanosecondsSinceEpoch = UInt64(max(0, unixNanos)) }
    static func < (a: UnixInstant, b: UnixInstant) -> Bool { a.nanosecondsSinceEpoch < b.nanosecondsSinceEpoch }
}
