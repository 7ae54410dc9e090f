import FoundationEssentials
import GRDB
import PlexusCore
import PlexusThreads

/// The agents' key-value store: every key has a version (1 when created,
/// one more on every write), and a write may require the version it read
/// (compare-and-set). Writes are group-committed and durable when they return.
extension Store {
    public struct Entry: Sendable, Equatable {
        public let value: [UInt8]
        public let version: Int64
        public init(value: [UInt8], version: Int64) { self.value = value; self.version = version }
    }

    public func get(_ namespace: String, _ key: String) throws -> Entry? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT value, version FROM kv WHERE namespace = ? AND key = ?", arguments: [namespace, key])
                .map { row in Entry(value: [UInt8](row["value"] as Data), version: row["version"] as Int64) }
        }
    }

    /// Writes value. `expected`: nil writes whatever is there; 0 only
    /// creates; N only replaces version N. Returns the new version, or throws
    /// CONFLICT naming the version found.
    @discardableResult
    public func put(_ namespace: String, _ key: String, _ value: [UInt8], expected: Int64? = nil) throws -> Int64 {
        try waitFor { done in put(namespace, key, value, expected: expected, done: done) }
    }

    /// put without waiting: `done` gets the new version once it is on disk.
    public func put(_ namespace: String, _ key: String, _ value: [UInt8], expected: Int64?,
                    done: @escaping (Result<Int64, Error>) -> Void) {
        nonisolated(unsafe) var version: Int64 = 0
        enqueue({ db in
            let found = try Self.version(db, namespace, key, expected: expected)
            version = found + 1
            try db.execute(sql: """
                INSERT INTO kv(namespace, key, value, version, updated_unix_ns) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,
                    updated_unix_ns = excluded.updated_unix_ns
                """, arguments: [namespace, key, Data(value), version, Clock.unixNanos()])
        }, done: { e in done(e.map { .failure($0) } ?? .success(version)) })
    }

    /// Removes the key (when at `expected`, if given). False when it was absent.
    @discardableResult
    public func delete(_ namespace: String, _ key: String, expected: Int64? = nil) throws -> Bool {
        try waitFor { done in delete(namespace, key, expected: expected, done: done) }
    }

    /// delete without waiting: `done` says whether a key was removed, once on disk.
    public func delete(_ namespace: String, _ key: String, expected: Int64?, done: @escaping (Result<Bool, Error>) -> Void) {
        nonisolated(unsafe) var removed = false
        enqueue({ db in
            _ = try Self.version(db, namespace, key, expected: expected)
            try db.execute(sql: "DELETE FROM kv WHERE namespace = ? AND key = ?", arguments: [namespace, key])
            removed = db.changesCount > 0
        }, done: { e in done(e.map { .failure($0) } ?? .success(removed)) })
    }

    /// The key's version (0: absent); CONFLICT when it is not `expected`.
    private static func version(_ db: Database, _ namespace: String, _ key: String, expected: Int64?) throws -> Int64 {
        let found = try Int64.fetchOne(db, sql: "SELECT version FROM kv WHERE namespace = ? AND key = ?", arguments: [namespace, key]) ?? 0
        if let expected, expected != found {
            throw PlexusError(.CONFLICT, "key '\(key)' is at version \(found), not \(expected)")
        }
        return found
    }

    /// Keys in a namespace with the prefix, in order.
    public func keys(_ namespace: String, prefix: String = "", limit: Int = 1000) throws -> [String] {
        try read { db in
            try String.fetchAll(db, sql: "SELECT key FROM kv WHERE namespace = ? AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?",
                                arguments: [namespace, prefix.utf8.count, prefix, limit])
        }
    }
}
