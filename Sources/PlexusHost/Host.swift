import PlexusThreads
import CPlexus
import Glibc
import Logging
import PlexusCore
import PlexusSandbox
import Tracing
@_exported import PlexusSupervision
@_exported import PlexusTrace

public enum SandboxMode: String, Sendable, CaseIterable {
    case process
    case inProcess = "in-process"
}

/// Where and how one plugin runs. plexus.yaml sets it per plugin file.
public struct PluginSettings: Sendable {
    public var sandbox: SandboxMode
    public var policy: WorkerPolicy
    public var restart: RestartPolicy
    /// The JSON object init() receives.
    public var config = "{}"
    /// Workers of this plugin (process mode): agents NAME, NAME.2, ...
    public var instances = 1
    /// What its agents may call, publish and subscribe to; nil grants what
    /// the plugin's descriptor requests (`plexus plugins inspect` shows it).
    public var grants: [Grants.Action: [String]]?
    /// `warm_workers` as read under plexus.yaml's defaults (the host's pool,
    /// HostConfiguration.warmWorkers); nil when not set there.
    public var warmWorkers: Int?
    /// What this plugin's agents may spawn (`spawn:`); nil: nothing.
    public var spawn: SpawnSettings?
    /// `spawn.max_total` as read under plexus.yaml's defaults
    /// (HostConfiguration.spawnMaxTotal); nil when not set there.
    public var spawnMaxTotal: Int?

    public init(sandbox: SandboxMode, policy: WorkerPolicy, restart: RestartPolicy, config: String = "{}",
                grants: [Grants.Action: [String]]? = nil) {
        self.sandbox = sandbox
        self.policy = policy
        self.restart = restart
        self.config = config
        self.grants = grants
    }
}

/// A program allowed to use the host's socket besides the host's own user
/// (plexus.yaml `clients:`). It is recognised by its peer uid, by the token
/// it says hello with, or by both; what it may do is its grants.
public struct ClientSpec: Sendable, Equatable {
    public var uid: UInt32?
    public var token: String?
    public var grants: [Grants.Action: [String]]

    public init(uid: UInt32? = nil, token: String? = nil, grants: [Grants.Action: [String]] = [:]) {
        self.uid = uid
        self.token = token
        self.grants = grants
    }
}

public struct HostConfiguration: Sendable {
    /// Where plugins are discovered; nil loads none (tests add files by path).
    public var pluginsDirectory: String?
    /// Messages an agent's mailbox holds before senders get MAILBOX_FULL.
    public var mailboxCapacity = 4096
    /// The largest payload accepted from anyone.
    public var maxPayload = UInt64(4 * 1024 * 1024)
    /// A request without its own deadline ends with TIMEOUT after this long.
    public var defaultTimeoutMs: Int64 = 30_000
    /// At shutdown, how long accepted work may take to finish before what
    /// is left is handed back (dead-lettered, callers told SHUTTING_DOWN).
    public var shutdownGraceMs: Int64 = 2_000
    /// Dispatcher threads; defaults to the number of cores.
    public var threads = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    /// Where plugins run: each in its own worker process, or inside the host
    /// (trusted code only: a crash there takes the host down).
    public var sandbox = SandboxMode.process
    /// Limits and grants of worker processes.
    public var workerPolicy = WorkerPolicy()
    /// How workers that die are restarted.
    public var restartPolicy = RestartPolicy()
    /// Workers kept started and confined per worker policy in use, waiting
    /// for a plugin image, so that a restart or a new instance skips the
    /// process start (`defaults: { warm_workers: N }`); 0: every worker starts cold.
    public var warmWorkers = 0
    /// Per plugin file (its name without ".so"): settings that replace the
    /// defaults above for that plugin.
    public var plugins: [String: PluginSettings] = [:]
    /// The supervision tree, by agent name; nil puts every agent under a
    /// one-for-one root with restartPolicy's intensity. Agents it does not
    /// name join the root as permanent children.
    public var supervision: SupervisorSpec?
    /// What plugins not configured one by one may do; nil grants each what
    /// its descriptor requests.
    public var pluginGrants: [Grants.Action: [String]]?
    /// Socket clients by name, besides the host's own user.
    public var clients: [String: ClientSpec] = [:]
    /// What a connection from the host's own user that does not say hello
    /// may do (`clients: { owner: { grants: ... } }`); nil: everything.
    public var ownerGrants: [Grants.Action: [String]]?
    /// The durable store's file and retention (used by `plexus run`).
    public var store = StoreSettings()
    /// The HTTP server of `plexus run` (health, metrics, dashboard); off by default.
    public var http = HTTPSettings()
    /// Span recording (`tracing:` in plexus.yaml; Tracer).
    public var tracing = TracingSettings()
    /// Where recorded spans are also handed, through swift-distributed-tracing's
    /// API (SpanExporter): this Tracer, or else the one an embedding program
    /// bootstrapped (`InstrumentationSystem.bootstrap`, e.g. swift-otel's);
    /// none when neither is set.
    public var spanSink: (any Tracing.Tracer)?
    /// The host's meters (metrics.enabled); off unless set (`plexus run` sets
    /// it when its HTTP server is on).
    public var metrics = MetricsSettings()
    /// Hot reload of plugin files (`reload:`; Host+Reload.swift).
    public var reload = ReloadSettings()
    /// Agents spawned by agents that may run at once, host-wide
    /// (`defaults: { spawn: { max_total: N } }`; Host+Spawn.swift).
    public var spawnMaxTotal = 256
    /// Several hosts as one system over NATS (`nats:`; PlexusCluster); off unless a URL is set.
    public var nats = NATSSettings()

