import CPlexus
import FoundationEssentials
import PlexusCore
import PlexusHost
import PlexusStore

/// The store's key-value table as the host hands it to plugins (the kv_*
/// host functions): store errors other than CONFLICT become INTERNAL.
public final class StoreKeyValue: KeyValueAdmin {
    let store: Store
    public init(store: Store) { self.store = store }

    public func get(_ namespace: String, _ key: String) throws(PlexusError) -> (value: [UInt8], version: Int64)? {
        do { return try store.get(namespace, key).map { ($0.value, $0.version) } } catch { throw Self.plexus(error) }
    }

    public func put(_ namespace: String, _ key: String, _ value: [UInt8], expected: Int64?,
                    done: @escaping @Sendable (Result<Int64, PlexusError>) -> Void) {
        store.put(namespace, key, value, expected: expected) { r in done(r.mapError(Self.plexus)) }
    }

    public func delete(_ namespace: String, _ key: String, expected: Int64?,
                       done: @escaping @Sendable (Result<Void, PlexusError>) -> Void) {
        store.delete(namespace, key, expected: expected) { r in done(r.map { _ in () }.mapError(Self.plexus)) }
    }

    public func keys(_ namespace: String, prefix: String, limit: Int) throws(PlexusError) -> [String] {
        do { return try store.keys(namespace, prefix: prefix, limit: limit) } catch { throw Self.plexus(error) }
    }

    public func remove(_ namespace: String, _ key: String, expected: Int64?, done: @escaping @Sendable (Result<Bool, PlexusError>) -> Void) {
        store.delete(namespace, key, expected: expected) { r in done(r.mapError(Self.plexus)) }
    }

    static func plexus(_ e: Error) -> PlexusError {
        e as? PlexusError ?? PlexusError(.INTERNAL, "the key-value store failed: \(e)")
    }
}

/// The key-value store as capabilities of the host's agent "plexus.kv":
/// what `plexus kv` calls, so an operator can read and repair what agents
/// keep. Any namespace may be named here; grant `plexus.kv.*` with care.
public enum KeyValueService {
    public static let capabilities: [(name: String, description: String)] = [
        ("plexus.kv.get", "a key's value and version: {namespace, key}; version 0 when absent"),
        ("plexus.kv.put", "write a key: {namespace, key, value: text, expected?: version (0: create only)}"),
        ("plexus.kv.delete", "remove a key: {namespace, key, expected?: version} -> {namespace, key, removed: bool}"),
        ("plexus.kv.list", "keys of a namespace in order: {namespace, prefix?, limit?}"),
    ]

    public static func install(on host: Host, store: Store) throws(PlexusError) {
        try install(on: host, backend: StoreKeyValue(store: store))
    }

    /// The same over another backend (JetStream KV, `nats.kv: jetstream`):
    /// plugins' kv_* calls and `plexus kv` both reach it.
    public static func install(on host: Host, backend kv: any KeyValueAdmin) throws(PlexusError) {
        host.attach(keyValue: kv)
        try host.provide(name: "plexus.kv", capabilities: capabilities) { env, answer in
            do throws(PlexusError) { try handle(env, kv, answer) } catch { answer(.failure(error)) }
        }
    }

    static func handle(_ env: Envelope, _ kv: any KeyValueAdmin,
                       _ answer: @escaping @Sendable (Result<JSONValue, PlexusError>) -> Void) throws(PlexusError) {
        let args = env.payload.isEmpty ? JSONValue.object([:]) : try ServiceArguments.parse(env.payload)
        let ns = try ServiceArguments.string(args, "namespace")
        // A namespace is an agent's name, and keys follow plexus.h: what a
        // plugin could never read back is refused here too.
        try Names.check(ns, what: "namespace")
        if env.target.name == "plexus.kv.list" {
            let prefix = args["prefix"] == nil ? "" : try ServiceArguments.string(args, "prefix")
            let limit = try ServiceArguments.int(args, "limit", default: 1000, in: 1...100_000)
            return answer(.success(.array(try kv.keys(ns, prefix: prefix, limit: limit).map(JSONValue.string))))
        }
        let key = try ServiceArguments.string(args, "key")
        guard !key.isEmpty, key.utf8.count <= Int(PLEXUS_KV_MAX_KEY), !key.utf8.contains(0) else {
            throw PlexusError(.INVALID_ARGUMENT, "a key must be 1-\(PLEXUS_KV_MAX_KEY) bytes of UTF-8 without NUL, not \(key.utf8.count) bytes")
        }
        let expected = args["expected"] == nil ? nil : Int64(try ServiceArguments.int(args, "expected", default: 0, in: 0...Int.max))
        let named: [String: JSONValue] = ["namespace": .string(ns), "key": .string(key)]
        switch env.target.name {
        case "plexus.kv.get":
            var o = named
            if let e = try kv.get(ns, key) {
                o["version"] = .int(e.version)
                if let text = String(validating: e.value, as: UTF8.self) { o["value"] = .string(text) } else {
                    o["value_base64"] = .string(Data(e.value).base64EncodedString())
                }
            } else { o["version"] = .int(0) }
            answer(.success(.object(o)))
        case "plexus.kv.put":
            let value = Array(try ServiceArguments.string(args, "value").utf8)
            kv.put(ns, key, value, expected: expected) { r in
                answer(r.map { v in .object(named.merging(["version": .int(v)]) { a, _ in a }) })
            }
        default:   // plexus.kv.delete
            kv.remove(ns, key, expected: expected) { r in
                answer(r.map { removed in .object(named.merging(["removed": .bool(removed)]) { a, _ in a }) })
            }
        }
    }
}
