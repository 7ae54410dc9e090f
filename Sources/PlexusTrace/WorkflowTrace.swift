import PlexusCore

/// A workflow run is one trace. Its id, and each step's span id, are
/// derived from the run id (and step name), so the engine, the scheduler
/// and `plexus workflow status` name them alike without storing them, and a
/// run resumed by another host process keeps its trace.
///
/// Each attempt of a step is a span under its step; the messages of the
/// attempt's task keep the task id as their trace id (the scheduler's
/// exactly-once promise to handlers), and reading the run's trace joins
/// them under their attempt (Tracer.spans(of:)).
public enum WorkflowTrace {
    /// The run's trace id.
    public static func trace(run: String) -> plexus_id {
        let h = fnv(Array("plexus-run/\(run)".utf8), 0xCBF2_9CE4_8422_2325)
        let l = fnv(Array("plexus-run/\(run)".utf8), 0x84222325_CBF29CE4)
        return plexus_id(hi: h == 0 ? 1 : h, lo: l)
    }

    /// The run's own (root) span.
    public static func runSpan(run: String) -> UInt64 { nonZero(fnv(Array("run/\(run)".utf8), 0xCBF2_9CE4_8422_2325)) }

    /// A step's span (every item of a for_each is an attempt under it).
    public static func stepSpan(run: String, step: String) -> UInt64 {
        nonZero(fnv(Array("step/\(run)/\(step)".utf8), 0xCBF2_9CE4_8422_2325))
    }

    private static func nonZero(_ v: UInt64) -> UInt64 { v == 0 ? 1 : v }

    /// FNV-1a, 64 bits, from a given basis.
    private static func fnv(_ bytes: [UInt8], _ basis: UInt64) -> UInt64 {
        var h = basis
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }
}