    /// The settings for the plugin at path.
    public func settings(for path: String) -> PluginSettings {
        return plugins[PluginDescriptor.stem(of: path)] ?? PluginSettings(sandbox: sandbox, policy: workerPolicy, restart: restartPolicy, grants: pluginGrants)
    }

    public init(pluginsDirectory: String? = "Plugins") { self.pluginsDirectory = pluginsDirectory }
}

/// The Plexus host: loads plugins, starts their agents and carries their
/// messages. Use it from one thread for setup (load, start, shutdown);
/// send/request/publish may be called from any thread once started.
public final class Host: @unchecked Sendable {
    public let configuration: HostConfiguration
    let registry = Registry()
    let router: Router
    let logger = Logger(label: "plexus.host")
    var files: [String: String] = [:]   // agent name -> file
    var reports: [PluginReport] = []
    var started: [Agent] = []
    private(set) var running = false
    /// Plugins loaded, upgraded and unloaded while the host runs (Host+Reload.swift).
    let reloads = Reloads()
    private let clientName = strdup("client:api")!
    /// Replays spans into configuration.spanSink or the bootstrapped Tracer; nil when neither.
    private var spanExporter: SpanExporter?
    /// Warm workers (configuration.warmWorkers per policy); nil when 0.
    public let warmPool: WarmPool?
    /// Operator actions on single agents (Host+Control.swift).
    let control = AgentControl()
    /// Agents spawned by agents, and their spawners (Host+Spawn.swift).
    let lineage = Lineage()
    private lazy var health = HealthMonitor(pool: warmPool) { [unowned self] in (reloads.current(started) + lineage.all).compactMap(\.link) }
    lazy var supervisor = Supervisor(
        spec: configuration.supervision ?? SupervisorSpec(name: "root", strategy: .oneForOne,
                                                          intensity: configuration.restartPolicy.intensity,
                                                          periodSeconds: configuration.restartPolicy.periodSeconds),
        breaker: CircuitBreaker(threshold: configuration.restartPolicy.breakerThreshold,
                                cooldownSeconds: configuration.restartPolicy.breakerCooldownMs / 1000))

