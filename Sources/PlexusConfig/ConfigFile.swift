import PlexusCore
import PlexusHost
import PlexusSandbox
import Yams
import Glibc

/// A mistake in plexus.yaml: where it is and what is wrong.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let line: Int
    public let column: Int
    public let field: String
    public let problem: String
    /// "plexus.yaml:7:5: plugins.textkit.limits.memory: expected a size such as 512MiB, found "lots""
    /// Without a position (line 0: the file as a whole), "file: problem", or
    /// the problem alone when it names the file already ("cannot read
    /// /x.yaml: no such file or directory").
    public var description: String {
        let what = "\(field.isEmpty ? "" : "\(field): ")\(problem)"
        if line > 0 { return "\(file):\(line):\(column): \(what)" }
        return problem.contains(file) && field.isEmpty ? problem : "\(file): \(what)"
    }

    public init(file: String, line: Int, column: Int, field: String, problem: String) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.problem = problem
    }
}

/// Reads plexus.yaml into a HostConfiguration. Every field is checked; an
/// unknown key, a wrong type or an out-of-range value is refused with the
/// file, line, column and dotted field path, and nothing is half-applied.
///
/// ```yaml
/// defaults:                    # every plugin, unless overridden below
///   sandbox: process           # or in-process (trusted code only)
///   limits: { memory: 1GiB, cpu_seconds: 600, cpu_hard_seconds: 610, open_files: 256, file_size: 64MiB }
///   syscalls: []               # system calls the filter lets through besides the base set: fork, exec, socket, ptrace, or a call's name
///   grants: { call: ["*"] }    # what plugins may message (unset: what each plugin's descriptor requests)
///   network: false             # true: the host's network instead of an empty network namespace
///   filesystem: { read: [/srv/data], write: [/srv/out], tmp_size: 16MiB }   # absolute paths that exist, seen as uid 65534
///   confinement: required      # or rlimits-only: start plugins even where no namespace or Landlock can be had (defaults only)
///   restart: { intensity: 5, period_seconds: 10, backoff_ms: 10, backoff_max_ms: 2000, max_attempts: 3 }
///   health: { heartbeat_ms: 1000, timeout_ms: 5000, grace_ms: 1000, load_timeout_ms: 5000 }
/// plugins:
///   textkit:                   # the plugin file's name without .so
///     sandbox: in-process
///     config: { greeting: hi } # the JSON object its init() receives
///     grants: { call: [text.stats, text.keywords], publish: [docs.summarized], subscribe: ["docs.>"] }
///   keywords:
///     instances: 3             # workers keywords, keywords.2, keywords.3 share its capabilities
///   fetcher:
///     concurrency: 8           # handlers per instance at once (plugin must declare PLEXUS_PLUGIN_CONCURRENT)
/// clients:                     # socket users besides the host's own user
///   owner: { grants: { call: ["plexus.>"] } }   # the host's own user without a hello (default: everything)
///   reporter:
///     uid: 1001                # its connection's peer uid must be this
///     token_env: REPORTER_TOKEN # and its hello must carry this token (or token: "...", 16+ characters)
///     grants: { call: [report.summarize], publish: [], subscribe: ["docs.>"], register: [] }
/// supervision:                 # the tree; agents it does not name join the root
///   strategy: one-for-one      # one-for-all, rest-for-one
///   intensity: 5               # restarts allowed within period_seconds before giving up
///   period_seconds: 10
///   children:
///     - agent: textkit
///       restart: permanent     # transient, temporary
///     - group: text
///       strategy: rest-for-one
///       children: [{ agent: keywords }, { agent: summarizer, restart: transient }]
/// http:                        # `plexus run`'s HTTP server: /healthz, /metrics, the dashboard at /
///   listen: 127.0.0.1:7400     # --http takes precedence; not loopback: a token is required
///   token_env: PLEXUS_HTTP_TOKEN  # or token: "..." (16+ characters): `Authorization: Bearer TOKEN`
/// metrics:                     # the host's meters and /metrics
///   enabled: true              # unset: on when the HTTP server is on
/// store:                       # the durable store (`plexus run`)
///   path: plexus.db            # --store and $PLEXUS_STORE take precedence
///   retention:                 # run every interval_seconds; open work is never removed
///     events: 100000           # newest events kept
///     finished_tasks_hours: 168   # completed, dead and cancelled tasks, with their attempts
///     finished_runs_hours: 720    # completed and failed workflow runs, with their checkpoints
///     interval_seconds: 60
/// nats:                        # several hosts as one system (`plexus run --nats URL --node NAME`)
///   url: nats://127.0.0.1:4222 # --nats takes precedence; user:password@ may be in it
///   node: b                    # this host's name in the cluster (default: the hostname); --node takes precedence
///   cluster: plexus            # hosts with the same NATS account and cluster name form one system
///   credentials: /etc/plexus/node-b.creds   # a NATS credentials file, when the server asks for one
///   grants: { call: [report.>], publish: [docs.>] }   # what senders on other hosts may do here (unset: anything)
///   events: { max_hours: 168, max_bytes: 1GiB, max_messages: 1000000, catch_up: 10000 }   # the JetStream event stream
///   kv: jetstream              # the agents' key-value store shared by every host (JetStream KV); default local
/// tracing:                     # spans of what the host routes (`plexus trace`)
///   enabled: true
///   spans: 16384               # records the ring keeps; the oldest are overwritten
///   rate: 2000                 # messages recorded per second at most (0: all)
/// ```
public enum ConfigFile {
    public static func load(path: String, into base: HostConfiguration) throws(ConfigError) -> HostConfiguration {
        try parse(try readText(path), file: path, into: base)
    }

