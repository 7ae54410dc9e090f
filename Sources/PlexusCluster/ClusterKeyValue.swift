import CNats
import Glibc
import PlexusCore
import PlexusHost
import PlexusThreads

/// The agents' key-value store on JetStream KV (`nats.kv: jetstream`): one
/// bucket per cluster, PLEXUS_<cluster>_KV, so a plugin's namespace (its
/// agent name) is the same on every host, and its instances everywhere
/// share it. A key's version is its KV revision: it goes up on every write
/// (not by one: the revision counts writes to the whole bucket), and a write
/// expecting a version is JetStream's compare-and-set (kvStore_Update; 0:
/// kvStore_Create), so CONFLICT keeps its meaning across hosts.
///
/// Bucket keys are `<namespace>.<key>`, each escaped to what NATS subjects
/// allow: A-Z a-z 0-9 _ - / stay, every other byte is `=HH`.
public final class ClusterKeyValue: KeyValueAdmin, @unchecked Sendable {   // @unchecked: kvStore and jsCtx are thread-safe (libnats locks inside)
    public let bucket: String
    private let jetStream: JetStream
    private var js: OpaquePointer { jetStream.js }
    private let kv: OpaquePointer
    /// Writes wait for the server's acknowledgement here, never on the caller's thread.
    private let writes = WorkPool(name: "plexus-kv-js", threads: 4, queueLimit: 4_096)

    /// Binds the bucket, making it (file storage, one revision per key kept,
    /// on `replicas` servers) if no host has yet.
    init(conn: NatsConnection, cluster: String, replicas: Int = 1) throws(PlexusError) {
        bucket = "PLEXUS_\(cluster)_KV"
        jetStream = try JetStream(conn, replicas: replicas)
        let ctx = jetStream.js
        var store: OpaquePointer?
        var s = js_KeyValue(&store, ctx, bucket)
        if s == NATS_NOT_FOUND {
            var cfg = kvConfig()
            kvConfig_Init(&cfg)
            s = bucket.withCString { b in
                cfg.Bucket = b
                cfg.History = 1
                cfg.StorageType = js_FileStorage
                cfg.Replicas = Int32(replicas)   // nats.replicas; a bucket that exists keeps its own
                return js_CreateKeyValue(&store, ctx, &cfg)
            }
            if s != NATS_OK { s = js_KeyValue(&store, ctx, bucket) }   // another host made it at the same moment
        }
        guard s == NATS_OK, let store else {
            throw ClusterKeyValue.failure(s, "nats.kv: jetstream: cannot open the key-value bucket \(bucket)")
        }
        kv = store
    }

    deinit { kvStore_Destroy(kv) }

    /// A write is refused at once while NATS is away: libnats would keep it
    /// in its reconnect buffer and send it after the caller heard it failed.
    private func ensureConnected(_ what: String) throws(PlexusError) {
        guard jetStream.conn.isConnected else {
            throw PlexusError(.UNAVAILABLE, "\(what): NATS is unreachable (the host is reconnecting); nothing was sent, try again")
        }
    }

    /// A write sent whose acknowledgement did not come: it may yet be applied.
    static func unknownOutcome(_ key: String, _ namespace: String) -> PlexusError {
        PlexusError(.UNAVAILABLE, "key '\(key)' of \(namespace): JetStream did not acknowledge the write within 5 s; it may still be applied (the connection dropped after it was sent): read the key and its version before writing again")
    }

    static func failure(_ s: natsStatus, _ what: String) -> PlexusError {
        if s == NATS_NO_RESPONDERS {
            return PlexusError(.UNAVAILABLE, "\(what): the NATS server has no JetStream (start nats-server with -js, and -sd DIR for where it keeps streams)")
        }
        if s == NATS_MAX_PAYLOAD {
            return PlexusError(.TOO_LARGE, "\(what): the value is larger than the NATS server's max_payload")
        }
        return PlexusError(.UNAVAILABLE, "\(what): \(NatsConnection.reason(s))")
    }

