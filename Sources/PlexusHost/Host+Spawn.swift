import CPlexus
import Glibc
import PlexusCore
import PlexusSandbox
import PlexusThreads

/// Agents that spawn agents (plexus.h spawn/stop, ABI 1.2).
///
/// A child is a new agent of a loaded plugin, started with the config its
/// spawner gave and run as its own plugin's settings say (its own worker for
/// a sandboxed plugin, its own grants: never more than that plugin has).
/// It is reached by its agent name only: it does not join its plugin's
/// capability providers, so no caller's capability call lands on a helper
/// its spawner may stop at any moment (or that serves a config of the
/// spawner's choosing).
/// It is supervised as `plugins.SPAWNER.spawn.restart` says (temporary by
/// default) and linked to its spawner: the spawner's death, stop or unload
/// stops it. The spawner hears a `plexus.agent.terminated` EVENT for each
/// child that ends; the event log records `agent.spawned` and
/// `agent.terminated`. The checks follow plexus.h's order for spawn.
extension Host: SpawnService {
    /// The subject of the EVENT a spawner receives when a child ends.
    static let terminatedSubject = "plexus.agent.terminated"

    func spawn(by parent: Agent, plugin: String, instance: String?, config: String?) throws(PlexusError) -> String {
        let configText = config ?? "{}"
        guard case .object? = try? JSONValue.parse(Array(configText.utf8)) else {
            throw PlexusError(.INVALID_ARGUMENT, "config_json must be a JSON object")
        }
        try Names.check(plugin, what: "plugin_name")
        if let instance, instance.contains("/") { throw PlexusError(.INVALID_ARGUMENT, "instance_name '\(instance)' has a '/'") }
        let suffix = instance.flatMap { $0.isEmpty ? nil : $0 } ?? "\(plugin).\(lineage.nextNumber())"
        let name = "\(parent.name)/\(suffix)"
        try Names.check(name, what: "the child's name")
        // An agent whose first init() runs has not joined the host: a child
        // linked to it would outlive an init that fails (plexus.h: UNSUPPORTED).
        if parent.state == .registering {
            throw PlexusError(.UNSUPPORTED, "agent '\(parent.name)' is still in its init(): spawn from handle() (a first message, a timer), not from init()")
        }
        guard running, parent.state == .active || parent.state == .suspended else {
            throw PlexusError(.SHUTTING_DOWN, running ? "agent '\(parent.name)' is \(parent.state.rawValue): it spawns nothing" : "the host is shutting down")
        }
        guard let proto = prototype(of: plugin) else {
            throw PlexusError(.NO_SUCH_AGENT, "no loaded plugin is named '\(plugin)'")
        }
        let rules = spawnRules(of: parent)
        guard let rules, rules.plugins.contains(plugin) else {
            let stem = pluginFile(of: parent).map(PluginDescriptor.stem(of:)) ?? parent.name
            let why = rules == nil ? "plexus.yaml gives it no spawn: section (plugins.\(stem).spawn)"
                : "plugins.\(stem).spawn.plugins lists \(rules!.plugins.isEmpty ? "none" : rules!.plugins.joined(separator: ", "))"
            router.record(AuditEvent(holder: "agent '\(parent.name)'", sender: parent.name, action: "spawn", name: plugin,
                                     reason: "may not spawn plugin '\(plugin)': \(why)", at_unix_ns: Clock.unixNanos()))
            throw PlexusError(.PERMISSION_DENIED, "agent '\(parent.name)' may not spawn plugin '\(plugin)': \(why)")
        }
        try lineage.reserve(name, parent: parent.name, max: rules.maxChildren, hostMax: configuration.spawnMaxTotal)
        guard registry.agent(named: name) == nil else {
            lineage.release(name)
            throw PlexusError(.CONFLICT, "an agent named '\(name)' exists")
        }
        // The spawner's incarnation: a worker that dies while its child
        // starts must not leave the child behind, unlinked.
        let incarnation = parent.link.map { ($0.status.pid, $0.status.restarts) }
        let child: Agent
        do throws(PlexusError) { child = try startChild(name, of: proto, config: configText, restart: rules.restart) } catch {
            lineage.release(name)
            throw error
        }
        let open = lineage.started(child, parent: parent.name, config: configText)
        let same = parent.link.map { l in let s = l.status; return incarnation.map { $0.0 == s.pid && $0.1 == s.restarts } ?? false } ?? true
        guard open, same, parent.state == .active || parent.state == .suspended, registry.agent(named: parent.name) === parent else {
            end(child, reason: "its spawner '\(parent.name)' stopped or died while it started", exit: nil, stop: true)
            throw PlexusError(.SHUTTING_DOWN, "agent '\(parent.name)' stopped or died while its child '\(name)' started; the child was stopped")
        }
        var data: [String: JSONValue] = ["parent": .string(parent.name), "plugin": .string(plugin)]
        if let pid = child.link?.pid { data["pid"] = .int(Int64(pid)) } else { data["in_process"] = .bool(true) }
        router.lifecycle("agent.spawned", name, data)
        logger.notice("agent spawned", metadata: ["agent": "\(name)", "parent": "\(parent.name)", "plugin": "\(plugin)"])
        return name
    }

