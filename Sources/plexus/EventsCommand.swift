import ArgumentParser
import FoundationEssentials
import Glibc
import PlexusCore
import PlexusSocket

/// `plexus events`: the running host's event log, and with --follow, what
/// happens next as it happens.
struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "The event log: tasks queued, started, completed, retried, dead-lettered; agents started, crashed, restarted, and what operators did to them (stopped, suspended, resumed, drained).",
        discussion: """
            Without --follow, prints the latest events and exits. Events are kept in the host's store (plexus.db). \
            With --cluster (a host started with --nats, on a NATS server with JetStream), every host's events from the \
            cluster's stream PLEXUS_<cluster>_EVENTS, in order per host, each line starting with its node: --last N \
            is the newest N of each host, and --after a sequence number of that stream.
            """)

    @Flag(help: "Keep printing new events until interrupted.") var follow = false
    @Flag(help: "One JSON object per line.") var json = false
    @Option(parsing: .unconditional, help: "Print events after this sequence number (default: the latest --last).") var after: Int?
    @Option(parsing: .unconditional, help: "Without --after: how many of the latest to print first.") var last = 20
    @Option(help: "Only events whose kind starts with this (task., agent., workflow.).") var kind: String?
    @Flag(help: "Every host of the cluster, from its JetStream event stream, through this host (plexus run --nats).") var cluster = false
    @OptionGroup var options: ConnectionOptions

    func run() throws {
        bootstrapLogging(default: .error)
        let c = try options.hostForState()
        var args: [String: JSONValue] = kind.map { ["kind": .string($0)] } ?? [:]
        var cursor = Int64(after ?? 0)
        guard last >= 0 else { throw CLIError("--last must be 0 or more, not \(last)", code: ExitStatus.usage) }
        if cluster { return try runCluster(c, args, after: cursor) }
        if after == nil {   // the newest `last` first
            // --last 0 prints none of them, but must still start after the newest.
            args["last"] = .int(Int64(max(last, 1)))
            let newest = try ask(c, "plexus.events", .object(args))
            cursor = last == 0 ? Self.lastSeq(newest) ?? 0 : show(newest, after: cursor).cursor
            args["last"] = nil
            guard follow else { return }
        }
        args["limit"] = .int(1000)
        while true {
            args["after"] = .int(cursor)
            let (next, count) = show(try ask(c, "plexus.events", .object(args)), after: cursor)
            cursor = next
            if count < 1000 {
                guard follow else { return }
                usleep(200_000)
            }
        }
    }

    /// --cluster: pages of the cluster's stream through the host's plexus.events.cluster; the cursor is a stream sequence.
    private func runCluster(_ c: SocketClient, _ base: [String: JSONValue], after: Int64) throws {
        var args = base
        var cursor = after
        if self.after == nil {
            args["last"] = .int(Int64(last))
            let newest = try askCluster(c, .object(args))
            cursor = show(newest, cursor: cursor)
            if case .bool(false)? = newest["complete"] {
                FileHandleErr.note("plexus: some hosts' older events were not looked for: only the newest \(10_000) events of the stream are read back")
            }
            args["last"] = nil
            guard follow else { return }
        }
        args["limit"] = .int(1000)
        while true {
            args["after"] = .int(cursor)
            let next = show(try askCluster(c, .object(args)), cursor: cursor)
            if next == cursor {
                guard follow else { return }
                usleep(200_000)
            }
            cursor = next
        }
    }

    private func askCluster(_ c: SocketClient, _ args: JSONValue) throws -> JSONValue {
        let reply: Envelope
        do throws(PlexusError) {
            reply = try c.call(Envelope(kind: .query, target: .capability("plexus.events.cluster"), payload: Array(args.text.utf8)), timeoutMs: 30_000)
        } catch {
            if error.status == PLEXUS_NO_SUCH_CAPABILITY.status {
                throw CLIError("the host at \(options.socketPath) is not part of a cluster: start it with `plexus run --nats nats://HOST:PORT` (or nats.url in plexus.yaml) for --cluster")
            }
            throw CLIError("\(error.name): \(error.detail)", code: error.status == PLEXUS_SHUTTING_DOWN.status ? ExitStatus.noHost : ExitStatus.failed)
        }
        return (try? JSONValue.parse(reply.payload)) ?? .null
    }

    /// Prints a page of the cluster's events (node first); the stream sequence to go on after.
    private func show(_ page: JSONValue, cursor: Int64) -> Int64 {
        if case .array(let events)? = page["events"] {
            for e in events { print(json ? e.text : "\(str(e["node"]))  \(line(e))") }
            fflush(nil)
        }
        if case .int(let n)? = page["cursor"] { return n }
        return cursor
    }

    static func lastSeq(_ page: JSONValue) -> Int64? {
        guard case .array(let events) = page, case .int(let n)? = events.last?["seq"] else { return nil }
        return n
    }

    /// Prints the events; the last sequence number seen and how many there were.
    private func show(_ page: JSONValue, after cursor: Int64) -> (cursor: Int64, count: Int) {
        guard case .array(let events) = page else { return (cursor, 0) }
        var last = cursor
        for e in events {
            if case .int(let n)? = e["seq"] { last = n }
            print(json ? e.text : line(e))
        }
        fflush(nil)
        return (last, events.count)
    }

    private func line(_ e: JSONValue) -> String {
        var at = "-"
        if case .int(let ns)? = e["at_unix_ns"] {
            at = Date(timeIntervalSince1970: Double(ns) / 1e9).formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        }
        var details: [String] = []
        if case .object(let d)? = e["data"] { for k in d.keys.sorted() where d[k] != .null { details.append("\(k)=\(str(d[k]))") } }
        return "\(str(e["seq"]))  \(at)  \(str(e["kind"]))  \(str(e["subject"]))  \(details.joined(separator: " "))"
    }
}
