import PlexusThreads
import Testing

/// The one way a thread waits for a callback's result: the first value
/// wins, a value set before the wait is not missed, and a deadline ends a
/// wait for one that never comes.
@Suite("OneShot")
struct OneShotTests {
    @Test func theFirstValueIsTheOneAWaiterGets() throws {
        let v = OneShot<Int>()
        v.set(1)
        v.set(2)
        #expect(v.wait() == 1)
        #expect(v.wait() == 1)   // and it stays
    }

    @Test func aValueFromAnotherThreadWakesTheWaiter() throws {
        let v = OneShot<String>()
        let t = try startThread(name: "oneshot-test") { v.set("from the thread") }
        #expect(v.wait() == "from the thread")
        t.join()
    }

    @Test func aDeadlineEndsTheWaitWithoutAValue() {
        let v = OneShot<Int>()
        #expect(v.wait(untilMonotonic: Clock.monotonicNanos() + 20_000_000) == nil)
    }
}