    /// A namespace or key as one subject token: A-Z a-z 0-9 _ - / as they are, any other byte as =HH.
    static func escape(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += "=" + String(b, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    static func unescape(_ s: Substring) -> String {
        var bytes: [UInt8] = []
        var i = s.utf8.startIndex
        let u = s.utf8
        while i != u.endIndex {
            if u[i] == UInt8(ascii: "="), let a = u.index(i, offsetBy: 1, limitedBy: u.endIndex), a != u.endIndex,
               let b = u.index(a, offsetBy: 1, limitedBy: u.endIndex), b != u.endIndex,
               let v = UInt8(String(decoding: [u[a], u[b]], as: UTF8.self), radix: 16) {
                bytes.append(v)
                i = u.index(after: b)
            } else {
                bytes.append(u[i])
                i = u.index(after: i)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func name(_ namespace: String, _ key: String) -> String { escape(namespace) + "." + escape(key) }

    public func get(_ namespace: String, _ key: String) throws(PlexusError) -> (value: [UInt8], version: Int64)? {
        var e: OpaquePointer?
        let s = kvStore_Get(&e, kv, Self.name(namespace, key))
        if s == NATS_NOT_FOUND { return nil }
        guard s == NATS_OK, let e else { throw Self.failure(s, "cannot read key '\(key)' of \(namespace) from \(bucket)") }
        defer { kvEntry_Destroy(e) }
        let n = Int(kvEntry_ValueLen(e))
        let value = n > 0 ? Array(UnsafeRawBufferPointer(start: kvEntry_Value(e), count: n).bindMemory(to: UInt8.self)) : []
        return (value, Int64(kvEntry_Revision(e)))
    }

    /// The key's version now (0: absent), for a CONFLICT's message and a conditional delete.
    private func version(_ namespace: String, _ key: String) throws(PlexusError) -> Int64 {
        try get(namespace, key)?.version ?? 0
    }

    public func put(_ namespace: String, _ key: String, _ value: [UInt8], expected: Int64?,
                    done: @escaping @Sendable (Result<Int64, PlexusError>) -> Void) {
        run(done) { [self] () throws(PlexusError) -> Int64 in
            try ensureConnected("key '\(key)' of \(namespace) not written")
            var rev: UInt64 = 0
            let k = Self.name(namespace, key)
            let s = value.withUnsafeBytes { b -> natsStatus in
                switch expected {
                case nil: return kvStore_Put(&rev, kv, k, b.baseAddress, Int32(b.count))
                case 0?: return kvStore_Create(&rev, kv, k, b.baseAddress, Int32(b.count))
                case let v?: return kvStore_Update(&rev, kv, k, b.baseAddress, Int32(b.count), UInt64(v))
                }
            }
            guard s == NATS_OK else {
                // A compare-and-set that lost: the server refused the expected revision.
                if let expected, s != NATS_NO_RESPONDERS, s != NATS_MAX_PAYLOAD, s != NATS_TIMEOUT {
                    let found = try version(namespace, key)
                    if found != expected { throw PlexusError(.CONFLICT, "key '\(key)' is at version \(found), not \(expected)") }
                }
                if s == NATS_TIMEOUT { throw Self.unknownOutcome(key, namespace) }
                throw Self.failure(s, "key '\(key)' of \(namespace) not written to \(bucket)")
            }
            return Int64(rev)
        }
    }

    public func delete(_ namespace: String, _ key: String, expected: Int64?, done: @escaping @Sendable (Result<Void, PlexusError>) -> Void) {
        remove(namespace, key, expected: expected) { r in done(r.map { _ in () }) }
    }

    /// Deletes (a delete marker, as kvStore_Delete writes), only while the
    /// key is at the version found: a write from another host in between is
    /// a CONFLICT when a version was expected, and is deleted with it otherwise.
    public func remove(_ namespace: String, _ key: String, expected: Int64?, done: @escaping @Sendable (Result<Bool, PlexusError>) -> Void) {
        run(done) { [self] () throws(PlexusError) -> Bool in
            try ensureConnected("key '\(key)' of \(namespace) not deleted")
            let found = try version(namespace, key)
            if let expected, expected != found { throw PlexusError(.CONFLICT, "key '\(key)' is at version \(found), not \(expected)") }
            guard found > 0 else { return false }
            guard let expected else {
                let s = kvStore_Delete(kv, Self.name(namespace, key))
                guard s == NATS_OK else { throw Self.failure(s, "key '\(key)' of \(namespace) not deleted from \(bucket)") }
                return true
            }
            try deleteMarker(namespace, key, at: expected)
            return true
        }
    }

    /// Publishes KV's delete marker for the key, expecting its last revision to be `at`.
    private func deleteMarker(_ namespace: String, _ key: String, at: Int64) throws(PlexusError) {
        var msg: OpaquePointer?
        var s = natsMsg_Create(&msg, "$KV.\(bucket).\(Self.name(namespace, key))", nil, nil, 0)
        guard s == NATS_OK, let msg else { throw PlexusError(.NO_MEMORY, "cannot make a NATS message") }
        defer { natsMsg_Destroy(msg) }
        s = natsMsgHeader_Set(msg, "KV-Operation", "DEL")
        var ack: UnsafeMutablePointer<jsPubAck>?
        var code = jsErrCode(0)
        var po = jsPubOptions()
        jsPubOptions_Init(&po)
        po.ExpectLastSubjectSeq = UInt64(at)
        if s == NATS_OK { s = js_PublishMsg(&ack, js, msg, &po, &code) }
        if let ack { jsPubAck_Destroy(ack) }
        guard s == NATS_OK else {
            let found = try version(namespace, key)
            if found != at { throw PlexusError(.CONFLICT, "key '\(key)' is at version \(found), not \(at)") }
            throw Self.failure(s, "key '\(key)' of \(namespace) not deleted from \(bucket)")
        }
    }

    public func keys(_ namespace: String, prefix: String, limit: Int) throws(PlexusError) -> [String] {
        var w: OpaquePointer?
        var o = kvWatchOptions()
        o.IgnoreDeletes = true
        o.MetaOnly = true
        let s = kvStore_Watch(&w, kv, Self.escape(namespace) + ".*", &o)
        guard s == NATS_OK, let w else { throw Self.failure(s, "cannot list the keys of \(namespace) in \(bucket)") }
        defer { kvWatcher_Destroy(w) }
        var keys: [String] = []
        // The watcher gives every key's latest entry, then nil: the end of what is there now.
        while true {
            var e: OpaquePointer?
            let n = kvWatcher_Next(&e, w, 5_000)
            guard n == NATS_OK else { throw Self.failure(n, "cannot list the keys of \(namespace) in \(bucket)") }
            guard let e else { break }
            defer { kvEntry_Destroy(e) }
            if kvEntry_Operation(e) != kvOp_Put { continue }
            let full = String(cString: kvEntry_Key(e))
            guard let dot = full.firstIndex(of: ".") else { continue }
            let key = Self.unescape(full[full.index(after: dot)...])
            if key.hasPrefix(prefix) { keys.append(key) }
        }
        return Array(keys.sorted().prefix(limit))
    }

    /// Runs a write on the pool and hands its outcome to done; a full pool answers MAILBOX_FULL at once.
    private func run<T: Sendable>(_ done: @escaping @Sendable (Result<T, PlexusError>) -> Void,
                                  _ work: @escaping @Sendable () throws(PlexusError) -> T) {
        do throws(WorkPool.Refusal) {
            try writes.submit { done(Result { () throws(PlexusError) in try work() }) }
        } catch {
            done(.failure(PlexusError(.MAILBOX_FULL, "the JetStream key-value store is busy: \(writes.queueLimit) writes already wait; try again")))
        }
    }
}

extension ClusterNode {
    /// The cluster's shared key-value store (`nats.kv: jetstream`), bound now:
    /// an error when the server has no JetStream.
    public func sharedKeyValue() throws(PlexusError) -> ClusterKeyValue {
        try ClusterKeyValue(conn: connection, cluster: cluster, replicas: replicas)
    }
}

private extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