    func stop(by parent: Agent, child name: String) throws(PlexusError) {
        guard let c = lineage.child(name) else {
            if registry.agent(named: name) == nil { throw PlexusError(.NO_SUCH_AGENT, "no agent is named '\(name)'") }
            throw PlexusError(.PERMISSION_DENIED, "agent '\(name)' is not a child of '\(parent.name)': an agent stops only its own children")
        }
        guard c.parent == parent.name else {
            throw PlexusError(.PERMISSION_DENIED, "agent '\(name)' is a child of '\(c.parent)', not of '\(parent.name)': an agent stops only its own children")
        }
        end(c.agent, reason: "stopped by its spawner '\(parent.name)'", exit: nil, stop: true)
    }

    // Told from a worker's I/O or restart thread, which must not wait for
    // children to stop (their exits come through the same threads): the
    // takedown runs on a thread of its own.
    func workerDied(_ agent: Agent, exit: String) {
        let name = agent.name
        guard !lineage.children(of: name).isEmpty else { return }
        offThread { [self] in stopChildren(of: agent, because: "its spawner '\(name)' died (\(exit))") }
    }

    func terminated(_ agent: Agent, reason: String) {
        guard !lineage.children(of: agent.name).isEmpty || lineage.child(agent.name) != nil else { return }
        offThread { [self] in
            stopChildren(of: agent, because: "its spawner '\(agent.name)' was terminated")
            // Its exit is logged already (agent.terminated, by the supervisor's give-up).
            if lineage.child(agent.name) != nil { end(agent, reason: reason, exit: agent.link?.status.lastExit, stop: false, log: false) }
        }
    }

    func parent(of name: String) -> String? { lineage.parent(of: name) }

    /// An operator stopped or drained a child: it has ended for good.
    func childEnded(_ a: Agent, reason: String) {
        guard lineage.child(a.name) != nil else { return }
        end(a, reason: reason, exit: nil, stop: false)
    }

    private func offThread(_ body: @escaping @Sendable () -> Void) {
        do throws(ThreadStartError) { try startDetachedThread(name: "plexus-unlink", body) } catch { body() }
    }

    // MARK: the parts

    /// The children running a plugin file that is unloaded stop with it.
    func stopChildren(runningFile path: String) {
        for c in lineage.all where pluginFile(of: c) == path { end(c, reason: "its plugin (\(path)) was unloaded", exit: nil, stop: true) }
    }

    /// An upgrade of the plugin file `path` committed (or rolled back):
    /// every sandboxed child running another image of it moves to `image`,
    /// keeping its name, spawner, config and mailbox; its worker restarts
    /// onto the new version with what it had not finished requeued, not
    /// failed. An in-process child keeps its code (nothing of it is reloaded).
    func moveChildren(runningFile path: String, to image: PluginImage, version: String) {
        for c in lineage.all {
            guard let link = c.link, link.image.path == path, link.image.sha256 != image.sha256 else { continue }
            let from = c.pluginVersion ?? "?"
            c.pluginVersion = version
            link.moveToImage(image, reason: "its plugin was upgraded from \(from) to \(version)")
            router.lifecycle("agent.upgraded", c.name, ["from": .string(from), "to": .string(version)])
            logger.notice("spawned agent moved to its plugin's new version",
                          metadata: ["agent": "\(c.name)", "from": "\(from)", "to": "\(version)"])
        }
    }

    /// Takes down every child of `agent` (its stop, drain, restart or
    /// unload): linked, as Erlang's links are. Blocks until they stopped.
    func stopChildren(of agent: Agent, because why: String) {
        for c in lineage.children(of: agent.name) { end(c, reason: why, exit: nil, stop: true) }
    }

    /// A child ends for good: its own children first, then it stops (unless
    /// it is down already), leaves the registry and the supervisor, and its
    /// spawner hears of it.
    private func end(_ child: Agent, reason: String, exit: String?, stop: Bool, log: Bool = true) {
        guard let c = lineage.remove(child.name) else { return }
        for g in lineage.children(of: child.name) { end(g, reason: "its spawner '\(child.name)' stopped", exit: nil, stop: true) }
        if stop && child.state != .stopped && child.state != .terminated {
            stopAgent(child, cause: "agent '\(child.name)' was stopped (\(reason))")
        }
        child.state = .terminated
        registry.retire(child)
        if let link = child.link { supervisor.removeChild(child.name, link: link) }
        var data: [String: JSONValue] = ["name": .string(child.name), "reason": .string(reason), "parent": .string(c.parent)]
        if let exit { data["exit"] = .string(exit) }
        if log { router.lifecycle("agent.terminated", child.name, data) }
        notify(c.parent, data)
    }