    public init(_ configuration: HostConfiguration = HostConfiguration()) {
        self.configuration = configuration
        self.warmPool = configuration.warmWorkers > 0 ? WarmPool(size: configuration.warmWorkers) : nil
        self.router = Router(registry: registry,
                             limits: .init(maxPayload: configuration.maxPayload, defaultTimeoutMs: configuration.defaultTimeoutMs),
                             threads: configuration.threads, tracer: Tracer(configuration.tracing),
                             metrics: configuration.metrics.enabled == true ? HostMetrics() : nil)
        let system = Agent(name: SystemAgent.name, behavior: .builtin(SystemAgent(host: self)),
                           capabilities: SystemAgent(host: self).capabilities.map(\.name), exports: [],
                           mailboxCapacity: configuration.mailboxCapacity)
        system.router = router
        try! registry.register(system, byHost: true) { _ in "the host" }
        files[SystemAgent.name] = "the host itself (reserved name)"
        installControl()
        reloads.run = { [unowned self] job in runReload(job) }
        router.spawns = self
    }

    // MARK: loading

    /// Loads every plugin in the configured directory. Refused files are
    /// reported (pluginReports) and logged; the rest load regardless.
    public func loadPlugins() throws(PlexusError) {
        guard let dir = configuration.pluginsDirectory else { return }
        let paths = try PluginLoader.discover(in: dir)
        for path in paths { _ = try? load(path: path) }
        // Configured but absent: likely a typo, perhaps a plugin still to be
        // added. `plexus plugins list` shows it; `plexus run` warns with the line.
        let present = paths.map { String($0.split(separator: "/").last!.dropLast(3)) }
        for name in configuration.plugins.keys.sorted() where !present.contains(name) {
            let hint = Suggestion.closest(to: name, among: present).map { " (did you mean \($0)?)" } ?? ""
            reports.append(PluginReport(missing: name, directory: dir, hint: hint))
        }
    }

    /// Loads one file; on refusal records the reason and throws it.
    @discardableResult
    public func load(path: String) throws(PluginRefusal) -> PluginDescriptor {
        precondition(!running, "plugins are loaded before start()")
        do throws(PluginRefusal) {
            let settings = configuration.settings(for: path)
            let (d, behavior) = settings.sandbox == .process ? try loadInWorker(path: path, settings) : try loadInProcess(path: path)
            try checkConcurrency(d, behavior, settings, path: path)
            try register(d, behavior, name: d.name, path: path, concurrency: settings.sandbox == .inProcess ? settings.policy.concurrency : 1)
            // More instances: more workers of the same sealed image, named
            // NAME.2, NAME.3...; capability calls go to the least loaded.
            if case .worker(let first) = behavior, settings.instances > 1 {
                for k in 2...settings.instances {
                    let link = WorkerLink(image: first.image, policy: settings.policy, restart: settings.restart, router: router, pool: warmPool)
                    do throws(PlexusError) { _ = try link.load() } catch { throw PluginRefusal(path: path, error: error) }
                    try register(d, .worker(link), name: "\(d.name).\(k)", path: path)
                }
            }
            reports.append(PluginReport(loaded: d, file: path, subscriptions: []))
            return d
        } catch {
            logger.warning("plugin refused", metadata: ["file": "\(path)", "error": "\(error.error.name)", "reason": "\(error.error.detail)"])
            reports.append(PluginReport(refused: error))
            throw error
        }
    }

    /// `concurrency: N` runs N handlers of one instance at once: only for a
    /// plugin that says its handler is safe on several threads.
    func checkConcurrency(_ d: PluginDescriptor, _ behavior: AgentBehavior, _ settings: PluginSettings,
                                  path: String) throws(PluginRefusal) {
        let n = settings.policy.concurrency
        guard n > 1 && !d.concurrent else { return }
        if case .worker(let link) = behavior { link.stop(graceMs: 0) }
        throw PluginRefusal(path: path, error: PlexusError(.INVALID_ARGUMENT,
            "concurrency: \(n) is configured, but plugin '\(d.name)' does not declare PLEXUS_PLUGIN_CONCURRENT "
            + "(its handler may not run on several threads at once); use instances: \(n) for \(n) workers instead"))
    }

