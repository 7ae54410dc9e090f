import ArgumentParser
import FoundationEssentials
import PlexusCore
import PlexusHost
import PlexusSocket

/// `plexus agents`: what the running host's agents are doing, asked over its socket.
struct AgentsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents",
        abstract: "Every agent of the running host: state, worker pid, restarts, last exit, mailbox and in-flight counts.",
        discussion: "Asks the host started by `plexus run` over its socket. With --embedded, shows a freshly started host instead.")

    @OptionGroup var options: HostOptions
    @Flag(name: .long, help: "Print a JSON array instead of a table.") var json = false

    func run() throws {
        bootstrapLogging(default: .error)
        let reports = try options.ask("plexus.agents", fallback: false) { $0.agentReports }
        if json { print(try prettyJSON(reports)) } else { printTable(reports) }
    }

    private func printTable(_ rs: [AgentReport]) {
        let rows = [["NAME", "VERSION", "STATE", "KIND", "PID", "CIRCUIT", "RESTARTS", "LAST EXIT", "QUEUED", "IN FLIGHT", "HANDLED", "FAILED"]] + rs.map {
            [$0.name, $0.version ?? "-", $0.state, $0.kind, $0.pid.map(String.init) ?? "-", $0.circuit ?? "-", "\($0.restarts)", $0.last_exit ?? "-",
             "\($0.queued)", "\($0.in_flight)", "\($0.handled)", "\($0.failed)"]
        }
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        for r in rows {
            let line = r.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
            print(line.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression))
        }
        // The warm pool (defaults.warm_workers): workers started and waiting for the agents' policies.
        // Agents of one policy share their warm workers.
        let warm = rs.compactMap { r in r.warm_workers.map { "\(r.name) \($0)" } }
        if !warm.isEmpty { print("warm workers ready for a restart or a new instance: \(warm.joined(separator: ", "))") }
    }
}
