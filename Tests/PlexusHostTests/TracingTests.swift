import Foundation
import PlexusCore
import PlexusHost
import PlexusSocket
import PlexusTestSupport
import Testing

/// Traces as a user follows them: `plexus call --verbose` names the trace,
/// `plexus trace ID` shows where the request went (a socket client, an
/// agent in a sandboxed worker, an in-process agent it asked), in order.
@Suite("Tracing", .serialized)
struct TracingTests {
    /// relay (C) in a sandboxed worker, textkit in the host's process.
    /// `configure`: more settings (SpanExportTests hands spans to a Tracer).
    func withRig(_ tracing: TracingSettings = TracingSettings(), configure: (inout HostConfiguration) -> Void = { _ in },
                 _ body: (Host, String) throws -> Void) throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.threads = 2
        c.sandbox = .process
        c.tracing = tracing
        let textkit = PipelineTests.plugins + "/textkit.so"
        var s = c.settings(for: textkit)
        s.sandbox = .inProcess
        c.plugins["textkit"] = s
        configure(&c)
        try withServedHost(c, files: [try Fixtures.build("relay.c", name: "relay"), textkit], body)
    }

    func payloadFile(_ text: String) throws -> String {
        let path = Fixtures.dir + "/trace-payload-\(UUID().uuidString.prefix(8)).txt"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func plexusTraceShowsTheClientTheWorkerAndTheInProcessAgentInOrder() throws {
        try withRig { host, socket in
            let call = try PlexusCommand.run(["call", "relay.ask", "--file", try payloadFile("text.stats\nhello traced world"),
                                              "--verbose", "--socket", socket], in: Fixtures.dir)
            #expect(call.status == 0, "\(call.err)")
            #expect(call.out.contains("\"words\""), "relay's answer is textkit's stats: \(call.out)")
            let id = try #require(call.err.split(separator: "\n").compactMap { line -> String? in
                guard line.hasPrefix("plexus: trace ") else { return nil }
                return String(line.dropFirst("plexus: trace ".count).prefix(32))
            }.first, "call --verbose names the trace on stderr: \(call.err)")

            // The client span is recorded when its answer goes out: wait for it.
            let deadline = Date().addingTimeInterval(20)
            var spans: [Span] = []
            while Date() < deadline {
                spans = host.trace(plexus_id(hex: id)!).spans
                if spans.contains(where: { $0.kind == "client" }) && spans.count >= 10 { break }
                usleep(20_000)
            }

            let shown = try PlexusCommand.run(["trace", id, "--socket", socket], in: Fixtures.dir)
            #expect(shown.status == 0, "\(shown.err)")
            let lines = shown.out.split(separator: "\n").map(String.init)
            func index(_ pred: (String) -> Bool) -> Int? { lines.firstIndex(where: pred) }
            let client = index { $0.hasPrefix("client relay.ask") }
            let relayHandle = index { $0.contains("handle relay.ask") && $0.contains(" relay ") }
            let askStats = index { $0.contains("route text.stats") && $0.contains("relay → textkit") }
            let statsHandle = index { $0.contains("handle text.stats") && $0.contains("textkit") }
            #expect(client == 1, "the client's request is the root, first: \(shown.out)")
            #expect(relayHandle != nil && askStats != nil && statsHandle != nil, "\(shown.out)")
            if let a = client, let b = relayHandle, let c = askStats, let d = statsHandle {
                #expect(a < b && b < c && c < d, "in start order: \(shown.out)")
                func depth(_ i: Int) -> Int { lines[i].prefix { $0 == " " }.count / 2 }
                #expect(depth(b) == depth(a) + 1, "relay's handling is under the client's request: \(shown.out)")
                #expect(depth(d) == depth(b) + 1, "textkit's handling is under relay's: \(shown.out)")
            }

            // --json: the same spans for machines, linked by parent ids.
            let json = try PlexusCommand.run(["trace", id, "--json", "--socket", socket], in: Fixtures.dir)
            let report = try JSONDecoder().decode(TraceReport.self, from: Data(json.out.utf8))
            #expect(report.trace == id)
            let byID = Dictionary(report.spans.map { ($0.span, $0) }, uniquingKeysWith: { a, _ in a })
            let stats = try #require(report.spans.first { $0.kind == "handle" && $0.agent == "textkit" })
            let relay = try #require(stats.parent.flatMap { byID[$0] })
            #expect(relay.kind == "handle" && relay.agent == "relay")
            let root = try #require(relay.parent.flatMap { byID[$0] })
            #expect(root.kind == "client" && root.name == "relay.ask" && root.parent == nil)
            #expect(report.spans.allSatisfy { $0.trace == id })

            // The listing names it.
            let listed = try PlexusCommand.run(["trace", "--last", "5", "--socket", socket], in: Fixtures.dir)
            #expect(listed.status == 0 && listed.out.contains(id), "\(listed.out)")
        }
    }

    @Test func anUnknownTraceSaysSoAndExits1() throws {
        try withRig { _, socket in
            let r = try PlexusCommand.run(["trace", String(repeating: "ab", count: 16), "--socket", socket], in: Fixtures.dir)
            #expect(r.status == 1)
            #expect(r.err.contains("no spans of trace abababababababababababababababab"), "\(r.err)")
            let bad = try PlexusCommand.run(["trace", "xyz", "--socket", socket], in: Fixtures.dir)
            #expect(bad.status == 2 && bad.err.contains("not a trace id"), "\(bad.err)")
        }
    }

    @Test func theTraceCapabilitiesNameWhatIsWrongWithTheirArguments() throws {
        try withRig { host, _ in
            let e1 = expectError(.INVALID_ARGUMENT) { _ = try host.callText("plexus.trace.get", "{\"trace\": \"nope\"}") }
            #expect(e1?.detail.contains("\"trace\" must be a trace id of 32 hex digits") == true, "\(String(describing: e1))")
            let e2 = expectError(.INVALID_ARGUMENT) { _ = try host.callText("plexus.trace.list", "{\"last\": 0}") }
            #expect(e2?.detail.contains("\"last\" must be a whole number from 1 to 10000") == true, "\(String(describing: e2))")
            let e3 = expectError(.INVALID_ARGUMENT) { _ = try host.callText("plexus.trace.list", "[1]") }
            #expect(e3?.detail.contains("the payload must be a JSON object") == true, "\(String(describing: e3))")
            let listing = try JSONDecoder().decode(TraceListing.self, from: Data(try host.callText("plexus.trace.list", "").utf8))
            #expect(listing.status.enabled && listing.status.capacity == 16_384)
        }
    }

    @Test func aTraceparentFromTheCommandLineIsTheTraceAndItsParent() throws {
        try withRig { host, socket in
            let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            let r = try PlexusCommand.run(["call", "text.stats", "--file", try payloadFile("one two"), "--traceparent", tp,
                                           "--verbose", "--socket", socket], in: Fixtures.dir)
            #expect(r.status == 0, "\(r.err)")
            #expect(r.err.contains("plexus: trace 4bf92f3577b34da6a3ce929d0e0e4736"))
            let spans = waitForSpans(host, "4bf92f3577b34da6a3ce929d0e0e4736") { $0.contains { $0.kind == "client" } }
            let client = try #require(spans.first { $0.kind == "client" })
            #expect(client.parent == "00f067aa0ba902b7", "the client span sits under the caller's own span")
        }
    }

    @Test func tracingOffRecordsNothing() throws {
        try withRig(TracingSettings(enabled: false)) { host, socket in
            #expect(try host.callText("text.stats", "a b c").contains("words"))
            let r = try PlexusCommand.run(["call", "relay.ask", "--file", try payloadFile("text.stats\nx"), "--verbose",
                                           "--socket", socket], in: Fixtures.dir)
            #expect(r.status == 0, "\(r.err)")
            #expect(host.tracer.status == TracingStatus(enabled: false, capacity: 0, recorded: 0, dropped: 0))
            #expect(host.recentTraces(last: 10).traces.isEmpty)
            let shown = try PlexusCommand.run(["trace", "--last", "3", "--socket", socket], in: Fixtures.dir)
            #expect(shown.out.contains("tracing is off"), "\(shown.out)")
        }
    }

    @Test func theRingKeepsTheNewestRecordsAndCountsTheDropped() {
        let t = Tracer(TracingSettings(enabled: true, spans: 16, rate: 0))
        for i in 1...40 {
            t.record(trace: plexus_id(hi: 7, lo: UInt64(i)), span: UInt64(i), parent: 0, kind: .client,
                     name: "call \(i)", agent: "client:test", start: Int64(i) * 1000, end: Int64(i) * 1000 + 10)
        }
        #expect(t.status == TracingStatus(enabled: true, capacity: 16, recorded: 40, dropped: 24))
        #expect(t.spans(of: plexus_id(hi: 7, lo: 24)).isEmpty, "the oldest are overwritten")
        #expect(t.spans(of: plexus_id(hi: 7, lo: 25)).map(\.name) == ["call 25"])
        let recent = t.recent(last: 100)
        #expect(recent.count == 16 && recent.first?.root == "client call 25" && recent.last?.root == "client call 40")
    }

    @Test func theRateLimitsRecordsPerWindow() {
        // 60 a second: 60 admissions in one clock second, then none until the next.
        let t = Tracer(TracingSettings(enabled: true, spans: 1024, rate: 60))
        let second: Int64 = 1_000_000_000
        var admitted = 0
        for i in 0..<100 where t.admits(coarseUnixNanos: 5 * second + Int64(i) * 1_000_000) { admitted += 1 }
        #expect(admitted == 60)
        #expect(t.admits(coarseUnixNanos: 6 * second), "a new second has budget again")
    }

    func waitForSpans(_ host: Host, _ hex: String, until done: ([Span]) -> Bool) -> [Span] {
        let deadline = Date().addingTimeInterval(20)
        var spans: [Span] = []
        while Date() < deadline {
            spans = host.trace(plexus_id(hex: hex)!).spans
            if done(spans) { break }
            usleep(20_000)
        }
        return spans
    }
}

