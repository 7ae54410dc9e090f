/// What an operator may do to one agent (`plexus agents ACTION NAME`), as
/// rules only: which action makes sense in which state, and what the agent
/// becomes. The host carries the actions out (Host+Control.swift); keeping
/// the table pure lets every action x state pair be tested without a host.

public enum OperatorAction: String, Sendable, CaseIterable, Codable {
    /// Stop, then start again; counted in the agent's restarts.
    case restart
    /// No new mail; what waits is handed back, what runs finishes (within the
    /// shutdown grace), the worker exits. The supervisor does not restart it.
    case stop
    /// A stopped or terminated agent runs again: a new worker, or init again.
    case start
    /// Mail queues (up to the mailbox's bound) but is not handed to the agent.
    case suspend
    /// What queued while suspended is delivered, in order.
    case resume
    /// No new mail; everything queued and running finishes; then stop.
    case drain

    /// The capability the host serves it as, and the name a grant names
    /// (`call: [plexus.agents.stop]`, or `plexus.agents.*` for all six).
    public var capability: String { "plexus.agents.\(rawValue)" }

    /// What the agent is after the action succeeds.
    public var resulting: ControlledState {
        switch self {
        case .restart, .start, .resume: return .running
        case .stop, .drain: return .stopped
        case .suspend: return .suspended
        }
    }
}

/// An agent's state as operator actions see it.
public enum ControlledState: String, Sendable, Equatable {
    /// Taking and handling mail (its worker may be restarting after a crash).
    case running
    /// Taking mail, not handling it (suspended by an operator).
    case suspended
    /// Finishing its work before it stops (a drain, or the host shutting down).
    case draining
    /// Stopped by an operator.
    case stopped
    /// Given up by its supervisor (too many crashes), or the host shut down.
    case terminated
}

public enum OperatorRules {
    /// Why `action` makes no sense for `agent` in `state`, or nil when it does.
    public static func refusal(_ action: OperatorAction, agent: String, state: ControlledState) -> String? {
        let start = "`plexus agents start \(agent)` starts it again"
        switch (action, state) {
        case (.restart, _): return nil   // from any state: stop what runs, then start
        case (.start, .stopped), (.start, .terminated): return nil
        case (.start, _): return "agent '\(agent)' is \(state.rawValue), not stopped: only a stopped or terminated agent can be started"
        case (.stop, .running), (.stop, .suspended), (.stop, .draining): return nil
        case (.drain, .running), (.drain, .suspended): return nil
        case (.drain, .draining): return "agent '\(agent)' is draining already"
        case (.suspend, .running): return nil
        case (.suspend, .suspended): return "agent '\(agent)' is suspended already; `plexus agents resume \(agent)` delivers what waits"
        case (.resume, .suspended): return nil
        case (.resume, .stopped), (.resume, .terminated): return "agent '\(agent)' is \(state.rawValue), not suspended; \(start)"
        case (.resume, _): return "agent '\(agent)' is \(state.rawValue), not suspended: there is nothing to resume"
        case (_, .stopped), (_, .terminated): return "agent '\(agent)' is \(state.rawValue) already; \(start)"
        case (_, .draining): return "agent '\(agent)' is draining: it stops when its work is done"
        }
    }
}
