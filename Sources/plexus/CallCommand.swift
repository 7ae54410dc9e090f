import ArgumentParser
import FoundationEssentials
import Glibc
import PlexusCore
import PlexusHost
import PlexusSocket
import PlexusThreads

struct CallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call a capability or agent and print its reply, or publish to a topic.",
        discussion: """
            TARGET is a capability name (echo), agent:NAME, or topic:SUBJECT.
            The reply's payload is printed on stdout as is; an error is printed on
            stderr and the exit status is 1 (2 for a usage error, 3 when the running host goes away before it answers).
            With --stream, each partial answer of a streaming reply is printed on its own
            line as it arrives, before the final answer. Ctrl-C cancels the request: the
            agent handling it is told, and the exit status is 130 (a second Ctrl-C quits at once).
            """)

    @Argument(help: "capability | agent:NAME | topic:SUBJECT") var target: String
    @Option(name: .long, help: "The payload, as JSON text.") var json: String?
    @Option(name: .long, help: "Read the payload from this file (- for stdin).") var file: String?
    @Option(name: .long, help: "The payload's content type (default: application/json, or text/plain with --file).")
    var contentType: String?
    @Option(name: .long, parsing: .unconditional, help: "Seconds to wait for the reply.") var timeout: Double = 30
    @Flag(name: .long, help: "Indent a JSON reply for reading.") var pretty = false
    @Flag(name: .long, help: "Print each partial answer of a streaming reply on its own line as it arrives, then the final answer.")
    var stream = false
    @Flag(name: .shortAndLong, help: "Print the request's trace id on stderr, with `plexus trace ID` when the running host records it.") var verbose = false
    @Option(name: .long, help: "Join this W3C trace: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>.") var traceparent: String?
    @OptionGroup var options: HostOptions

    func validate() throws {
        if json != nil && file != nil { throw ValidationError("give the payload with --json or --file, not both") }
        if !(timeout > 0 && timeout <= 86_400) { throw ValidationError("--timeout must be more than 0 and at most 86400 seconds, not \(timeout)") }
        if let traceparent {
            let r: Result<TraceParent, PlexusError> = Result { () throws(PlexusError) in try TraceParent(parsing: traceparent) }
            if case .failure(let e) = r { throw ValidationError("--traceparent: \(e.detail)") }
        }
        if let json, (try? JSONValue.parse(Array(json.utf8))) == nil {
            throw ValidationError("--json is not valid JSON: \(json.prefix(80))")
        }
    }

    func run() throws {
        bootstrapLogging(default: .error)
        let payload: [UInt8]
        if let file { payload = try readPayload(file) } else { payload = Array((json ?? "").utf8) }
        let t = Target(parsing: target)
        let kind: MessageKind = if case .topic = t { .event } else { .query }
        var env = Envelope(kind: kind, target: t, payload: payload,
                           contentType: contentType ?? (file != nil ? "text/plain" : "application/json"))
        // The trace is chosen here, so it can be named before the answer comes.
        env = env.carrying(try traceparent.map { try TraceParent(parsing: $0) }
                           ?? TraceParent(trace: plexus_id(hi: .random(in: 1...UInt64.max), lo: .random(in: 1...UInt64.max)), parent: 0))
        if kind == .event { env.correlationID = .none }
        let timeoutMs = Int64(timeout * 1000)
        let interrupt = kind == .query ? CallInterrupt() : nil
        do {
            if let client = try options.runningHost() {
                FileHandleErr.note("plexus: calling through the running host at \(options.socketPath)")
                if verbose {
                    let listing = try? JSONDecoder().decode(TraceListing.self, from: Data(ask(client, "plexus.trace.list", .object(["last": .int(1)])).text.utf8))
                    noteTrace(env.traceID, followable: listing?.status.enabled == true,
                              why: listing == nil ? "the host did not say whether it records traces" : "tracing is off in the host")
                }
                try failing(known: { try? JSONDecoder().decode([AgentReport].self, from: Data(ask(client, "plexus.agents", .null).text.utf8)) },
                            peers: { (try? ClusterReport.ask(options.connection))?.0.nodes.filter { $0.state == "up" }.flatMap(\.agents) ?? [] }) {
                    let c = UncheckedSendable(value: client)
                    try perform(env, timeoutMs: timeoutMs, send: client.send) { env, timeoutMs, onPartial in
                        try client.stream(env, timeoutMs: timeoutMs, started: { id in
                            interrupt?.started(id) { try? c.value.cancel($0) }
                        }, onPartial: onPartial)
                    }
                }
            } else {
                options.announceEmbedded()
                let host = try options.embeddedHost()
                defer { host.shutdown() }
                if verbose { noteTrace(env.traceID, followable: false, why: "an embedded host: its spans are gone when this command ends") }
                try failing(known: { host.agentReports }, refused: { host.pluginReports.filter { $0.status == "refused" } }) {
                    try perform(env, timeoutMs: timeoutMs, send: { try host.send($0) }) { env, timeoutMs, onPartial in
                        try Self.embeddedStream(host, env, timeoutMs: timeoutMs, interrupt: interrupt, onPartial: onPartial)
                    }
                }
            }
        } catch let e as PlexusError {
            FileHandleErr.note("plexus call \(target): \(e.name): \(e.detail)")
            throw ExitCode(e.is(.CANCELLED) ? ExitStatus.interrupted : ExitStatus.failed)
        }
    }

    /// A query to the embedded host, answered as a stream: partials to
    /// onPartial on this thread, in order, then the final answer.
    private static func embeddedStream(_ host: Host, _ env: Envelope, timeoutMs: Int64, interrupt: CallInterrupt?,
                                       onPartial: (Envelope) -> Void) throws -> Envelope {
        let answers = ConditionLock()
        nonisolated(unsafe) var queue: [Envelope] = []
        let id = try host.requestStream(env, timeoutMs: timeoutMs) { a in answers.withLock { queue.append(a); answers.signal() } }
        interrupt?.started(id) { try? host.cancel($0, by: "plexus call (Ctrl-C)") }
        while true {
            let next = answers.withLock { () -> [Envelope] in
                while queue.isEmpty { answers.wait() }
                defer { queue.removeAll() }
                return queue
            }
            for a in next {
                if a.isPartial { onPartial(a); continue }
                if a.kind == .error { throw Host.error(from: a) }
                return a
            }
        }
    }

    /// Names the request's trace on stderr (every answer carries it), and
    /// suggests `plexus trace ID` only where that can show it.
    private func noteTrace(_ trace: plexus_id, followable: Bool, why: String) {
        FileHandleErr.note(followable ? "plexus: trace \(trace.hex) (plexus trace \(trace.hex))"
                                      : "plexus: trace \(trace.hex) (not recorded: \(why))")
    }

    /// Runs body; a call to a name nobody has gets "did you mean" with the
    /// closest name among the host's agents and capabilities, and, from an
    /// embedded host, why each refused plugin was refused (a missing worker
    /// helper refuses them all, and would otherwise read as a typo).
    /// In a cluster, `peers` adds the other hosts' agents to the names looked through.
    private func failing(known: () -> [AgentReport]?, refused: () -> [PluginReport] = { [] },
                         peers: () -> [ClusterReport.Agent] = { [] }, _ body: () throws -> Void) throws {
        do { try body() } catch let e as PlexusError where e.is(.NO_SUCH_CAPABILITY) || e.is(.NO_SUCH_AGENT) {
            let reports = known() ?? []
            let others = peers()
            let t = Target(parsing: target)
            let names = e.is(.NO_SUCH_AGENT) ? reports.map(\.name) + others.map(\.name)
                                             : reports.flatMap(\.capabilities) + others.flatMap(\.capabilities)
            var hint = "`plexus agents` lists what the host has"
            if let close = Suggestion.closest(to: t.name, among: names.sorted()) {
                hint = "did you mean \(e.is(.NO_SUCH_AGENT) ? "agent:" : "")\(close)? (\(hint))"
            }
            for r in refused() { hint += "\n  refused \(r.file): \(r.error ?? "") \(r.reason ?? "")" }
            FileHandleErr.note("plexus call \(target): \(e.name): \(e.detail); \(hint)")
            throw ExitCode(ExitStatus.failed)
        }
    }

    private func perform(_ env: Envelope, timeoutMs: Int64,
                         send: (Envelope) throws -> plexus_id,
                         call: (Envelope, Int64, (Envelope) -> Void) throws -> Envelope) throws {
        if env.kind == .event {
            let id = try send(env)
            print(JSONValue.object(["published": .string(env.target.name), "id": .string(id.hex)]).text)
            return
        }
        let reply = try call(env, timeoutMs) { partial in
            guard stream else { return }   // without --stream only the final answer is printed
            var line = partial.payload
            if line.last != UInt8(ascii: "\n") { line.append(UInt8(ascii: "\n")) }
            FileHandleErr.write(line, to: STDOUT_FILENO)
        }
        if pretty, let value = try? JSONValue.parse(reply.payload), let text = try? prettyJSON(value) {
            print(text)
            return
        }
        FileHandleErr.write(reply.payload, to: STDOUT_FILENO)
        if reply.payload.last != UInt8(ascii: "\n") && isatty(STDOUT_FILENO) != 0 { print() }
    }

    private func readPayload(_ path: String) throws -> [UInt8] {
        let fd = path == "-" ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError("--file \(path): \(String(cString: strerror(errno)))", code: ExitStatus.usage) }
        defer { if fd != STDIN_FILENO { close(fd) } }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw CLIError("--file \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            out += buf[0..<n]
        }
        return out
    }
}

enum FileHandleErr {
    static func note(_ s: String) { write(Array((s + "\n").utf8), to: STDERR_FILENO) }

    static func write(_ bytes: [UInt8], to fd: Int32) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { if errno == EINTR { continue }; return }
            off += n
        }
    }
}
