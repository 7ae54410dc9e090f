import Glibc

/// Where `plexus run` listens unless told otherwise.
public enum SocketPath {
    public static let defaultDescription = "$XDG_RUNTIME_DIR/plexus.sock, else /tmp/plexus-UID.sock"

    public static var `default`: String {
        if let p = getenv("PLEXUS_SOCKET"), p.pointee != 0 { return String(cString: p) }
        if let x = getenv("XDG_RUNTIME_DIR"), x.pointee != 0 { return String(cString: x) + "/plexus.sock" }
        return "/tmp/plexus-\(getuid()).sock"
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
