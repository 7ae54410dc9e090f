import PlexusCore
import Testing
@testable import PlexusCluster

/// The directory of hosts, driven by a clock of the test's own.
@Suite struct DirectoryTests {
    static let s: Int64 = 1_000_000_000

    func announcement(_ node: String, _ agents: [(String, [String], Int)], leaving: Bool = false) -> Announcement {
        Announcement(node: node, address: "\(node).example pid 1", agents: agents.map { .init(name: $0.0, state: "active", capabilities: $0.1, load: $0.2) },
                     instance: 7, leaving: leaving)
    }

    @Test func aHostSilentForThreeSecondsIsDroppedNotBefore() {
        var d = Directory()
        let r1 = d.heard(announcement("b", [("beta", ["echo"], 0)]), nowMono: 10 * Self.s)
        #expect(r1)
        let r2 = d.sweep(nowMono: 12 * Self.s + 999_999_999)
        #expect(r2.isEmpty)
        #expect(d.providers(of: "echo") == ["b"])
        let r3 = d.sweep(nowMono: 13 * Self.s)
        #expect(r3 == ["b"])
        #expect(!d.isLive("b"))
        #expect(d.providers(of: "echo").isEmpty)
        #expect(d.nodes(withAgent: "beta").isEmpty)
        let r4 = d.sweep(nowMono: 14 * Self.s)
        #expect(r4.isEmpty)          // dropped once
        let r5 = d.heard(announcement("b", [("beta", ["echo"], 0)]), nowMono: 15 * Self.s)
        #expect(r5)   // back
        let r6 = d.sweep(nowMono: 80 * Self.s)
        #expect(r6 == ["b"])
        #expect(d.peers["b"] != nil)                             // listed as gone for a minute
        let r7 = d.sweep(nowMono: 140 * Self.s)
        #expect(r7.isEmpty)
        #expect(d.peers["b"] == nil)                             // then forgotten
    }

    @Test func aLeavingHostIsDroppedAtOnce() {
        var d = Directory()
        d.heard(announcement("b", [("beta", ["echo"], 0)]), nowMono: 0)
        let r8 = d.heard(announcement("b", [("beta", ["echo"], 0)], leaving: true), nowMono: Self.s)
        #expect(!r8)
        #expect(!d.isLive("b"))
        #expect(d.providers(of: "echo").isEmpty)
    }

    @Test func theLeastLoadedProviderWinsAndTiesTakeTurns() {
        var d = Directory()
        d.heard(announcement("b", [("beta", ["echo"], 3)]), nowMono: 0)
        d.heard(announcement("c", [("gamma", ["echo"], 1)]), nowMono: 0)
        d.heard(announcement("e", [("eps", ["other"], 0)]), nowMono: 0)
        #expect(d.leastLoadedProvider(of: "echo", turn: 0) == "c")
        #expect(d.leastLoadedProvider(of: "echo", turn: 1) == "c")
        d.heard(announcement("c", [("gamma", ["echo"], 3)]), nowMono: 0)
        #expect(Set((0..<4).compactMap { d.leastLoadedProvider(of: "echo", turn: $0) }) == ["b", "c"])
        #expect(d.leastLoadedProvider(of: "missing", turn: 0) == nil)
    }

    @Test func anAgentNameOnTwoHostsIsListedOnBoth() {
        var d = Directory()
        d.heard(announcement("b", [("worker", ["echo"], 0)]), nowMono: 0)
        d.heard(announcement("c", [("worker", ["echo"], 0)]), nowMono: 0)
        #expect(d.nodes(withAgent: "worker") == ["b", "c"])
    }

    @Test func anAnnouncementSurvivesItsJSON() {
        let a = announcement("b", [("beta", ["echo", "text.stats"], 2)])
        let back = Announcement(try! JSONValue.parse(Array(a.json.text.utf8)))
        #expect(back == a)
        #expect(Announcement(.object(["node": .string("x")])) == nil)
    }

    @Test func aHostCutOffFromNATSDropsNoOneAndWaitsToHearEveryLivePeerAgain() {
        var d = Directory()
        _ = d.heard(announcement("b", [("beta", [], 0)]), nowMono: 10 * Self.s)
        _ = d.heard(announcement("c", [("gamma", [], 0)]), nowMono: 10 * Self.s)
        // Cut off for 10 s: silence excused on every tick, no one dropped.
        for t in stride(from: Int64(11), through: 20, by: 1) { d.excuseSilence(nowMono: t * Self.s) }
        #expect(d.sweep(nowMono: 22 * Self.s).isEmpty)
        // ...but the age of their last heartbeat is the truth: 10 s and more, not "just now".
        #expect(d.peers["b"]?.lastHeardMono == 10 * Self.s)
        // Back at 21 s: heard b, not yet c.
        _ = d.heard(announcement("b", [("beta", [], 0)]), nowMono: 21 * Self.s + 5)
        #expect(!d.allLiveHeard(since: 21 * Self.s))
        _ = d.heard(announcement("c", [("gamma", [], 0)]), nowMono: 21 * Self.s + 9)
        #expect(d.allLiveHeard(since: 21 * Self.s))
        // A dropped peer is not waited for.
        #expect(Set(d.sweep(nowMono: 30 * Self.s)) == ["b", "c"])
        #expect(d.allLiveHeard(since: 31 * Self.s))
    }
}

/// Every subject carries the sending node in the same place, under the reserved prefix.
@Suite struct SubjectsTests {
    let s = Subjects(cluster: "plexus", node: "a")

    @Test func theSenderNodeAndKindAreReadFromTheSubject() {
        #expect(s.agent("beta.2", on: "b") == "plexus.plexus.from.a.agent.b.beta.2")
        #expect(s.capability("text.stats") == "plexus.plexus.from.a.cap.text.stats")
        #expect(s.capability("text.stats", on: "c") == "plexus.plexus.from.a.capon.c.text.stats")
        #expect(s.topic("news.flash") == "plexus.plexus.from.a.topic.news.flash")
        #expect(s.parse(s.agent("beta.2", on: "b"))! == ("a", "agent", "b.beta.2"))
        #expect(s.parse(s.capability("text.stats"))! == ("a", "cap", "text.stats"))
        #expect(s.parse(s.announce)! == ("a", "announce", ""))
        #expect(s.parse("plexus.other.from.a.cap.x") == nil)    // another cluster
        #expect(s.agentsHere == "plexus.plexus.from.*.agent.a.>")
        #expect(s.capabilityHere("text.stats") == "plexus.plexus.from.*.cap.text.stats")
    }

}
