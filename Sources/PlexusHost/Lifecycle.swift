import PlexusCore

/// Something that happened to an agent: started, crashed, restarted,
/// terminated, attached or detached. The host reports each to whoever
/// observes it (the event log), on the thread where it happened.
public struct LifecycleEvent: Sendable {
    /// "agent.started", "agent.crashed", "agent.restarted", "agent.terminated",
    /// "agent.attached", "agent.detached"; by an operator (data "by"):
    /// "agent.stopped", "agent.suspended", "agent.resumed", "agent.drained",
    /// and "agent.started" and "agent.restarted" again.
    public let kind: String
    public let agent: String
    public let data: [String: JSONValue]
}

extension Router {
    func lifecycle(_ kind: String, _ agent: String, _ data: [String: JSONValue] = [:]) {
        observer.withLock { $0 }?(LifecycleEvent(kind: kind, agent: agent, data: data))
    }
}

extension Host {
    /// Calls `observe` for every lifecycle event from now on (one observer;
    /// a second call replaces the first).
    public func observeLifecycle(_ observe: @escaping @Sendable (LifecycleEvent) -> Void) {
        router.observer.withLock { $0 = observe }
    }

    /// Calls `freed` whenever an agent finishes work and may take more, so
    /// a dispatcher that filled every agent's capacity goes on at once
    /// rather than at its next poll. One observer; set it before start().
    /// It runs on the host's threads for every finished message: keep it cheap.
    public func observeCapacity(_ freed: @escaping @Sendable () -> Void) {
        router.capacityFreed = freed
    }
}
