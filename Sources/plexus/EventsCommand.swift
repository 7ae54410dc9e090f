import ArgumentParser
import FoundationEssentials
import Glibc
import PlexusCore

/// `plexus events`: the running host's event log, and with --follow, what
/// happens next as it happens.
struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "The event log: tasks queued, started, completed, retried, dead-lettered; agents started, crashed, restarted.",
        discussion: "Without --follow, prints the latest events and exits. Events are kept in the host's store (plexus.db).")

    @Flag(help: "Keep printing new events until interrupted.") var follow = false
    @Flag(help: "One JSON object per line.") var json = false
    @Option(help: "Print events after this sequence number (default: the latest --last).") var after: Int?
    @Option(help: "Without --after: how many of the latest to print first.") var last = 20
    @Option(help: "Only events whose kind starts with this (task., agent., workflow.).") var kind: String?
    @OptionGroup var options: HostOptions

    func run() throws {
        bootstrapLogging(default: .error)
        let c = try options.hostForState()
        var cursor = Int64(after ?? 0)
        if after == nil {   // start at the latest `last`
            var newest: Int64 = 0
            while case .array(let page) = try ask(c, "plexus.events", .object(["after": .int(newest), "limit": .int(10_000)])),
                  let seq = page.last?["seq"], case .int(let n) = seq { newest = n; if page.count < 10_000 { break } }
            cursor = max(0, newest - Int64(last))
        }
        repeat {
            guard case .array(let page) = try ask(c, "plexus.events", .object(["after": .int(cursor), "limit": .int(1000)])) else { return }
            for e in page {
                if case .int(let n)? = e["seq"] { cursor = n }
                if let kind, !str(e["kind"]).hasPrefix(kind) { continue }
                print(json ? e.text : line(e))
            }
            fflush(nil)
            if page.count < 1000 && follow { usleep(200_000) }
        } while follow
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
