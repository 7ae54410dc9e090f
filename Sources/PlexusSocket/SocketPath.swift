import Glibc
import PlexusCore

/// Where `plexus run` listens unless told otherwise.
public enum SocketPath {
    public static let defaultDescription = "$XDG_RUNTIME_DIR/plexus.sock, else /tmp/plexus-UID/plexus.sock"

    public static var `default`: String {
        if let p = getenv("PLEXUS_SOCKET"), p.pointee != 0 { return String(cString: p) }
        if let x = getenv("XDG_RUNTIME_DIR"), x.pointee != 0 { return String(cString: x) + "/plexus.sock" }
        return privateDirectory + "/plexus.sock"
    }

    /// The fallback's directory: this user's own, mode 0700, so that no
    /// other user can put a socket where this user's commands will look.
    public static var privateDirectory: String { "/tmp/plexus-\(getuid())" }

    /// Before a host binds `path` in the private directory: creates it
    /// (0700), or refuses one that another user could have prepared (not a
    /// directory, another owner, writable by others). When clients of other
    /// users are admitted, they may pass through it (0711) but not list it.
    public static func prepareDirectory(of path: String, othersMayConnect: Bool,
                                        privateDirectory dir: String = privateDirectory) throws(PlexusError) {
        guard path.hasPrefix(dir + "/") else { return try checkParent(of: path) }
        if mkdir(dir, 0o700) != 0 && errno != EEXIST {
            throw PlexusError(.INVALID_ARGUMENT, "cannot create \(dir): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard lstat(dir, &st) == 0 else { throw PlexusError(.INVALID_ARGUMENT, "cannot inspect \(dir): \(String(cString: strerror(errno)))") }
        let why: String? =
            (st.st_mode & S_IFMT) != S_IFDIR ? "it is not a directory" :
            st.st_uid != getuid() ? "it belongs to uid \(st.st_uid), not \(getuid())" :
            st.st_mode & 0o022 != 0 ? "others may write in it (mode \(String(st.st_mode & 0o777, radix: 8)))" : nil
        if let why { throw PlexusError(.PERMISSION_DENIED, "refusing to put the socket in \(dir): \(why); remove it, or pass --socket PATH") }
        guard chmod(dir, othersMayConnect ? 0o711 : 0o700) == 0 else {
            throw PlexusError(.INVALID_ARGUMENT, "cannot set the mode of \(dir): \(String(cString: strerror(errno)))")
        }
    }

    /// Any other socket ($XDG_RUNTIME_DIR, --socket): its directory must not
    /// let another user replace the socket, i.e. not writable by group or
    /// others unless sticky (as /tmp is). A directory that does not exist is
    /// left to bind(), whose error names it.
    static func checkParent(of path: String) throws(PlexusError) {
        let parent = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let dir = parent.isEmpty ? "/" : parent
        var st = stat()
        guard stat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return }
        if st.st_mode & 0o022 != 0 && st.st_mode & S_ISVTX == 0 {
            throw PlexusError(.PERMISSION_DENIED, """
                refusing to put the socket in \(dir): others may write in it and it is not sticky (mode \(String(st.st_mode & 0o7777, radix: 8))), \
                so another user could replace the socket; use a directory only you can write in (chmod go-w \(dir)), or pass --socket PATH
                """)
        }
    }

    /// sockaddr_un for path, or nil when the path does not fit (108 bytes).
    static func address(_ path: String) -> sockaddr_un? {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            for (i, b) in bytes.enumerated() { dst[i] = b }
            dst[bytes.count] = 0
        }
        return addr
    }
}
