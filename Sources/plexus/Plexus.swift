import ArgumentParser
import Logging
import Glibc
import PlexusHost
import PlexusConfig
import PlexusSocket
import PlexusCore
import FoundationEssentials

@main
struct Plexus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plexus",
        abstract: "A host for multi-agent systems whose agents are C-ABI plugins.",
        discussion: """
            Agents are shared libraries (.so) implementing include/plexus.h, found in the
            plugins directory. Commands that need a host use a running one (plexus run)
            when its socket answers, and start an embedded host otherwise.

            Exit status, for every command: 0 done (a command that shows a state exits 0
            whatever it shows); 1 the request was made and failed (an error reply, a task
            or run that failed while the command waited, a refused plugin file, a missing
            key, a value the host refused); 2 a usage error found before anything was
            asked (unknown command or option, a value the command line rejects, a missing
            --file); 3 no host (none answers at the socket, or it went away during the
            command).
            """,
        subcommands: [PluginsCommand.self, AgentsCommand.self, CallCommand.self, TasksCommand.self, WorkflowCommand.self, EventsCommand.self, KvCommand.self, AuditCommand.self,
                      RunCommand.self, BenchCommand.self, TraceCommand.self, TopCommand.self, NodesCommand.self])
}

/// What an embedded or `plexus run` host is made of: its plugins,
/// configuration and sandbox mode. A running host was made already, so
/// commands that only talk to one do not take these.
struct HostFiles: ParsableArguments {
    @Option(name: .long, help: "Directory of plugin .so files (default: $PLEXUS_PLUGINS or ./Plugins).")
    var plugins: String?

    @Option(name: .long, help: "Where every plugin runs: process (each in a sandboxed worker) or in-process, over plexus.yaml (default: $PLEXUS_SANDBOX, then the config file, then process).")
    var sandbox: SandboxMode?

    @Option(name: .long, help: "The configuration file (default: $PLEXUS_CONFIG, else ./plexus.yaml when it exists).")
    var config: String?

    var pluginsDirectory: String { plugins ?? env("PLEXUS_PLUGINS") ?? "Plugins" }

    /// Whether any was given on the command line.
    var given: [String] {
        [plugins.map { _ in "--plugins" }, sandbox.map { _ in "--sandbox" }, config.map { _ in "--config" }].compactMap { $0 }
    }

    /// The configuration file in use, if any.
    var configFile: String? { config ?? env("PLEXUS_CONFIG") ?? (access("plexus.yaml", R_OK) == 0 ? "plexus.yaml" : nil) }

    /// Built-in defaults, then the configuration file, then these options.
    func hostConfiguration() throws -> HostConfiguration {
        var c = HostConfiguration(pluginsDirectory: pluginsDirectory)
        c.warmWorkers = 2   // plexus.yaml's default (defaults.warm_workers)
        if let file = configFile {
            do { c = try ConfigFile.load(path: file, into: c) } catch { throw CLIError("\(error)") }
        }
        if let mode = sandbox ?? env("PLEXUS_SANDBOX").flatMap(SandboxMode.init(rawValue:)) {
            c.sandbox = mode
            for k in c.plugins.keys { c.plugins[k]?.sandbox = mode }
        }
        return c
    }
}

/// `plexus run`'s: what the host is made of, and its socket.
struct HostSetup: ParsableArguments {
    @OptionGroup var files: HostFiles

    @Option(name: .long, help: "The host's socket (default: $PLEXUS_SOCKET or \(SocketPath.defaultDescription)).")
    var socket: String?

    var socketPath: String { socket ?? SocketPath.default }
    var pluginsDirectory: String { files.pluginsDirectory }
    var configFile: String? { files.configFile }
    func hostConfiguration() throws -> HostConfiguration { try files.hostConfiguration() }
}

/// Only what reaches a running host: its socket and the client to say
/// hello as. Commands about a running host (its durable state, its agents
/// live, its traces) take only this: --plugins, --sandbox and --config
/// would do nothing there, and they offer no --embedded.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: "The host's socket (default: $PLEXUS_SOCKET or \(SocketPath.defaultDescription)).")
    var socket: String?

    @Option(name: .long, help: "Say hello to the running host as this client of its plexus.yaml (default: $PLEXUS_CLIENT; none: the host's own user).")
    var client: String?

    @Option(name: .long, help: "The client's token (default: $PLEXUS_TOKEN).")
    var token: String?

    var socketPath: String { socket ?? SocketPath.default }

    /// A connection to the running host (after its hello when a client is
    /// named); nil when none answers at the socket.
    func runningHost() throws -> SocketClient? {
        try connectToHost(socketPath, client: client, token: token)
    }

    /// The running host, or exit 3 saying none answers at the socket.
    func hostForState() throws -> SocketClient {
        guard let c = try runningHost() else { throw CLIError.noHost(socketPath) }
        return c
    }
}

