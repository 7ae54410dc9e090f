import CPlexusTrace
import PlexusCore
import Synchronization
import Glibc

/// Records spans into a bounded ring (CPlexusTrace) and reads them back as
/// traces. Recording takes no lock: one atomic add and a copy into a slot
/// (plexus_span_ring.h). When tracing is off, `enabled` is false and callers
/// pay one branch per message.
///
/// A routed message is one record holding four monotonic times (route
/// began, in the mailbox, handler began, handler ended); reading expands it
/// into its route, wait and handle spans. Span ids derive from the message
/// id, so a message sent while another is handled names its parent without
/// any lookup: the handle span of the message being handled.
public final class Tracer: @unchecked Sendable {   // its state: the C ring (atomic) and Atomics
    public let enabled: Bool
    private let ring: OpaquePointer?
    /// Messages admitted per second at most (UInt64.max: no limit).
    private let budget: UInt64
    /// The current second (coarse unix time, low 32 bits) in the high half,
    /// the messages admitted in it in the low half: one word, so that an
    /// admission is one compare-and-swap and racing routers never exceed it.
    private let admission = Atomic<UInt64>(0)
    /// unix time minus monotonic time, to show monotonic stamps as dates.
    private let unixOffset: Int64

    public init(_ s: TracingSettings) {
        enabled = s.enabled && s.spans > 0
        ring = enabled ? plexus_span_ring_create(UInt64(s.spans)) : nil
        budget = s.rate <= 0 ? .max : min(UInt64(s.rate), 0xFFFF_FFFF)
        var m = timespec(), u = timespec()
        clock_gettime(CLOCK_MONOTONIC, &m)
        clock_gettime(CLOCK_REALTIME, &u)
        unixOffset = (Int64(u.tv_sec) - Int64(m.tv_sec)) * 1_000_000_000 + Int64(u.tv_nsec) - Int64(m.tv_nsec)
    }

    deinit { plexus_span_ring_destroy(ring) }

    // MARK: recording (any thread)

    /// Whether a message routed now is recorded: tracing is on and this
    /// second has budget left (`tracing.rate`). Counted at admission, not
    /// when records are written: a burst routed before any handler ran is
    /// held to the rate too. `coarseUnixNanos` is the coarse clock the
    /// router reads anyway, so this costs no clock read.
    @inline(__always)
    public func admits(coarseUnixNanos now: Int64) -> Bool {
        guard ring != nil else { return false }
        if budget == .max { return true }
        return admitLimited(second: UInt64(truncatingIfNeeded: now / 1_000_000_000) & 0xFFFF_FFFF)
    }

    private func admitLimited(second: UInt64) -> Bool {
        var s = admission.load(ordering: .relaxed)
        while true {
            let next: UInt64
            if s >> 32 != second { next = second << 32 | 1 }   // a new second: its first admission
            else if s & 0xFFFF_FFFF >= budget { return false }
            else { next = s + 1 }
            let (done, seen) = admission.compareExchange(expected: s, desired: next, ordering: .relaxed)
            if done { return true }
            s = seen
        }
    }

    /// Appends one record; the strings are copied (truncated), borrowed for this call.
    public func record(_ r: inout plexus_span_record, name: UnsafePointer<CChar>?, agent: UnsafePointer<CChar>?,
                       sender: UnsafePointer<CChar>?) {
        guard let ring else { return }
        plexus_span_ring_put(ring, &r, name, agent, sender)
    }

    /// Records one span made outside the message path (a client's request,
    /// a workflow run, step or attempt). Times are monotonic nanoseconds.
    /// What a span made outside the message path stands for.
    public enum Kind: Sendable {
        case client, run, step, attempt
        var record: plexus_span_record_kind {
            switch self {
            case .client: PLEXUS_SPAN_CLIENT
            case .run: PLEXUS_SPAN_RUN
            case .step: PLEXUS_SPAN_STEP
            case .attempt: PLEXUS_SPAN_ATTEMPT
            }
        }
    }

    public func record(trace: plexus_id, span: UInt64, parent: UInt64, kind: Kind,
                       name: String, agent: String, start: Int64, end: Int64, status: plexus_status = 0,
                       attempt: Int = 0, link: String = "") {
        guard ring != nil else { return }
        var r = plexus_span_record()
        r.trace_hi = trace.hi; r.trace_lo = trace.lo
        r.span = span; r.parent = parent
        r.t_route = start; r.t_end = end
        r.status = status
        r.kind = UInt8(kind.record.rawValue)
        r.attempt = UInt16(clamping: attempt)
        // An attempt's `link` (its task's id, the trace of its messages) rides in the sender field.
        name.withCString { n in agent.withCString { a in link.withCString { l in record(&r, name: n, agent: a, sender: l) } } }
    }

