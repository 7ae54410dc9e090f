import ArgumentParser
import FoundationEssentials
import PlexusCore
import PlexusSocket

/// What `plexus.nodes` answers (PlexusCluster's ClusterNode.report).
struct ClusterReport: Codable {
    struct Agent: Codable { var name: String; var state: String; var load: Int; var capabilities: [String] }
    struct Node: Codable { var node: String; var address: String; var state: String; var heartbeat_age_ms: Int; var agents: [Agent] }
    struct Picks: Codable { var local: Int; var remote: Int }
    struct Outbox: Codable { var messages: Int; var bytes: Int; var max_messages: Int; var max_bytes: Int }
    var node: String
    var cluster: String
    var url: String
    var connected: Bool
    var requests_in_flight: Int
    /// The NATS connection ("connected", "reconnecting"…) and the server it is on.
    var nats_state: String?
    var nats_server: String?
    /// Cross-host sends held while NATS is down.
    var outbox: Outbox?
    var capability_picks: Picks
    var nodes: [Node]
    /// The event log on JetStream (EventStream.swift): this host's events published, lost, and why it cannot publish.
    struct Events: Codable { var stream: String; var published: Int; var lost: Int; var last_seq: Int; var problem: String? }
    var events: Events?

    /// Asks the running host; a host without --nats says how to start one with it.
    static func ask(_ options: ConnectionOptions) throws -> (ClusterReport, [UInt8]) {
        let c = try options.hostForState()
        let reply: Envelope
        do throws(PlexusError) {
            reply = try c.call(Envelope(kind: .query, target: .capability("plexus.nodes")), timeoutMs: 10_000)
        } catch {
            if error.status == PLEXUS_NO_SUCH_CAPABILITY.status {
                throw CLIError("the host at \(options.socketPath) is not part of a cluster: start it with `plexus run --nats nats://HOST:PORT` (or nats.url in plexus.yaml)")
            }
            throw CLIError("\(error.name): \(error.detail)", code: error.status == PLEXUS_SHUTTING_DOWN.status ? ExitStatus.noHost : ExitStatus.failed)
        }
        do { return (try JSONDecoder().decode(ClusterReport.self, from: Data(reply.payload)), reply.payload) }
        catch { throw CLIError("the host's plexus.nodes answer is not what this plexus reads: \(error)") }
    }
}

/// `plexus nodes`: the hosts of the running host's cluster.
struct NodesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodes",
        abstract: "The hosts of the running host's NATS cluster: node, address, agents, age of the last heartbeat, state.",
        discussion: """
            Asks the host started by `plexus run --nats URL` over its socket. STATE is self (this host), up \
            (heard within 3 s) or gone (silent for 3 s, or shut down: dropped from routing; listed for a minute). \
            The last line gives the NATS connection's state and the server it is on, the outbox (cross-host \
            sends held while NATS is down, sent in order when it is back; nats.outbox bounds it), and counts capability calls this host kept on a local provider (one had spare capacity) \
            and those it sent to another host.
            """)

    @OptionGroup var options: ConnectionOptions
    @Flag(name: .long, help: "Print the host's JSON answer instead of a table.") var json = false

    func run() throws {
        bootstrapLogging(default: .error)
        let (r, raw) = try ClusterReport.ask(options)
        if json { print(String(decoding: raw, as: UTF8.self)); return }
        let rows = [["NODE", "STATE", "AGENTS", "HEARTBEAT AGE", "ADDRESS"]] + r.nodes.map {
            [$0.node, $0.state, "\($0.agents.count)", $0.state == "self" ? "-" : String(format: "%.1fs", Double($0.heartbeat_age_ms) / 1000), $0.address]
        }
        printColumns(rows)
        print("cluster \(r.cluster) at \(r.url); "
              + "NATS \(r.nats_state ?? (r.connected ? "connected" : "reconnecting"))\(r.nats_server.map { $0.isEmpty ? "" : " to \($0)" } ?? ""); "
              + (r.outbox.map { "outbox \($0.messages) of \($0.max_messages) messages (\($0.bytes) of \($0.max_bytes) bytes); " } ?? "")
              + "capability calls kept here \(r.capability_picks.local), sent to other hosts \(r.capability_picks.remote); "
              + "requests waiting on other hosts \(r.requests_in_flight)")
        if let e = r.events {
            print("event stream \(e.stream): \(e.published) of this host's events published (up to seq \(e.last_seq)), \(e.lost) lost"
                  + (e.problem.map { "; not publishing now: \($0)" } ?? ""))
        }
    }
}
