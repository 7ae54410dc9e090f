import Foundation
import Glibc
import PlexusCore
import PlexusHost
import PlexusTestSupport
import Synchronization
import Testing

/// A handler may return without replying and answer later, from another
/// thread. Such a request is the agent's promise: a drain (an operator's,
/// or a hot reload's) waits for it, and when the agent can no longer keep
/// it (its worker died, it was stopped) the caller is told at once, with
/// why, instead of waiting for its deadline. Both sandbox modes.
@Suite("Answers promised after the handler returned", .serialized)
struct PromisedAnswerTests {
    static let modes: [SandboxMode] = [.process, .inProcess]

    /// The answer to one request, when it comes.
    final class Answer: Sendable {
        private let got = Mutex<Envelope?>(nil)
        func set(_ e: Envelope) { got.withLock { $0 = e } }
        var value: Envelope? { got.withLock { $0 } }

        /// Waits (generously) for the answer.
        func wait() -> Envelope? {
            _ = waitFor(seconds: 60) { value != nil }
            return value
        }
    }

    private func host(_ mode: SandboxMode, _ body: (Host) throws -> Void) throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.threads = 2
        c.sandbox = mode
        try withServedHost(c, files: [try Fixtures.build("latereply.c", name: "latereply")]) { h, _ in try body(h) }
    }

    /// Sends a query with a long deadline and waits until the agent's
    /// handler has returned for it: the agent counts it handled (a worker's
    /// when it is delivered) and nothing is queued or in its worker's hands
    /// any more (the worker said DONE).
    private func promise(_ h: Host, _ capability: String, _ payload: String = "") throws -> Answer {
        let before = h.agentReports.first { $0.name == "latereply" }?.handled ?? 0
        let a = Answer()
        try h.request(Envelope(kind: .query, target: .capability(capability), payload: Array(payload.utf8)),
                      timeoutMs: 120_000) { a.set($0) }
        let handled = waitFor(seconds: 60) {
            guard let r = h.agentReports.first(where: { $0.name == "latereply" }) else { return false }
            return r.handled > before && r.queued == 0 && r.in_flight == 0
        }
        #expect(handled, "the handler of \(capability) returned")
        return a
    }

    @Test func aWorkerThatDiesBeforeKeepingItsPromiseEndsTheRequestAtOnce() throws {
        try host(.process) { h in
            let a = try promise(h, "late.hold")
            let pid = try #require(h.agentReports.first { $0.name == "latereply" }?.pid)
            kill(pid, SIGKILL)
            let e = try #require(a.wait(), "the caller heard before its 120 s deadline")
            #expect(e.kind == .error && e.status == PLEXUS_AGENT_CRASHED.status, "\(e.status): \(e.payloadString)")
            #expect(e.payloadString.contains("before it replied"), "\(e.payloadString)")
            // The restarted worker serves as before.
            #expect(waitFor(seconds: 60) { (try? h.callText("late.release")) == "ok" })
        }
    }

    @Test(arguments: modes)
    func aDrainWaitsForAnswersPromisedLater(_ mode: SandboxMode) throws {
        try host(mode) { h in
            let a = try promise(h, "late.after", "300")
            let out = try h.control(.drain, "latereply", drainTimeoutMs: 60_000)
            #expect(out.detail.hasPrefix("drained"), "\(out.detail)")
            let e = try #require(a.wait())
            #expect(e.kind == .response && e.payloadString == "later", "\(e.status): \(e.payloadString)")
        }
    }

    @Test(arguments: modes)
    func stoppingAnAgentEndsWhatItPromisedWithTheReason(_ mode: SandboxMode) throws {
        try host(mode) { h in
            let a = try promise(h, "late.hold")
            _ = try h.control(.stop, "latereply")
            let e = try #require(a.wait(), "the caller heard before its 120 s deadline")
            #expect(e.kind == .error && e.status == PLEXUS_SHUTTING_DOWN.status, "\(e.status): \(e.payloadString)")
            #expect(e.payloadString.contains("meant to reply later"), "\(e.payloadString)")
        }
    }
}
