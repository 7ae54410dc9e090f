import Glibc
import Synchronization

/// One host per store: an exclusive flock on a sidecar file `<store>.lock`
/// that holds the holder's pid, taken before the store is opened and held
/// until it is closed; and a flock on the database file itself.
///
/// Other names of one store are one store: the sidecar is named after the
/// store's real path (a symlink finds its target's lock, and the holder's
/// pid), and the flock on the database file's inode catches a hard link,
/// which has no other name to find.
///
/// Why a sidecar and flock: SQLite takes POSIX (fcntl) locks on the database
/// file itself, and those are per process: closing *any* descriptor of the
/// file drops all of them. A flock belongs to its open file description, so
/// it conflicts with every other open of the lock file, in another process
/// or in this one, and the kernel drops it when its holder dies: a stale
/// file never keeps the next host out.
final class StoreLock: Sendable {
    let path: String
    /// The locked descriptors (the sidecar, the database file); -1 once released.
    private let fds: Mutex<(Int32, Int32)>

    /// Takes the lock, or throws naming the store and the pid that holds it.
    init(store: String) throws(StoreError) {
        path = StoreLock.realPath(store) + ".lock"
        let sidecar = try StoreLock.take(store: store, path)
        let db = open(store, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        var e: Int32 = 0
        if db < 0 { e = errno } else { while flock(db, LOCK_EX | LOCK_NB) != 0 { e = errno; if e != EINTR { break }; e = 0 } }
        if db < 0 || e != 0 {
            if db >= 0 { close(db) }
            close(sidecar)
            throw e == EWOULDBLOCK
                ? StoreError("\(store) is in use by another host under another name (a hard link to the same file); "
                             + "one host per store: stop that host, or give this one another store (--store)")
                : StoreError("\(store): cannot lock the database file: \(String(cString: strerror(e)))")
        }
        fds = Mutex((sidecar, db))
    }

    /// The store's path with every symlink resolved (its directory's, when
    /// the file does not exist yet).
    static func realPath(_ store: String) -> String {
        if let r = realpath(store, nil) { defer { free(r) }; return String(cString: r) }
        let slash = store.lastIndex(of: "/")
        let dir = slash.map { String(store[..<$0]) } ?? "."
        let base = slash.map { String(store[store.index(after: $0)...]) } ?? store
        guard let r = realpath(dir.isEmpty ? "/" : dir, nil) else { return store }
        defer { free(r) }
        let d = String(cString: r)
        return (d == "/" ? "" : d) + "/" + base
    }

    private static func take(store: String, _ path: String) throws(StoreError) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StoreError("\(store): cannot create the lock file \(path): \(String(cString: strerror(errno)))")
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            if e == EINTR { continue }
            let holder = StoreLock.holder(fd)
            close(fd)
            if e == EWOULDBLOCK {
                throw StoreError("\(store) is in use by another host (pid \(holder.map(String.init) ?? "unknown"), per \(path)); "
                                 + "one host per store: stop that host, or give this one another store (--store)")
            }
            throw StoreError("\(store): cannot lock \(path): \(String(cString: strerror(e)))")
        }
        // Ours now: record who holds it, for the next one to name.
        let text = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) != 0 || pwrite(fd, text, text.count, 0) != text.count {
            let why = String(cString: strerror(errno))
            close(fd)
            throw StoreError("\(store): cannot write the holder's pid into \(path): \(why)")
        }
        return fd
    }

    /// The pid written in the lock file, if it reads as one.
    private static func holder(_ fd: Int32) -> Int32? {
        var buf = [UInt8](repeating: 0, count: 32)
        let n = pread(fd, &buf, buf.count, 0)
        guard n > 0 else { return nil }
        return Int32(String(decoding: buf[..<n], as: UTF8.self).trimmingCharacters(in: " \n"))
    }

    /// Lets the next host in. The file stays: removing it would race with a
    /// host that opened it and is about to lock it.
    func release() {
        fds.withLock { fds in
            guard fds.0 >= 0 else { return }
            close(fds.1)   // drops the flocks (SQLite has closed the database by now)
            close(fds.0)
            fds = (-1, -1)
        }
    }

    deinit { release() }
}

private extension String {
    func trimmingCharacters(in set: String) -> String {
        let drop = Set(set)
        return String(self.drop(while: drop.contains).reversed().drop(while: drop.contains).reversed())
    }
}