    // MARK: span ids

    /// A fresh span id (never 0).
    public static func newSpanID() -> UInt64 { UInt64.random(in: 1...UInt64.max) }

    /// The base of a message's span ids: its route span is base|1, its wait
    /// base|2, its handle base|3.
    @inline(__always)
    public static func spanBase(_ id: plexus_id) -> UInt64 {
        var z = id.hi &+ (id.lo &* 0x9E37_79B9_7F4A_7C15)   // splitmix64's finaliser
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return z & ~3 == 0 ? 4 : z & ~3
    }

    /// The span of the handler that handles message id: the parent of what it sends.
    @inline(__always)
    public static func handleSpan(of id: plexus_id) -> UInt64 { spanBase(id) | 3 }

    // MARK: reading

    public var status: TracingStatus {
        guard let ring else { return TracingStatus(enabled: false, capacity: 0, recorded: 0, dropped: 0) }
        let w = plexus_span_ring_written(ring), cap = plexus_span_ring_capacity(ring)
        return TracingStatus(enabled: true, capacity: Int(cap), recorded: Int(w), dropped: Int(w > cap ? w - cap : 0))
    }

    /// Records written since start (the next record's index).
    public var written: UInt64 { ring.map { plexus_span_ring_written($0) } ?? 0 }

    /// The records from index `from` on, oldest first, up to the first one
    /// still being written (`next`: where to read on from), and how many
    /// were overwritten before this read.
    func records(from: UInt64) -> (records: [plexus_span_record], next: UInt64, missed: Int) {
        guard let ring else { return ([], from, 0) }
        let to = plexus_span_ring_written(ring)
        var out: [plexus_span_record] = []
        var r = plexus_span_record()
        var missed = 0
        var i = from
        while i < to {
            let state = plexus_span_ring_state(ring, i)
            if state == 0 { break }
            if state > 0 && plexus_span_ring_get(ring, i, &r) != 0 { out.append(r) } else { missed += 1 }
            i += 1
        }
        return (out, i, missed)
    }

    /// The records still in the ring that `keep` wants, oldest first.
    func records(_ keep: (borrowing plexus_span_record) -> Bool = { _ in true }) -> [plexus_span_record] {
        guard let ring else { return [] }
        let w = plexus_span_ring_written(ring), cap = plexus_span_ring_capacity(ring)
        var out: [plexus_span_record] = []
        var r = plexus_span_record()
        for i in (w > cap ? w - cap : 0)..<w where plexus_span_ring_get(ring, i, &r) != 0 && keep(r) { out.append(r) }
        return out
    }

    /// The spans of one trace, in start order; empty when none is recorded.
    public func spans(of trace: plexus_id) -> [Span] {
        let mine = records { $0.trace_hi == trace.hi && $0.trace_lo == trace.lo }
        var spans = mine.flatMap(expand)
        // A workflow attempt's task messages: their own trace (the task id,
        // shared by every attempt of the task), shown under the attempt whose
        // time holds them: the latest to start before the message was routed.
        var attempts: [plexus_id: [(start: Int64, span: String)]] = [:]
        for r in mine where r.kind == UInt8(PLEXUS_SPAN_ATTEMPT.rawValue) {
            if let id = plexus_id(hex: Tracer.string(r.sender)) { attempts[id, default: []].append((r.t_route, Tracer.hex16(r.span))) }
        }
        if !attempts.isEmpty {
            for k in attempts.keys { attempts[k]!.sort { $0.start < $1.start } }
            for r in records({ attempts[plexus_id(hi: $0.trace_hi, lo: $0.trace_lo)] != nil }) {
                guard let mine = attempts[plexus_id(hi: r.trace_hi, lo: r.trace_lo)] else { continue }
                let attempt = Tracer.attempt(holding: r.t_route, in: mine)
                spans += expand(r).map { s in
                    var s = s
                    if s.parent == nil { s.parent = attempt }
                    return s
                }
            }
        }
        return spans.sorted(by: Tracer.startOrder)
    }

    /// Of one task's attempts (by start), the one a message routed at `t`
    /// belongs to: the latest that began by then. An attempt's start comes
    /// from the task's unix time, so a millisecond of slack covers the two
    /// clocks' conversion; attempts are at least a retry backoff apart.
    static func attempt(holding t: Int64, in attempts: [(start: Int64, span: String)]) -> String {
        attempts.last { $0.start <= t + 1_000_000 }?.span ?? attempts[0].span
    }