    private func register(_ d: PluginDescriptor, _ behavior: AgentBehavior, name: String, path: String,
                          concurrency: Int = 1) throws(PluginRefusal) {
        let agent = Agent(name: name, behavior: behavior, capabilities: d.allCapabilityNames,
                          exports: d.exports, mailboxCapacity: configuration.mailboxCapacity, concurrency: concurrency)
        do { agent.grants = try grants(d, name: name, path: path) } catch {
            agent.link?.stop(graceMs: 0)
            throw PluginRefusal(path: path, error: error)
        }
        if case .worker(let link) = behavior { link.agent = agent; link.pluginName = d.name }
        agent.kvNamespace = d.name
        agent.streams = d.abiMinor >= 2
        agent.pluginVersion = d.version
        agent.router = router
        // Files load in name order, so the same file wins a name on every start.
        do { try registry.register(agent) { files[$0].map { "\($0), which loaded first (plugin files load in name order)" } ?? "another plugin" } } catch {
            agent.link?.stop(graceMs: 0)
            throw PluginRefusal(path: path, error: error)
        }
        files[name] = path
    }

    /// What the plugin's agents may do: plexus.yaml's grants for it when
    /// set, else what its descriptor requests.
    func grants(_ d: PluginDescriptor, name: String, path: String) throws(PlexusError) -> Grants {
        let stem = PluginDescriptor.stem(of: path)
        let source = "plugins.\(stem).grants"
        if let configured = configuration.settings(for: path).grants {
            return try Grants(configured, holder: "agent '\(name)'", source: source)
        }
        var requested: [Grants.Action: [String]] = [:]
        for p in d.permissions {
            guard let a = Grants.Action(rawValue: p.kind) else { continue }
            // The host's own names (its key-value store reaches every
            // plugin's namespace) are granted by the operator, never by a
            // plugin's own request.
            if Grants.namesHost(Array((p.pattern.split(separator: ".").first ?? "").utf8)) {
                throw PlexusError(.PERMISSION_DENIED, "the descriptor requests \"\(p.kind) \(p.pattern)\", a name of the host's: only plexus.yaml can grant it (\(source))")
            }
            requested[a, default: []].append(p.pattern)
        }
        return try Grants(requested, holder: "agent '\(name)'",
                          source: source, note: "unset, the plugin gets what its descriptor requests")
    }

    private func loadInProcess(path: String) throws(PluginRefusal) -> (PluginDescriptor, AgentBehavior) {
        let p = try PluginLoader.load(path: path)
        return (p.descriptor, .plugin(p))
    }

    /// Copies the file into a sealed private image, checks it is an ELF
    /// library for this machine, and lets a worker load it: no plugin code
    /// runs in the host.
    private func loadInWorker(path: String, _ settings: PluginSettings) throws(PluginRefusal) -> (PluginDescriptor, AgentBehavior) {
        do throws(PlexusError) {
            let image = try PluginImage(path: path)
            try ELFCheck.check(path: image.procPath)
            let link = WorkerLink(image: image, policy: settings.policy, restart: settings.restart, router: router, pool: warmPool)
            return (try link.load(), .worker(link))
        } catch {
            throw PluginRefusal(path: path, error: error)
        }
    }

    /// Gives plugins their key-value store (the kv_* host functions).
    /// Call before start.
    public func attach(keyValue: any KeyValueAccess) { router.keyValue = keyValue }

    // MARK: lifecycle

    /// Initialises every agent in load order, then starts dispatch. An agent
    /// whose init fails is removed and reported; the others go on.
    /// Set when start() could not start the host's own threads.
    public private(set) var startError: PlexusError?

