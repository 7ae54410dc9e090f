import Foundation

/// Scratch directories for tests, all under one folder per test process
/// ($TMPDIR/plexus-tests-PID) that is removed when the process exits, so a
/// test run leaves nothing behind in /tmp whatever its tests forget.
public enum TestDirectory {
    /// The process's folder, created on first use.
    public static let root: String = {
        let d = NSTemporaryDirectory() + "plexus-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "plexus-tests-\(getpid())") }
        return d
    }()

    /// A new, empty directory named prefix-XXXXXXXX under root.
    public static func make(_ prefix: String) -> String {
        let d = "\(root)/\(prefix)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }
}
