import Foundation
import PlexusCore
import PlexusHost
import PlexusStore
import PlexusTasks
import PlexusThreads
import Synchronization
import Testing

/// Streaming replies and cancellation (ABI 1.2, issue 17 items 4 and 5):
/// partial answers in order then one final answer, in process and across
/// the worker channel; a deadline in the middle of a stream; a plugin that
/// reads a stream and one that cancels; an old plugin that sees neither;
/// a caller's cancel reaching the agent; a running task cancelled.
@Suite("Streams and cancellation", .serialized)
struct StreamTests {
    static let modes: [SandboxMode] = [.inProcess, .process]

    /// textkit (count.stream, count.cancels) built from Plugins/textkit.
    static func textkit() throws -> String {
        let out = Fixtures.dir + "/textkit-\(UUID().uuidString.prefix(8)).so"
        try Fixtures.run("/usr/bin/cc", ["-std=c11", "-shared", "-fPIC", "-O1", "-I\(Fixtures.root)/include", "-I\(Fixtures.root)/SDK/c",
                                         "\(Fixtures.root)/Plugins/textkit/textkit.c", "-o", out, "-lm"])
        return out
    }

    /// A started host with `files` loaded in `mode`.
    static func host(_ files: [String], _ mode: SandboxMode) throws -> Host {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.threads = 2
        c.sandbox = mode
        let h = Host(c)
        for f in files { try h.load(path: f) }
        h.start()
        return h
    }

    /// Collects a stream's answers; `final` waits for the last one.
    final class Answers: Sendable {
        private let lock = ConditionLock()
        private let got = Mutex<[Envelope]>([])

        func add(_ e: Envelope) { lock.withLock { got.withLock { $0.append(e) }; lock.broadcast() } }

        var all: [Envelope] { got.withLock { $0 } }

        /// Waits (up to 20 s) until `done` holds of what arrived.
        func wait(until done: ([Envelope]) -> Bool) throws -> [Envelope] {
            let deadline = Clock.monotonicNanos() + 20_000_000_000
            return try lock.withLock {
                while !done(all) {
                    guard Clock.monotonicNanos() < deadline else {
                        throw Fixtures.FixtureError(description: "the stream did not get there; it has \(all.map { "\($0.kind.name) \($0.payloadString)" })")
                    }
                    lock.wait(untilMonotonic: deadline)
                }
                return all
            }
        }

        func final() throws -> [Envelope] { try wait { $0.last.map { !$0.isPartial } ?? false } }
    }

    static func query(_ target: String, _ json: String) -> Envelope {
        Envelope(kind: .query, target: Target(parsing: target), payload: Array(json.utf8))
    }