    public func start() {
        precondition(!running, "start() called twice")
        for agent in registry.order {
            if let link = agent.link {
                do throws(PlexusError) { try link.activate(config: configuration.settings(for: link.image.path).config) } catch {
                    refuseAtStart(agent, file: link.image.path, error)
                    continue
                }
                agent.state = .active
                started.append(agent)
                continue
            }
            guard case .plugin(let p) = agent.behavior else { agent.state = .active; started.append(agent); continue }
            var state: UnsafeMutableRawPointer?
            let s = p.initFn(HostTable.pointer, agent.ctx, configuration.settings(for: p.path).config, &state)
            if s != 0 {
                refuseAtStart(agent, file: p.path, PlexusError(status: s, "init returned \(statusName(s)); the agent was not started"))
                continue
            }
            agent.pluginState = state
            agent.state = .active
            started.append(agent)
        }
        supervisor.adopt(started.compactMap { a in a.link.map { (a.name, $0) } })
        for a in started where a.name != SystemAgent.name {
            router.lifecycle("agent.started", a.name, a.link?.status.pid.map { ["pid": .int(Int64($0))] } ?? ["in_process": .bool(true)])
        }
        do throws(ThreadStartError) {
            try router.start()
            try health.start()
        } catch {
            // No threads, no host: the caller sees startError (plexus run exits with it).
            startError = PlexusError(.INTERNAL, "the host cannot start: \(error)")
            logger.critical("host start failed", metadata: ["error": "\(error)"])
            router.stop()
            health.stop()
            return
        }
        running = true
        startSpanExport()
    }

    /// Hands spans to a swift-distributed-tracing Tracer when one is given
    /// or bootstrapped; a host that cannot start the thread runs without it.
    private func startSpanExport() {
        guard router.tracer.enabled else { return }
        let bootstrapped = InstrumentationSystem.tracer
        guard let sink = configuration.spanSink ?? (bootstrapped is NoOpTracer ? nil : bootstrapped) else { return }
        let e = SpanExporter(from: router.tracer, to: sink)
        do throws(ThreadStartError) { try e.start(); spanExporter = e } catch {
            logger.error("spans are not exported", metadata: ["error": "\(error)"])
        }
    }

    private func refuseAtStart(_ agent: Agent, file: String, _ err: PlexusError) {
        registry.unregister(agent)
        agent.link?.stop(graceMs: 0)
        if let i = reports.firstIndex(where: { $0.file == file }) {
            reports[i] = PluginReport(refused: PluginRefusal(path: file, error: err))
        }
        for m in agent.drainMailbox() { router.deadLetters.record(m, reason: "agent '\(agent.name)' failed to initialise", cause: HostMetrics.deadLetterInitFailed) }
        logger.error("agent init failed", metadata: ["agent": "\(agent.name)", "error": "\(err.detail)"])
    }

    /// Graceful: accepted work is finished within shutdownGraceMs; whatever
    /// is not is handed back (dead-lettered with the reason, callers answered
    /// SHUTTING_DOWN), never dropped. Agents stop in reverse start order.
    /// `untilMonotonic`: the grace's end when part of it was spent already
    /// (plexus run waits for cluster tasks first); nil: shutdownGraceMs from now.
    public func shutdown(untilMonotonic: Int64? = nil) {
        warmPool?.shutdown()
        guard running else {   // loaded, never started: only workers to stop
            for a in registry.order { a.link?.stop(graceMs: 0) }
            return
        }
        running = false
        endOperatorControl(started)   // no action under way; suspended agents get their mail
        reloads.stop()   // no reload from here on; what reloads started stops below with the rest
        health.stop()
        started = reloads.current(started) + lineage.close()   // after the health thread, which reads it; children last, so they stop first
        let deadline = untilMonotonic ?? Clock.monotonicNanos() + configuration.shutdownGraceMs * 1_000_000
        // 1. No new mail; what was accepted is still handled, until the deadline.
        //    (An agent an operator stopped has shut down already.)
        let stoppedByOperator = Set(started.filter { $0.state == .stopped }.map(ObjectIdentifier.init))
        for a in started { a.state = .draining }
        while Clock.monotonicNanos() < deadline && started.contains(where: { $0.load.load(ordering: .relaxed) > 0 }) {
            var ts = timespec(tv_sec: 0, tv_nsec: 2_000_000)
            nanosleep(&ts, nil)
        }
        // 2. Past it, what still waits in a mailbox is handed back:
        //    dead-lettered, and its caller answered SHUTTING_DOWN.
        router.dispatcher.stop()   // idempotent; routing itself still works
        for a in started {
            for m in a.drainMailbox() {
                router.abandon(m, at: a, reason: "the host shut down before delivery to '\(a.name)'", status: PLEXUS_SHUTTING_DOWN.status)
            }
        }
        // 3. Workers finish what they hold, all by the same deadline.
        for a in started { a.link?.beginStop() }
        for a in started.reversed() {
            a.link?.awaitStop(untilMonotonic: deadline)
            if case .plugin(let p) = a.behavior, let sd = p.shutdownFn, !stoppedByOperator.contains(ObjectIdentifier(a)) { sd(a.pluginState) }
            a.state = .terminated
        }
        router.stop()   // any request still open is answered SHUTTING_DOWN
        started.removeAll()
        spanExporter?.stop()   // after the last span: what is held is replayed
        spanExporter = nil
    }

