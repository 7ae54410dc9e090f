import ArgumentParser
import FoundationEssentials
import PlexusHost

/// `plexus audit`: the permission refusals the running host recorded.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "The running host's most recent permission refusals (who tried what, and the grant it lacked) and operator actions.",
        discussion: """
            Every refusal is also published as an event on plexus.audit.denied, so a client
            granted subscribe on it can watch them live. Operator actions on agents
            (plexus agents stop NAME, ...) are listed after the refusals, done or refused,
            with who asked.
            """)

    @OptionGroup var options: HostOptions
    @Flag(name: .long, help: "Print JSON instead of a table.") var json = false

    func run() throws {
        bootstrapLogging(default: .error)
        let report = try options.ask("plexus.audit", fallback: false) { h in
            let a = h.auditEvents
            return AuditReport(total: a.total, recent: a.recent, actions: h.controlRecords)
        }
        if json { print(try prettyJSON(report)); return }
        print("\(report.total) refusal(s)\(report.total > report.recent.count ? ", the latest \(report.recent.count) shown" : "")")
        for e in report.recent {
            let at = Date(timeIntervalSince1970: Double(e.at_unix_ns) / 1e9).formatted(.iso8601)
            print("\(at)  \(e.holder)  \(e.action) \(e.name)\n    \(e.reason)")
        }
        let actions = report.actions ?? []
        if !actions.isEmpty { print("\(actions.count) operator action(s)") }
        for e in actions {
            let at = Date(timeIntervalSince1970: Double(e.at_unix_ns) / 1e9).formatted(.iso8601)
            print("\(at)  \(e.by)  agents \(e.action) \(e.agent)\n    \(e.outcome)")
        }
    }
}