    /// A file's text, or "cannot read PATH: no such file or directory"
    /// (the system's reason, as open(2) or read(2) gave it).
    public static func readText(_ path: String) throws(ConfigError) -> String {
        func refuse(_ why: String) -> ConfigError {
            ConfigError(file: path, line: 0, column: 0, field: "", problem: "cannot read \(path): \(why)")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw refuse(String(cString: strerror(errno)).lowercased()) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw refuse(String(cString: strerror(errno)).lowercased())
            }
            bytes += chunk[0..<n]
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw refuse("it is not UTF-8 text") }
        return text
    }

    public static func parse(_ text: String, file: String, into base: HostConfiguration) throws(ConfigError) -> HostConfiguration {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw syntaxError(error, file: file, text: text)
        }
        var config = base
        guard let root else { return config }
        let r = Reader(file: file)
        let top = try r.mapping(root, "", keys: ["defaults", "plugins", "supervision", "clients", "store", "http", "metrics", "tracing", "reload", "nats"])
        if let s = top["store"] { config.store = try r.store(s, over: config.store) }
        if let h = top["http"] { config.http = try r.http(h, over: config.http) }
        if let m = top["metrics"] { config.metrics = try r.metrics(m, over: config.metrics) }
        if let t = top["tracing"] { config.tracing = try r.tracing(t, over: config.tracing) }
        if let l = top["reload"] { config.reload = try r.reload(l, over: config.reload) }
        if let n = top["nats"] { config.nats = try r.nats(n, over: config.nats) }
        var defaults = PluginSettings(sandbox: base.sandbox, policy: base.workerPolicy, restart: base.restartPolicy,
                                      grants: base.pluginGrants)
        if let d = top["defaults"] { defaults = try r.settings(d, "defaults", over: defaults) }
        config.sandbox = defaults.sandbox
        if let w = defaults.warmWorkers { config.warmWorkers = w }
        if let t = defaults.spawnMaxTotal { config.spawnMaxTotal = t }
        config.workerPolicy = defaults.policy
        config.restartPolicy = defaults.restart
        config.pluginGrants = defaults.grants
        if let c = top["clients"] { try r.clients(c, into: &config) }
        if let t = top["supervision"] {
            config.supervision = try r.supervisor(t, "supervision", name: "root",
                                                  intensity: defaults.restart.intensity, period: defaults.restart.periodSeconds)
        }
        if let p = top["plugins"] {
            for (name, node) in try r.mapping(p, "plugins", keys: nil) {
                config.plugins[name] = try r.settings(node, "plugins.\(name)", over: defaults)
            }
        }
        return config
    }

    public static func syntaxError(_ error: Error, file: String, text: String? = nil) -> ConfigError {
        if let y = error as? YamlError, case .scanner(_, let problem, let mark, _) = y {
            return ConfigError(file: file, line: mark.line, column: mark.column, field: "", problem: "not valid YAML: \(problem)")
        }
        if let y = error as? YamlError, case .parser(_, let problem, let mark, _) = y {
            return ConfigError(file: file, line: mark.line, column: mark.column, field: "", problem: "not valid YAML: \(problem)")
        }
        if let y = error as? YamlError, case .duplicatedKeysInMapping(let keys, let context) = y {
            let key = keys.first ?? "?"
            let (line, column) = secondOccurrence(of: key, after: context.mark, in: text)
            return ConfigError(file: file, line: line, column: column, field: "", problem:
                "'\(key)' is given twice in one mapping (first at line \(context.mark.line)); keep one")
        }
        return ConfigError(file: file, line: 0, column: 0, field: "", problem: "not valid YAML: \(error)")
    }

    /// Where a duplicated key appears again: Yams marks only its first
    /// occurrence, so the lines after it are searched for the same key at the
    /// same column (block style); a flow mapping on one line keeps the first mark.
    static func secondOccurrence(of key: String, after first: Mark, in text: String?) -> (Int, Int) {
        guard let text else { return (first.line, first.column) }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard first.line >= 1, first.line <= lines.count else { return (first.line, first.column) }
        for i in first.line..<lines.count {
            let l = lines[i].unicodeScalars
            let indent = l.prefix { $0 == " " }.count
            guard indent == first.column - 1 else { continue }
            var rest = Substring(String(l.dropFirst(indent)))
            if rest.hasPrefix("\"\(key)\"") { rest = rest.dropFirst(key.count + 2) }
            else if rest.hasPrefix("'\(key)'") { rest = rest.dropFirst(key.count + 2) }
            else if rest.hasPrefix(key) { rest = rest.dropFirst(key.count) } else { continue }
            if rest.drop(while: { $0 == " " }).hasPrefix(":") { return (i + 1, first.column) }
        }
        return (first.line, first.column)
    }
}

