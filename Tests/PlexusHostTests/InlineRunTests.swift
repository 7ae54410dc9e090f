import Foundation
import PlexusCore
import PlexusHost
@testable import PlexusSocket
import Synchronization
import Testing

/// The socket's event loop runs an agent a client's frame wakes on its own
/// thread once that agent has answered quickly (InlinePolicy), and a
/// handler that then takes long holds up the other clients for about a
/// tick only: the standby thread serves them meanwhile (LoopLeadership).
@Suite("Agents run on the socket's loop", .serialized)
struct InlineRunTests {
    // MARK: the policy (pure logic)

    @Test func anAgentRunsInlineOnlyAfterItsLastAnswersWereAllQuick() {
        let p = InlinePolicy(.init(quickAnswerNanos: 100, quickRunNanos: 10, promoteAfter: 3, penaltyNanos: 1_000))
        #expect(!p.mayRunInline("a", now: 0), "an agent never seen starts on probation")
        p.answered("a", nanos: 50)
        p.answered("a", nanos: 50)
        #expect(!p.mayRunInline("a", now: 0))
        p.answered("a", nanos: 101)   // a slow answer restarts the count
        p.answered("a", nanos: 50)
        p.answered("a", nanos: 50)
        #expect(!p.mayRunInline("a", now: 0))
        p.answered("a", nanos: 50)
        #expect(p.mayRunInline("a", now: 0))
        #expect(!p.mayRunInline("b", now: 0), "each agent is judged on its own answers")
    }

    @Test func aSlowInlineRunSendsItBackToProbationAndOffTheLoopForThePenalty() {
        let p = InlinePolicy(.init(quickAnswerNanos: 100, quickRunNanos: 10, promoteAfter: 2, penaltyNanos: 1_000))
        p.answered("a", nanos: 1)
        p.answered("a", nanos: 1)
        p.ranInline("a", nanos: 10, now: 5)   // within quickRunNanos: nothing changes
        #expect(p.mayRunInline("a", now: 10))
        p.ranInline("a", nanos: 11, now: 10)
        #expect(!p.mayRunInline("a", now: 10))
        p.answered("a", nanos: 1)
        p.answered("a", nanos: 1)
        #expect(!p.mayRunInline("a", now: 1_009), "quick again, but the penalty still runs")
        #expect(p.mayRunInline("a", now: 1_010))
    }

    @Test func theRecordIsBoundedWhateverNamesComeAndGo() {
        let p = InlinePolicy(.init(quickAnswerNanos: 100, quickRunNanos: 10, promoteAfter: 1, penaltyNanos: 1_000, remembered: 8))
        for i in 0..<100 { p.answered("client-agent-\(i)", nanos: 1) }
        #expect(p.mayRunInline("client-agent-99", now: 0))
        #expect(!p.mayRunInline("client-agent-0", now: 0), "forgotten: on probation again")
    }

    // MARK: a live host

    /// A host (in process, so handlers can run on the loop) with the
    /// blocker fixture and echo, serving a socket.
    func withBlocker(_ body: (Host, SocketServer, String) throws -> Void) throws {
        var c = HostConfiguration(pluginsDirectory: PipelineTests.plugins)
        c.sandbox = .inProcess
        let h = Host(c)
        try h.loadPlugins()
        _ = try h.load(path: try Fixtures.build("blocker.c", name: "blocker"))
        h.start()
        defer { h.shutdown() }
        let path = Fixtures.dir + "/plexus-\(UUID().uuidString.prefix(8)).sock"
        let server = try SocketServer(host: h, path: path)
        try server.start()
        defer { server.stop() }
        try body(h, server, path)
    }

    static func call(_ client: SocketClient, _ target: String, _ payload: String, timeoutMs: Int64 = 60_000) throws -> String {
        try client.call(Envelope(kind: .query, target: .capability(target), payload: Array(payload.utf8)), timeoutMs: timeoutMs).payloadString
    }

    @Test func aHandlerThatBlocksOnTheLoopHoldsUpOtherClientsOnlyUntilTheStandbyServesThem() throws {
        try withBlocker { _, server, sock in
            let gate = Fixtures.dir + "/gate-\(UUID().uuidString.prefix(8))"
            let a = try SocketClient(path: sock)
            // Quick answers put the blocker on the loop (it may take a few more
            // on a loaded machine, where a slow wake-up restarts its probation).
            let deadline = Date().addingTimeInterval(60)
            var ranOnLoop = false
            for _ in 0..<5 where !ranOnLoop {
                // Quick answers put the blocker on the loop: call until one ran there
                // (on a loaded machine a slow wake-up may restart its probation).
                let before = server.counters.inlineRuns
                while server.counters.inlineRuns == before {
                    #expect(try Self.call(a, "test.block", gate) == "quick")
                    try #require(Date() < deadline, "the blocker never ran on the loop thread")
                }
                // Now hold it in its handler, and see where it runs.
                let turnsBefore = server.counters.standbyTurns
                FileManager.default.createFile(atPath: gate, contents: nil)
                let answer = Mutex<String?>(nil)
                let caller = Thread {
                    let r = (try? InlineRunTests.call(try SocketClient(path: sock), "test.block", gate)) ?? "failed"
                    answer.withLock { $0 = r }
                }
                caller.start()
                let started = gate + ".started"
                try #require(waitFor(seconds: 30) { ((try? String(contentsOfFile: started, encoding: .utf8)) ?? "").count > 0 },
                             "the blocked handler never started")
                let thread = try String(contentsOfFile: started, encoding: .utf8)
                // Whatever thread holds the blocker, another client is served meanwhile:
                // by the standby when the blocker holds the loop thread.
                let b = try SocketClient(path: sock)
                #expect(try Self.call(b, "echo", "still served", timeoutMs: 10_000) == "still served")
                #expect(answer.withLock { $0 } == nil, "the blocked call is still held")
                ranOnLoop = server.counters.standbyTurns > turnsBefore
                try FileManager.default.removeItem(atPath: gate)
                try FileManager.default.removeItem(atPath: started)
                try #require(waitFor(seconds: 30) { answer.withLock { $0 } != nil }, "the blocked call never ended")
                #expect(answer.withLock { $0 } == thread)
            }
            #expect(ranOnLoop, "in 5 attempts the blocker never held the loop thread (or the standby never served)")
        }
    }
}
