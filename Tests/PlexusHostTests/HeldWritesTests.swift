import PlexusCore
@testable import PlexusHost
import PlexusThreads
import Synchronization
import Glibc
import Testing

/// What a dispatcher thread holds back for a client during a batch goes out
/// when the batch ends, and never waits long behind a handler that blocks:
/// the watchdog lets it out within a tick or two.
@Suite("Client writes held during a batch")
struct HeldWritesTests {
    /// Lets a waiter see its first release.
    final class Writer: BatchedWriter {
        let released = OneShot<Void>()
        func releaseHeld() { released.set(()) }
        /// Whether a release came within ms.
        func awaitRelease(ms: Int64) -> Bool {
            released.wait(untilMonotonic: Clock.monotonicNanos() + ms * 1_000_000) != nil
        }
    }

    private static func host() -> Host {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.threads = 2
        let h = Host(c)
        h.start()
        return h
    }

    @Test func onlyADispatcherThreadHolds() {
        #expect(!DispatcherBatch.hold(Writer()))   // the test's own thread writes at once
    }

    @Test func aWriteHeldInABatchGoesOutWhenTheBatchEnds() throws {
        let h = Self.host()
        defer { h.shutdown() }
        let w = Writer()
        try h.provide(name: "holder", capabilities: [("test.hold", "holds a write")]) { _, answer in
            answer(.success(.bool(DispatcherBatch.hold(w))))
        }
        let r = try h.call(Envelope(kind: .query, target: .capability("test.hold"), payload: Array("{}".utf8)), timeoutMs: 10_000)
        #expect(r.payloadString == "true")
        #expect(w.awaitRelease(ms: 10_000))
    }

    /// The first message holds a write at the very end of its handler; the
    /// second, in the same batch, blocks until that write is let out. Only
    /// the watchdog can let it out (the hold is younger than the age bound
    /// when the second starts).
    /// Also after the watchdog went to sleep with every dispatcher thread
    /// idle (it sleeps after 100 idle ticks): the batch that then starts
    /// wakes it, and its tick still lets the held write out.
    @Test(arguments: [false, true])
    func aHandlerThatBlocksDoesNotKeepAnEarlierWriteInAfterAWatchdogTick(afterTheWatchdogSlept: Bool) throws {
        let h = Self.host()
        defer { h.shutdown() }
        if afterTheWatchdogSlept {
            let deadline = Clock.monotonicNanos() + 30_000_000_000
            while h.router.dispatcher.watchdogParkings.load(ordering: .relaxed) == 0 && Clock.monotonicNanos() < deadline { usleep(2_000) }
            #expect(h.router.dispatcher.watchdogParkings.load(ordering: .relaxed) > 0, "an idle host's watchdog sleeps")
        }
        let w = Writer()
        let secondSent = Atomic<Bool>(false)
        try h.provide(name: "holder", capabilities: [("test.first", "holds a write"), ("test.second", "waits for it")]) { env, answer in
            if case .capability("test.first") = env.target {
                let deadline = Clock.monotonicNanos() + 10_000_000_000
                while !secondSent.load(ordering: .acquiring) && Clock.monotonicNanos() < deadline { sched_yield() }
                answer(.success(.bool(DispatcherBatch.hold(w))))
            } else {
                answer(.success(.bool(w.awaitRelease(ms: 5_000))))
            }
        }
        let first = OneShot<Envelope>(), second = OneShot<Envelope>()
        try h.request(Envelope(kind: .query, target: .capability("test.first"), payload: Array("{}".utf8)), timeoutMs: 20_000) { first.set($0) }
        try h.request(Envelope(kind: .query, target: .capability("test.second"), payload: Array("{}".utf8)), timeoutMs: 20_000) { second.set($0) }
        secondSent.store(true, ordering: .releasing)
        let a = first.wait(), b = second.wait()
        #expect(a.payloadString == "true", "the first handler ran on a dispatcher thread in a batch")
        #expect(b.payloadString == "true", "the held write was let out while the second handler blocked")
    }
}
