import Glibc
import GRDB

/// Salvage of a damaged store file (FAULTS.md 33): every row that can still
/// be read is copied into a fresh file; the damaged file is kept beside it
/// for inspection; the report says what was kept and what was lost.
enum Recovery {
    static func salvage(path: String, damage: String) throws -> String {
        let kept = path + ".damaged-\(time(nil))"
        for suffix in ["", "-wal", "-shm"] where access(path + suffix, F_OK) == 0 {
            guard rename(path + suffix, kept + suffix) == 0 else {
                throw StoreError("\(path): damaged (\(damage)) and cannot be moved aside: \(String(cString: strerror(errno)))")
            }
        }
        let fresh = try DatabaseQueue(path: path)
        try Schema.migrate(fresh)
        var notes: [String] = []
        var old: DatabaseQueue?
        do {
            var c = Configuration()
            c.readonly = true
            old = try DatabaseQueue(path: kept, configuration: c)
        } catch {
            notes.append("nothing could be read (\(error))")
        }
        if let old {
            for table in Schema.tables { notes.append(copy(table, from: old, to: fresh)) }
            try? old.close()
        }
        try fresh.close()
        return "damaged (\(damage)); \(notes.joined(separator: "; ")); the damaged file is kept at \(kept)"
    }

    /// Copies the rows of one table that can be read, from the start until
    /// the first unreadable one and back from the end to the last readable one.
    private static func copy(_ table: String, from old: DatabaseQueue, to fresh: DatabaseQueue) -> String {
        var rows: [Row] = []
        var broken = false
        for order in ["ASC", "DESC"] where order == "ASC" || broken {
            do {
                try old.read { db in
                    let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM \(table) ORDER BY rowid \(order)")
                    while let r = try cursor.next() { rows.append(r.copy()) }
                }
            } catch {
                broken = true
            }
        }
        var copied = 0
        try? fresh.write { db in
            for r in rows {
                let cols = Array(r.columnNames)
                let sql = "INSERT OR IGNORE INTO \(table) (\(cols.joined(separator: ","))) VALUES (\(cols.map { _ in "?" }.joined(separator: ",")))"
                if (try? db.execute(sql: sql, arguments: StatementArguments(cols.map { r[$0] as DatabaseValue }))) != nil, db.changesCount > 0 {
                    copied += 1
                }
            }
        }
        return "\(table): \(copied) row(s) kept\(broken ? ", the rest unreadable" : "")"
    }
}
