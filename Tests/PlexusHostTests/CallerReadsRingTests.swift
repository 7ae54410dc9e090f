import Foundation
import PlexusCore
import PlexusHost
import Synchronization
import Testing

/// A blocking `Host.call` to a sandboxed agent reads the worker's ring on
/// its own thread while it waits, and the worker wakes it directly
/// (plexus_ring.h). These attack what that must not change: every caller
/// gets its own answer however many wait on one worker, an answer that
/// comes another way (a timeout, a death) still wakes the caller, and a
/// worker that lies in the host's wake-up words only delays itself.
@Suite("Blocking calls read their worker's answer", .serialized)
struct CallerReadsRingTests {
    func sandboxedHost(_ files: [String]) throws -> Host {
        try PlexusHostTests.sandboxedHost(files) { $0.defaultTimeoutMs = 20_000; $0.mailboxCapacity = 1 << 16 }
    }

    /// Eight threads call one worker at once while a ninth sends it one-way
    /// commands (their DONE frames land on the same ring): every answer is
    /// the caller's own, whichever thread happened to read it.
    @Test func manyCallersOfOneWorkerEachGetTheirOwnAnswer() throws {
        let host = try sandboxedHost([try Fixtures.probe()])
        defer { host.shutdown() }
        let wrong = Atomic<Int>(0), failed = Atomic<Int>(0), sent = Atomic<Int>(0)
        let callers = 8, calls = 300
        DispatchQueue.concurrentPerform(iterations: callers + 1) { t in
            if t == callers {   // the one-way sender
                for k in 0..<3_000 {
                    let cmd = Envelope(kind: .command, target: .agent("probe"), payload: Array("probe.record c\(k)".utf8))
                    if (try? host.send(cmd)) != nil { sent.add(1, ordering: .relaxed) }
                }
                return
            }
            for k in 0..<calls {
                let mine = "caller \(t) call \(k)"
                do {
                    if try host.callText("probe.echo", mine, timeoutMs: 20_000) != mine { wrong.add(1, ordering: .relaxed) }
                } catch { failed.add(1, ordering: .relaxed) }
            }
        }
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(failed.load(ordering: .relaxed) == 0)
        #expect(sent.load(ordering: .relaxed) > 0)
        // Every command was handled too: the journal, asked after them (FIFO), holds the last.
        let journal = try host.callText("probe.journal", timeoutMs: 20_000)
        #expect(journal.contains("c2999"))
    }

    /// The answer a caller waits for is set by the host's timer: the caller,
    /// asleep on the worker's bell, is woken for it, and the worker serves on.
    @Test func aTimeoutWakesACallerWaitingOnItsWorker() throws {
        let host = try sandboxedHost([try Fixtures.probe()])
        defer { host.shutdown() }
        let err = expectError(.TIMEOUT) { _ = try host.callText("probe.noreply", timeoutMs: 300) }
        #expect(err != nil)
        #expect(try host.callText("probe.echo", "after") == "after")
    }

    /// The worker dies under the call: the answer (its crash) comes from the
    /// worker's I/O thread, which takes the ring back first.
    @Test func aWorkerDyingUnderACallWakesTheCaller() throws {
        let host = try sandboxedHost([try Fixtures.probe()])
        defer { host.shutdown() }
        let err = expectError(.AGENT_CRASHED) { _ = try host.callText("probe.crash", timeoutMs: 20_000) }
        #expect(err?.detail.contains("SIGSEGV") == true, "\(err?.detail ?? "no error")")
        #expect(try host.callText("probe.echo", "again") == "again")
    }

    /// The worker says nobody sleeps (so it wakes nobody), or that
    /// four billion callers do, and moves the bell: its answers still come,
    /// and so do everyone else's.
    @Test(arguments: ["mute", "shout"])
    func aWorkerLyingInTheHostsWakeWordsOnlyDelaysItself(_ how: String) throws {
        let host = try sandboxedHost([try Fixtures.build("ringbreaker.c", name: "ringbreaker"), try Fixtures.probe()])
        defer { host.shutdown() }
        #expect(try host.callText("ringbreaker.found") == "found")
        for _ in 0..<3 { #expect(try host.callText("ringbreaker.\(how)", timeoutMs: 20_000) == how) }
        #expect(try host.callText("ringbreaker.ok", timeoutMs: 20_000) == "ok")
        #expect(try host.callText("probe.echo", "bystander") == "bystander")
        #expect(host.agentReports.first { $0.name == "ringbreaker" }?.restarts == 0)
    }
}
