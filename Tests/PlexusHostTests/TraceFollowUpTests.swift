import Foundation
import PlexusCore
import PlexusHost
import PlexusSocket
import PlexusTestSupport
import Synchronization
import Testing

/// Tracing as a reviewer found it wanting: a late reply from a sandboxed
/// worker lost its trace, and `tracing.rate` did not hold against a burst.
@Suite("Tracing follow-up", .serialized)
struct TraceFollowUpTests {
    /// A sandboxed agent answers a request after its handler returned (the
    /// worker already said DONE), with a fresh envelope carrying no trace:
    /// the reply is still recorded in the request's trace, never under 0.
    @Test func aLateReplyFromAWorkerStaysInItsRequestsTrace() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.threads = 2
        c.sandbox = .process
        try withServedHost(c, files: [try Fixtures.build("latereply.c", name: "latereply")]) { host, _ in
            let trace = plexus_id(hi: .random(in: 1...UInt64.max), lo: .random(in: 1...UInt64.max))
            let answer = Mutex<Result<String, PlexusError>?>(nil)
            let caller = Thread {
                let r: Result<String, PlexusError> = Result { () throws(PlexusError) in
                    try host.call(Envelope(kind: .query, target: .capability("late.hold"), payload: [], traceID: trace),
                                  timeoutMs: 20_000).payloadString
                }
                answer.withLock { $0 = r }
            }
            caller.start()

            // The handle span is recorded when the worker's DONE for late.hold
            // arrives: from then on the host holds no delivery to read the trace from.
            let handled = waitForSpans(host, trace) { $0.contains { $0.kind == "handle" && $0.name == "late.hold" } }
            #expect(handled.contains { $0.kind == "handle" }, "late.hold was handled (DONE): \(handled.map(\.kind))")
            #expect(try host.callText("late.release") == "ok")

            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline, answer.withLock({ $0 }) == nil { usleep(10_000) }
            let got = try #require(answer.withLock { $0 }, "the held request was answered")
            #expect(try got.get() == "released")

            let spans = waitForSpans(host, trace) { $0.contains { $0.kind == "reply" } }
            let reply = try #require(spans.first { $0.kind == "reply" }, "the reply is in the request's trace: \(spans.map { "\($0.kind) \($0.name)" })")
            #expect(reply.agent == "" && reply.sender == "latereply")
            let zero = host.recentTraces(last: 10_000).traces.filter { $0.trace == plexus_id.none.hex }
            #expect(zero.isEmpty, "nothing is recorded under the all-zero trace: \(zero)")
        }
    }

    /// 500 commands routed as fast as the host takes them, with
    /// `tracing: { rate: 5 }`: at most 5 messages a second are recorded.
    @Test func theRateHoldsAgainstARealBurst() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.threads = 2
        c.tracing = TracingSettings(enabled: true, spans: 16_384, rate: 5)
        let textkit = PipelineTests.plugins + "/textkit.so"
        try withServedHost(c, files: [textkit]) { host, _ in
            let start = Date().timeIntervalSince1970 - 0.2   // the coarse clock may lag a little
            for i in 0..<500 { try host.command("text.stats", "burst \(i)") }
            let end = Date().timeIntervalSince1970
            let seconds = Int(end) - Int(start) + 1   // the clock seconds the burst touched
            // Let the mailbox drain so every admitted message is recorded.
            let deadline = Date().addingTimeInterval(20)
            var traced: [TraceSummary] = []
            var last = -1
            while Date() < deadline {
                traced = host.recentTraces(last: 10_000).traces.filter { $0.root == "route text.stats" }
                if traced.count == last && traced.count > 0 { break }
                last = traced.count
                usleep(200_000)
            }
            #expect(traced.count >= 1, "the first messages of a second are recorded")
            #expect(traced.count <= 5 * seconds, "\(traced.count) messages recorded over \(seconds) second(s) at rate 5")
        }
    }

    /// The burst the review measured: a Python client pipelines 1000
    /// queries (`c.submit`) over the socket, at `tracing: { rate: 5 }`. Each
    /// admitted request is three records (its client span, its delivery,
    /// its reply); the others record nothing, not even a client span.
    @Test func theRateHoldsForAPipelinedSocketClient() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.threads = 2
        c.tracing = TracingSettings(enabled: true, spans: 16_384, rate: 5)
        try withServedHost(c, files: [PipelineTests.plugins + "/textkit.so"]) { host, socket in
            let start = Date().timeIntervalSince1970 - 0.2
            let p = try ExternalAgentTests.Program.python(ExternalAgentTests.header + """
                fs = [c.submit("echo", b"x") for _ in range(1000)]
                for f in fs: f.result()
                print("done", flush=True)
                """, socket: socket)
            let line = p.line()
            let end = Date().timeIntervalSince1970
            let r = p.finish()
            #expect(line == "done" && r.0 == 0, "\(line) \(r.2)")
            let seconds = Int(end) - Int(start) + 1
            let traces = host.recentTraces(last: 10_000).traces
            #expect(!traces.isEmpty)
            #expect(traces.count <= 5 * seconds, "\(traces.count) requests recorded over \(seconds) second(s) at rate 5")
            #expect(host.tracer.status.recorded <= 3 * 5 * seconds, "\(host.tracer.status)")
            #expect(traces.allSatisfy { $0.spans == 6 && $0.root == "client echo" }, "whole traces: client, route, wait, handle, route reply, reply: \(traces)")
        }
    }

    /// A step that fails once and is retried: each attempt's message sits
    /// under its own attempt (both share the task id as their trace), and
    /// `plexus trace` names the attempt in the span's name, not the status column.
    @Test func eachAttemptHoldsItsOwnTaskMessages() throws {
        let rig = try WorkflowTests.Rig()
        defer { rig.stop() }
        let id = try rig.run("""
            workflow: retrying
            steps:
              shaky: { call: wf.flaky, input: fine, retry: { attempts: 2, backoff_ms: 50 } }
            """)
        let s = try rig.wait(id)
        #expect(s["state"] == .string("completed"), "\(s.text)")
        let trace = WorkflowTrace.trace(run: id)
        let spans = waitForSpans(rig.host, trace) { $0.contains { $0.kind == "run" } }
        let rows = TraceTree.ordered(spans)
        let attempts = rows.filter { $0.span.kind == "attempt" }
        #expect(attempts.map(\.span.attempt) == [1, 2], "\(rows.map { "\($0.depth) \($0.span.kind) \($0.span.name)" })")
        for a in attempts {
            let handles = spans.filter { $0.kind == "handle" && $0.name == "wf.flaky" && $0.parent == a.span.span }
            #expect(handles.count == 1, "attempt \(a.span.attempt ?? 0) holds its own task message: \(rows.map { "\($0.depth) \($0.span.kind) \($0.span.name) \($0.span.parent ?? "-")" })")
        }

        let path = Fixtures.dir + "/wf-\(UUID().uuidString.prefix(8)).sock"
        let server = try SocketServer(host: rig.host, path: path)
        try server.start()
        defer { server.stop() }
        let shown = try PlexusCommand.run(["trace", trace.hex, "--socket", path], in: Fixtures.dir)
        #expect(shown.status == 0, "\(shown.err)")
        let lines = shown.out.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.contains("attempt shaky #2") }, "\(shown.out)")
        #expect(!lines.contains { $0.hasSuffix("attempt 2") || $0.hasSuffix("attempt 1") }, "the last column is the status: \(shown.out)")
    }

    /// What `plexus trace` accepts as an ID, and what it says of what it does not.
    @Test func traceIDsAndOptionsSayWhatTheyAccept() throws {
        let zero = try PlexusCommand.run(["trace", String(repeating: "0", count: 32)], in: Fixtures.dir)
        #expect(zero.status == 2 && zero.err.contains("is not a valid trace id: the all-zero id means \"no trace\" (W3C Trace Context)"), "\(zero.err)")
        let tp = expectError(.INVALID_ARGUMENT) { _ = try TraceParent(parsing: "nodashes") }
        #expect(tp?.detail.contains("has 1 part separated by '-', not 4") == true, "\(String(describing: tp))")
        #expect(tp?.detail.contains("1 parts") == false)
        let help = try PlexusCommand.run(["trace", "--help"], in: Fixtures.dir)
        #expect(help.out.contains("--socket") && help.out.contains("--client") && help.out.contains("--token"), "\(help.out)")
        for unused in ["--plugins", "--sandbox", "--config"] { #expect(!help.out.contains(unused), "\(unused) does nothing for trace: \(help.out)") }
        #expect(help.out.contains("upper or") && help.out.contains("oldest first"), "\(help.out)")

        var c = HostConfiguration(pluginsDirectory: nil)
        c.threads = 2
        try withServedHost(c, files: [PipelineTests.plugins + "/textkit.so"]) { host, socket in
            let trace = plexus_id(hi: 0xABCD, lo: 0x1234)
            _ = try host.call(Envelope(kind: .query, target: .capability("text.stats"), payload: Array("a b".utf8), traceID: trace), timeoutMs: 10_000)
            _ = waitForSpans(host, trace) { $0.contains { $0.kind == "reply" } }
            let upper = try PlexusCommand.run(["trace", trace.hex.uppercased(), "--socket", socket], in: Fixtures.dir)
            #expect(upper.status == 0 && upper.out.hasPrefix("trace \(trace.hex):"), "upper-case hex is the same id: \(upper.out) \(upper.err)")
            let viaTP = try PlexusCommand.run(["trace", "00-\(trace.hex)-00f067aa0ba902b7-01", "--socket", socket], in: Fixtures.dir)
            #expect(viaTP.status == 0 && viaTP.out.hasPrefix("trace \(trace.hex):"), "a traceparent names its trace: \(viaTP.out) \(viaTP.err)")
            let listed = try PlexusCommand.run(["trace", "--last", "5", "--socket", socket], in: Fixtures.dir)
            #expect(listed.out.contains(" dropped (overwritten"), "the text says dropped, as the JSON field: \(listed.out)")
        }
    }

    /// `plexus call --verbose` suggests `plexus trace ID` only when that can show it.
    @Test func callVerboseSuggestsPlexusTraceOnlyWhereItWorks() throws {
        let file = Fixtures.dir + "/verbose-\(UUID().uuidString.prefix(8)).txt"
        try "one two".write(toFile: file, atomically: true, encoding: .utf8)
        var c = HostConfiguration(pluginsDirectory: nil)
        c.threads = 2
        c.tracing = TracingSettings(enabled: false)
        try withServedHost(c, files: [PipelineTests.plugins + "/textkit.so"]) { _, socket in
            let r = try PlexusCommand.run(["call", "text.stats", "--file", file, "--verbose", "--socket", socket], in: Fixtures.dir)
            #expect(r.status == 0, "\(r.err)")
            #expect(r.err.contains("plexus: trace ") && r.err.contains("(not recorded: tracing is off in the host)"), "\(r.err)")
            #expect(!r.err.contains("(plexus trace "), "\(r.err)")
        }
        let dir = Fixtures.dir + "/verbose-plugins-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: PipelineTests.plugins + "/textkit.so", toPath: dir + "/textkit.so")
        let e = try PlexusCommand.run(["call", "text.stats", "--file", file, "--verbose", "--embedded", "--plugins", dir,
                                       "--sandbox", "in-process", "--socket", dir + "/none.sock"], in: Fixtures.dir)
        #expect(e.status == 0, "\(e.err)")
        #expect(e.err.contains("(not recorded: an embedded host"), "\(e.err)")
        #expect(!e.err.contains("(plexus trace "), "\(e.err)")
    }

    func waitForSpans(_ host: Host, _ trace: plexus_id, until done: ([Span]) -> Bool) -> [Span] {
        let deadline = Date().addingTimeInterval(20)
        var spans: [Span] = []
        while Date() < deadline {
            spans = host.trace(trace).spans
            if done(spans) { break }
            usleep(20_000)
        }
        return spans
    }
}
