import PlexusCore

/// Capabilities the host's own Swift code provides (the task scheduler,
/// the key-value store), reached like any agent's. A handler may answer
/// later, from any thread, so it never holds a dispatcher thread while it
/// waits for the disk.
struct ServiceBehavior: BuiltinBehavior {
    let capabilities: [PluginDescriptor.Capability]
    let handler: @Sendable (Envelope, @escaping @Sendable (Result<JSONValue, PlexusError>) -> Void) -> Void

    func handle(_ m: Message, agent: Agent, router: Router) -> plexus_status {
        let env = m.envelope
        guard env.kind == .query else { return PLEXUS_UNSUPPORTED.status }
        let id = env.id
        handler(env) { result in ServiceBehavior.answer(result, to: id, from: agent, router: router) }
        return 0
    }

    /// Answers request `id` as `agent`: the JSON value, or the error as
    /// {"error": NAME, "message": ...} with its status.
    static func answer(_ result: Result<JSONValue, PlexusError>, to id: plexus_id, from agent: Agent, router: Router) {
        let reply: Envelope
        switch result {
        case .success(let v):
            reply = Envelope(kind: .response, target: .reply, payload: Array(v.text.utf8), contentType: "application/json", correlationID: id)
        case .failure(let e):
            reply = Envelope(kind: .error, target: .reply,
                             payload: Array(JSONValue.object(["error": .string(e.name), "message": .string(e.detail)]).text.utf8),
                             contentType: "application/json", correlationID: id, status: e.status)
        }
        reply.withCEnvelope { r in _ = try? router.reply(r, from: HostTable.origin(agent)) }
    }
}

extension Host {
    /// Adds an agent named `name` whose capabilities the host's own code
    /// answers: `handle` gets each query and calls its completion once, with
    /// a JSON answer or an error. Names start with "plexus".
    public func provide(name: String, capabilities: [(name: String, description: String)],
                        handle: @escaping @Sendable (Envelope, @escaping @Sendable (Result<JSONValue, PlexusError>) -> Void) -> Void)
        throws(PlexusError) {
        let caps = capabilities.map { PluginDescriptor.Capability(name: $0.name, description: $0.description, input: "JSON object", output: "JSON") }
        let a = Agent(name: name, behavior: .builtin(ServiceBehavior(capabilities: caps, handler: handle)),
                      capabilities: caps.map(\.name), exports: [], mailboxCapacity: configuration.mailboxCapacity)
        a.router = router
        a.state = .active
        try registry.attach(a, byHost: true)
    }

    /// How many messages the healthy providers of a capability may handle
    /// at once (their concurrency summed).
    public func capacity(of capability: String) -> Int {
        registry.providers(of: capability).filter { $0.state == .active }
            .reduce(0) { $0 + ($1.link?.policy.concurrency ?? $1.concurrency) }
    }

    /// How many more messages its healthy providers could start now: each
    /// one's concurrency less what it holds already (queued or running, for
    /// any capability and from any sender). What the scheduler fills.
    public func spareCapacity(of capability: String) -> Int {
        registry.providers(of: capability).filter { $0.state == .active }
            .reduce(0) { $0 + max(0, ($1.link?.policy.concurrency ?? $1.concurrency) - $1.load.load(ordering: .relaxed)) }
    }
}

extension Host {
    /// Why nothing can take a call to `capability` now, or nil when an
    /// active agent provides it: what a task or a workflow step waiting for
    /// it shows ("no agent provides data.colect").
    public func whyUnprovided(_ capability: String) -> String? {
        let all = registry.providers(of: capability)
        if all.isEmpty { return "no agent provides \(capability)" }
        if all.contains(where: { $0.state == .active }) { return nil }
        let states = all.map { "\($0.name): \($0.state.rawValue)" }.sorted().joined(separator: ", ")
        return "no agent providing \(capability) is active (\(states))"
    }

    /// Every capability an agent provides now, plugins', clients' and the host's own.
    public var capabilityNames: [String] { registry.capabilityNames }
}
