extension Host {
    /// Counts messages per (sender, target) agent from now on, for
    /// `topology()`. Call before start(): plexus run does when it serves HTTP.
    public func enableTopology() { registry.traffic.enable() }

    /// Who has sent to whom since the host started, with message counts
    /// (sends, requests and published events; not replies). Empty unless
    /// enableTopology() was called. "plexus" is the host itself and any
    /// sender that is not an agent.
    public func topology() -> [Traffic.Edge] { registry.traffic.edges }
}
