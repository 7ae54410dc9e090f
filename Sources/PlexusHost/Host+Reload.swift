import Glibc
import PlexusCore
import PlexusSandbox
import PlexusThreads

/// Hot reload: plugin files added, changed or removed while the host runs.
///
/// A changed file is a rolling upgrade. The new version gets its own sealed
/// image and workers and runs init beside the old one (its subscriptions
/// staged, not live); then, per agent name, the registry points at the new
/// agent and the old one closes to new mail. Mail that resolved to the old
/// agent just before arrives after it closed and is redirected to its
/// successor (Agent.successor), its pending request handed over with it.
/// The old agent finishes what it had accepted and keeps its worker until the
/// new version has finished `reload.probation_messages` messages; a crash
/// before that rolls back: the old agent serves again and takes over the
/// new one's mail, so no accepted message is lost or answered twice.
/// Every change runs on the one reload thread (Reloads), in order.
extension Host {
    /// Watches the plugins directory: files written and closed, renamed
    /// in or removed are loaded, upgraded or unloaded (`plexus run`).
    public func watchPlugins() throws(PlexusError) {
        guard let dir = configuration.pluginsDirectory else { return }
        guard running else { throw PlexusError(.INVALID_ARGUMENT, "watchPlugins() is for a started host") }
        let w = try PluginWatcher(directory: dir, debounceMs: configuration.reload.debounceMs) { [unowned self] path in
            reloads.submit(.file(path, nil))
        }
        do throws(ThreadStartError) { try w.start() } catch { throw PlexusError(.INTERNAL, "\(error)") }
        reloads.watch(w)
    }

    /// Loads, upgrades or (when its file is gone) unloads the plugin named by
    /// `target`: a plugin's name, or its file in the plugins directory.
    /// `reply` gets what happened, once load and init are done.
    public func reload(_ target: String, reply: @escaping @Sendable (Result<JSONValue, PlexusError>) -> Void) {
        guard running else { reply(.failure(PlexusError(.SHUTTING_DOWN, "the host is not running"))); return }
        reloads.submit(.file(target, reply))
    }

    /// Drains and stops the agents of the plugin named `name` (or loaded
    /// from that file); its file stays where it is.
    public func unload(_ name: String, reply: @escaping @Sendable (Result<JSONValue, PlexusError>) -> Void) {
        guard running else { reply(.failure(PlexusError(.SHUTTING_DOWN, "the host is not running"))); return }
        reloads.submit(.unload(name, reply))
    }

    // MARK: the reload thread

    func runReload(_ job: Reloads.Job) {
        seedServed()
        switch job {
        case .file(let target, let reply):
            let r = Result { () throws(PlexusError) -> JSONValue in try reloadTarget(target) }
            if case .failure(let e) = r, reply == nil {
                logger.warning("plugin reload failed", metadata: ["target": "\(target)", "error": "\(e.name)", "reason": "\(e.detail)"])
            }
            reply?(r)
        case .unload(let target, let reply):
            reply?(Result { () throws(PlexusError) -> JSONValue in
                let path = try resolve(target, mustBeServed: true)
                return unloadFile(path, why: "unloaded by command")
            })
        case .commit(let u): commitUpgrade(u, superseded: false)
        case .rollback(let u, let link, let x, let unfinished): rollback(u, crashed: link, exit: x, unfinished: unfinished)
        case .handover(let from, let to, let x, let unfinished): handover(from, to: to, exit: x, unfinished: unfinished)
        case .tick: break
        }
        finishLeaving()
    }

