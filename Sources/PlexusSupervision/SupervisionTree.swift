/// Erlang/OTP-shaped supervision, as decisions only: given that an agent
/// exited, which agents restart, which stop for good, and which supervisor
/// gave up. The host carries the decisions out; keeping them pure lets the
/// whole strategy x restart-kind grid be tested with an injected clock.

public enum Strategy: String, Sendable, CaseIterable {
    /// Restart only the child that exited.
    case oneForOne = "one-for-one"
    /// Restart every child of the supervisor.
    case oneForAll = "one-for-all"
    /// Restart the child that exited and every child started after it.
    case restForOne = "rest-for-one"
}

public enum RestartKind: String, Sendable, CaseIterable {
    /// Always restarted.
    case permanent
    /// Restarted only after an abnormal exit (a signal, a non-zero code, a kill by the host).
    case transient
    /// Never restarted.
    case temporary
}

public struct SupervisorSpec: Sendable, Equatable {
    public var name: String
    public var strategy: Strategy
    /// More than `intensity` restarts within `periodSeconds` and this
    /// supervisor gives up: its children stop and its parent is told.
    public var intensity: Int
    public var periodSeconds: Double
    public var children: [ChildSpec]

    public init(name: String, strategy: Strategy = .oneForOne, intensity: Int = 5, periodSeconds: Double = 10,
                children: [ChildSpec] = []) {
        self.name = name; self.strategy = strategy; self.intensity = intensity
        self.periodSeconds = periodSeconds; self.children = children
    }

    /// Every agent under this supervisor, in start order.
    public var agents: [String] {
        children.flatMap { c -> [String] in
            switch c {
            case .agent(let n, _): return [n]
            case .group(let g): return g.agents
            }
        }
    }
}

public indirect enum ChildSpec: Sendable, Equatable {
    case agent(String, RestartKind)
    case group(SupervisorSpec)

    var agents: [String] {
        switch self {
        case .agent(let n, _): return [n]
        case .group(let g): return g.agents
        }
    }
}

/// What the host is to do after an exit.
public struct Decision: Sendable, Equatable {
    /// Agents to (re)start, in start order. The one that exited is among
    /// them when it restarts; the others are to be stopped and started again.
    public var restart: [String] = []
    /// Agents to stop for good, with the reason to record.
    public var terminate: [String] = []
    public var reason: String = ""
    /// Supervisors that gave up (restart intensity exceeded), innermost first.
    public var gaveUp: [String] = []
}

public final class SupervisionTree: @unchecked Sendable {
    public private(set) var root: SupervisorSpec
    private let now: () -> Double
    /// Restart times per supervisor name, for the sliding window.
    private var history: [String: [Double]] = [:]
    private var stopped = Set<String>()

    /// `now` is seconds on any monotonic clock (tests pass their own).
    public init(root: SupervisorSpec, now: @escaping () -> Double) {
        self.root = root
        self.now = now
    }

    /// Adds agents the configuration does not name under the root (permanent,
    /// in the order given), so every agent is supervised.
    public static func completing(_ spec: SupervisorSpec, with agents: [String]) -> SupervisorSpec {
        var s = spec
        let named = Set(spec.agents)
        for a in agents where !named.contains(a) { s.children.append(.agent(a, .permanent)) }
        return s
    }

    public func isStopped(_ agent: String) -> Bool { stopped.contains(agent) }

    /// A spawned agent joins the root with its own restart kind, keeping
    /// every restart history (unlike rebuilding the tree).
    public func add(_ agent: String, restart: RestartKind) {
        guard path(to: agent, in: root) == nil else { return }
        root.children.append(.agent(agent, restart))
        stopped.remove(agent)
    }

    /// A spawned agent that ended leaves the tree, so its name may be used again.
    public func remove(_ agent: String) {
        root.children.removeAll { if case .agent(let n, _) = $0 { return n == agent } else { return false } }
        stopped.remove(agent)
    }

    /// An operator started the agent again after it was given up: its exits
    /// are decided again, as they were before.
    public func revive(_ agent: String) { stopped.remove(agent) }

    /// An operator stopped the agent: no exit of it restarts it, nor does
    /// a sibling's restart, until revive.
    public func retire(_ agent: String) { stopped.insert(agent) }

    /// An agent's worker exited; `abnormal` is false only for a clean exit
    /// (code 0, not asked for by the host's kill).
    public func exited(_ agent: String, abnormal: Bool) -> Decision {
        guard !stopped.contains(agent), let path = self.path(to: agent, in: root) else { return Decision() }
        guard let holder = path.last, case .agent(_, let kind)? = child(agent, in: holder) else { return Decision() }
        let wants = kind == .permanent || (kind == .transient && abnormal)
        if !wants {
            stopped.insert(agent)
            return Decision(terminate: [agent], reason: "\(kind.rawValue) agent '\(agent)' is not restarted after \(abnormal ? "a crash" : "a normal exit")")
        }
        return restart(failed: .agent(agent, kind), path: path)
    }

    /// Applies the innermost supervisor's strategy; escalates when its
    /// intensity is exceeded.
    private func restart(failed: ChildSpec, path: [SupervisorSpec]) -> Decision {
        var path = path
        var failedChild = failed
        var decision = Decision()
        while let sup = path.popLast() {
            let t = now()
            let window = (history[sup.name] ?? []).filter { t - $0 < sup.periodSeconds } + [t]
            history[sup.name] = window
            if window.count <= sup.intensity {
                decision.restart = affected(by: failedChild, in: sup).filter { !stopped.contains($0) }
                decision.reason = "supervisor '\(sup.name)' (\(sup.strategy.rawValue)) restarts \(failedChild.agents.joined(separator: ", "))"
                return decision
            }
            // Gave up: everything under it stops, and its parent hears of it.
            decision.gaveUp.append(sup.name)
            history[sup.name] = []
            if path.isEmpty {
                let doomed = failedChild.agents.filter { !stopped.contains($0) }
                stopped.formUnion(doomed)
                decision.terminate = doomed
                decision.reason = "supervisor '\(sup.name)' exceeded \(sup.intensity) restarts in \(sup.periodSeconds) s"
                return decision
            }
            failedChild = .group(sup)
        }
        return decision
    }

    /// Which agents the strategy restarts when `failed` (a direct child) exits.
    private func affected(by failed: ChildSpec, in sup: SupervisorSpec) -> [String] {
        switch sup.strategy {
        case .oneForOne: return failed.agents
        case .oneForAll: return sup.agents
        case .restForOne:
            guard let i = sup.children.firstIndex(where: { $0.agents == failed.agents }) else { return failed.agents }
            return sup.children[i...].flatMap(\.agents)
        }
    }

    private func child(_ agent: String, in sup: SupervisorSpec) -> ChildSpec? {
        sup.children.first { if case .agent(let n, _) = $0 { return n == agent } else { return false } }
    }

    /// The supervisors from the root down to the one holding agent.
    private func path(to agent: String, in sup: SupervisorSpec) -> [SupervisorSpec]? {
        for c in sup.children {
            switch c {
            case .agent(let n, _) where n == agent: return [sup]
            case .group(let g): if let p = path(to: agent, in: g) { return [sup] + p }
            default: continue
            }
        }
        return nil
    }
}