    deinit { shutdown() }

    // MARK: messaging from outside any agent

    /// The origin external callers of this API send as.
    var apiOrigin: Router.Origin { Router.Origin(cName: clientName, agent: nil, trace: .none) }

    /// Delivers a command (agent/capability) or an event (topic). Returns its id.
    @discardableResult
    public func send(_ env: Envelope) throws(PlexusError) -> plexus_id {
        try send(env, from: apiOrigin)
    }

    func send(_ env: Envelope, from origin: Router.Origin) throws(PlexusError) -> plexus_id {
        let r: Result<plexus_id, PlexusError> = env.withCEnvelope { e in
            do throws(PlexusError) { return .success(try router.route(e, from: origin)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    /// Sends a query; `onAnswer` gets exactly one RESPONSE or ERROR envelope,
    /// unless this throws (then it is never called).
    @discardableResult
    public func request(_ env: Envelope, timeoutMs: Int64 = 0,
                        onAnswer: @escaping @Sendable (Envelope) -> Void) throws(PlexusError) -> plexus_id {
        try request(env, timeoutMs: timeoutMs, from: apiOrigin, onAnswer: onAnswer)
    }

    func request(_ env: Envelope, timeoutMs: Int64, from origin: Router.Origin,
                 onAnswer: @escaping @Sendable (Envelope) -> Void) throws(PlexusError) -> plexus_id {
        let r: Result<plexus_id, PlexusError> = env.withCEnvelope { e in
            do throws(PlexusError) { return .success(try router.route(e, from: origin, request: (.callback(onAnswer), timeoutMs))) }
            catch { return .failure(error) }
        }
        return try r.get()
    }

    /// Sends a query and blocks this thread until its answer. An ERROR answer
    /// is thrown with its status and the message the host or agent gave.
    public func call(_ env: Envelope, timeoutMs: Int64 = 0) throws(PlexusError) -> Envelope {
        let answer = OneShot<Envelope>()
        let call = BlockingCall()
        call.id = try call.routing { () throws(PlexusError) in try request(env, timeoutMs: timeoutMs) { answer.set($0) } }
        let reply = call.wait(for: answer)
        if reply.kind == .error { throw Host.error(from: reply) }
        return reply
    }

    /// The PlexusError an ERROR envelope stands for.
    public static func error(from reply: Envelope) -> PlexusError {
        let message = (try? JSONValue.parse(reply.payload))?["message"].flatMap { v -> String? in
            if case .string(let s) = v { return s } else { return nil }
        }
        return PlexusError(status: reply.status, message ?? (reply.payload.isEmpty ? statusMessage(reply.status) : reply.payloadString))
    }

    // MARK: introspection

    public var pluginReports: [PluginReport] {
        reloads.overlay(reports).map { r in
            guard r.status == "loaded", let n = r.name, let a = registry.agent(named: n) else { return r }
            var r = r
            r.subscriptions = registry.subscriptions(of: a)
            return r
        }
    }

    public var agentReports: [AgentReport] {
        (registry.everyAgent + reloads.outgoing).map { a in
            let kind: String
            switch a.behavior {
            case .plugin: kind = "plugin"
            case .worker: kind = "worker"
            case .builtin(let b): kind = b is ExternalBehavior ? "client" : "builtin"
            }
            let w = a.link?.status
            let operated = control.report(a)
            var r = AgentReport(name: a.name, state: reportedState(a), kind: kind, capabilities: a.capabilities,
                               queued: a.queued, handled: a.handled.load(ordering: .relaxed),
                               failed: a.failed.load(ordering: .relaxed), pid: w?.pid,
                               restarts: (w?.restarts ?? 0) + operated.restarts, last_exit: w?.lastExit,
                               in_flight: a.link?.inflightCount.load(ordering: .relaxed) ?? 0,
                               denied_syscalls: w?.denied ?? 0,
                               circuit: a.link == nil ? nil : supervisor.breakerState(a.name),
                               concurrency: a.link?.policy.concurrency ?? a.concurrency,
                               confinement: a.link?.confinementMechanism,
                               warm_workers: a.link.flatMap { l in
                                   warmPool?.ready(for: l.policy, maxPayload: UInt64(PLEXUS_MAX_PAYLOAD_LEN)) })
            r.last_action = operated.last
            r.version = a.pluginVersion
            r.parent = lineage.parent(of: a.name)
            if let q = a.meters?.handleQuantilesMicros() { r.handle_p50_us = q.p50; r.handle_p99_us = q.p99 }
            if let pid = w?.pid, let u = ProcUsage.read(pid: pid) { r.cpu_seconds = u.cpuSeconds; r.resident_bytes = u.residentBytes }
            return r
        }
    }

    public var deadLetterReports: [DeadLetterReport] {
        router.deadLetters.snapshot().map {
            DeadLetterReport(id: $0.envelope.id.hex, kind: $0.envelope.kind.name, sender: $0.envelope.sender,
                             target: $0.envelope.target.description, reason: $0.reason, at_unix_ns: $0.atUnixNs)
        }
    }

    public var deadLetters: [DeadLetter] { router.deadLetters.snapshot() }
    public var pendingRequests: Int { router.pending.count }
}

// MARK: - callers identified by name (socket clients)

extension Host {
    /// Sends as `sender` (a connection's identity, e.g. "client:4242"),
    /// within `grants` (nil: anything).
    @discardableResult
    public func send(_ env: Envelope, as sender: String, grants: Grants? = nil) throws(PlexusError) -> plexus_id {
        let r: Result<plexus_id, PlexusError> = sender.withCString { s in
            do throws(PlexusError) { return .success(try send(env, from: Router.Origin(cName: s, agent: nil, trace: .none, grants: grants))) }
            catch { return .failure(error) }
        }
        return try r.get()
    }

    /// Requests as `sender` within `grants`; see request(_:timeoutMs:onAnswer:).
    /// A non-zero `parentSpan` is the caller's own span for the request: the
    /// caller asked `tracer.admits` and records it, so the message is traced.
    @discardableResult
    public func request(_ env: Envelope, timeoutMs: Int64, as sender: String, grants: Grants? = nil, parentSpan: UInt64 = 0,
                        onAnswer: @escaping @Sendable (Envelope) -> Void) throws(PlexusError) -> plexus_id {
        let r: Result<plexus_id, PlexusError> = sender.withCString { s in
            do throws(PlexusError) {
                var o = Router.Origin(cName: s, agent: nil, trace: .none, grants: grants)
                o.parentSpan = parentSpan
                o.admitted = parentSpan != 0
                return .success(try request(env, timeoutMs: timeoutMs, from: o, onAnswer: onAnswer))
            } catch { return .failure(error) }
        }
        return try r.get()
    }

    /// Refuses (PERMISSION_DENIED, audited) what `grants` do not allow.
    public func authorize(_ grants: Grants?, _ action: Grants.Action, _ name: String, as sender: String) throws(PlexusError) {
        try router.authorize(grants, action, name, sender: sender)
    }

    /// Records a refusal that is not a grant check (a connection or a hello
    /// refused): kept with the others, logged, published on plexus.audit.denied.
    public func audit(holder: String, sender: String, action: String, name: String, reason: String) {
        router.record(AuditEvent(holder: holder, sender: sender, action: action, name: name, reason: reason, at_unix_ns: Clock.unixNanos()))
    }

    /// The most recent permission refusals, oldest first, and how many there were in all.
    public var auditEvents: (recent: [AuditEvent], total: Int) { (router.audit.snapshot(), router.audit.recorded) }
}
