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
         .init(name: "plexus.audit", description: "the most recent permission refusals and operator actions", input: nil,
               output: "JSON object: total, recent (oldest first), actions (oldest first)"),
         .init(name: "plexus.trace.get", description: "one trace's spans in start order: {\"trace\": 32 hex digits}", input: "JSON object",
               output: "JSON object: trace, spans"),
         .init(name: "plexus.trace.list", description: "the most recent traces: {\"last\": N} (default 20)", input: "JSON object",
               output: "JSON object: status, traces (oldest first)"),
         .init(name: "plexus.plugins.reload", description: "load, upgrade or unload a plugin from its file: {\"target\": NAME or FILE}",
               input: "JSON object", output: "JSON object: file, plugin, version, previous, outcome"),
         .init(name: "plexus.plugins.unload", description: "drain and stop a plugin's agents: {\"target\": NAME or FILE}",
               input: "JSON object", output: "JSON object: file, plugin, version, outcome")]
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
            body = try? encoder.encode(AuditReport(total: a.total, recent: a.recent, actions: host.controlRecords))
        case "plexus.plugins.reload", "plexus.plugins.unload":
            reloadCommand(env, agent: agent, router: router)   // answered from the reload thread
            return 0
        case "plexus.trace.get", "plexus.trace.list":
            switch traceQuery(env) {
            case .success(let data): body = data
            case .failure(let e):
                let err = Envelope(kind: .error, target: .reply,
                                   payload: Array(JSONValue.object(["error": .string(e.name), "message": .string(e.detail)]).text.utf8),
                                   correlationID: env.id, status: e.status)
                err.withCEnvelope { r in _ = try? router.reply(r, from: HostTable.origin(agent)) }
                return 0
            }
        default: return PLEXUS_UNSUPPORTED.status
        }
        let reply = Envelope(kind: .response, target: .reply, payload: Array(body ?? Data("[]".utf8)),
                             correlationID: env.id)
        reply.withCEnvelope { r in _ = try? router.reply(r, from: HostTable.origin(agent)) }
        return 0
    }
}

extension SystemAgent {
    /// plexus.trace.get {"trace": HEX} and plexus.trace.list {"last": N}.
    func traceQuery(_ env: Envelope) -> Result<Data, PlexusError> {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let args: [String: JSONValue]
        switch try? JSONValue.parse(env.payload) {
        case .object(let o)?: args = o
        case .null?, nil where env.payload.isEmpty: args = [:]
        default: return .failure(PlexusError(.INVALID_ARGUMENT, "\(env.target.name): the payload must be a JSON object"))
        }
        if env.target.name == "plexus.trace.list" {
            var last = 20
            if let v = args["last"] {
                guard case .int(let n) = v, n >= 1, n <= 10_000 else {
                    return .failure(PlexusError(.INVALID_ARGUMENT, "plexus.trace.list: \"last\" must be a whole number from 1 to 10000"))
                }
                last = Int(n)
            }
            return (try? encoder.encode(host.recentTraces(last: last))).map { .success($0) }
                ?? .failure(PlexusError(.INTERNAL, "plexus.trace.list: the listing could not be encoded"))
        }
        guard case .string(let hex)? = args["trace"], let id = plexus_id(hex: hex.lowercased()), !id.isNone else {
            return .failure(PlexusError(.INVALID_ARGUMENT, "plexus.trace.get: \"trace\" must be a trace id of 32 hex digits"))
        }
        let report = host.trace(id)   // no spans: the CLI says why (never seen, overwritten, tracing off)
        return (try? encoder.encode(report)).map { .success($0) }
            ?? .failure(PlexusError(.INTERNAL, "plexus.trace.get: the trace could not be encoded"))
    }
}

extension SystemAgent {
    /// plexus.plugins.reload / .unload {"target": NAME or FILE}: answered
    /// once the reload thread has loaded and started (or refused) the file.
    func reloadCommand(_ env: Envelope, agent: Agent, router: Router) {
        let id = env.id
        let answer: @Sendable (Result<JSONValue, PlexusError>) -> Void = { r in
            ServiceBehavior.answer(r, to: id, from: agent, router: router)
        }
        guard case .object(let o)? = try? JSONValue.parse(env.payload), case .string(let target)? = o["target"], !target.isEmpty else {
            answer(.failure(PlexusError(.INVALID_ARGUMENT, "\(env.target.name): the payload must be {\"target\": \"NAME or FILE\"}")))
            return
        }
        if env.target.name == "plexus.plugins.reload" { host.reload(target, reply: answer) } else { host.unload(target, reply: answer) }
    }
}