    /// What serves at start, per file, taken once from the loaded plugins.
    private func seedServed() {
        guard !reloads.state.withLock({ $0.seeded }) else { return }
        var served: [String: Reloads.Served] = [:]
        for a in registry.order where a.name != SystemAgent.name {
            guard let file = files[a.name], let link = a.link else { continue }
            served[file, default: Reloads.Served(file: file, plugin: link.pluginName ?? a.name, version: a.pluginVersion ?? "?",
                                                 sha256: link.image.sha256, agents: [])].agents.append(a)
        }
        for a in registry.order where a.link == nil && a.pluginVersion != nil {   // in process: named, never replaced
            guard let file = files[a.name], case .plugin(let p) = a.behavior else { continue }
            served[file, default: Reloads.Served(file: file, plugin: p.descriptor.name, version: a.pluginVersion ?? "?",
                                                 sha256: "", agents: [])].agents.append(a)
        }
        reloads.state.withLock { s in
            s.served = served
            s.seeded = true
        }
    }

    /// A plugin name, or a file: a bare name, "x.so" or a path to a file in
    /// the plugins directory. Returns the file's path as the host names it.
    private func resolve(_ target: String, mustBeServed: Bool) throws(PlexusError) -> String {
        guard let dir = configuration.pluginsDirectory else {
            throw PlexusError(.UNSUPPORTED, "this host has no plugins directory, so it reloads nothing")
        }
        let base = dir.hasSuffix("/") ? dir : dir + "/"
        let served = reloads.state.withLock { $0.served }
        if !target.contains("/") && !target.hasSuffix(".so") {
            if let s = served.values.first(where: { $0.plugin == target || $0.agents.contains { $0.name == target } }) { return s.file }
            let path = base + target + ".so"
            if !mustBeServed && access(path, F_OK) == 0 { return path }
            let names = served.values.map(\.plugin).sorted()
            let hint = Suggestion.closest(to: target, among: names).map { " (did you mean \($0)?)" } ?? ""
            throw PlexusError(.NO_SUCH_AGENT, "no plugin named '\(target)'\(hint); loaded: \(names.isEmpty ? "none" : names.joined(separator: ", "))"
                              + (mustBeServed ? "" : ", and there is no file \(path)"))
        }
        let name = String(target.split(separator: "/").last ?? "")
        guard name.hasSuffix(".so"), name.count > 3 else {
            throw PlexusError(.INVALID_ARGUMENT, "'\(target)' is not a plugin file: expected a name ending in .so")
        }
        if target.contains("/") {
            let parent = String(target.dropLast(name.count))
            guard let a = realpath(parent, nil), let b = realpath(base, nil) else {
                throw PlexusError(.INVALID_ARGUMENT, "'\(target)': its directory cannot be resolved: \(String(cString: strerror(errno)))")
            }
            defer { free(a); free(b) }
            guard strcmp(a, b) == 0 else {
                throw PlexusError(.INVALID_ARGUMENT, "'\(target)' is not in the plugins directory \(dir): copy it there (cp FILE \(dir)/)")
            }
        }
        let path = base + name
        if mustBeServed && served[path] == nil {
            throw PlexusError(.NO_SUCH_AGENT, "no plugin is loaded from \(path)")
        }
        return path
    }

    // MARK: load, upgrade

    private func reloadTarget(_ target: String) throws(PlexusError) -> JSONValue {
        let path = try resolve(target, mustBeServed: false)
        let served = reloads.state.withLock { $0.served[path] }
        guard access(path, F_OK) == 0 else {
            guard served != nil else { throw PlexusError(.NO_SUCH_AGENT, "\(path): no such file, and no plugin from it is loaded") }
            return unloadFile(path, why: "its file was removed")
        }
        var starting = false
        do throws(PlexusError) {
            let settings = configuration.settings(for: path)
            guard settings.sandbox == .process else {
                throw PlexusError(.UNSUPPORTED, "plugin file \(path) runs in process (sandbox: in-process): its code is mapped into the host "
                                  + "and cannot be replaced while the host runs; restart the host, or run it in a worker (sandbox: process)")
            }
            if served?.sha256.isEmpty == true {
                throw PlexusError(.UNSUPPORTED, "the running version of \(path) was loaded in process; restart the host to replace it")
            }
            let image = try PluginImage(path: path)
            try ELFCheck.check(path: image.procPath)
            if let served, served.sha256 == image.sha256 {
                return .object(["file": .string(path), "plugin": .string(served.plugin), "version": .string(served.version),
                                "outcome": .string("unchanged")])
            }
            starting = true
            let (d, agents) = try startVersion(image, path: path, settings, replacing: served)
            // An upgrade still on probation ends here, now that a newer version
            // is ready to replace it (one that fails to start leaves it on probation).
            if let u = reloads.state.withLock({ $0.upgrades.first { $0.file == path } }) { commitUpgrade(u, superseded: true) }
            let current = reloads.state.withLock { $0.served[path] }
            if let current { return try upgrade(current, to: d, agents) }
            return try add(path, d, agents)
        } catch {
            refused(path, error, serving: reloads.state.withLock { $0.served[path] }, started: starting)
            throw error
        }
    }

