import Hummingbird
import NIOCore
import PlexusCore
import PlexusHost
import PlexusHTTP
import PlexusStore
import PlexusTasks
import PlexusThreads
import PlexusTrace
import PlexusWorkflows

/// The live dashboard at `/` of `plexus run --http`: one page (Page.swift,
/// shipped inside the binary) fed by Server-Sent Events from /api/stream
/// (a snapshot each second, the store's events as they come) and JSON
/// under /api/ (/api/traces/ID: one trace's span tree, read when picked). Routes read what the Collector last published; none waits
/// for the host or the store.
public final class Dashboard: Sendable {
    private let collector: Collector

    /// Counts topology from now on: make it before the host starts.
    public init(host: Host, scheduler: Scheduler, engine: WorkflowEngine, store: Store) {
        host.enableTopology()
        collector = Collector(host: host, scheduler: scheduler, engine: engine, store: store)
    }

    /// Starts the thread that reads the host (once it runs).
    public func start() throws(ThreadStartError) { try collector.start() }

    /// Ends every open stream (within a quarter second) and the reading thread:
    /// call before the HTTP server stops, which waits for open requests.
    public func stop() { collector.stop() }

    public func routes(_ router: HTTPServer.Routes) {
        let collector = self.collector
        router.get("/") { _, _ in Self.reply(Page.html, type: "text/html; charset=utf-8") }
        // A snapshot at most 1.5 s old: when nobody was looking, the
        // collector starts again and this waits (asynchronously) for its next one.
        router.get("api/snapshot") { _, _ in
            collector.want()
            for _ in 0..<60 {
                if let s = collector.snapshot(maxAgeNs: 1_500_000_000) { return Self.reply(s, type: "application/json") }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            return Self.reply(collector.published.withLock { $0.snapshot }, type: "application/json")
        }
        router.get("api/events") { request, _ in
            collector.want()
            let given = request.uri.queryParameters["after"].map(String.init)
            guard let after = given.map({ Int64($0) }) ?? 0, after >= 0 else {
                let why = JSONValue.object(["error": .string("after is an event's sequence number (0 or more), not '\(given ?? "")'")])
                return Self.reply(why.text, type: "application/json", status: .badRequest)
            }
            let events = collector.published.withLock { $0.events.filter { $0.seq > after }.map(\.json) }
            return Self.reply("[" + events.joined(separator: ",") + "]", type: "application/json")
        }
        // One trace's spans, each with its depth in the tree (TraceTree, as
        // `plexus trace` prints it). A walk of the span ring: no lock, no wait.
        let host = collector.host
        router.get("api/traces/:id") { _, context in
            guard let hex = context.parameters.get("id"), let id = plexus_id(hex: hex.lowercased()), !id.isNone else {
                return Self.reply("{\"error\": \"a trace id is 32 hex digits\"}", type: "application/json", status: .badRequest)
            }
            let report = host.trace(id)
            let spans: [JSONValue] = TraceTree.ordered(report.spans).map { d, span in
                guard case .object(var o) = Collector.encode(span) else { return .null }
                o["depth"] = .int(Int64(d))
                return .object(o)
            }
            return Self.reply(JSONValue.object(["trace": .string(report.trace), "spans": .array(spans),
                                                "status": Collector.encode(report.status)]).text, type: "application/json")
        }
        router.get("api/stream") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                try await Self.stream(collector, to: &writer)
            })
        }
    }

    /// One client's stream: the snapshot whenever a new one is published
    /// (at most once a second), new events within a quarter second, a
    /// comment line as keep-alive. Ends when the client goes or the host stops.
    static func stream(_ c: Collector, to writer: inout any ResponseBodyWriter) async throws {
        var sentVersion = -1
        var sentSeq: Int64 = -1
        var idle = 0
        while !c.isStopped {
            c.want()
            let (version, snapshot, events) = c.published.withLock { p in
                (p.version, p.version == sentVersion ? nil : p.snapshot, p.events.filter { $0.seq > sentSeq })
            }
            var out = ""
            if let snapshot {
                out += "event: snapshot\ndata: \(snapshot)\n\n"
                sentVersion = version
            }
            if !events.isEmpty {
                out += "event: events\ndata: [\(events.map(\.json).joined(separator: ","))]\n\n"
                sentSeq = events.last!.seq
            }
            idle = out.isEmpty ? idle + 1 : 0
            if idle >= 60 { out = ": keep-alive\n\n"; idle = 0 }
            if !out.isEmpty { try await writer.write(ByteBuffer(string: out)) }
            try await Task.sleep(nanoseconds: 250_000_000)
        }
        try await writer.finish(nil)
    }

    static func reply(_ body: String, type: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