/// Options of the commands that can also run on a host of their own
/// (call, plugins, agents, audit): the connection, and --embedded.
struct HostOptions: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions
    /// For an embedded host only: a running host keeps what it was started with.
    @OptionGroup var files: HostFiles

    @Flag(name: .long, help: "Never use a running host; always start an embedded one.")
    var embedded = false

    var pluginsDirectory: String { files.pluginsDirectory }
    var socketPath: String { connection.socketPath }
    func hostConfiguration() throws -> HostConfiguration { try files.hostConfiguration() }

    /// The running host; nil when none answers, or with --embedded. Says
    /// so when --plugins, --sandbox or --config were given for nothing.
    func runningHost() throws -> SocketClient? {
        guard !embedded, let c = try connection.runningHost() else { return nil }
        let unused = files.given
        if !unused.isEmpty {
            FileHandleErr.note("plexus: \(unused.joined(separator: ", ")) shape\(unused.count == 1 ? "s" : "") an embedded host only; "
                               + "the running host at \(socketPath) keeps its own (pass --embedded to start one with \(unused.count == 1 ? "it" : "them"))")
        }
        return c
    }

    /// What the running host's `capability` answers, decoded. With no host
    /// running: a fresh embedded host's `embedded` value when `fallback`
    /// (or --embedded) allows, else a clear error.
    func ask<T: Decodable>(_ capability: String, fallback: Bool, embedded: (Host) -> T) throws -> T {
        if let c = try runningHost() {
            FileHandleErr.note("plexus: asking the running host at \(socketPath)")
            do {
                let reply = try c.call(Envelope(kind: .query, target: .capability(capability)), timeoutMs: 10_000)
                return try JSONDecoder().decode(T.self, from: Data(reply.payload))
            } catch let e as PlexusError { throw CLIError("\(e.name): \(e.detail)") }
        }
        guard fallback || self.embedded else {
            throw CLIError.noHost(socketPath, "start one with `plexus run`, pass --socket PATH, or --embedded")
        }
        announceEmbedded()
        let host = try embeddedHost()
        defer { host.shutdown() }
        return embedded(host)
    }

    /// Says, unless --embedded asked for it, that this command runs on a
    /// host of its own rather than on `plexus run`'s: its agents start
    /// fresh, and nothing it does outlives the command.
    func announceEmbedded() {
        guard !embedded else { return }
        FileHandleErr.note("""
            plexus: no host is running at \(socketPath), so this command runs on an embedded host of its own \
            (plugins from \(pluginsDirectory); nothing it does outlives the command). \
            Start one with `plexus run`, or pass --embedded to mean this.
            """)
    }

    /// A host started in this process, with every plugin loaded and started.
    func embeddedHost() throws -> Host {
        var config = try hostConfiguration()
        config.threads = min(config.threads, 2)
        config.warmWorkers = 0   // a one-command host restarts nothing: warm workers would be wasted starts
        let host = Host(config)
        do { try host.loadPlugins() } catch { throw CLIError(error.description) }
        host.start()
        return host
    }
}

extension SandboxMode: ExpressibleByArgument {}

/// A command's failure: printed as `Error: description` on stderr, and the
/// process exits with `code` (see ExitStatus).
struct CLIError: Error, CustomStringConvertible {
    let description: String
    let code: Int32
    init(_ d: String, code: Int32 = ExitStatus.failed) { description = d; self.code = code }

    static func noHost(_ path: String, _ hint: String = "start one with `plexus run`, or pass --socket PATH") -> CLIError {
        CLIError("no host is running at \(path): \(hint)", code: ExitStatus.noHost)
    }
}

func env(_ name: String) -> String? {
    guard let v = getenv(name) else { return nil }
    let s = String(cString: v)
    return s.isEmpty ? nil : s
}

/// Logs go to stderr so stdout stays the command's output. PLEXUS_LOG_LEVEL
/// (trace, debug, info, notice, warning, error) overrides the default.
func bootstrapLogging(default level: Logger.Level) {
    let chosen = env("PLEXUS_LOG_LEVEL").flatMap(Logger.Level.init(rawValue:)) ?? level
    LoggingSystem.bootstrap { label in
        var h = StreamLogHandler.standardError(label: label)
        h.logLevel = chosen
        return h
    }
}
/// A connection to the host at path, after its hello when a client is named
/// (here or in $PLEXUS_CLIENT, with --token or $PLEXUS_TOKEN); nil when no
/// host answers there.
func connectToHost(_ path: String, client: String?, token: String?) throws -> SocketClient? {
    guard let c = try? SocketClient(path: path) else { return nil }
    if let name = client ?? env("PLEXUS_CLIENT") {
        do { try c.hello(name, token: token ?? env("PLEXUS_TOKEN")) } catch { throw CLIError("\(error.name): \(error.detail)") }
    }
    return c
}