    /// The most recent traces (by start), oldest first, at most `last`.
    public func recent(last: Int) -> [TraceSummary] {
        var byTrace: [plexus_id: [Span]] = [:]
        for r in records() { byTrace[plexus_id(hi: r.trace_hi, lo: r.trace_lo), default: []].append(contentsOf: expand(r)) }
        let all = byTrace.map { (id, spans) -> TraceSummary in
            let sorted = spans.sorted(by: Tracer.startOrder)
            let ids = Set(sorted.map(\.span))
            let root = sorted.first { $0.parent.map { !ids.contains($0) } ?? true } ?? sorted[0]
            let start = sorted[0].start_unix_ns
            let end = sorted.map { $0.start_unix_ns + $0.duration_ns }.max() ?? start
            return TraceSummary(trace: id.hex, root: "\(root.kind) \(root.name)", start_unix_ns: start,
                                duration_ns: end - start, spans: sorted.count)
        }
        // Reading traces (plexus trace) is routed too; it is not what a reader looks for.
        let wanted = all.filter { !$0.root.hasSuffix(" plexus.trace.get") && !$0.root.hasSuffix(" plexus.trace.list") }
        return Array(wanted.sorted { $0.start_unix_ns < $1.start_unix_ns }.suffix(max(0, last)))
    }

    static func startOrder(_ a: Span, _ b: Span) -> Bool {
        a.start_unix_ns != b.start_unix_ns ? a.start_unix_ns < b.start_unix_ns : order(a.kind) < order(b.kind)
    }

    private static func order(_ kind: String) -> Int {
        ["client": 0, "run": 0, "step": 1, "attempt": 2, "route": 3, "refused": 3, "wait": 4, "handle": 5, "reply": 6][kind] ?? 7
    }

    /// A record's spans: a message's route, wait and handle; one span otherwise.
    func expand(_ r: plexus_span_record) -> [Span] {
        let trace = plexus_id(hi: r.trace_hi, lo: r.trace_lo).hex
        let name = Tracer.string(r.name), agent = Tracer.string(r.agent), sender = Tracer.string(r.sender)
        func span(_ id: UInt64, _ parent: UInt64, _ kind: String, _ from: Int64, _ to: Int64, status: plexus_status = 0,
                  who: String, sender: String = "") -> Span {
            Span(trace: trace, span: Tracer.hex16(id), parent: parent == 0 ? nil : Tracer.hex16(parent), kind: kind,
                 name: name, agent: who, sender: sender, start_unix_ns: from + unixOffset, duration_ns: max(0, to - from),
                 status: status == 0 ? "OK" : statusName(status), attempt: r.attempt == 0 ? nil : Int(r.attempt))
        }
        let base = r.span & ~3
        switch plexus_span_record_kind(rawValue: UInt32(r.kind)) {
        case PLEXUS_SPAN_MESSAGE:
            var out = [span(base | 1, r.parent, "route", r.t_route, r.t_routed, who: agent, sender: sender)]
            if r.t_start != 0 {
                out.append(span(base | 2, r.parent, "wait", r.t_routed, r.t_start, who: agent))
                out.append(span(base | 3, r.parent, "handle", r.t_start, r.t_end, status: r.status, who: agent))
            }
            return out
        case PLEXUS_SPAN_REPLY:
            return [span(base | 1, r.parent, "route", r.t_route, r.t_routed, who: agent, sender: sender),
                    span(base | 2, r.parent, "reply", r.t_routed, r.t_end, status: r.status, who: agent, sender: sender)]
        case PLEXUS_SPAN_REFUSED:
            return [span(base | 1, r.parent, "refused", r.t_route, r.t_end, status: r.status, who: agent, sender: sender)]
        case PLEXUS_SPAN_CLIENT: return [span(r.span, r.parent, "client", r.t_route, r.t_end, status: r.status, who: agent)]
        case PLEXUS_SPAN_RUN: return [span(r.span, r.parent, "run", r.t_route, r.t_end, status: r.status, who: agent)]
        case PLEXUS_SPAN_STEP: return [span(r.span, r.parent, "step", r.t_route, r.t_end, status: r.status, who: agent)]
        default: return [span(r.span, r.parent, "attempt", r.t_route, r.t_end, status: r.status, who: agent, sender: sender)]
        }
    }

    /// Monotonic nanoseconds now, as the records hold them.
    @inline(__always)
    public static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    static func hex16(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    private static func string<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { b in
            String(decoding: b.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
