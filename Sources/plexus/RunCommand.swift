import ArgumentParser
import Glibc
import PlexusConfig
import PlexusCore
import PlexusDashboard
import PlexusHost
import PlexusHTTP
import PlexusSocket
import Synchronization
import PlexusStore
import PlexusTasks
import PlexusWorkflows
import PlexusCluster
import PlexusThreads

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the host until SIGINT or SIGTERM, serving clients on its Unix socket.",
        discussion: """
            On SIGINT or SIGTERM the host stops taking new messages, lets accepted work finish for up to \
            --shutdown-grace-ms, then hands back what is left (dead-lettered, callers answered SHUTTING_DOWN) \
            and stops agents in reverse start order. While it runs it watches the plugins directory \
            (plexus.yaml reload.watch): a .so copied in is loaded, a changed one replaces the running version \
            without stopping its callers (rolled back if it fails to start or crashes on probation), a removed \
            one drains and stops.
            """)

    @OptionGroup var options: HostSetup
    @Option(parsing: .unconditional, help: "How long accepted work may take to finish at shutdown, in milliseconds.")
    var shutdownGraceMs: Int64 = 2_000
    @Option(help: "The durable store: tasks, events, key-value (default: $PLEXUS_STORE, then plexus.yaml's store.path, else ./plexus.db).")
    var store: String?
    @Option(parsing: .unconditional, help: "A client that sends part of a frame and then nothing for this long is disconnected, in milliseconds.")
    var clientFrameTimeoutMs: Int64 = 2_000
    @Option(name: .customLong("http"), help: ArgumentHelp(
        "Serve /healthz, /metrics and the dashboard at this address, such as 127.0.0.1:7400 (default: plexus.yaml's http.listen; none: off).",
        valueName: "HOST:PORT"))
    var httpAddress: String?
    @Option(name: .customLong("nats"), help: ArgumentHelp(
        "Join the hosts on this NATS server as one system: agents, capabilities and topics reach across them; several servers of one NATS cluster comma-separated; durable tasks then run on any host's providers through JetStream (nats-server -js) (default: plexus.yaml's nats.url; none: this host is alone).",
        valueName: "nats://HOST:PORT"))
    var natsURL: String?
    @Option(name: .customLong("node"), help: "This host's name in the cluster, unique in it (default: plexus.yaml's nats.node, else the hostname).")
    var nodeName: String?

    func run() throws {
        bootstrapLogging(default: .info)
        // Block the stop signals in every thread; this one waits for them.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)

        var config = try options.hostConfiguration()
        config.threads = max(1, config.threads)
        guard shutdownGraceMs >= 0 else { throw CLIError("--shutdown-grace-ms must be 0 or more, not \(shutdownGraceMs)", code: ExitStatus.usage) }
        config.shutdownGraceMs = shutdownGraceMs
        guard clientFrameTimeoutMs > 0 else { throw CLIError("--client-frame-timeout-ms must be 1 or more, not \(clientFrameTimeoutMs)", code: ExitStatus.usage) }
        config.http = try httpSettings(over: config.http)
        config.nats = try natsSettings(over: config.nats)
        if let a = config.http.listen {
            do { try HTTPServer.checkBindable(a) } catch { throw CLIError("\(error)") }
        } else if config.http.token != nil {
            FileHandleErr.note("plexus: warning: http.token is set but no address: the HTTP server is off (set http.listen in plexus.yaml, or --http)")
        }
        // Metrics follow the HTTP server unless plexus.yaml says otherwise.
        if config.metrics.enabled == nil { config.metrics.enabled = config.http.listen != nil }
        // Each held client connection is a descriptor: allow what the hard limit allows.
        switch FileLimit.raiseToHard() {
        case .success(let l) where l.new < 16_384:
            FileHandleErr.note("plexus: the open-file limit is \(l.new) (hard limit): at most about \(l.new - 64) clients can be connected at once")
        case .success: break
        case .failure(let e): FileHandleErr.note("plexus: \(e)")
        }
        // Joined before the store opens and the host is made (both start threads that an
        // early exit would race): a taken node name or an unreachable
        // server is refused before any worker starts.
        var join: ClusterNode.Join?
        if config.nats.url != nil {
            do { join = try ClusterNode.Join(settings: config.nats, socketPath: options.socketPath) } catch { throw CLIError(error.detail) }
        }
        // The store first: a second host on it is refused (StoreLock) before
        // it starts a single worker.
        let path = store ?? env("PLEXUS_STORE") ?? config.store.path ?? "plexus.db"
        let db: Store
        do { db = try Store(path: path) } catch { throw CLIError(error.description) }
        let host = Host(config)
        var cluster: ClusterNode?
        if let join {
            let c = ClusterNode(join, host: host)
            host.attach(remote: c)
            do { try c.installService() } catch { throw CLIError(error.detail) }
            cluster = c
        }
        do { try host.loadPlugins() } catch { throw CLIError(error.description) }
        if db.openReport != "ok" { FileHandleErr.note("plexus: the store \(path) was damaged and recovered: \(db.openReport)") }
        do { try db.startRetention(config.store.retention) } catch { throw CLIError("\(error)") }
        let scheduler = try Scheduler(host: host, store: db)
        // Durable tasks across the cluster's hosts, on JetStream (ClusterTasks).
        var clusterTasks: ClusterTasks?
        if let cluster {
            // Without JetStream (nats-server started without -js, or a NATS
            // user not allowed its subjects) the host still joins; its
            // durable tasks stay its own, and it says so.
            do {
                clusterTasks = try ClusterTasks(cluster, host: host, store: db)
                scheduler.exchange = clusterTasks
            } catch {
                FileHandleErr.note("plexus: warning: durable tasks run on this host only: \(error.detail)")
            }
        }
        let engine = try WorkflowEngine(scheduler: scheduler)
        // Made before the host starts: it counts who sends to whom from the first message.
        let dashboard = config.http.listen == nil ? nil : Dashboard(host: host, scheduler: scheduler, engine: engine, store: db)
        do throws(PlexusError) {
            try TaskService.install(on: host, scheduler: scheduler)
            try WorkflowService.install(on: host, engine: engine)
            if config.nats.sharedKeyValue {   // nats.kv: jetstream: one key-value store for every host
                guard let cluster else { throw PlexusError(.INVALID_ARGUMENT, "nats.kv: jetstream shares the key-value store over NATS: give --nats nats://HOST:PORT (or nats.url) too") }
                try KeyValueService.install(on: host, backend: try cluster.sharedKeyValue())
            } else {
                try KeyValueService.install(on: host, store: db)
            }
        } catch { throw CLIError(error.description) }
        host.start()
        if let e = host.startError { throw CLIError(e.description) }
        do {
            try cluster?.start()
            // Every event the store commits also goes to the cluster's JetStream stream (plexus events --cluster).
            try cluster?.publishEvents(from: EventLog(newest: { try db.latestEvents(1).first?.seq ?? 0 }, after: { seq, limit in
                try db.events(after: seq, limit: limit).map { LoggedEvent(seq: $0.seq, atUnixNs: $0.at_unix_ns, kind: $0.kind, subject: $0.subject, data: $0.data) }
            }))
        } catch {
            cluster?.stop()
            host.shutdown()
            throw CLIError(error.detail)
        }
        try scheduler.start()
        do { try clusterTasks?.start(scheduler: scheduler) } catch { throw CLIError(error.detail) }
        try engine.start()   // runs that were running when the host stopped go on
        let server: SocketServer
        var socketOptions = SocketServer.Options()
        socketOptions.partialFrameTimeoutMs = clientFrameTimeoutMs
        do {
            server = try SocketServer(host: host, path: options.socketPath, options: socketOptions)
            try server.start()
        } catch {
            host.shutdown()
            throw CLIError(error.description)
        }
        if let m = host.metrics { Self.collectRunMetrics(m, server: server, store: db) }
        if let m = host.metrics, let cluster { Self.collectClusterMetrics(m, cluster: cluster) }
        let serving = Serving()
        let web: HTTPServer?
        do {
            try dashboard?.start()
            web = try startHTTP(config.http, host: host, serving: serving, dashboard: dashboard)
        } catch {
            dashboard?.stop()
            server.stop()
            host.shutdown()
            throw CLIError("\(error)")
        }
        if config.reload.watch {   // plugin files added, changed or removed from now on are loaded, upgraded, unloaded
            do { try host.watchPlugins() } catch { FileHandleErr.note("plexus: not watching \(options.pluginsDirectory) for plugin changes: \(error.detail)") }
        }
        let loaded = host.pluginReports.filter { $0.status == "loaded" }.compactMap(\.name)
        FileHandleErr.note("plexus: host up with \(loaded.count) plugin(s) [\(loaded.joined(separator: ", "))], listening on \(server.path), store \(path)")
        if let web { FileHandleErr.note("plexus: serving HTTP at http://\(web.address)/") }
        if let cluster { FileHandleErr.note("plexus: node \(cluster.node) of cluster \(cluster.cluster) at \(config.nats.url.map(ClusterNode.redacted) ?? "")") }
        for r in host.pluginReports where r.status == "refused" {
            FileHandleErr.note("plexus: refused \(r.file): \(r.reason ?? "")")
        }
        warnUnmatchedNames(host, config)
        var sig: Int32 = 0
        sigwait(&set, &sig)
        FileHandleErr.note("plexus: \(sig == SIGINT ? "SIGINT" : "SIGTERM") received, shutting down")
        try ShutdownDeadline.arm(host: host, graceMs: shutdownGraceMs)
        // One grace for everything: cluster attempts and the host's own work.
        let graceEnds = Clock.monotonicNanos() + shutdownGraceMs * 1_000_000
        serving.up.store(false, ordering: .relaxed)
        dashboard?.stop()   // ends its streams, which the HTTP server's stop would wait for
        // Connected clients keep their connections through the grace period,
        // so what they asked for is answered (or SHUTTING_DOWN) before they go.
        server.stopAccepting()
        // No more durable tasks fetched here; what runs for the cluster
        // finishes within the grace and is recorded, answered and acked
        // (or given back) while the NATS connection is still open.
        clusterTasks?.stop(untilMonotonic: graceEnds)
        cluster?.stop()   // the other hosts drop this one now; nothing new arrives from them
        engine.stop()
        scheduler.stop()
        host.shutdown(untilMonotonic: graceEnds)
        server.stop()
        web?.stop()
        db.close()
    }

    /// --http over plexus.yaml's http.listen. A non-loopback address needs
    /// the token only plexus.yaml can hold (a token on the command line
    /// would show in every `ps`).
    func httpSettings(over base: HTTPSettings) throws -> HTTPSettings {
        var h = base
        guard let text = httpAddress else { return h }
        switch HTTPSettings.Address.parse(text) {
        case .success(let a): h.listen = a
        case .failure(let e): throw CLIError("--http: \(e)", code: ExitStatus.usage)
        }
        if h.isOpenWithoutToken {
            throw CLIError("--http: \(h.listen!) is reachable from other machines: set http.token_env (or http.token) in plexus.yaml first, or listen on 127.0.0.1", code: ExitStatus.usage)
        }
        return h
    }

    /// --nats and --node over plexus.yaml's nats:.
    func natsSettings(over base: NATSSettings) throws -> NATSSettings {
        var n = base
        if let u = natsURL {
            do throws(PlexusError) { try NATSSettings.checkURL(u) } catch { throw CLIError("--nats: \(error.detail)", code: ExitStatus.usage) }
            n.url = u
        }
        if let name = nodeName {
            do throws(PlexusError) { try NATSSettings.checkToken(name, what: "the node name") } catch { throw CLIError("--node: \(error.detail)", code: ExitStatus.usage) }
            guard n.url != nil else { throw CLIError("--node names this host in a cluster: give --nats nats://HOST:PORT (or nats.url in plexus.yaml) too", code: ExitStatus.usage) }
            n.node = name
        }
        return n
    }

    func startHTTP(_ settings: HTTPSettings, host: Host, serving: Serving, dashboard: Dashboard?) throws -> HTTPServer? {
        guard settings.listen != nil else { return nil }
        let metrics = HTTPServer.metricsRoute { host.metricsText() }
        return try HTTPServer(settings, healthy: { serving.up.load(ordering: .relaxed) }) { routes in
            metrics(routes)
            dashboard?.routes(routes)
        }
    }
}

extension RunCommand {
    /// plexus.yaml names a plugin with no file, or supervises an agent that
    /// does not exist: said loudly with file:line:column and the closest name.
    func warnUnmatchedNames(_ host: Host, _ config: HostConfiguration) {
        guard let file = options.configFile, let text = try? ConfigFile.readText(file) else { return }
        let reports = host.pluginReports
        let plugins = reports.filter { $0.status != "missing" }.map { String($0.file.split(separator: "/").last!.dropLast(3)) }
        let agents = host.agentReports.map(\.name)
        let loaded = reports.filter { $0.status == "loaded" }.compactMap(\.name)   // descriptor names: what spawn.plugins lists
        for w in ConfigFile.unmatched(ConfigFile.references(text, file: file), plugins: plugins, agents: agents, loaded: loaded,
                                      pluginsDirectory: config.pluginsDirectory ?? options.pluginsDirectory) {
            FileHandleErr.note("plexus: warning: \(w)")
        }
    }
}

/// True from start until shutdown begins: /healthz answers 200 while it is.
final class Serving: Sendable {
    let up = Atomic(true)
}