/// Walks the YAML tree, keeping the position of every node for errors.
/// Workflow files are read with it too.
public struct Reader {
    public let file: String
    public init(file: String) { self.file = file }

    public func fail(_ node: Node, _ field: String, _ problem: String) -> ConfigError {
        ConfigError(file: file, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0, field: field, problem: problem)
    }

    /// A mapping's entries by key; `keys` (when given) are the only ones allowed.
    public func mapping(_ node: Node, _ field: String, keys: [String]?) throws(ConfigError) -> [(String, Node)] {
        guard case .mapping(let m) = node else { throw fail(node, field, "expected a mapping (key: value lines), found \(kind(node))") }
        var out: [(String, Node)] = []
        for (k, v) in m {
            guard case .scalar(let s) = k else { throw fail(k, field, "keys must be plain names") }
            let path = field.isEmpty ? s.string : "\(field).\(s.string)"
            if let keys, !keys.contains(s.string) {
                throw fail(k, path, "unknown field; expected one of: \(keys.joined(separator: ", "))")
            }
            if out.contains(where: { $0.0 == s.string }) { throw fail(k, path, "given twice") }
            out.append((s.string, v))
        }
        return out
    }

    public func mapping(_ node: Node, _ field: String, keys: [String]) throws(ConfigError) -> [String: Node] {
        let entries: [(String, Node)] = try mapping(node, field, keys: keys)
        return Dictionary(entries, uniquingKeysWith: { a, _ in a })
    }