    /// Loads the new version in its workers and runs init; nothing of it
    /// is reachable yet. On failure its workers are stopped.
    private func startVersion(_ image: PluginImage, path: String, _ settings: PluginSettings,
                              replacing served: Reloads.Served?) throws(PlexusError) -> (PluginDescriptor, [Agent]) {
        var links: [WorkerLink] = []
        do throws(PlexusError) {
            let first = WorkerLink(image: image, policy: settings.policy, restart: settings.restart, router: router, pool: warmPool)
            links.append(first)
            let d = try first.load()
            if let served, d.name != served.plugin {
                throw PlexusError(.BAD_DESCRIPTOR, "\(path) now declares plugin '\(d.name)', but it serves '\(served.plugin)': "
                                  + "unload it first (plexus plugins unload \(served.plugin)), then add the file")
            }
            do throws(PluginRefusal) { try checkConcurrency(d, .worker(first), settings, path: path) } catch { throw error.error }
            let instances = max(1, settings.instances)
            for _ in 1..<instances {
                let l = WorkerLink(image: image, policy: settings.policy, restart: settings.restart, router: router, pool: warmPool)
                links.append(l)
                _ = try l.load()
            }
            var agents: [Agent] = []
            for (i, link) in links.enumerated() {
                let name = i == 0 ? d.name : "\(d.name).\(i + 1)"
                if let holder = registry.agent(named: name), !(served?.agents.contains { $0 === holder } ?? false) {
                    throw PlexusError(.BAD_DESCRIPTOR, "duplicate agent name '\(name)': already provided by \(files[name] ?? "another plugin")")
                }
                let a = Agent(name: name, behavior: .worker(link), capabilities: d.allCapabilityNames, exports: d.exports,
                              mailboxCapacity: configuration.mailboxCapacity)
                a.grants = try grants(d, name: name, path: path)
                link.agent = a
                link.pluginName = d.name
                a.kvNamespace = d.name          // the same namespace as every version before it
                a.pluginVersion = d.version
                a.router = router
                registry.stage(a)               // its init's subscriptions wait for the swap
                agents.append(a)
            }
            for l in links { try l.activate(config: settings.config) }
            return (d, agents)
        } catch {
            for l in links { l.stop(graceMs: 0) }
            throw error
        }
    }

