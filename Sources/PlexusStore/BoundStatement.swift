import FoundationEssentials
import GRDB
import GRDBSQLite

/// The store's hottest statements bound and stepped with SQLite's own
/// calls: the statement is prepared once and kept by the connection
/// (GRDB's cache), and each value goes straight to sqlite3_bind_*, with no
/// DatabaseValue boxing or argument arrays on the writer thread's path.
struct Binder {
    let statement: OpaquePointer
    private var index: Int32 = 0
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ s: OpaquePointer) { statement = s }

    mutating func add(_ v: Int64) { index += 1; sqlite3_bind_int64(statement, index, v) }
    mutating func add(_ v: Int) { add(Int64(v)) }

    mutating func add(_ v: String?) {
        index += 1
        guard let v else { sqlite3_bind_null(statement, index); return }
        let i = index
        v.withCString { p in _ = sqlite3_bind_text(statement, i, p, -1, Binder.transient) }
    }

    mutating func add(_ v: Data?) {
        index += 1
        guard let v else { sqlite3_bind_null(statement, index); return }
        let i = index
        v.withUnsafeBytes { b in
            // An empty blob is still a blob (not NULL): the columns are NOT NULL.
            if let p = b.baseAddress { _ = sqlite3_bind_blob(statement, i, p, Int32(b.count), Binder.transient) }
            else { _ = sqlite3_bind_zeroblob(statement, i, 0) }
        }
    }
}

extension Database {
    /// Runs `sql` (prepared once per connection) with what `bind` adds.
    func run(_ sql: String, _ bind: (inout Binder) -> Void) throws {
        let s = try cachedStatement(sql: sql).sqliteStatement
        sqlite3_reset(s)
        var b = Binder(s)
        bind(&b)
        let rc = sqlite3_step(s)
        guard rc == SQLITE_DONE else {
            let message = String(cString: sqlite3_errmsg(sqliteConnection))
            sqlite3_reset(s)
            throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: message, sql: sql)
        }
        sqlite3_reset(s)
    }
}
