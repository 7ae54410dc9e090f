extension Host {
    /// Agents with messages queued or running now, by name: what a
    /// shutdown that overruns its grace is waiting for.
    public var busyAgents: [String] {
        registry.everyAgent.filter { $0.load.load(ordering: .relaxed) > 0 }.map(\.name)
    }
}