/// A workflow run is one trace: the run, a span per step, a span per
/// attempt (with its task's messages under it), named by `workflow status`.
@Suite("Workflow traces", .serialized)
struct WorkflowTraceTests {
    @Test func aRunIsOneTraceWithASpanPerStepAndAttempt() throws {
        let rig = try WorkflowTests.Rig()
        defer { rig.stop() }
        let id = try rig.run("""
            workflow: traced
            steps:
              first:
                call: wf.echo
                input: one
              each:
                call: wf.echo
                for_each: "${[1, 2]}"
                input: "${item}"
            """)
        let s = try rig.wait(id)
        #expect(s["state"] == .string("completed"), "\(s.text)")
        guard case .string(let hex)? = s["trace"] else { Issue.record("status names no trace: \(s.text)"); return }
        #expect(plexus_id(hex: hex) == WorkflowTrace.trace(run: id))

        // The run's span is recorded as it completes (after the status said so): wait for it.
        var spans: [Span] = []
        for _ in 0..<400 {
            spans = rig.host.trace(plexus_id(hex: hex)!).spans
            if spans.contains(where: { $0.kind == "run" }) { break }
            usleep(50_000)
        }
        let rows = TraceTree.ordered(spans)
        let run = try #require(rows.first, "\(spans)")
        #expect(run.depth == 0 && run.span.kind == "run" && run.span.name == "traced" && run.span.agent == id)
        let steps = rows.filter { $0.span.kind == "step" }
        #expect(steps.map(\.span.name) == ["first", "each"] && steps.allSatisfy { $0.depth == 1 }, "\(rows.map { "\($0.depth) \($0.span.kind) \($0.span.name)" })")
        let attempts = rows.filter { $0.span.kind == "attempt" }
        #expect(Set(attempts.map(\.span.name)) == ["first", "each[0]", "each[1]"] && attempts.allSatisfy { $0.depth == 2 && $0.span.attempt == 1 })
        // Under each attempt, its task's message: routed to and handled by the steps agent.
        let handles = rows.filter { $0.span.kind == "handle" && $0.span.name == "wf.echo" }
        #expect(handles.count == 3 && handles.allSatisfy { $0.depth == 3 && $0.span.agent == "steps" })
    }
}
