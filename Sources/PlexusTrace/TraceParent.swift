import PlexusCore

/// A W3C Trace Context `traceparent`: `00-<32 hex trace-id>-<16 hex
/// parent-id>-<2 hex flags>`. On the wire a client puts the trace id in the
/// envelope's trace_id (hi = its first 16 digits) and the parent id in the
/// low half of a QUERY's correlation_id (SDK/PROTOCOL.md).
public struct TraceParent: Sendable, Equatable, CustomStringConvertible {
    public var trace: plexus_id
    public var parent: UInt64
    public var flags: UInt8

    public init(trace: plexus_id, parent: UInt64, flags: UInt8 = 1) {
        self.trace = trace; self.parent = parent; self.flags = flags
    }

    /// Parses one, or says what is wrong with it.
    public init(parsing text: String) throws(PlexusError) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        func bad(_ why: String) -> PlexusError {
            PlexusError(.INVALID_ARGUMENT, "traceparent '\(text.prefix(80))' \(why); expected 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>")
        }
        guard parts.count == 4 else { throw bad("has \(parts.count) \(parts.count == 1 ? "part" : "parts") separated by '-', not 4") }
        func hex(_ s: String, _ n: Int) -> Bool { s.count == n && s.allSatisfy { $0.isHexDigit && !$0.isUppercase } }
        guard hex(parts[0], 2), parts[0] == "00" else { throw bad("has version '\(parts[0])' (only 00 is known)") }
        guard hex(parts[1], 32), let t = plexus_id(hex: parts[1]), !t.isNone else { throw bad("has no valid trace id (32 lowercase hex digits, not all zero)") }
        guard hex(parts[2], 16), let p = UInt64(parts[2], radix: 16), p != 0 else { throw bad("has no valid parent id (16 lowercase hex digits, not all zero)") }
        guard hex(parts[3], 2), let f = UInt8(parts[3], radix: 16) else { throw bad("has no valid flags (2 lowercase hex digits)") }
        self.init(trace: t, parent: p, flags: f)
    }

    public var description: String {
        let f = String(flags, radix: 16)
        return "00-\(trace.hex)-\(Tracer.hex16(parent))-\(f.count == 1 ? "0" + f : f)"
    }
}

extension Envelope {
    /// This envelope carrying tp: its trace id, and (on a query or command)
    /// its parent span in correlation_id's low half.
    public func carrying(_ tp: TraceParent) -> Envelope {
        var e = self
        e.traceID = tp.trace
        e.correlationID = plexus_id(hi: 0, lo: tp.parent)
        return e
    }
}
