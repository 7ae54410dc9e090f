import PlexusCore
import PlexusTrace

/// Traces as the CLI (`plexus trace`), the socket (plexus.trace.get,
/// plexus.trace.list) and the dashboard read them.
extension Host {
    /// The span recorder (`tracing:` in plexus.yaml).
    public var tracer: Tracer { router.tracer }

    /// A new trace id, unique across hosts like message ids.
    public func newTraceID() -> plexus_id { router.ids.next() }

    /// One trace's spans in start order (empty: none recorded, or overwritten).
    public func trace(_ id: plexus_id) -> TraceReport {
        TraceReport(trace: id.hex, spans: tracer.spans(of: id), status: tracer.status)
    }

    /// The most recent traces, newest last, and the ring's counters.
    public func recentTraces(last: Int) -> TraceListing {
        TraceListing(status: tracer.status, traces: tracer.recent(last: last))
    }
}
