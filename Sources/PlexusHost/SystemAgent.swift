import FoundationEssentials
import PlexusCore

/// The host itself as an agent named "plexus": clients of a running host ask
/// it what is loaded through the same envelopes as any other call.
struct SystemAgent: BuiltinBehavior {
    static let name = "plexus"
    unowned(unsafe) let host: Host

    var capabilities: [PluginDescriptor.Capability] {
        [.init(name: "plexus.plugins", description: "every plugin file, loaded or refused", input: nil, output: "JSON array"),
         .init(name: "plexus.agents", description: "every agent's state and counters", input: nil, output: "JSON array"),
         .init(name: "plexus.deadletters", description: "the most recent dead letters", input: nil, output: "JSON array"),
         .init(name: "plexus.audit", description: "the most recent permission refusals", input: nil,
               output: "JSON object: total, recent (oldest first)")]
    }

    func handle(_ m: Message, agent: Agent, router: Router) -> plexus_status {
        let env = m.envelope
        guard env.kind == .query else { return 0 }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body: Data?
        switch env.target.name {
        case "plexus.plugins": body = try? encoder.encode(host.pluginReports)
        case "plexus.agents": body = try? encoder.encode(host.agentReports)
        case "plexus.deadletters": body = try? encoder.encode(host.deadLetterReports)
        case "plexus.audit":
            let a = host.auditEvents
            body = try? encoder.encode(AuditReport(total: a.total, recent: a.recent))
        default: return PLEXUS_UNSUPPORTED.status
        }
        let reply = Envelope(kind: .response, target: .reply, payload: Array(body ?? Data("[]".utf8)),
                             correlationID: env.id)
        reply.withCEnvelope { r in _ = try? router.reply(r, from: HostTable.origin(agent)) }
        return 0
    }
}
