import PlexusSupervision
import Testing

/// The decisions, as a grid: strategy x restart kind x way of dying, with a
/// clock the tests move by hand.
@Suite("Supervision decisions")
struct SupervisionTests {
    final class FakeClock: @unchecked Sendable { var t = 0.0 }

    /// root (one-for-one) { a; group g (strategy) { x; y; z }; b }
    func tree(_ strategy: Strategy, kind: RestartKind = .permanent, intensity: Int = 3,
              clock: FakeClock = FakeClock()) -> SupervisionTree {
        let g = SupervisorSpec(name: "g", strategy: strategy, intensity: intensity, periodSeconds: 10,
                               children: [.agent("x", .permanent), .agent("y", kind), .agent("z", .permanent)])
        let root = SupervisorSpec(name: "root", strategy: .oneForOne, intensity: 2, periodSeconds: 10,
                                  children: [.agent("a", .permanent), .group(g), .agent("b", .permanent)])
        return SupervisionTree(root: root, now: { clock.t })
    }

    @Test(arguments: [(Strategy.oneForOne, ["y"]), (.oneForAll, ["x", "y", "z"]), (.restForOne, ["y", "z"])])
    func strategiesRestartTheRightSiblings(_ s: Strategy, _ expected: [String]) {
        let d = tree(s).exited("y", abnormal: true)
        #expect(d.restart == expected)
        #expect(d.terminate.isEmpty && d.gaveUp.isEmpty)
    }

    @Test(arguments: RestartKind.allCases)
    func restartKindsDecideOnCrashAndOnCleanExit(_ kind: RestartKind) {
        for abnormal in [true, false] {
            let d = tree(.oneForOne, kind: kind).exited("y", abnormal: abnormal)
            let restarts = kind == .permanent || (kind == .transient && abnormal)
            #expect(d.restart == (restarts ? ["y"] : []), "\(kind) abnormal=\(abnormal)")
            #expect(d.terminate == (restarts ? [] : ["y"]), "\(kind) abnormal=\(abnormal)")
        }
    }

    @Test func intensityIsASlidingWindowAndEscalates() {
        let clock = FakeClock()
        let t = tree(.oneForOne, intensity: 3, clock: clock)
        for i in 0..<3 { clock.t = Double(i); #expect(t.exited("x", abnormal: true).restart == ["x"]) }
        clock.t = 20   // the first three left the 10 s window
        #expect(t.exited("x", abnormal: true).restart == ["x"])
        clock.t = 20.1; _ = t.exited("x", abnormal: true)
        clock.t = 20.2; _ = t.exited("x", abnormal: true)
        clock.t = 20.3
        let d = t.exited("x", abnormal: true)             // 4 within 10 s: g gives up
        #expect(d.gaveUp == ["g"])
        #expect(d.restart == ["x", "y", "z"])              // root restarts the group (one-for-one on g)
    }

    @Test func theRootGivingUpStopsOnlyTheFailingSubtree() {
        let clock = FakeClock()
        let t = tree(.oneForOne, intensity: 0, clock: clock)   // g gives up at once, root allows 2
        for i in 0..<2 { clock.t = Double(i); #expect(t.exited("y", abnormal: true).gaveUp == ["g"]) }
        clock.t = 3
        let d = t.exited("y", abnormal: true)
        #expect(d.gaveUp == ["g", "root"])
        #expect(d.terminate == ["x", "y", "z"])
        #expect(t.isStopped("x") && !t.isStopped("a") && !t.isStopped("b"))
        #expect(t.exited("a", abnormal: true).restart == ["a"])   // the rest is still supervised
    }

    @Test func unnamedAgentsJoinTheRoot() {
        let s = SupervisionTree.completing(SupervisorSpec(name: "root", children: [.agent("a", .transient)]), with: ["a", "b"])
        #expect(s.agents == ["a", "b"])
        #expect(s.children.last == .agent("b", .permanent))
    }

    @Test func theBreakerOpensProbesAndCloses() {
        var b = CircuitBreaker(threshold: 2, cooldownSeconds: 1)
        func allow(_ t: Double) -> Bool { b.allow(now: t) }   // #expect cannot call a mutating method
        #expect(allow(0))
        b.failed(now: 0); #expect(b.state == .closed)
        b.failed(now: 0.1); #expect(b.state == .open)
        #expect(!allow(0.5))
        #expect(allow(1.2) && b.state == .halfOpen)   // the probe
        #expect(!allow(1.3))                            // only one
        b.failed(now: 1.4); #expect(b.state == .open && b.cooldown == 2)
        #expect(!allow(3.0))
        #expect(allow(3.5))
        b.succeeded(); #expect(b.state == .closed && b.cooldown == 1 && b.failures == 0)
    }
}
