/// One span as `plexus trace` and the dashboard see it. Ids are hex: the
/// trace id 32 digits (W3C trace-id), span ids 16 (W3C parent-id).
public struct Span: Codable, Sendable, Equatable {
    public var trace: String
    public var span: String
    /// nil: a root of its trace (or its parent was not recorded).
    public var parent: String?
    /// route, wait, handle, reply, client, run, step, attempt, refused.
    public var kind: String
    public var name: String
    /// Who did it: the agent that handled it, the client, the workflow run.
    public var agent: String
    /// Who sent the message (route spans); for a workflow attempt, the id
    /// of its task (whose messages are shown under it); empty otherwise.
    public var sender: String
    public var start_unix_ns: Int64
    public var duration_ns: Int64
    /// "OK" or the status name it ended with.
    public var status: String
    public var attempt: Int?
}

/// One trace in the listing of recent traces.
public struct TraceSummary: Codable, Sendable, Equatable {
    public var trace: String
    /// The earliest root span's kind and name.
    public var root: String
    public var start_unix_ns: Int64
    public var duration_ns: Int64
    public var spans: Int
}

/// The spans of one trace, in start order, and what the ring holds.
public struct TraceReport: Codable, Sendable, Equatable {
    public var trace: String
    /// Empty: not recorded (never seen, overwritten, or tracing is off).
    public var spans: [Span]
    public var status: TracingStatus

    public init(trace: String, spans: [Span], status: TracingStatus) {
        self.trace = trace; self.spans = spans; self.status = status
    }
}

/// The ring's counters: records written since start, how many of them were
/// overwritten (the oldest dropped), its capacity, and whether it records.
public struct TracingStatus: Codable, Sendable, Equatable {
    public var enabled: Bool
    public var capacity: Int
    public var recorded: Int
    public var dropped: Int

    public init(enabled: Bool, capacity: Int, recorded: Int, dropped: Int) {
        self.enabled = enabled; self.capacity = capacity; self.recorded = recorded; self.dropped = dropped
    }
}

/// The answer to plexus.trace.list.
public struct TraceListing: Codable, Sendable, Equatable {
    public var status: TracingStatus
    public var traces: [TraceSummary]

    public init(status: TracingStatus, traces: [TraceSummary]) { self.status = status; self.traces = traces }
}