    public func kind(_ n: Node) -> String {
        switch n {
        case .scalar(let s): return "\"\(s.string)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    public func string(_ node: Node, _ field: String) throws(ConfigError) -> String {
        guard case .scalar(let s) = node else { throw fail(node, field, "expected a value, found \(kind(node))") }
        return s.string
    }

    public func integer(_ node: Node, _ field: String, in range: ClosedRange<Int64>) throws(ConfigError) -> Int64 {
        let s = try string(node, field)
        guard let v = Int64(s.replacingOccurrences(of: "_", with: "")) else { throw fail(node, field, "expected a whole number, found \"\(s)\"") }
        guard range.contains(v) else { throw fail(node, field, "\(v) is out of range \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    public func number(_ node: Node, _ field: String, in range: ClosedRange<Double>) throws(ConfigError) -> Double {
        let s = try string(node, field)
        guard let v = Double(s) else { throw fail(node, field, "expected a number, found \"\(s)\"") }
        guard range.contains(v) else { throw fail(node, field, "\(s) is out of range \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    public func bool(_ node: Node, _ field: String) throws(ConfigError) -> Bool {
        switch try string(node, field) {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        case let s: throw fail(node, field, "expected true or false, found \"\(s)\"")
        }
    }

    /// "512MiB", "1GiB", "64MB", "4096": a byte count.
    func size(_ node: Node, _ field: String) throws(ConfigError) -> UInt64 {
        let s = try string(node, field)
        let units: [(String, UInt64)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1)]
        var digits = s.trimmingCharacters(in: .whitespaces)
        var scale: UInt64 = 1
        for (u, f) in units where digits.hasSuffix(u) {
            digits = String(digits.dropLast(u.count)).trimmingCharacters(in: .whitespaces)
            scale = f
            break
        }
        guard let n = UInt64(digits), n > 0, n <= UInt64.max / scale else {
            throw fail(node, field, "expected a size such as 512MiB or 1GiB, found \"\(s)\"")
        }
        return n * scale
    }

    func settings(_ node: Node, _ field: String, over base: PluginSettings) throws(ConfigError) -> PluginSettings {
        var s = base
        let m = try mapping(node, field, keys: ["sandbox", "limits", "syscalls", "grants", "network_namespace", "restart", "health",
                                                "config", "instances", "concurrency", "network", "filesystem", "confinement",
                                                "warm_workers", "spawn"])
        if let n = m["spawn"] { try spawn(n, "\(field).spawn", into: &s) }
        if let n = m["warm_workers"] {
            guard field == "defaults" else {
                throw fail(n, "\(field).warm_workers", "set warm_workers under defaults: the host keeps that many per worker policy in use, for every plugin")
            }
            s.warmWorkers = Int(try integer(n, "defaults.warm_workers", in: 0...16))
        }
        if let n = m["sandbox"] {
            let v = try string(n, "\(field).sandbox")
            guard let mode = SandboxMode(rawValue: v) else { throw fail(n, "\(field).sandbox", "expected process or in-process, found \"\(v)\"") }
            s.sandbox = mode
        }
        if let n = m["limits"] { try limits(n, "\(field).limits", into: &s.policy) }
        if let n = m["syscalls"] { try syscalls(n, "\(field).syscalls", into: &s.policy) }
        if let n = m["grants"] {
            if case .sequence = n {
                throw fail(n, "\(field).grants", "grants is now what the plugin may message: { call: [...], publish: [...], subscribe: [...] }; "
                           + "the system calls its filter lets through moved to syscalls: [fork, exec, socket, ptrace]")
            }
            s.grants = try grants(n, "\(field).grants", actions: [.call, .publish, .subscribe])
        }
        if let n = m["network_namespace"] {
            throw fail(n, "\(field).network_namespace", "every worker now has its own empty network namespace; "
                       + "network: true grants a plugin the host's network instead")
        }
        if let n = m["network"] { s.policy.network = try bool(n, "\(field).network") }
        if let n = m["filesystem"] { try filesystem(n, "\(field).filesystem", into: &s.policy) }
        if let n = m["confinement"] {
            guard field == "defaults" else {
                throw fail(n, "\(field).confinement", "set confinement under defaults: it says what the host accepts where the kernel cannot confine, for every plugin")
            }
            switch try string(n, "defaults.confinement") {
            case "required": s.policy.rlimitsOnlyAllowed = false
            case "rlimits-only": s.policy.rlimitsOnlyAllowed = true
            case let v: throw fail(n, "defaults.confinement", "expected required or rlimits-only, found \"\(v)\"")
            }
        }
        if let n = m["restart"] { try restart(n, "\(field).restart", into: &s.restart) }
        if let n = m["health"] { try health(n, "\(field).health", into: &s.restart) }
        if let n = m["config"] { s.config = try json(n, "\(field).config").text }
        if let n = m["instances"] {
            s.instances = Int(try integer(n, "\(field).instances", in: 1...256))
            guard s.instances == 1 || s.sandbox == .process else {
                throw fail(n, "\(field).instances", "more than one instance needs sandbox: process (in-process instances would share one copy of the plugin's globals)")
            }
        }
        if let n = m["concurrency"] {
            guard field != "defaults" else {
                throw fail(n, "defaults.concurrency", "set concurrency per plugin: it depends on whether that plugin's handler is safe on several threads")
            }
            s.policy.concurrency = Int(try integer(n, "\(field).concurrency", in: 1...256))
        }
        guard s.policy.cpuHardSeconds >= s.policy.cpuSoftSeconds else {
            throw fail(node, "\(field).limits.cpu_hard_seconds", "must be at least cpu_seconds (\(s.policy.cpuSoftSeconds))")
        }
        return s
    }

    /// `plugins.NAME.spawn: { max_children, plugins, restart }`: what the
    /// plugin's agents may spawn; under defaults only `max_total`, the
    /// host-wide cap (a plugin spawns only what its own entry names).
    private func spawn(_ node: Node, _ field: String, into s: inout PluginSettings) throws(ConfigError) {
        if field == "defaults.spawn" {
            let m = try mapping(node, field, keys: ["max_total"])
            if let n = m["max_total"] { s.spawnMaxTotal = Int(try integer(n, "\(field).max_total", in: 0...65_536)) }
            return
        }
        let m = try mapping(node, field, keys: ["max_children", "plugins", "restart"])
        var spec = SpawnSettings()
        if let n = m["max_children"] { spec.maxChildren = Int(try integer(n, "\(field).max_children", in: 0...1_024)) }
        guard let list = m["plugins"] else {
            throw fail(node, "\(field).plugins", "missing: name the plugins its agents may spawn, e.g. plugins: [worker]")
        }
        guard case .sequence(let seq) = list else { throw fail(list, "\(field).plugins", "expected a list of plugin names such as [worker], found \(kind(list))") }
        for item in seq {
            let name = try string(item, "\(field).plugins")
            do throws(PlexusError) { try Names.check(name, what: "a plugin name") } catch { throw fail(item, "\(field).plugins", error.detail) }
            guard !name.contains("/") else { throw fail(item, "\(field).plugins", "a plugin name has no '/'; found \"\(name)\"") }
            spec.plugins.append(name)
        }
        if let n = m["restart"] {
            let v = try string(n, "\(field).restart")
            guard let k = RestartKind(rawValue: v) else {
                throw fail(n, "\(field).restart", "expected temporary, transient or permanent, found \"\(v)\"")
            }
            spec.restart = k
        }
        s.spawn = spec
    }

    private func limits(_ node: Node, _ field: String, into p: inout WorkerPolicy) throws(ConfigError) {
        let m = try mapping(node, field, keys: ["memory", "cpu_seconds", "cpu_hard_seconds", "open_files", "file_size"])
        if let n = m["memory"] {
            p.addressSpace = try size(n, "\(field).memory")
            guard p.addressSpace >= 32 << 20 else { throw fail(n, "\(field).memory", "at least 32MiB: a worker needs that much address space to load a plugin") }
        }
        if let n = m["cpu_seconds"] {
            p.cpuSoftSeconds = UInt64(try integer(n, "\(field).cpu_seconds", in: 1...31_536_000))
            if m["cpu_hard_seconds"] == nil { p.cpuHardSeconds = p.cpuSoftSeconds + 10 }
        }
        if let n = m["cpu_hard_seconds"] { p.cpuHardSeconds = UInt64(try integer(n, "\(field).cpu_hard_seconds", in: 1...31_536_000)) }
        if let n = m["open_files"] { p.openFiles = UInt64(try integer(n, "\(field).open_files", in: 16...1_048_576)) }
        if let n = m["file_size"] { p.fileSize = try size(n, "\(field).file_size") }
    }

    private func syscalls(_ node: Node, _ field: String, into p: inout WorkerPolicy) throws(ConfigError) {
        guard case .sequence(let seq) = node else { throw fail(node, field, "expected a list such as [socket], found \(kind(node))") }
        p.allowFork = false; p.allowExec = false; p.allowSocket = false; p.allowPtrace = false
        p.extraSyscalls = []
        for item in seq {
            switch try string(item, field) {
            case "fork": p.allowFork = true
            case "exec": p.allowExec = true
            case "socket": p.allowSocket = true
            case "ptrace": p.allowPtrace = true
            case let g where WorkerPolicy.isNeverGrantable(g):
                throw fail(item, field, "the system call \(g) can never be granted: it reaches outside the worker or undoes its confinement")
            case let g where WorkerPolicy.isKnownSyscall(g):
                if !p.extraSyscalls.contains(g) { p.extraSyscalls.append(g) }
            case let g: throw fail(item, field, "unknown system call \"\(g)\"; expected fork, exec, socket, ptrace or a system call's name such as memfd_secret")
            }
        }
    }

    /// `filesystem: { read: [...], write: [...], tmp_size: 16MiB }`: what the
    /// worker sees besides its image, the system libraries and its /tmp.
    private func filesystem(_ node: Node, _ field: String, into p: inout WorkerPolicy) throws(ConfigError) {
        let m = try mapping(node, field, keys: ["read", "write", "tmp_size"])
        func paths(_ key: String) throws(ConfigError) -> [String] {
            guard let list = m[key] else { return [] }
            let f = "\(field).\(key)"
            guard case .sequence(let items) = list else { throw fail(list, f, "expected a list of absolute paths such as [/srv/data], found \(kind(list))") }
            var out: [String] = []
            for item in items {
                let path = try string(item, f)
                guard path.hasPrefix("/") else { throw fail(item, f, "expected an absolute path, found \"\(path)\"") }
                guard !path.split(separator: "/").contains("..") else { throw fail(item, f, "a path may not contain '..', found \"\(path)\"") }
                guard access(path, F_OK) == 0 else { throw fail(item, f, "\(path) does not exist") }
                guard out.count < 24 else { throw fail(item, f, "at most 24 paths") }
                out.append(path)
            }
            return out
        }
        if m["read"] != nil { p.readPaths = try paths("read") }
        if m["write"] != nil { p.writePaths = try paths("write") }
        if let n = m["tmp_size"] {
            p.tmpSize = try size(n, "\(field).tmp_size")
            guard p.tmpSize >= 1 << 20, p.tmpSize <= 1 << 34 else { throw fail(n, "\(field).tmp_size", "expected between 1MiB and 16GiB") }
        }
    }

    /// `{ call: [report.>], publish: [docs.summarized], ... }`: patterns per action.
    func grants(_ node: Node, _ field: String, actions: [Grants.Action]) throws(ConfigError) -> [Grants.Action: [String]] {
        var out: [Grants.Action: [String]] = [:]
        for (key, list) in try mapping(node, field, keys: actions.map(\.rawValue)) as [(String, Node)] {
            let f = "\(field).\(key)"
            guard case .sequence(let items) = list else { throw fail(list, f, "expected a list of names or patterns such as [report.summarize, \"docs.>\"], found \(kind(list))") }
            var patterns: [String] = []
            for item in items {
                let p = try string(item, f)
                do throws(PlexusError) { try Subject.validatePattern(p) } catch { throw fail(item, f, error.detail) }
                patterns.append(p)
            }
            out[Grants.Action(rawValue: key)!] = patterns
        }
        return out
    }

    /// `clients:` — who besides the host's own user may use its socket.
    func clients(_ node: Node, into c: inout HostConfiguration) throws(ConfigError) {
        for (name, entry) in try mapping(node, "clients", keys: nil) as [(String, Node)] {
            let f = "clients.\(name)"
            if name == "owner" {
                let m = try mapping(entry, f, keys: ["grants"]) as [String: Node]
                if let g = m["grants"] { c.ownerGrants = try grants(g, "\(f).grants", actions: Grants.Action.allCases) }
                continue
            }
            do throws(PlexusError) { try Names.check(name, what: "client name") } catch { throw fail(entry, f, error.detail) }
            let m = try mapping(entry, f, keys: ["uid", "token", "token_env", "grants"]) as [String: Node]
            var spec = ClientSpec()
            if let u = m["uid"] { spec.uid = UInt32(try integer(u, "\(f).uid", in: 0...4_294_967_294)) }
            if let t = m["token"] { spec.token = try token(t, "\(f).token") }
            if let e = m["token_env"] {
                guard spec.token == nil else { throw fail(e, "\(f).token_env", "give token or token_env, not both") }
                let variable = try string(e, "\(f).token_env")
                guard let v = getenv(variable), v.pointee != 0 else { throw fail(e, "\(f).token_env", "the environment variable \(variable) is not set") }
                spec.token = try token(e, "\(f).token_env", String(cString: v))
            }
            guard spec.uid != nil || spec.token != nil else {
                throw fail(entry, f, "a client needs a uid, a token (or token_env), or both: otherwise anyone could claim to be it")
            }
            if let g = m["grants"] { spec.grants = try grants(g, "\(f).grants", actions: Grants.Action.allCases) }
            c.clients[name] = spec
        }
    }

    private func token(_ node: Node, _ field: String, _ value: String? = nil) throws(ConfigError) -> String {
        let t: String
        if let value { t = value } else { t = try string(node, field) }
        guard t.utf8.count >= 16 else { throw fail(node, field, "a token needs at least 16 characters (it is the client's only secret)") }
        return t
    }

    /// One supervisor of the tree: strategy, intensity, period and children.
    func supervisor(_ node: Node, _ field: String, name: String, intensity: Int, period: Double) throws(ConfigError) -> SupervisorSpec {
        let m = try mapping(node, field, keys: ["group", "strategy", "intensity", "period_seconds", "children"])
        var spec = SupervisorSpec(name: name, intensity: intensity, periodSeconds: period)
        if let n = m["strategy"] {
            let v = try string(n, "\(field).strategy")
            guard let st = Strategy(rawValue: v) else { throw fail(n, "\(field).strategy", "expected one-for-one, one-for-all or rest-for-one, found \"\(v)\"") }
            spec.strategy = st
        }
        if let n = m["intensity"] { spec.intensity = Int(try integer(n, "\(field).intensity", in: 0...10_000)) }
        if let n = m["period_seconds"] { spec.periodSeconds = try number(n, "\(field).period_seconds", in: 0.001...86_400) }
        guard let list = m["children"] else { return spec }
        guard case .sequence(let items) = list else { throw fail(list, "\(field).children", "expected a list of { agent: NAME } or { group: NAME, ... }") }
        var seen = Set<String>()
        for (i, item) in items.enumerated() {
            let f = "\(field).children[\(i)]"
            guard case .mapping = item else { throw fail(item, f, "expected { agent: NAME } or { group: NAME, ... }, found \(kind(item))") }
            let keys: [(String, Node)] = try mapping(item, f, keys: nil)
            if let a = keys.first(where: { $0.0 == "agent" })?.1 {
                let c = try mapping(item, f, keys: ["agent", "restart"]) as [String: Node]
                let name = try string(a, "\(f).agent")
                guard seen.insert(name).inserted else { throw fail(a, "\(f).agent", "agent '\(name)' appears twice in the tree") }
                var kind = RestartKind.permanent
                if let k = c["restart"] {
                    let v = try string(k, "\(f).restart")
                    guard let rk = RestartKind(rawValue: v) else { throw fail(k, "\(f).restart", "expected permanent, transient or temporary, found \"\(v)\"") }
                    kind = rk
                }
                spec.children.append(.agent(name, kind))
            } else if let g = keys.first(where: { $0.0 == "group" })?.1 {
                let child = try supervisor(item, f, name: try string(g, "\(f).group"), intensity: intensity, period: period)
                for a in child.agents where !seen.insert(a).inserted { throw fail(item, f, "agent '\(a)' appears twice in the tree") }
                spec.children.append(.group(child))
            } else {
                throw fail(item, f, "expected an 'agent' or a 'group' key")
            }
        }
        return spec
    }

    private func restart(_ node: Node, _ field: String, into r: inout RestartPolicy) throws(ConfigError) {
        let m = try mapping(node, field, keys: ["intensity", "period_seconds", "backoff_ms", "backoff_max_ms", "max_attempts",
                                                "breaker_threshold", "breaker_cooldown_ms"])
        if let n = m["intensity"] { r.intensity = Int(try integer(n, "\(field).intensity", in: 0...10_000)) }
        if let n = m["period_seconds"] { r.periodSeconds = try number(n, "\(field).period_seconds", in: 0.001...86_400) }
        if let n = m["backoff_ms"] { r.backoffBaseMs = try number(n, "\(field).backoff_ms", in: 0...600_000) }
        if let n = m["backoff_max_ms"] { r.backoffMaxMs = try number(n, "\(field).backoff_max_ms", in: 0...3_600_000) }
        if let n = m["max_attempts"] { r.maxAttempts = Int(try integer(n, "\(field).max_attempts", in: 1...1_000)) }
        if let n = m["breaker_threshold"] { r.breakerThreshold = Int(try integer(n, "\(field).breaker_threshold", in: 1...10_000)) }
        if let n = m["breaker_cooldown_ms"] { r.breakerCooldownMs = try number(n, "\(field).breaker_cooldown_ms", in: 1...3_600_000) }
    }

    private func health(_ node: Node, _ field: String, into r: inout RestartPolicy) throws(ConfigError) {
        let m = try mapping(node, field, keys: ["heartbeat_ms", "timeout_ms", "grace_ms", "load_timeout_ms"])
        if let n = m["heartbeat_ms"] { r.heartbeatIntervalMs = try integer(n, "\(field).heartbeat_ms", in: 10...3_600_000) }
        if let n = m["timeout_ms"] { r.heartbeatTimeoutMs = try integer(n, "\(field).timeout_ms", in: 10...86_400_000) }
        if let n = m["grace_ms"] { r.graceMs = try integer(n, "\(field).grace_ms", in: 0...600_000) }
        if let n = m["load_timeout_ms"] { r.loadTimeoutMs = try integer(n, "\(field).load_timeout_ms", in: 10...600_000) }
    }

    /// `http:` — the HTTP server's address and token. An address other
    /// than loopback needs a token: metrics and the dashboard show what
    /// every agent does.
    func http(_ node: Node, over base: HTTPSettings) throws(ConfigError) -> HTTPSettings {
        var h = base
        let m = try mapping(node, "http", keys: ["listen", "token", "token_env"])
        guard !m.isEmpty else { throw fail(node, "http", "is empty: give listen (such as 127.0.0.1:7400), and a token for an address other machines reach") }
        if let t = m["token"] { h.token = try httpToken(t, "http.token") }
        if let e = m["token_env"] {
            guard m["token"] == nil else { throw fail(e, "http.token_env", "give token or token_env, not both") }
            let variable = try string(e, "http.token_env")
            guard !variable.isEmpty else { throw fail(e, "http.token_env", "names the environment variable that holds the token; it is empty") }
            guard let v = getenv(variable), v.pointee != 0 else { throw fail(e, "http.token_env", "the environment variable \(variable) is not set") }
            h.token = try httpToken(e, "http.token_env", String(cString: v))
        }
        if let l = m["listen"] {
            switch HTTPSettings.Address.parse(try string(l, "http.listen")) {
            case .success(let a): h.listen = a
            case .failure(let e): throw fail(l, "http.listen", e.description)
            }
            if h.isOpenWithoutToken {
                throw fail(l, "http.listen", "\(h.listen!) is reachable from other machines: give a token (or token_env) too")
            }
        }
        return h
    }

    /// An HTTP token travels in an `Authorization: Bearer` header and a
    /// cookie, where spaces and control characters do not survive.
    private func httpToken(_ node: Node, _ field: String, _ value: String? = nil) throws(ConfigError) -> String {
        let t = try token(node, field, value)
        guard t.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != ";" && $0 != "," }) else {
            throw fail(node, field, "a token is printable ASCII without spaces, ';' or ',' (it travels in an Authorization header and a cookie)")
        }
        return t
    }

    /// `reload:` — how the running host takes in changed plugin files.
    func reload(_ node: Node, over base: ReloadSettings) throws(ConfigError) -> ReloadSettings {
        var s = base
        let m = try mapping(node, "reload", keys: ["watch", "probation_messages", "drain_timeout_ms", "debounce_ms"])
        if let w = m["watch"] { s.watch = try bool(w, "reload.watch") }
        if let p = m["probation_messages"] { s.probationMessages = Int(try integer(p, "reload.probation_messages", in: 0...1_000_000)) }
        if let d = m["drain_timeout_ms"] { s.drainTimeoutMs = try integer(d, "reload.drain_timeout_ms", in: 0...3_600_000) }
        if let d = m["debounce_ms"] { s.debounceMs = try integer(d, "reload.debounce_ms", in: 1...10_000) }
        return s
    }

    /// `metrics:` — whether the host keeps its meters (unset: when HTTP is on).
    func metrics(_ node: Node, over base: MetricsSettings) throws(ConfigError) -> MetricsSettings {
        var s = base
        let m = try mapping(node, "metrics", keys: ["enabled"])
        if let e = m["enabled"] { s.enabled = try bool(e, "metrics.enabled") }
        return s
    }

    /// A YAML value as JSON (what init receives). Scalars keep their YAML type.
    func store(_ node: Node, over base: StoreSettings) throws(ConfigError) -> StoreSettings {
        var s = base
        let m = try mapping(node, "store", keys: ["path", "retention"])
        if let p = m["path"] {
            s.path = try string(p, "store.path")
            if s.path!.isEmpty { throw fail(p, "store.path", "expected a file path, found an empty string") }
        }
        guard let r = m["retention"] else { return s }
        let f = "store.retention"
        let keys = ["events", "finished_tasks_hours", "finished_runs_hours", "interval_seconds"]
        let ret = try mapping(r, f, keys: keys)
        if let n = ret["events"] { s.retention.events = Int(try integer(n, "\(f).events", in: 100...1_000_000_000)) }
        if let n = ret["finished_tasks_hours"] {
            s.retention.finishedTasksSeconds = 3600 * (try integer(n, "\(f).finished_tasks_hours", in: 1...1_000_000))
        }
        if let n = ret["finished_runs_hours"] {
            s.retention.finishedRunsSeconds = 3600 * (try integer(n, "\(f).finished_runs_hours", in: 1...1_000_000))
        }
        if let n = ret["interval_seconds"] { s.retention.intervalSeconds = try number(n, "\(f).interval_seconds", in: 0.1...86_400) }
        return s
    }

    public func json(_ node: Node, _ field: String) throws(ConfigError) -> JSONValue {
        switch node {
        case .mapping:
            var o: [String: JSONValue] = [:]
            for (k, v) in try mapping(node, field, keys: nil) as [(String, Node)] { o[k] = try json(v, "\(field).\(k)") }
            return .object(o)
        case .sequence(let s):
            var a: [JSONValue] = []
            for (i, v) in s.enumerated() { a.append(try json(v, "\(field)[\(i)]")) }
            return .array(a)
        case .scalar(let s):
            if s.style == .plain {
                if let i = Int64(s.string) { return .int(i) }
                if let d = Double(s.string) { return .double(d) }
                switch s.string { case "true": return .bool(true); case "false": return .bool(false); case "null", "~": return .null; default: break }
            }
            return .string(s.string)
        case .alias:
            throw fail(node, field, "aliases are not supported here")
        }
    }
}
