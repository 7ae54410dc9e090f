import Yams
import PlexusHost

extension Reader {
    /// `tracing: { enabled: BOOL, spans: N, rate: N }`.
    func tracing(_ node: Node, over base: TracingSettings) throws(ConfigError) -> TracingSettings {
        var t = base
        let m = try mapping(node, "tracing", keys: ["enabled", "spans", "rate"])
        if let e = m["enabled"] { t.enabled = try bool(e, "tracing.enabled") }
        if let n = m["spans"] { t.spans = Int(try integer(n, "tracing.spans", in: 16...16_777_216)) }
        if let n = m["rate"] { t.rate = Int(try integer(n, "tracing.rate", in: 0...100_000_000)) }
        return t
    }
}
