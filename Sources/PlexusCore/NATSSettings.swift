/// Joining several hosts into one system over NATS (plexus.yaml `nats:`,
/// `plexus run --nats URL --node NAME`). Off unless a URL is given.
public struct NATSSettings: Sendable, Equatable {
    /// The NATS server, such as nats://127.0.0.1:4222 (user:password@ may
    /// be in it); nil: this host is alone and no NATS code runs.
    public var url: String?
    /// This host's name in the cluster, unique in it; nil: the machine's hostname.
    public var node: String?
    /// Hosts with the same NATS account and cluster name form one system.
    public var cluster = "plexus"
    /// A NATS credentials file (JWT and NKey seed), for a server that asks for one.
    public var credentials: String?
    /// What senders on other hosts may do on this one (call, publish); nil:
    /// whatever their own host let them send. Checked on this host, the one
    /// that receives, with the sender named `node/agent`.
    public var peerGrants: [Grants.Action: [String]]?
    /// The outbox: cross-host sends held while the NATS connection is down,
    /// sent in order when it is back; a send past either bound is refused
    /// (UNAVAILABLE). 0 messages: none held, refused at once.
    public var outboxMessages = 10_000
    public var outboxBytes = 64 << 20
    /// The event log on JetStream (`nats.events`): each host publishes its
    /// events to one stream per cluster, kept within these limits (the
    /// oldest go first), for `plexus events --cluster`.
    public var events = EventStreamSettings()
    /// `nats.kv: jetstream`: the agents' key-value store is the cluster's
    /// JetStream KV bucket, shared by every host; false (`local`, the
    /// default): each host's own store.
    public var sharedKeyValue = false
    /// `nats.replicas`: how many servers of a NATS cluster keep a copy of
    /// every stream and key-value bucket Plexus makes (durable tasks, their
    /// outcomes, done-markers and keys, the event stream, the shared KV),
    /// 1-5. 1 (the default) suits a single server; on a three-server cluster
    /// 3 keeps them usable when one server dies. Applied when a stream or
    /// bucket is made; one that exists keeps its own.
    public var replicas = 1

    public init() {}

    /// A node or cluster name: one NATS subject token of [A-Za-z0-9_-], at
    /// most 64 bytes (it sits in every subject under the reserved prefix).
    public static func checkToken(_ s: String, what: String) throws(PlexusError) {
        guard !s.isEmpty else { throw PlexusError(.INVALID_ARGUMENT, "\(what) is empty") }
        guard s.utf8.count <= 64 else { throw PlexusError(.INVALID_ARGUMENT, "\(what) '\(s.prefix(20))…' is longer than 64 bytes") }
        if let bad = s.unicodeScalars.first(where: { c in
            !(("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "_" || c == "-")
        }) {
            throw PlexusError(.INVALID_ARGUMENT, "\(what) '\(s)' has the character '\(bad)'; allowed are A-Z a-z 0-9 _ -")
        }
    }

    /// nats://HOST:PORT (or tls://), with optional user:password@; or
    /// several, comma-separated (the servers of one NATS cluster).
    public static func checkURL(_ s: String) throws(PlexusError) {
        if s.contains(",") {
            let list = s.split(separator: ",", omittingEmptySubsequences: false).map { String($0.filter { !$0.isWhitespace }) }
            if list.contains(where: \.isEmpty) {
                throw PlexusError(.INVALID_ARGUMENT, "\"\(s)\": an empty entry in the list of NATS URLs; separate them by single commas, such as nats://10.0.0.1:4222,nats://10.0.0.2:4222")
            }
            for u in list { try checkURL(u) }
            return
        }
        let parts = s.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw PlexusError(.INVALID_ARGUMENT, "expected nats://HOST:PORT such as nats://127.0.0.1:4222, found \"\(s)\"")
        }
        let scheme = parts[0]
        guard scheme == "nats" || scheme == "tls" else {
            throw PlexusError(.INVALID_ARGUMENT, "\"\(s)\": the scheme must be nats:// or tls://, not \(scheme)://")
        }
        let rest = parts[1].split(separator: "@").last.map(String.init) ?? ""
        guard let colon = rest.lastIndex(of: ":"), !rest[..<colon].isEmpty,
              let port = Int(rest[rest.index(after: colon)...]), (1...65_535).contains(port) else {
            throw PlexusError(.INVALID_ARGUMENT, "\"\(s)\": expected HOST:PORT after \(scheme)://, such as nats://127.0.0.1:4222")
        }
    }
}

/// `nats.events`: the cluster's event stream (PLEXUS_<cluster>_EVENTS) and
/// how far a host catches up after NATS was away. The limits apply when the
/// first host creates the stream; a stream that exists keeps its own.
public struct EventStreamSettings: Sendable, Equatable {
    /// Events older than this leave the stream.
    public var maxAgeSeconds: Int64 = 7 * 86_400
    /// The stream's size on the NATS server's disk at most.
    public var maxBytes: Int64 = 1 << 30
    /// Events kept at most (every host's together).
    public var maxMessages: Int64 = 1_000_000
    /// After NATS was unreachable (or at the first join), a host publishes at
    /// most this many of its newest unpublished events; older ones are
    /// counted as lost (`plexus nodes`) and logged, never dropped silently.
    public var catchUp = 10_000
    public init() {}
}