    /// A file no plugin was loaded from: its agents simply join.
    private func add(_ path: String, _ d: PluginDescriptor, _ agents: [Agent]) throws(PlexusError) -> JSONValue {
        let meters = reloads.state.withLock { $0.meters }
        for (i, a) in agents.enumerated() {
            a.meters = meters[a.name]
            a.state = .active
            do throws(PlexusError) { try registry.swapIn(a, for: nil) } catch {
                for b in agents[..<i] { registry.retire(b) }
                for b in agents { b.link?.stop(graceMs: 0) }
                throw error
            }
        }
        supervisor.join(agents.compactMap { a in a.link.map { (a.name, $0) } })
        reloads.state.withLock { s in
            s.served[path] = Reloads.Served(file: path, plugin: d.name, version: d.version, sha256: agents[0].link?.image.sha256 ?? "", agents: agents)
            s.added += agents
            s.reports[path] = PluginReport(loaded: d, file: path, subscriptions: [])
            s.notes[path] = "loaded \(d.version) while the host ran (\(Self.timestamp()))"
        }
        for a in agents { router.lifecycle("agent.started", a.name, ["pid": .int(Int64(a.link?.pid ?? 0)), "version": .string(d.version)]) }
        router.lifecycle("plugin.loaded", d.name, ["file": .string(path), "version": .string(d.version)])
        logger.notice("plugin loaded", metadata: ["file": "\(path)", "plugin": "\(d.name)", "version": "\(d.version)"])
        return .object(["file": .string(path), "plugin": .string(d.name), "version": .string(d.version), "outcome": .string("loaded")])
    }

    /// The swap: per agent name, the new agent serves and the old one drains.
    private func upgrade(_ served: Reloads.Served, to d: PluginDescriptor, _ agents: [Agent]) throws(PlexusError) -> JSONValue {
        let probation = configuration.reload.probationMessages
        let report = reloads.state.withLock { $0.reports[served.file] } ?? reports.first { $0.file == served.file && $0.status == "loaded" }
        let pairs = Array(zip(served.agents, agents))
        let u = Upgrade(previous: served, report: report, to: d.version, pairs: pairs.map { (old: $0.0, new: $0.1) },
                        probation: probation, reloads: reloads)
        for (old, new) in pairs {
            new.link?.reloadHook.withLock { $0 = u }
            new.state = .active
            // An operator's suspension carries over: the new version holds its mail too.
            let suspended = old.hold.isOn
            if suspended { _ = new.hold.engage() }
            let stopped = old.state == .stopped
            old.successor.withLock { $0 = new }        // before it closes: nothing sent to it fails
            try registry.swapIn(new, for: old)
            old.state = .draining
            if suspended {
                // What the old version held back goes to the new one, in order,
                // with its requests; the old one's parked runners let go.
                let held = old.drainMailbox()
                move(held, from: old, to: new)
                if !held.isEmpty { old.finishedWork(held.count) }
                resumeAgent(old)
            }
            if stopped {   // an operator stopped it: the new version waits for `plexus agents start`
                stopAgent(new, cause: "agent '\(new.name)' was stopped by an operator before this upgrade to \(d.version); plexus agents start \(new.name) starts it")
            }
        }
        // Instances beyond the old count (plexus.yaml's instances is read at start, so rarely): they join.
        let extra = Array(agents.dropFirst(pairs.count))
        for a in extra { a.state = .active; try registry.swapIn(a, for: nil) }
        if !extra.isEmpty { supervisor.join(extra.compactMap { a in a.link.map { (a.name, $0) } }) }
        let deadline = Clock.monotonicNanos() + configuration.reload.drainTimeoutMs * 1_000_000
        reloads.state.withLock { s in
            s.served[served.file] = Reloads.Served(file: served.file, plugin: d.name, version: d.version,
                                                   sha256: agents[0].link?.image.sha256 ?? "", agents: agents)
            s.added += agents
            s.upgrades.append(u)
            for old in served.agents.dropFirst(pairs.count) {   // fewer instances now: the rest drain into the first
                registry.retire(old)
                old.state = .draining
                s.leaving.append(.init(agent: old, successor: agents[0], deadline: deadline))
            }
            s.reports[served.file] = PluginReport(loaded: d, file: served.file, subscriptions: [])
            s.notes[served.file] = "upgraded from \(served.version) to \(d.version) (\(Self.timestamp())); "
                + (probation > 0 ? "on probation until it has finished \(probation) messages; \(served.version) is kept to roll back to" : "final")
        }
        router.lifecycle("plugin.upgraded", d.name, ["file": .string(served.file), "from": .string(served.version),
                                                     "to": .string(d.version), "probation_messages": .int(Int64(probation))])
        logger.notice("plugin upgraded", metadata: ["file": "\(served.file)", "plugin": "\(d.name)", "from": "\(served.version)", "to": "\(d.version)"])
        if probation == 0 { commitUpgrade(u, superseded: false) }
        return .object(["file": .string(served.file), "plugin": .string(d.name), "version": .string(d.version),
                        "previous": .string(served.version), "outcome": .string("upgraded"), "probation_messages": .int(Int64(probation))])
    }

