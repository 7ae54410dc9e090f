@testable import PlexusHost
import CPlexus
import PlexusCore
import Testing

/// The registry's side of a reload (Registry+Reload in Registry.swift),
/// without processes: one step swaps names, capabilities and
/// subscriptions; a rollback restores them; an unloaded agent is no longer
/// found; mail that reaches a closed version is handed to its successor.
@Suite("Registry reload")
struct RegistryReloadTests {
    struct Quiet: BuiltinBehavior {
        var capabilities: [PluginDescriptor.Capability] { [] }
        func handle(_ m: Message, agent: Agent, router: Router) -> plexus_status { 0 }
    }

    func agent(_ name: String, caps: [String] = ["cap.x"]) -> Agent {
        Agent(name: name, behavior: .builtin(Quiet()), capabilities: caps, exports: [], mailboxCapacity: 8)
    }

    func provider(_ r: Registry, _ c: String) -> Agent? { r.leastLoaded(c) }

    @Test func aSwapMovesNameCapabilitiesAndSubscriptionsAndARollbackMovesThemBack() throws {
        let r = Registry()
        let v1 = agent("p"), v2 = agent("p", caps: ["cap.x", "cap.y"]), v3 = agent("p")
        try r.register(v1) { _ in "?" }               // loaded at start: the lock-free tables
        try r.subscribe(v1, "news.old")
        r.stage(v2)
        try r.subscribe(v2, "news.new")               // during its init: recorded, not live
        #expect(r.subscribers(of: "news.new").isEmpty)
        #expect(r.subscriptions(of: v2) == ["news.new"])

        try r.swapIn(v2, for: v1)
        #expect(r.agent(named: "p") === v2)
        #expect("p".withCString { r.agent(cName: $0) } === v2)
        #expect(provider(r, "cap.x") === v2 && provider(r, "cap.y") === v2)
        #expect(r.subscribers(of: "news.new") == [v2] && r.subscribers(of: "news.old").isEmpty)
        #expect(r.everyAgent.filter { $0.name == "p" } == [v2])

        try r.swapIn(v3, for: v2)                      // a version that joined a running host, replaced
        #expect(r.agent(named: "p") === v3 && provider(r, "cap.x") === v3)
        #expect(provider(r, "cap.y") == nil && !r.capabilityNames.contains("cap.y"))
        r.swapBack(v2, over: v3)                       // v3 rolled back
        #expect(r.agent(named: "p") === v2 && provider(r, "cap.y") === v2)
        #expect(r.subscribers(of: "news.new") == [v2])
        r.swapBack(v1, over: v2)                       // and v2: the start's agent serves again
        #expect(r.agent(named: "p") === v1 && provider(r, "cap.x") === v1 && provider(r, "cap.y") == nil)
        #expect(r.subscribers(of: "news.old") == [v1] && r.subscribers(of: "news.new").isEmpty)
    }

    @Test func anUnloadedAgentIsNotFoundAndItsNameIsFreeAgain() throws {
        let r = Registry()
        let v1 = agent("q")
        try r.register(v1) { _ in "?" }
        try r.subscribe(v1, "q.events")
        r.retire(v1)
        #expect(r.agent(named: "q") == nil && provider(r, "cap.x") == nil)
        #expect(!r.capabilityNames.contains("cap.x") && r.subscribers(of: "q.events").isEmpty)
        #expect(r.everyAgent.isEmpty)
        let again = agent("q")
        try r.swapIn(again, for: nil)                  // the file dropped in again
        #expect(r.agent(named: "q") === again && provider(r, "cap.x") === again)
        #expect(throws: PlexusError.self) { try r.swapIn(agent("q"), for: nil) }
    }

    @Test func mailForAClosedVersionGoesToItsSuccessorAndItsRequestWithIt() {
        let old = agent("r"), new = agent("r")
        old.state = .draining
        let m = MailboxTests.message(1)
        guard case .closed = old.admit(Unmanaged.passRetained(m)) else { Issue.record("a draining agent took new mail"); return }
        old.successor.withLock { $0 = new }
        let u = Unmanaged.passRetained(m)
        guard case .redirected(let to) = old.admit(u) else { Issue.record("not redirected"); return }
        #expect(to === new)
        #expect(new.admit(u).isAccepted)              // the same reference, not released on the way
        #expect(new.drainMailbox().map(\.id) == [m.id])
        // An answer to the old version's own request is still its own.
        #expect(old.admit(Unmanaged.passRetained(MailboxTests.message(2)), force: true).isAccepted)

        let pending = PendingRequests(node: 9)
        let id = try? pending.add(.init(requester: .callback { _ in }, responder: old, deadlineMono: Int64.max / 2,
                                       target: "r", timeoutMs: 1000))
        guard let id else { Issue.record("no pending slot"); return }
        pending.transfer(id, from: old, to: new)
        #expect(pending.take(id, responder: old) == nil)
        #expect(pending.take(id, responder: new) != nil)
    }
}

extension Agent.Admission {
    var isAccepted: Bool { if case .accepted = self { true } else { false } }
}
