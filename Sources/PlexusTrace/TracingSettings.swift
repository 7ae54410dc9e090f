/// `tracing:` in plexus.yaml: whether spans are recorded, how many records
/// the ring keeps, and how many messages a second at most are recorded.
public struct TracingSettings: Sendable, Equatable {
    /// Off: nothing is recorded, and the message path pays one branch.
    public var enabled = true
    /// Records the ring keeps (a power of two at least this large); the
    /// oldest are overwritten. One routed message is one record (its route,
    /// wait and handle spans).
    public var spans = 16_384
    /// Messages recorded per second at most, host-wide (each second of the
    /// clock is a window); beyond it messages go unrecorded until the next
    /// second (0: no limit). What keeps
    /// tracing's cost on a saturated host to a few percent.
    public var rate = 2_000

    public init(enabled: Bool = true, spans: Int = 16_384, rate: Int = 2_000) {
        self.enabled = enabled; self.spans = spans; self.rate = rate
    }
}