    /// The new version passed its probation (or was itself replaced): it is
    /// supervised from now on, and the old one stops once it has drained.
    private func commitUpgrade(_ u: Upgrade, superseded: Bool) {
        let done = u.commit {
            for (old, new) in u.pairs {
                old.link?.reloadHook.withLock { $0 = Handover(to: new, reloads: reloads) }
                if let l = new.link { supervisor.replace(new.name, with: l) }
            }
        }
        for (_, new) in u.pairs { new.link?.reloadHook.withLock { $0 = nil } }
        let deadline = Clock.monotonicNanos() + configuration.reload.drainTimeoutMs * 1_000_000
        reloads.state.withLock { s in
            s.upgrades.removeAll { $0 === u }
            guard done else { return }
            for (old, new) in u.pairs { s.leaving.append(.init(agent: old, successor: new, deadline: deadline)) }
            if !superseded, s.served[u.file]?.version == u.to {
                s.notes[u.file] = "upgraded from \(u.from) to \(u.to); it passed its probation (\(u.messagesDone) messages) and \(u.from) stopped"
            }
        }
        // Spawned children of the plugin follow the committed version (Host+Spawn.swift).
        if done, let image = u.pairs.first?.new.link?.image { moveChildren(runningFile: u.file, to: image, version: u.to) }
        if done {
            logger.notice("plugin upgrade final", metadata: ["file": "\(u.file)", "plugin": "\(u.plugin)", "version": "\(u.to)",
                                                             "messages": "\(u.messagesDone)"])
        }
    }

    /// A new version's worker died on probation: the old version serves
    /// again and takes over everything the new one held.
    private func rollback(_ u: Upgrade, crashed: WorkerLink, exit x: WorkerExit, unfinished: [Message]) {
        let deadline = Clock.monotonicNanos() + configuration.reload.drainTimeoutMs * 1_000_000
        var leaving: [Reloads.Leaving] = []
        var gone: [Agent] = []
        for (old, new) in u.pairs {
            new.successor.withLock { $0 = old }
            registry.swapBack(old, over: new)
            old.successor.withLock { $0 = nil }
            old.state = .active
            if new.link === crashed {
                new.state = .terminated
                move(unfinished + new.drainMailbox(), from: new, to: old)
                new.link?.reloadHook.withLock { $0 = nil }
                new.link?.stop(graceMs: 0)
                move(new.drainMailbox(), from: new, to: old)   // one a dispatcher put back meanwhile
                gone.append(new)
            } else {   // a healthy instance of the new version finishes what it holds
                new.state = .draining
                new.link?.reloadHook.withLock { $0 = Handover(to: old, reloads: reloads) }
                leaving.append(.init(agent: new, successor: old, deadline: deadline))
            }
        }
        let reason = "a worker of \(u.to) died on probation, after \(u.messagesDone) of its first \(u.probation) messages: \(x)"
        reloads.state.withLock { s in
            s.upgrades.removeAll { $0 === u }
            s.served[u.file] = u.previous
            if let r = u.previousReport { s.reports[u.file] = r }
            s.leaving += leaving
            for a in gone { s.stopped(a, at: Clock.monotonicNanos()) }
            s.notes[u.file] = "rolled back \(u.to) (\(Self.timestamp())): \(reason); \(u.from) serves again"
        }
        // Children spawned while the rejected version was on probation go back to the old one.
        if let image = u.pairs.first?.old.link?.image { moveChildren(runningFile: u.file, to: image, version: u.from) }
        router.lifecycle("plugin.rolled_back", u.plugin, ["file": .string(u.file), "rejected": .string(u.to), "serving": .string(u.from),
                                                         "reason": .string(reason)])
        logger.error("plugin upgrade rolled back", metadata: ["file": "\(u.file)", "plugin": "\(u.plugin)", "rejected": "\(u.to)",
                                                              "serving": "\(u.from)", "reason": "\(reason)"])
    }

