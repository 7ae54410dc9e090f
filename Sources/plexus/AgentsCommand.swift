import ArgumentParser
import FoundationEssentials
import PlexusCore
import PlexusHost
import PlexusSocket

/// `plexus agents`: what the running host's agents are doing, asked over
/// its socket; `plexus agents ACTION NAME` acts on one of them.
struct AgentsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents",
        abstract: "Every agent of the running host (state, worker pid, restarts, last exit, mailbox and in-flight counts, last operator action); or restart, stop, start, suspend, resume or drain one.",
        discussion: """
            Without an action, asks the host started by `plexus run` over its socket (with --embedded, \
            shows a freshly started host instead). The actions act on one plugin agent of the running \
            host; each is an event (`plexus events --kind agent.`) and is listed by `plexus audit`. \
            They are the host's capabilities plexus.agents.ACTION: the host's own user may call them \
            (unless clients.owner.grants narrows it); another client needs a grant in plexus.yaml, \
            `call: [plexus.agents.*]` for all six or the names of some.
            """,
        subcommands: [List.self, Restart.self, Stop.self, Start.self, Suspend.self, Resume.self, Drain.self],
        defaultSubcommand: List.self)
}

extension AgentsCommand {
struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Every agent of the running host: state, worker pid, restarts, last exit, mailbox and in-flight counts (the default).",
        discussion: "Asks the host started by `plexus run` over its socket. With --embedded, shows a freshly started host instead. "
            + "An agent another agent spawned shows its spawner under PARENT (\"parent\" in --json).")

    @OptionGroup var options: HostOptions
    @Flag(name: .long, help: "Print a JSON array instead of a table.") var json = false
    @Flag(name: .long, help: "Every host's agents in the running host's NATS cluster, with a NODE column (plexus run --nats).") var cluster = false

    func run() throws {
        bootstrapLogging(default: .error)
        if cluster { return try printCluster() }
        let reports = try options.ask("plexus.agents", fallback: false) { $0.agentReports }
        if json { print(try prettyJSON(reports)) } else { printTable(reports) }
    }

    /// One row per agent of every host heard (gone hosts' agents included, marked by the node's state).
    private func printCluster() throws {
        let (r, _) = try ClusterReport.ask(options.connection)
        let rows = r.nodes.flatMap { n in n.agents.map { a in (n, a) } }
        if json {
            let list: [JSONValue] = rows.map { n, a in
                .object(["node": .string(n.node), "node_state": .string(n.state), "name": .string(a.name), "state": .string(a.state),
                         "load": .int(Int64(a.load)), "capabilities": .array(a.capabilities.map { .string($0) })])
            }
            print(JSONValue.array(list).text)
            return
        }
        printColumns([["NODE", "NAME", "STATE", "LOAD", "CAPABILITIES", "NODE STATE"]] + rows.map { n, a in
            [n.node, a.name, a.state, "\(a.load)", a.capabilities.joined(separator: ","), n.state]
        })
    }

    private func printTable(_ rs: [AgentReport]) {
        let rows = [["NAME", "VERSION", "STATE", "KIND", "PID", "CIRCUIT", "RESTARTS", "LAST EXIT", "QUEUED", "IN FLIGHT", "HANDLED", "FAILED", "LAST ACTION", "PARENT"]] + rs.map {
            [$0.name, $0.version ?? "-", $0.state, $0.kind, $0.pid.map(String.init) ?? "-", $0.circuit ?? "-", "\($0.restarts)", $0.last_exit ?? "-",
             "\($0.queued)", "\($0.in_flight)", "\($0.handled)", "\($0.failed)", $0.last_action ?? "-", $0.parent ?? "-"]
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
}

// MARK: operator actions

/// One operator action on the running host's agent NAME; prints what it did.
private func operatorAct(_ action: OperatorAction, _ name: String, _ options: ConnectionOptions, json: Bool,
                 timeoutMs: Int64? = nil) throws {
    bootstrapLogging(default: .error)
    let c = try options.hostForState()
    var args: [String: JSONValue] = ["agent": .string(name)]
    if let timeoutMs { args["timeout_ms"] = .int(timeoutMs) }
    let reply: Envelope
    do throws(PlexusError) {
        // A stop waits out the host's shutdown grace, a drain its timeout too: room for both.
        reply = try c.call(Envelope(kind: .query, target: .capability(action.capability), payload: Array(JSONValue.object(args).text.utf8)),
                           timeoutMs: (timeoutMs ?? 30_000) + 60_000)
    } catch {
        throw CLIError("\(error.name): \(error.detail)", code: error.status == PLEXUS_SHUTTING_DOWN.status ? ExitStatus.noHost : ExitStatus.failed)
    }
    if json { print(reply.payloadString); return }
    let out = try JSONDecoder().decode(ControlOutcome.self, from: Data(reply.payload))
    print("\(out.agent): \(out.state) (\(out.detail)\(out.pid.map { "; worker pid \($0)" } ?? ""))")
}

/// What every operator action takes: the agent, --json, and the host to ask.
struct AgentTarget: ParsableArguments {
    @Argument(help: "The agent's name, as `plexus agents` lists it.") var name: String
    @Flag(name: .long, help: "Print the host's JSON answer.") var json = false
    @OptionGroup var options: ConnectionOptions

    func act(_ action: OperatorAction, timeoutMs: Int64? = nil) throws {
        try operatorAct(action, name, options, json: json, timeoutMs: timeoutMs)
    }
}

extension AgentsCommand {
    struct Restart: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop an agent, then start it again (a new worker, or init again); counted in its restarts.")
        @OptionGroup var target: AgentTarget
        func run() throws { try target.act(.restart) }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop an agent: no new mail (senders get SHUTTING_DOWN), what waits is handed back, what runs finishes within the shutdown grace, its worker exits; it is not restarted until `plexus agents start`.")
        @OptionGroup var target: AgentTarget
        func run() throws { try target.act(.stop) }
    }

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a stopped agent, or one its supervisor terminated after too many crashes: a new worker, or init again.")
        @OptionGroup var target: AgentTarget
        func run() throws { try target.act(.start) }
    }

    struct Suspend: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Suspend an agent: its mail queues (senders get MAILBOX_FULL once its mailbox is full) but none is handed to it until resume.")
        @OptionGroup var target: AgentTarget
        func run() throws { try target.act(.suspend) }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resume a suspended agent: what queued is delivered, in order.")
        @OptionGroup var target: AgentTarget
        func run() throws { try target.act(.resume) }
    }

    struct Drain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drain an agent: no new mail, everything queued and running finishes, then it stops (past --timeout it is stopped as `stop` does).")
        @OptionGroup var target: AgentTarget
        @Option(name: .long, parsing: .unconditional, help: "Seconds to wait for the drain before stopping what is left (default 30).") var timeout: Double = 30
        func validate() throws {
            guard timeout > 0, timeout <= 86_400 else { throw ValidationError("--timeout must be more than 0 and at most 86400 seconds, not \(timeout)") }
        }
        func run() throws { try target.act(.drain, timeoutMs: Int64(timeout * 1000)) }
    }
}
