import CPlexusPOSIX
import Glibc
import PlexusCore

/// A plugin file's bytes as the host first saw them: a sealed in-memory copy
/// that every worker of the plugin loads, so a file overwritten in place
/// never changes a running agent and a restart loads the same bytes.
public final class PluginImage: @unchecked Sendable {
    public let path: String
    /// SHA-256 of the copy, lowercase hex.
    public let sha256: String
    public let size: Int
    let fd: Int32

    /// Plugins larger than this are refused before they are copied.
    public static let maxBytes: UInt64 = 512 << 20

    public init(path: String) throws(PlexusError) {
        var digest = [UInt8](repeating: 0, count: 32)
        var what: UnsafePointer<CChar>?
        let fd = plexus_posix_sealed_copy(path, Self.maxBytes, &digest, &what)
        guard fd >= 0 else {
            let why = what.map { String(cString: $0) } ?? "cannot copy"
            throw PlexusError(.BAD_DESCRIPTOR, "\(why): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        fstat(fd, &st)
        self.fd = fd
        self.path = path
        self.size = Int(st.st_size)
        self.sha256 = digest.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    /// A path the host itself can read the copy through (for the ELF check).
    public var procPath: String { "/proc/self/fd/\(fd)" }

    deinit { close(fd) }
}
