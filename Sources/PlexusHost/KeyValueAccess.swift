import CPlexus
import PlexusCore
import PlexusThreads

/// The agents' durable key-value store as the host reaches it: the kv_*
/// functions of the host table (in-process plugins) and the KV control
/// frames of workers. The host does not own a store; `plexus run` attaches
/// one (PlexusTasks' StoreKeyValue). Writes answer once on disk, so they
/// complete through a callback and never hold a worker's I/O thread.
public protocol KeyValueAccess: AnyObject, Sendable {
    /// The value and version of key, nil when absent.
    func get(_ namespace: String, _ key: String) throws(PlexusError) -> (value: [UInt8], version: Int64)?
    /// Writes when the key is at `expected` (nil: any); the new version or CONFLICT.
    func put(_ namespace: String, _ key: String, _ value: [UInt8], expected: Int64?,
             done: @escaping @Sendable (Result<Int64, PlexusError>) -> Void)
    /// Removes when the key is at `expected` (nil: any).
    func delete(_ namespace: String, _ key: String, expected: Int64?,
                done: @escaping @Sendable (Result<Void, PlexusError>) -> Void)
}

/// The checks and the blocking form the host table and the worker link share.
enum KeyValueCalls {
    /// A key as plexus.h allows it: 1-512 bytes of UTF-8.
    static func key(_ bytes: [UInt8]) throws(PlexusError) -> String {
        guard !bytes.isEmpty, bytes.count <= Int(PLEXUS_KV_MAX_KEY) else {
            throw PlexusError(.INVALID_ARGUMENT, "a key must be 1-\(PLEXUS_KV_MAX_KEY) bytes, not \(bytes.count)")
        }
        guard let s = String(validating: bytes, as: UTF8.self), !bytes.contains(0) else {
            throw PlexusError(.INVALID_ARGUMENT, "a key must be UTF-8 without NUL")
        }
        return s
    }

    /// PLEXUS_KV_ANY means no condition (the value was checked already).
    static func expected(_ v: Int64) -> Int64? { v < 0 ? nil : v }

    /// An expected version from a worker: PLEXUS_KV_ANY, 0 or a version;
    /// any other negative is INVALID_ARGUMENT, as plexus_contract_kv says.
    static func expected(checking v: Int64) throws(PlexusError) -> Int64? {
        guard v >= Int64(PLEXUS_KV_ANY) else {
            throw PlexusError(.INVALID_ARGUMENT, "expected_version \(v): use PLEXUS_KV_ANY (-1), 0 (create only) or a version")
        }
        return expected(v)
    }

    static func backend(_ a: Agent) throws(PlexusError) -> (any KeyValueAccess, String) {
        guard let kv = a.router.keyValue else {
            throw PlexusError(.UNSUPPORTED, "this host has no store, so no key-value store (run it with `plexus run`)")
        }
        guard let ns = a.kvNamespace else { throw PlexusError(.UNSUPPORTED, "agent '\(a.name)' has no key-value namespace") }
        return (kv, ns)
    }

    /// Waits for an asynchronous write: in-process plugins call kv_put on
    /// their own thread and expect the answer on return.
    static func wait<T: Sendable>(_ start: (@escaping @Sendable (Result<T, PlexusError>) -> Void) -> Void) throws(PlexusError) -> T {
        let box = ResultBox<T>()
        start { r in box.set(r) }
        return try box.get()
    }
}

/// One result handed from the store's writer thread to a waiting caller.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = ConditionLock()
    private var result: Result<T, PlexusError>?

    func set(_ r: Result<T, PlexusError>) { lock.withLock { result = r; lock.signal() } }

    func get() throws(PlexusError) -> T {
        let r = lock.withLock { () -> Result<T, PlexusError> in
            while result == nil { lock.wait() }
            return result!
        }
        return try r.get()
    }
}

/// What `plexus kv` (the host's plexus.kv.* capabilities) needs of a
/// backend besides the plugins' calls: listing keys, and whether a delete
/// removed one. The store's table (the default) and JetStream KV
/// (`nats.kv: jetstream`) both provide it.
public protocol KeyValueAdmin: KeyValueAccess {
    /// Keys of a namespace starting with prefix, in order, at most limit.
    func keys(_ namespace: String, prefix: String, limit: Int) throws(PlexusError) -> [String]
    /// delete, telling whether the key was there.
    func remove(_ namespace: String, _ key: String, expected: Int64?, done: @escaping @Sendable (Result<Bool, PlexusError>) -> Void)
}
