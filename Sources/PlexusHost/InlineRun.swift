/// Lets the socket server's event loop run the agent a client's frame
/// wakes on its own thread, instead of waking a dispatcher thread for it
/// and waiting for that thread to answer: a call from a socket client then
/// costs the loop's wake-up and the client's, not a third in between.
/// Whether to run a given agent inline is the caller's policy
/// (PlexusSocket's InlinePolicy); the agent runs exactly as a dispatcher
/// worker would run it (one batch), and what it wakes goes to the workers.
public final class InlineRunner: @unchecked Sendable {
    private let dispatcher: Dispatcher
    private let catcher = Dispatcher.Catcher()

    init(_ dispatcher: Dispatcher) { self.dispatcher = dispatcher }

    /// Runs `route` (which hands a client's frame to the host) and returns
    /// the agent it woke, if any. Call on one thread only (the loop's).
    public func routing(_ route: () -> Void) -> WokenAgent? {
        dispatcher.catching(catcher, route).map { WokenAgent(agent: $0, dispatcher: dispatcher) }
    }
}

/// An agent woken by a client's frame and not yet run: exactly one of
/// `run` (here, now) or `handOff` (to the dispatcher's workers) must follow.
public struct WokenAgent {
    let agent: Agent
    let dispatcher: Dispatcher
    public var name: String { agent.name }
    public func run() { dispatcher.run(agent) }
    public func handOff() { dispatcher.enqueue(agent) }
}

extension Host {
    /// A runner for the socket server's event-loop thread.
    public func inlineRunner() -> InlineRunner { InlineRunner(router.dispatcher) }
}
