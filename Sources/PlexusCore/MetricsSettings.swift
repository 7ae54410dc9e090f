/// plexus.yaml `metrics: { enabled: bool }`: the host's meters and /metrics.
/// Unset, `plexus run` turns them on when its HTTP server is on; a host
/// embedded through HostConfiguration keeps them off unless set.
public struct MetricsSettings: Sendable, Equatable {
    public var enabled: Bool?
    public init(enabled: Bool? = nil) { self.enabled = enabled }
}
