import CPlexusPOSIX
import Glibc

/// The host's open-descriptor limit. Every held client connection is a
/// descriptor, and the usual soft limit (1,024) is far below what a host
/// serving thousands of clients needs; the hard limit is what the
/// administrator allows.
public enum FileLimit {
    /// Raises RLIMIT_NOFILE's soft limit to the hard limit. Returns the
    /// limits before and after, or an error message.
    public static func raiseToHard() -> Result<(old: UInt64, new: UInt64), SocketSetupError> {
        var old: UInt64 = 0, new: UInt64 = 0
        guard plexus_loop_raise_nofile(&old, &new) == 0 else {
            return .failure(SocketSetupError("cannot raise the open-file limit (RLIMIT_NOFILE): \(String(cString: strerror(errno)))"))
        }
        return .success((old, new))
    }
}

public struct SocketSetupError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
}