    /// A load or init that failed: the running version (if any) goes on.
    /// started: the new version got as far as starting (its worker, its
    /// init) and was rolled back; else its file was refused before that.
    private func refused(_ path: String, _ e: PlexusError, serving: Reloads.Served?, started: Bool) {
        reloads.state.withLock { s in
            if let serving {
                s.notes[path] = "\(started ? "rolled back" : "refused") a new version (\(Self.timestamp())): \(e.name): \(e.detail); \(serving.version) keeps serving"
            } else {
                s.reports[path] = PluginReport(refused: PluginRefusal(path: path, error: e))
                s.notes[path] = nil
            }
        }
        if let serving {
            router.lifecycle("plugin.rolled_back", serving.plugin, ["file": .string(path), "serving": .string(serving.version),
                                                                    "reason": .string("\(e.name): \(e.detail)")])
            logger.error("plugin upgrade rolled back", metadata: ["file": "\(path)", "serving": "\(serving.version)", "error": "\(e.name)", "reason": "\(e.detail)"])
        } else {
            router.lifecycle("plugin.refused", PluginDescriptor.stem(of: path), ["file": .string(path), "reason": .string("\(e.name): \(e.detail)")])
            logger.warning("plugin refused", metadata: ["file": "\(path)", "error": "\(e.name)", "reason": "\(e.detail)"])
        }
    }

    // MARK: unload, drain

    private func unloadFile(_ path: String, why: String) -> JSONValue {
        if let u = reloads.state.withLock({ $0.upgrades.first { $0.file == path } }) { commitUpgrade(u, superseded: true) }
        guard let served = reloads.state.withLock({ $0.served[path] }) else {
            return .object(["file": .string(path), "outcome": .string("not loaded")])
        }
        let deadline = Clock.monotonicNanos() + configuration.reload.drainTimeoutMs * 1_000_000
        stopChildren(runningFile: path)   // spawned agents of this plugin: their code is going
        for a in served.agents {
            stopChildren(of: a, because: "its spawner '\(a.name)' was unloaded")   // linked
            registry.retire(a)
            a.state = .draining
        }
        reloads.state.withLock { s in
            s.served[path] = nil
            for a in served.agents {
                s.leaving.append(.init(agent: a, successor: nil, deadline: deadline))
                s.meters[a.name] = a.meters
            }
            var r = PluginReport(refused: PluginRefusal(path: path, error: PlexusError(.NO_SUCH_AGENT, why)))
            r.status = "unloaded"
            r.name = served.plugin
            r.version = served.version
            r.reason = "\(served.plugin) \(served.version) was \(why == "unloaded by command" ? "unloaded by command" : "unloaded: \(why)")"
            s.reports[path] = r
            s.notes[path] = nil
        }
        router.lifecycle("plugin.unloaded", served.plugin, ["file": .string(path), "version": .string(served.version), "reason": .string(why)])
        logger.notice("plugin unloaded", metadata: ["file": "\(path)", "plugin": "\(served.plugin)", "reason": "\(why)"])
        // In process, its code stays mapped (never dlclosed): it cannot be loaded again while the host runs.
        let inProcess = served.agents.contains { $0.link == nil }
        return .object(["file": .string(path), "plugin": .string(served.plugin), "version": .string(served.version), "outcome": .string("unloaded"),
                        "in_process": .bool(inProcess)])
    }

