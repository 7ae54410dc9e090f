import Foundation
import InMemoryTracing
import PlexusCore
import PlexusHost
import PlexusTestSupport
import Testing
import Tracing

/// Spans handed to a swift-distributed-tracing Tracer (what an embedding
/// program plugs swift-otel in through): the same tree `plexus trace` shows,
/// linked by the Tracer's own contexts, with the host's times and ids.
@Suite("Span export", .serialized)
struct SpanExportTests {
    @Test func aRequestAcrossAWorkerAndAnInProcessAgentReachesTheTracerAsOneTree() throws {
        let sink = InMemoryTracer()
        // relay (C) in a sandboxed worker, textkit in the host's process.
        try TracingTests().withRig(configure: { $0.spanSink = sink }) { host, socket in
            let path = Fixtures.dir + "/export-\(UUID().uuidString.prefix(8)).txt"
            try "text.stats\nexported words".write(toFile: path, atomically: true, encoding: .utf8)
            let call = try PlexusCommand.run(["call", "relay.ask", "--file", path, "--verbose", "--socket", socket], in: Fixtures.dir)
            #expect(call.status == 0, "\(call.err)")
            let id = try #require(call.err.split(separator: "\n").first { $0.hasPrefix("plexus: trace ") }
                .map { String($0.dropFirst("plexus: trace ".count).prefix(32)) }, "\(call.err)")

            // Replayed once the trace is quiet (half a second): wait for the client's span, the root.
            let deadline = Date().addingTimeInterval(20)
            var mine: [FinishedInMemorySpan] = []
            while Date() < deadline {
                mine = sink.finishedSpans.filter { $0.attributes["plexus.trace_id"]?.toSpanAttribute() == .string(id) }
                if mine.contains(where: { $0.operationName == "client relay.ask" }) { break }
                usleep(50_000)
            }
            let recorded = host.trace(plexus_id(hex: id)!).spans
            #expect(mine.count == recorded.count, "every recorded span is exported: \(mine.map(\.operationName)) vs \(recorded.map { "\($0.kind) \($0.name)" })")

            func one(_ name: String, agent: String) throws -> FinishedInMemorySpan {
                try #require(mine.first { $0.operationName == name && $0.attributes["plexus.agent"]?.toSpanAttribute() == .string(agent) },
                             "\(name) by \(agent) in \(mine.map(\.operationName))")
            }
            let client = try #require(mine.first { $0.operationName == "client relay.ask" })
            let relay = try one("handle relay.ask", agent: "relay")
            let stats = try one("handle text.stats", agent: "textkit")
            // Linked through the Tracer's own contexts: the same tree as `plexus trace`.
            #expect(client.parentSpanID == nil)
            #expect(relay.parentSpanID == client.spanID)
            #expect(stats.parentSpanID == relay.spanID)
            #expect(Set(mine.map(\.traceID)).count == 1, "one trace in the Tracer too")
            #expect(client.kind == .client && relay.kind == .consumer)
            // The host's times (a handler may return after its reply has
            // travelled on, so only the starts are ordered).
            #expect(client.startInstant.nanosecondsSinceEpoch <= relay.startInstant.nanosecondsSinceEpoch)
            #expect(relay.startInstant.nanosecondsSinceEpoch <= stats.startInstant.nanosecondsSinceEpoch)
            let hostClient = try #require(recorded.first { $0.kind == "client" })
            #expect(client.startInstant.nanosecondsSinceEpoch == UInt64(hostClient.start_unix_ns))
        }
    }

    /// A failed handler's span carries an error status, with the status name.
    @Test func aFailedCallIsAnErrorSpan() throws {
        let sink = InMemoryTracer()
        var c = HostConfiguration(pluginsDirectory: nil)
        c.threads = 2
        c.sandbox = .inProcess
        c.spanSink = sink
        try withServedHost(c, files: [PipelineTests.plugins + "/textkit.so"]) { host, _ in
            // Addressed by name with no capability it knows: textkit returns UNSUPPORTED.
            #expect(throws: PlexusError.self) { _ = try host.call(Envelope(kind: .query, target: .agent("textkit"), payload: []), timeoutMs: 10_000) }
            let deadline = Date().addingTimeInterval(20)
            var failed: FinishedInMemorySpan?
            while Date() < deadline, failed == nil {
                failed = sink.finishedSpans.first { $0.operationName == "handle textkit" && $0.status?.code == .error }
                usleep(50_000)
            }
            let span = try #require(failed, "the failed handle span reached the Tracer: \(sink.finishedSpans.map(\.operationName))")
            #expect(span.status?.message == "UNSUPPORTED", "\(String(describing: span.status))")
        }
    }
}
