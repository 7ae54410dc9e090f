import PlexusSupervision
import Testing

/// Which operator action makes sense in which state: the whole grid, and
/// what the tree does with an agent an operator stopped and started.
@Suite("Operator rules")
struct OperatorRulesTests {
    /// action -> the states it is allowed in; every other state is refused.
    static let allowed: [OperatorAction: Set<ControlledState>] = [
        .restart: [.running, .suspended, .draining, .stopped, .terminated],
        .stop: [.running, .suspended, .draining],
        .start: [.stopped, .terminated],
        .suspend: [.running],
        .resume: [.suspended],
        .drain: [.running, .suspended],
    ]
    static let states: [ControlledState] = [.running, .suspended, .draining, .stopped, .terminated]

    @Test(arguments: OperatorAction.allCases)
    func eachActionIsAllowedExactlyInItsStates(_ action: OperatorAction) {
        for s in Self.states {
            let why = OperatorRules.refusal(action, agent: "worker", state: s)
            if Self.allowed[action]!.contains(s) {
                #expect(why == nil, "\(action) in \(s): \(why ?? "")")
            } else {
                #expect(why?.contains("agent 'worker'") == true, "\(action) in \(s) must be refused, naming the agent")
            }
        }
    }

    @Test func refusalsSayWhatToDoInstead() {
        #expect(OperatorRules.refusal(.resume, agent: "w", state: .terminated)?.contains("`plexus agents start w`") == true)
        #expect(OperatorRules.refusal(.suspend, agent: "w", state: .suspended)?.contains("`plexus agents resume w`") == true)
        #expect(OperatorRules.refusal(.start, agent: "w", state: .running) == "agent 'w' is running, not stopped: only a stopped or terminated agent can be started")
        #expect(OperatorAction.drain.capability == "plexus.agents.drain")
        #expect(OperatorAction.restart.resulting == .running && OperatorAction.drain.resulting == .stopped)
    }

    @Test func aRetiredAgentIsNotRestartedUntilRevived() {
        let t = SupervisionTree(root: SupervisorSpec(name: "root", strategy: .oneForAll, children: [.agent("a", .permanent), .agent("b", .permanent)]),
                                now: { 0 })
        t.retire("b")
        // b's own exit leads nowhere; a's restarts a but not the stopped b.
        #expect(t.exited("b", abnormal: true).restart.isEmpty && t.exited("b", abnormal: true).terminate.isEmpty)
        #expect(t.exited("a", abnormal: true).restart == ["a"])
        t.revive("b")
        #expect(t.exited("b", abnormal: true).restart == ["a", "b"])
    }
}