    /// A leaving agent's worker died: what it held goes to its successor.
    private func handover(_ from: Agent, to: Agent, exit x: WorkerExit, unfinished: [Message]) {
        from.state = .terminated
        move(unfinished + from.drainMailbox(), from: from, to: to)
        from.link?.reloadHook.withLock { $0 = nil }
        from.link?.stop(graceMs: 0)
        move(from.drainMailbox(), from: from, to: to)
        reloads.state.withLock { s in
            s.leaving.removeAll { $0.agent === from }
            s.stopped(from, at: Clock.monotonicNanos())
        }
        logger.warning("a replaced version's worker died while draining; its messages went to its successor",
                       metadata: ["agent": "\(from.name)", "exit": "\(x)", "moved": "\(unfinished.count)"])
    }

    /// Stops the leaving agents that have finished their work, and those
    /// past the drain deadline (handing what they hold to their successor).
    private func finishLeaving() {
        let now = Clock.monotonicNanos()
        // Mail that resolved to a stopped agent just before its swap has long
        // arrived after a minute: its successor link can go.
        let faded: [Agent] = reloads.state.withLock { s in
            let old = s.fading.filter { now - $0.since > 60_000_000_000 }.map(\.agent)
            s.fading.removeAll { now - $0.since > 60_000_000_000 }
            return old
        }
        for a in faded { a.successor.withLock { $0 = nil } }
        // Done: nothing queued or running, and every request it took and
        // meant to answer later answered (or the drain deadline passed).
        let candidates = reloads.state.withLock { s in s.leaving.filter { $0.agent.load.load(ordering: .relaxed) <= 0 || now >= $0.deadline } }
        let due = candidates.filter { now >= $0.deadline || promisedAnswers($0.agent).isEmpty }
        for l in due {
            let a = l.agent
            let late = a.load.load(ordering: .relaxed) > 0
            if late {
                a.state = .terminated
                let held = a.drainMailbox()
                if let to = l.successor { move(held, from: a, to: to) } else {
                    for m in held { router.abandon(m, at: a, reason: "agent '\(a.name)' was unloaded before it handled this", status: PLEXUS_SHUTTING_DOWN.status) }
                }
            }
            a.link?.reloadHook.withLock { $0 = nil }
            let why = l.successor.map { "version \(a.pluginVersion ?? "?") of agent '\(a.name)' was replaced by \($0.pluginVersion ?? "?")" }
                ?? "agent '\(a.name)' was unloaded"
            a.link?.stop(graceMs: late ? 0 : configuration.shutdownGraceMs, cause: why)
            if let link = a.link { supervisor.forget(a.name, link: link) }
            a.state = .terminated
            reloads.state.withLock { s in
                s.leaving.removeAll { $0.agent === a }
                s.stopped(a, at: Clock.monotonicNanos())
            }
            router.lifecycle("agent.retired", a.name, ["version": .string(a.pluginVersion ?? "?"),
                                                       "reason": .string(l.successor == nil ? "unloaded" : "replaced by \(l.successor?.pluginVersion ?? "?")")])
        }
    }

    /// Hands messages from one version of an agent to another: the
    /// requests among them are now the other's to answer.
    private func move(_ ms: [Message], from: Agent, to: Agent) {
        guard !ms.isEmpty else { return }
        for m in ms where m.isQuery { router.pending.transfer(m.id, from: from, to: to) }
        if to.requeueFront(ms) { router.dispatcher.enqueue(to) }
    }

    private static func timestamp() -> String {
        var t = time(nil)
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday)) \(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) UTC"
    }
}

extension Reloads {
    /// The start's reports with what reloads changed laid over them, by file.
    func overlay(_ base: [PluginReport]) -> [PluginReport] {
        state.withLock { s in
            guard !s.reports.isEmpty || !s.notes.isEmpty else { return base }
            var out = base.filter { s.reports[$0.file] == nil } + s.reports.values
            out.sort { $0.file < $1.file }
            for i in out.indices { out[i].reload = s.notes[out[i].file] }
            return out
        }
    }
}
