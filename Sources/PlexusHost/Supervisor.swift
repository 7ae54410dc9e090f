import Logging
import PlexusCore
import PlexusSandbox
import PlexusSupervision
import PlexusThreads

/// Carries out the supervision tree's decisions for the host's workers:
/// restarts (after backoff, or after the circuit breaker's cooldown),
/// sibling restarts, and giving agents up. One per host.
final class Supervisor: @unchecked Sendable {
    private let lock = ConditionLock()
    private var tree: SupervisionTree
    private var links: [String: WorkerLink] = [:]
    private var breakers: [String: CircuitBreaker] = [:]
    private let breakerTemplate: CircuitBreaker
    private let logger = Logger(label: "plexus.supervisor")

    init(spec: SupervisorSpec, breaker: CircuitBreaker = CircuitBreaker(threshold: 3, cooldownSeconds: 1)) {
        tree = SupervisionTree(root: spec, now: Supervisor.now)
        breakerTemplate = breaker
    }

    /// Called at start with every worker agent, in start order: agents the
    /// configuration does not name join the root as permanent children.
    func adopt(_ agents: [(String, WorkerLink)]) {
        lock.withLock {
            let spec = SupervisionTree.completing(tree.root, with: agents.map(\.0))
            tree = SupervisionTree(root: spec, now: Supervisor.now)
            for (name, link) in agents {
                links[name] = link
                breakers[name] = breakerTemplate
                link.supervisor = self
                publishCircuit(name)
            }
        }
    }

    var spec: SupervisorSpec { lock.withLock { tree.root } }

    /// Seconds on the monotonic clock: what the tree and the breakers measure with.
    @Sendable static func now() -> Double { Double(Clock.monotonicNanos()) / 1e9 }

    /// An operator starts the agent again (after it was given up or
    /// stopped): its exits are supervised again and its circuit is closed.
    func revive(_ agent: String) {
        lock.withLock {
            tree.revive(agent)
            if breakers[agent] != nil { breakers[agent] = breakerTemplate }
            publishCircuit(agent)
        }
    }

    /// An operator stops the agent: the supervisor leaves it stopped.
    func retire(_ agent: String) { lock.withLock { tree.retire(agent) } }

    func breakerState(_ agent: String) -> String? { lock.withLock { breakers[agent]?.state.rawValue } }

    /// A worker finished a delivery: a half-open circuit closes.
    func succeeded(_ agent: String) {
        lock.withLock {
            if breakers[agent]?.state != .closed { breakers[agent]?.succeeded(); publishCircuit(agent) }
        }
    }

    /// Lock held: tells the agent's link whether its circuit is closed.
    private func publishCircuit(_ agent: String) {
        links[agent]?.circuitNotClosed.store(breakers[agent].map { $0.state != .closed } ?? false, ordering: .releasing)
    }

    /// Why new mail may not queue for the agent now (its circuit is open), or nil.
    func refusal(_ agent: String) -> String? {
        lock.withLock {
            guard var b = breakers[agent], b.state == .open else { return nil }
            let now = Self.now()
            let wait = b.remaining(now: now)
            if wait > 0 { return "the circuit of agent '\(agent)' is open after \(b.failures) failures in a row; it is probed again in \(Int(wait * 1000)) ms" }
            _ = b.allow(now: now)   // cooldown over: half-open, the next message is the probe
            breakers[agent] = b
            publishCircuit(agent)
            return nil
        }
    }

    /// Counts a crash against the agent's circuit, before its callers hear of it.
    func recordFailure(_ agent: Agent, exit x: WorkerExit) {
        guard x.abnormal else { return }
        let now = Self.now()
        lock.withLock { breakers[agent.name]?.failed(now: now); publishCircuit(agent.name) }
    }

    /// Decides and carries out what the exit leads to (after recordFailure).
    func exited(_ link: WorkerLink, agent: Agent, exit x: WorkerExit) {
        let abnormal = x.abnormal
        let now = Self.now()
        let (decision, cooldown): (Decision, Double) = lock.withLock {
            let d = tree.exited(agent.name, abnormal: abnormal)
            return (d, breakers[agent.name]?.remaining(now: now) ?? 0)
        }
        if !decision.gaveUp.isEmpty {
            logger.error("supervisor gave up", metadata: ["supervisors": "\(decision.gaveUp.joined(separator: " > "))", "after": "\(agent.name): \(x)"])
        }
        for name in decision.terminate {
            lock.withLock { links[name] }?.giveUp(reason: "\(decision.reason); the last exit of '\(agent.name)' was \(x)")
        }
        var own: WorkerLink?
        for name in decision.restart {
            guard let l = lock.withLock({ links[name] }) else { continue }
            if l === link { own = l } else {
                l.restartForSupervisor(reason: "\(decision.reason) after '\(agent.name)' exited (\(x))")
            }
        }
        // Last: without a backoff it restarts on this thread and returns once the new worker runs.
        // An open circuit waits out its cooldown; otherwise the backoff.
        own?.restart(after: max(link.backoffMs(), cooldown * 1000))
    }

    // MARK: reload (Host+Reload.swift)

    /// A new version's worker takes over the agent's place: its restarts,
    /// a fresh circuit. The old worker is no longer supervised.
    func replace(_ name: String, with link: WorkerLink) {
        lock.withLock {
            links[name]?.supervisor = nil
            links[name] = link
            breakers[name] = breakerTemplate
            link.supervisor = self
            publishCircuit(name)
        }
    }

    /// A plugin added while the host runs: its agents join the root like
    /// unnamed agents at start. The tree is rebuilt with them, which
    /// forgets its restart history (the intensity windows start afresh).
    func join(_ agents: [(String, WorkerLink)]) {
        lock.withLock {
            let spec = SupervisionTree.completing(tree.root, with: agents.map(\.0))
            if spec != tree.root { tree = SupervisionTree(root: spec, now: Supervisor.now) }
            for (name, link) in agents {
                links[name] = link
                breakers[name] = breakerTemplate
                link.supervisor = self
                publishCircuit(name)
            }
        }
    }

    /// A spawned agent (Host+Spawn.swift): supervised under the root with
    /// the restart kind its spawner's plexus.yaml gives, its own circuit.
    func joinChild(_ name: String, link: WorkerLink, restart: RestartKind) {
        lock.withLock {
            tree.add(name, restart: restart)
            links[name] = link
            breakers[name] = breakerTemplate
            link.supervisor = self
            publishCircuit(name)
        }
    }

    /// A spawned agent that ended: it leaves the tree and is not supervised.
    func removeChild(_ name: String, link: WorkerLink) {
        lock.withLock {
            guard links[name] === link else { return }
            tree.remove(name)
            links[name] = nil
            breakers[name] = nil
            link.supervisor = nil
        }
    }

    /// An unloaded agent: its worker is no longer supervised.
    func forget(_ name: String, link: WorkerLink) {
        lock.withLock {
            guard links[name] === link else { return }
            links[name] = nil
            link.supervisor = nil
        }
    }
}