    /// The spawner's EVENT: target plexus.agent.terminated, sender plexus,
    /// the JSON in `data`. Forced into its mailbox (bounded by its
    /// max_children): a full mailbox does not lose it.
    private func notify(_ parent: String, _ data: [String: JSONValue]) {
        guard let p = registry.agent(named: parent) else { return }
        var payload = data
        payload["parent"] = nil
        let env = Envelope(kind: .event, target: .topic(Self.terminatedSubject), payload: Array(JSONValue.object(payload).text.utf8),
                           contentType: "application/json", sender: "plexus", id: router.ids.next(), traceID: router.ids.next())
        env.withCEnvelope { e in
            var c = e.pointee
            c.sender = UnsafePointer(router.hostName)
            do throws(PlexusError) {
                let m = try Message.make(&c, maxPayload: UInt64(PLEXUS_MAX_PAYLOAD_LEN))
                try router.admit(Unmanaged.passRetained(m), to: p, force: true)
            } catch {
                logger.warning("a spawner was not told of its child's end", metadata: ["spawner": "\(parent)", "error": "\(error.detail)"])
            }
        }
    }

    /// The agent a plugin's children copy: the current agent of the plugin
    /// (after an upgrade, the new version's), not a child.
    private func prototype(of plugin: String) -> Agent? {
        registry.everyAgent.first { a in
            guard !a.isRetired, a.state != .terminated, lineage.child(a.name) == nil else { return false }
            switch a.behavior {
            case .worker(let l): return l.pluginName == plugin
            case .plugin(let p): return p.descriptor.name == plugin
            case .builtin: return false
            }
        }
    }

    func pluginFile(of a: Agent) -> String? {
        switch a.behavior {
        case .worker(let l): return l.image.path
        case .plugin(let p): return p.path
        case .builtin: return nil
        }
    }

    /// plexus.yaml's spawn: of the agent's plugin; nil: it may spawn nothing.
    private func spawnRules(of a: Agent) -> SpawnSettings? {
        guard let path = pluginFile(of: a) else { return nil }
        return configuration.plugins[PluginDescriptor.stem(of: path)]?.spawn
    }

    /// Starts the child from `proto`'s plugin with its own settings and
    /// grants; nothing of it is reachable until its init returned OK.
    private func startChild(_ name: String, of proto: Agent, config: String, restart: RestartKind) throws(PlexusError) -> Agent {
        let path = pluginFile(of: proto) ?? ""
        let settings = configuration.settings(for: path)
        let child: Agent
        switch proto.behavior {
        case .worker(let protoLink):
            let link = WorkerLink(image: protoLink.image, policy: settings.policy, restart: settings.restart, router: router, pool: warmPool)
            let d: PluginDescriptor
            do throws(PlexusError) { d = try link.load() } catch {
                link.stop(graceMs: 0)
                throw error
            }
            child = Agent(name: name, behavior: .worker(link), capabilities: [], exports: d.exports,
                          mailboxCapacity: configuration.mailboxCapacity)
            link.agent = child
            link.pluginName = d.name
            try prepare(child, d, path: path)
            do throws(PlexusError) {
                try link.activate(config: config)
                child.state = .active
                try registry.swapIn(child, for: nil)
            } catch {
                registry.retire(child)
                link.stop(graceMs: 0)
                throw error
            }
            supervisor.joinChild(name, link: link, restart: restart)
        case .plugin(let p):
            child = Agent(name: name, behavior: .plugin(p), capabilities: [], exports: p.descriptor.exports,
                          mailboxCapacity: configuration.mailboxCapacity, concurrency: settings.policy.concurrency)
            try prepare(child, p.descriptor, path: path)
            var state: UnsafeMutableRawPointer?
            let s = p.initFn(HostTable.pointer, child.ctx, config, &state)
            guard s == 0 else {
                registry.retire(child)
                throw PlexusError(status: s, "init of '\(name)' returned \(statusName(s))")
            }
            child.pluginState = state
            child.state = .active
            do throws(PlexusError) { try registry.swapIn(child, for: nil) } catch {
                if let sd = p.shutdownFn { sd(state) }
                registry.retire(child)
                throw error
            }
        case .builtin:
            throw PlexusError(.NO_SUCH_AGENT, "'\(proto.name)' is the host's own")
        }
        return child
    }

    /// What every agent of the plugin gets: its grants, namespace, version.
    /// Its subscriptions made in init wait (staged) until it joins.
    private func prepare(_ a: Agent, _ d: PluginDescriptor, path: String) throws(PlexusError) {
        a.grants = try grants(d, name: a.name, path: path)
        a.kvNamespace = d.name
        a.streams = d.abiMinor >= 2
        a.pluginVersion = d.version
        a.router = router
        registry.stage(a)
    }
}