    @Test("a stream arrives in order, partials then the final answer, in process and sandboxed", arguments: modes)
    func partialsThenFinal(mode: SandboxMode) throws {
        let h = try Self.host([try Self.textkit()], mode)
        defer { h.shutdown() }
        let a = Answers()
        try h.requestStream(Self.query("count.stream", #"{"to":3,"every_ms":0}"#), timeoutMs: 10_000) { a.add($0) }
        let got = try a.final()
        #expect(got.map(\.payloadString) == [#"{"n":1}"#, #"{"n":2}"#, #"{"n":3}"#, #"{"count":3}"#])
        #expect(got.map(\.isPartial) == [true, true, true, false])
        #expect(got.allSatisfy { $0.sender == "textkit" })
        // A single-answer caller of the same capability hears only the final answer.
        #expect(try h.callText("count.stream", #"{"to":3,"every_ms":0}"#) == #"{"count":3}"#)
    }

    @Test("a plugin reads another's stream and streams it on (the caller's host function)", arguments: modes)
    func pluginReadsAStream(mode: SandboxMode) throws {
        let h = try Self.host([try Self.textkit(), try Fixtures.build("streamrelay.c", name: "streamrelay")], mode)
        defer { h.shutdown() }
        let a = Answers()
        try h.requestStream(Self.query("relay.stream", #"{"to":3,"every_ms":0}"#), timeoutMs: 10_000) { a.add($0) }
        let got = try a.final()
        #expect(got.filter(\.isPartial).map(\.payloadString) == [#"{"n":1}"#, #"{"n":2}"#, #"{"n":3}"#])
        #expect(got.last?.payloadString == #"{"partials":3,"final":{"count":3}}"#)
        #expect(got.filter(\.isPartial).allSatisfy { $0.sender == "streamrelay" })
    }

    @Test("a plugin built for ABI 1.1 gets only the final answer of a stream", arguments: modes)
    func oldPluginSeesNoPartials(mode: SandboxMode) throws {
        let h = try Self.host([try Self.textkit(), try Fixtures.build("streamrelay.c", ["-DAS_1_1"], name: "streamrelay")], mode)
        defer { h.shutdown() }
        #expect(try h.callText("relay.stream", #"{"to":3,"every_ms":0}"#) == #"{"partials":0,"final":{"count":3}}"#)
    }

    @Test("a deadline in the middle of a stream: the partials, then EXPIRED, and nothing after", arguments: modes)
    func deadlineMidStream(mode: SandboxMode) throws {
        let h = try Self.host([try Self.textkit()], mode)
        defer { h.shutdown() }
        let a = Answers()
        try h.requestStream(Self.query("count.stream", #"{"to":200,"every_ms":50}"#), timeoutMs: 600) { a.add($0) }
        let got = try a.final()
        #expect(got.last?.kind == .error)
        #expect(got.last?.status == PLEXUS_EXPIRED.status, "\(got.last?.payloadString ?? "")")
        #expect(Host.error(from: got.last!).detail.contains("passed its deadline (600 ms) before its final answer"))
        let partials = got.dropLast()
        #expect(!partials.isEmpty && partials.count < 200, "\(partials.count) partials before the deadline")
        #expect(partials.enumerated().allSatisfy { $0.element.payloadString == "{\"n\":\($0.offset + 1)}" })
        // The agent stops at its next partial (NOT_A_REQUEST); the caller hears nothing more.
        // count.cancels is handled after count.stream has returned: by then every late partial was tried.
        _ = try h.callText("count.cancels", "")
        #expect(a.all.count == got.count)
    }

    @Test("cancelling a request: the caller gets CANCELLED, the agent a CANCEL, a late answer is dead-lettered", arguments: modes)
    func callerCancels(mode: SandboxMode) throws {
        let h = try Self.host([try Self.textkit()], mode)
        defer { h.shutdown() }
        let a = Answers()
        let id = try h.requestStream(Self.query("count.stream", #"{"to":1000,"every_ms":20}"#), timeoutMs: 20_000) { a.add($0) }
        _ = try a.wait { $0.contains(where: \.isPartial) }
        try h.cancel(id, by: "the test")
        let got = try a.final()
        #expect(got.last?.kind == .error)
        #expect(got.last?.status == PLEXUS_CANCELLED.status)
        #expect(Host.error(from: got.last!).detail.contains("cancelled by the test"))
        // The CANCEL went to textkit's mailbox (high priority) before this query did.
        #expect(try h.callText("count.cancels", "") == #"{"cancels":1}"#)
        // Its next partial was late: dropped, and dead-lettered with the reason.
        #expect(h.deadLetters.contains { $0.reason.contains("was cancelled by its caller") },
                "\(h.deadLetters.map(\.reason))")
        // Cancelling again, or a request that is not open, is NOT_A_REQUEST.
        _ = expectError(.NOT_A_REQUEST) { try h.cancel(id) }
    }

    @Test("a plugin cancels its own request: it gets CANCELLED, the handler a CANCEL", arguments: modes)
    func pluginCancels(mode: SandboxMode) throws {
        let h = try Self.host([try Self.textkit(), try Fixtures.build("streamrelay.c", name: "streamrelay")], mode)
        defer { h.shutdown() }
        let out = try JSONValue.parse(Array(try h.callText("relay.cancel", #"{"to":1000,"every_ms":20}"#, timeoutMs: 20_000).utf8))
        #expect(out["cancel"] == .string("OK"))
        #expect(out["answer"] == .string("CANCELLED"))
        if case .int(let n)? = out["partials"] { #expect(n >= 1) } else { Issue.record("no partials in \(out)") }
        #expect(try h.callText("count.cancels", "") == #"{"cancels":1}"#)
    }

    @Test("cancel and reply_partial answer as plexus.h says, in process and sandboxed", arguments: modes)
    func refusals(mode: SandboxMode) throws {
        let h = try Self.host([try Self.textkit()], mode)
        defer { h.shutdown() }
        _ = expectError(.INVALID_ARGUMENT) { try h.cancel(.none) }
        _ = expectError(.NOT_A_REQUEST) { try h.cancel(plexus_id(hi: 1, lo: 2)) }
        // A stream's partial never reaches a caller after its final answer (the caller's guard).
        let a = Answers()
        try h.requestStream(Self.query("count.stream", #"{"to":2,"every_ms":0}"#), timeoutMs: 5_000) { a.add($0) }
        #expect(try a.final().count == 3)
        // A stream that sent nothing before its deadline is a plain TIMEOUT.
        let silent = Answers()
        try h.requestStream(Self.query("count.stream", #"{"to":1,"every_ms":1000}"#), timeoutMs: 200) { silent.add($0) }
        #expect(try silent.final().map(\.status) == [PLEXUS_TIMEOUT.status])
    }
}

/// `plexus tasks cancel` of a running task reaches its agent.
@Suite("Cancelling a running task", .serialized)
struct RunningTaskCancelTests {
    @Test("a running task is cancelled through its request: its agent gets CANCEL, the task is cancelled, not retried")
    func cancelRunningTask() throws {
        let dir = Fixtures.dir + "/cancel-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let h = try StreamTests.host([try StreamTests.textkit()], .process)
        let store = try Store(path: dir + "/plexus.db")
        let scheduler = try Scheduler(host: h, store: store)
        try TaskService.install(on: h, scheduler: scheduler)
        try scheduler.start()
        defer { scheduler.stop(); h.shutdown(); store.close() }
        var spec = TaskSpec(capability: "count.stream", payload: Array(#"{"to":1000,"every_ms":20}"#.utf8))
        spec.maxAttempts = 3
        let t = try scheduler.submit([spec])[0]
        let deadline = Clock.monotonicNanos() + 20_000_000_000
        while try store.task(t.id)?.state != .running {
            #expect(Clock.monotonicNanos() < deadline, "the task never started")
            if Clock.monotonicNanos() >= deadline { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let cancelled = try scheduler.cancel(t.id)
        #expect(cancelled.state == .cancelled)
        #expect(try store.task(t.id)?.state == .cancelled)
        #expect(try store.task(t.id)?.attempts == 1, "a cancelled task is not retried")
        #expect(try h.callText("count.cancels", "") == #"{"cancels":1}"#)
        // A finished task is no longer cancellable.
        _ = expectError(.INVALID_ARGUMENT) { _ = try scheduler.cancel(t.id) }
    }
}

/// Streams over the socket: the C, Rust and Python clients read partials as
/// they arrive and cancel; a Python agent streams to a caller.
@Suite("Streams over the socket", .serialized)
struct StreamSocketTests {
    typealias Program = ExternalAgentTests.Program
    static let cStream = Fixtures.clientProgram("plexus_stream")

    func withHost(_ mode: SandboxMode = .process, _ body: (Host, String) throws -> Void) throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.threads = 2
        c.sandbox = mode
        try withServedHost(c, files: [try StreamTests.textkit()], body)
    }

    @Test("the C client reads a stream, hits a deadline mid-stream, and cancels")
    func cClient() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.cStream), "the C example did not build")
        try withHost { h, sock in
            let ok = try Program(Self.cStream, ["--socket", sock, "count.stream", #"{"to":3,"every_ms":0}"#]).finish()
            #expect(ok.0 == 0, "\(ok.2)")
            #expect(ok.1 == "partial: {\"n\":1}\npartial: {\"n\":2}\npartial: {\"n\":3}\nfinal: {\"count\":3}\n")
            let late = try Program(Self.cStream, ["--socket", sock, "count.stream", #"{"to":200,"every_ms":50}"#, "500"]).finish()
            #expect(late.0 == 1)
            #expect(late.2.hasPrefix("EXPIRED: "), "\(late.2)")
            #expect(late.1.hasPrefix("partial: {\"n\":1}\n"), "\(late.1)")
            let cancel = try Program(Self.cStream, ["--socket", sock, "count.stream", #"{"to":1000,"every_ms":20}"#, "20000", "2"]).finish()
            #expect(cancel.0 == 1)
            #expect(cancel.2.hasPrefix("CANCELLED: "), "\(cancel.2)")
            #expect(cancel.1.hasPrefix("partial: {\"n\":1}\npartial: {\"n\":2}\n"), "\(cancel.1)")
            #expect(try h.callText("count.cancels", "") == #"{"cancels":1}"#)
        }
    }

    @Test("the Rust client reads a stream and cancels")
    func rustClient() throws {
        let rust = ExternalAgentTests.rustProgram
        try #require(FileManager.default.isExecutableFile(atPath: rust), "the Rust example did not build")
        try withHost(.inProcess) { h, sock in
            let ok = try Program(rust, ["--socket", sock, "stream", "count.stream", #"{"to":2,"every_ms":0}"#, "10000"]).finish()
            #expect(ok.0 == 0, "\(ok.2)")
            #expect(ok.1 == "partial: {\"n\":1}\npartial: {\"n\":2}\nfinal: {\"count\":2}\n")
            let cancel = try Program(rust, ["--socket", sock, "stream", "count.stream", #"{"to":1000,"every_ms":20}"#, "20000", "1"]).finish()
            #expect(cancel.0 == 1)
            #expect(cancel.2.hasPrefix("CANCELLED: "), "\(cancel.2)")
            #expect(try h.callText("count.cancels", "") == #"{"cancels":1}"#)
            // A plain call of a streaming capability gets only the final answer.
            let plain = try Program(rust, ["--socket", sock, "call", "count.stream", #"{"to":2,"every_ms":0}"#]).finish()
            #expect(plain.1 == "{\"count\":2}\n", "\(plain.2)")
        }
    }

    @Test("the Python client iterates a stream, cancels one, and a Python agent streams to a caller")
    func pythonClientAndAgent() throws {
        try withHost { h, sock in
            let s = try Program.python(ExternalAgentTests.header + """
                st = c.stream("count.stream", {"to": 3, "every_ms": 0}, timeout=10)
                print([p.decode() for p in st], st.result.decode())
                print(c.call("count.stream", {"to": 2, "every_ms": 0}).decode())
                st = c.stream("count.stream", {"to": 1000, "every_ms": 20}, timeout=20)
                try:
                    for p in st:
                        st.cancel()
                except PlexusError as e:
                    print(e.name)
                def counting(m):
                    for i in range(3):
                        m.partial({"step": i})
                    return {"steps": 3}
                c.register("py.stream", ["py.steps"], counting)
                print("ready", flush=True)
                sys.stdin.read()
                """, socket: sock)
            #expect(s.line() == #"['{"n":1}', '{"n":2}', '{"n":3}'] {"count":3}"#)
            #expect(s.line() == #"{"count":2}"#)
            #expect(s.line() == "CANCELLED")
            #expect(s.line() == "ready")
            let a = StreamTests.Answers()
            try h.requestStream(StreamTests.query("py.steps", "{}"), timeoutMs: 10_000) { a.add($0) }
            let got = try a.final()
            #expect(got.map(\.payloadString) == [#"{"step":0}"#, #"{"step":1}"#, #"{"step":2}"#, #"{"steps":3}"#])
            #expect(got.map(\.isPartial) == [true, true, true, false])
            #expect(s.finish().0 == 0)
        }
    }
}
