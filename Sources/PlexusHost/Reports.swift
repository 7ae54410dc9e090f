import PlexusCore

/// What `plexus plugins list --json` prints: one entry per plugin file, loaded
/// or refused, in file-name order.
public struct PluginReport: Sendable, Codable, Equatable {
    public struct CapabilityInfo: Sendable, Codable, Equatable {
        public var name: String
        public var kind: String           // "handler" or "export"
        public var description: String?
        public var input: String?
        public var output: String?
        public var signature: String?
    }
    public struct PermissionInfo: Sendable, Codable, Equatable {
        public var kind: String
        public var pattern: String
    }

    public var file: String
    public var status: String             // "loaded", "refused", "missing" or "unloaded"
    public var name: String?
    public var version: String?
    public var abi: String?
    public var description: String?
    public var concurrent: Bool?
    public var capabilities: [String]?
    public var capability_info: [CapabilityInfo]?
    public var permissions: [PermissionInfo]?
    public var subscriptions: [String]?
    public var error: String?             // status name, e.g. "ABI_MISMATCH"
    public var reason: String?
    /// What the last reload of this file came to while the host ran
    /// (upgraded, on probation, rolled back and why); nil if none.
    public var reload: String? = nil

    init(loaded d: PluginDescriptor, file: String, subscriptions: [String]) {
        self.file = file
        self.status = "loaded"
        self.name = d.name; self.version = d.version; self.abi = d.abi
        self.description = d.description; self.concurrent = d.concurrent
        self.capabilities = d.allCapabilityNames
        self.capability_info = d.capabilities.map {
            .init(name: $0.name, kind: "handler", description: $0.description, input: $0.input, output: $0.output)
        } + d.exports.map { .init(name: $0.name, kind: "export", description: $0.description, signature: $0.signature) }
        self.permissions = d.permissions.map { .init(kind: $0.kind, pattern: $0.pattern) }
        self.subscriptions = subscriptions
    }

    /// plexus.yaml configures a plugin that has no file.
    init(missing name: String, directory: String, hint: String) {
        self.file = (directory.hasSuffix("/") ? directory : directory + "/") + name + ".so"
        self.status = "missing"
        self.name = name
        self.error = statusName(PLEXUS_NO_SUCH_AGENT.status)
        self.reason = "plexus.yaml configures plugin '\(name)', but there is no such file\(hint); its settings apply if it is added later"
    }

    init(refused r: PluginRefusal) {
        self.file = r.path
        self.status = "refused"
        self.error = r.error.name
        self.reason = r.error.detail
    }
}

/// One agent's live state, as `plexus agents` will show it.
public struct AgentReport: Sendable, Codable, Equatable {
    public var name: String
    public var state: String
    public var kind: String               // "plugin" (in-process), "worker" or "builtin"
    public var capabilities: [String]
    public var queued: Int
    public var handled: Int
    public var failed: Int
    /// The worker process, while one runs.
    public var pid: Int32?
    public var restarts: Int = 0
    /// How the last worker ended: "SIGSEGV", "exit 3", ...
    public var last_exit: String?
    /// Delivered to the worker, not yet finished.
    public var in_flight: Int = 0
    /// System calls the sandbox refused (each call, though one report may name several).
    public var denied_syscalls: Int = 0
    /// The circuit breaker of a worker agent: closed, open or half-open.
    public var circuit: String?
    /// Handlers of this instance that may run at once.
    public var concurrency: Int = 1
    /// How its worker is confined: "mount-namespace+landlock", "mount-namespace",
    /// "landlock" or "rlimits-only" (nil in process).
    public var confinement: String?
    /// Warm workers waiting for this agent's policy (its next restart or
    /// instance takes one); nil in process or without a pool (`defaults.warm_workers`).
    public var warm_workers: Int? = nil
    /// Handle time of this agent's messages (median, 99th percentile), in microseconds;
    /// nil until it has handled one, or where metrics are off.
    public var handle_p50_us: Double? = nil
    public var handle_p99_us: Double? = nil
    /// Its worker's CPU time (user + system) and resident memory, read from /proc; nil in process.
    public var cpu_seconds: Double? = nil
    public var resident_bytes: Int? = nil
    /// The last operator action on it: "stop by client:4242" (nil: none yet).
    public var last_action: String? = nil
    /// The version its plugin's descriptor declares; nil for the host's own agents and clients.
    public var version: String? = nil
    /// The agent that spawned it (plexus.h spawn); nil for every other agent.
    public var parent: String? = nil
}

public struct DeadLetterReport: Sendable, Codable, Equatable {
    public var id: String
    public var kind: String
    public var sender: String
    public var target: String
    public var reason: String
    public var at_unix_ns: Int64
}
