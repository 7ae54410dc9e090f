import ArgumentParser
import FoundationEssentials
import PlexusCore
import PlexusHost
import PlexusSocket

/// `plexus trace ID` and `plexus trace --last N`: the running host's
/// recorded spans (plexus.trace.get, plexus.trace.list).
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show a trace's spans as a tree with durations, or list the most recent traces.",
        discussion: """
            ID is a trace id (32 hex digits, as `plexus call --verbose` prints it; upper or
            lower case; not all zero, which W3C reserves for "no trace") or a W3C traceparent,
            whose trace id is taken. Each line is a span: its kind (client, route, wait,
            handle, reply, run, step, attempt), its name, who did it, when it began after the
            trace's first span, how long it took, and its status when not OK. Without ID,
            lists the most recent traces, oldest first (the newest last, as `plexus events`).
            A trace the host no longer holds (its ring overwrote it) exits 1.
            """)

    @Argument(help: "A trace id (32 hex digits) or traceparent.") var id: String?
    @Option(name: .long, parsing: .unconditional, help: "List the N most recent traces (default 20 when no ID is given).") var last: Int?
    @Flag(name: .long, help: "Print JSON instead of text.") var json = false
    @OptionGroup var options: ConnectionOptions

    func validate() throws {
        if id != nil && last != nil { throw ValidationError("give a trace ID or --last N, not both") }
        if let last, !(1...10_000).contains(last) { throw ValidationError("--last must be from 1 to 10000, got \(last)") }
        if let id, TraceCommand.traceID(id) == nil {
            if id.count == 32, id.allSatisfy({ $0 == "0" }) {
                throw ValidationError("'\(id)' is not a valid trace id: the all-zero id means \"no trace\" (W3C Trace Context)")
            }
            throw ValidationError("'\(id.prefix(80))' is not a trace id: expected 32 hex digits or a traceparent 00-<32 hex>-<16 hex>-<2 hex>")
        }
    }

    static func traceID(_ s: String) -> plexus_id? {
        if let tp = try? TraceParent(parsing: s) { return tp.trace }
        guard s.count == 32, s.allSatisfy(\.isHexDigit), let id = plexus_id(hex: s.lowercased()), !id.isNone else { return nil }
        return id
    }

    func run() throws {
        bootstrapLogging(default: .error)
        let c = try options.hostForState()
        if let id, let trace = TraceCommand.traceID(id) {
            let report: TraceReport = try decode(ask(c, "plexus.trace.get", .object(["trace": .string(trace.hex)])))
            guard !report.spans.isEmpty else {
                let s = report.status
                throw CLIError(s.enabled
                    ? "no spans of trace \(trace.hex) are recorded in the host: never seen, or overwritten (its ring keeps the latest \(s.capacity) records; \(s.dropped) dropped so far)"
                    : "tracing is off in the host (plexus.yaml: tracing: { enabled: false })")
            }
            if json { print(try prettyJSON(report)); return }
            print(TraceCommand.render(report))
            return
        }
        let listing: TraceListing = try decode(ask(c, "plexus.trace.list", .object(["last": .int(Int64(last ?? 20))])))
        if json { print(try prettyJSON(listing)); return }
        let s = listing.status
        guard s.enabled else { print("tracing is off in the host (plexus.yaml: tracing: { enabled: false })"); return }
        // A record is one routed message (its route, wait and handle spans) or one other span.
        print("\(s.recorded) record(s) since start, \(s.dropped) dropped (overwritten by newer ones: the ring keeps \(s.capacity)); oldest trace first")
        for t in listing.traces {
            let at = Date(timeIntervalSince1970: Double(t.start_unix_ns) / 1e9).formatted(.iso8601)
            print("\(t.trace)  \(at)  \(pad(TraceTree.duration(t.duration_ns), 10))  \(pad("\(t.spans) spans", 9))  \(t.root)")
        }
    }

    private func decode<T: Decodable>(_ v: JSONValue) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(v.text.utf8)) }
        catch { throw CLIError("the host's answer could not be read: \(error)") }
    }

    /// The tree: one span a line, indented under its parent, in start order.
    static func render(_ r: TraceReport) -> String {
        let rows = TraceTree.ordered(r.spans)
        let start = r.spans.map(\.start_unix_ns).min() ?? 0
        let end = r.spans.map { $0.start_unix_ns + $0.duration_ns }.max() ?? start
        var lines = ["trace \(r.trace): \(r.spans.count) spans, \(TraceTree.duration(end - start))"]
        // An attempt's number is part of its name ("attempt fetch #2"): the last column is the status.
        let labels = rows.map { String(repeating: "  ", count: $0.depth) + ($0.span.kind == $0.span.name ? $0.span.kind : "\($0.span.kind) \($0.span.name)")
                                + ($0.span.attempt.map { " #\($0)" } ?? "") }
        let width = min(60, labels.map(\.count).max() ?? 0)
        for (i, (_, s)) in rows.enumerated() {
            let who = s.kind == "route" && !s.sender.isEmpty ? "\(s.sender) → \(s.agent.isEmpty ? "caller" : s.agent)"
                : s.agent.isEmpty ? "caller" : s.agent
            var line = "\(pad(labels[i], width))  \(pad(who, 28))  +\(pad(TraceTree.duration(s.start_unix_ns - start), 10)) \(pad(TraceTree.duration(s.duration_ns), 10))"
            if s.status != "OK" { line += "  \(s.status)" }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}

private func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
