import CPlexusPOSIX
import Glibc

/// What a worker process may use and do: its resource limits and the
/// system calls its filter lets through. Defaults suit the example agents.
public struct WorkerPolicy: Sendable, Hashable {
    /// RLIMIT_AS in bytes. A Swift or Rust plugin needs at least ~24 MB of
    /// address space before it runs any code of its own.
    public var addressSpace: UInt64 = 1 << 30
    /// RLIMIT_CPU in seconds: SIGXCPU at the soft limit, SIGKILL at the hard one.
    public var cpuSoftSeconds: UInt64 = 600
    public var cpuHardSeconds: UInt64 = 610
    public var openFiles: UInt64 = 256
    /// RLIMIT_FSIZE in bytes.
    public var fileSize: UInt64 = 64 << 20
    public var allowFork = false
    public var allowExec = false
    public var allowSocket = false
    public var allowPtrace = false
    /// Further system calls granted by name (`syscalls: [memfd_secret]`);
    /// those that reach outside the worker are refused at configuration.
    public var extraSyscalls: [String] = []
    /// The host's network (no new network namespace) for this plugin.
    public var network = false
    /// Paths the worker sees read-only, and read-write, besides its image,
    /// the system's libraries and its private /tmp. Absolute; the worker
    /// reaches them as uid 65534 (nobody).
    public var readPaths: [String] = []
    public var writePaths: [String] = []
    /// Size of the private /tmp (a tmpfs) in bytes.
    public var tmpSize: UInt64 = 16 << 20
    /// Start a plugin with limits and the syscall filter only when neither a
    /// mount namespace nor Landlock can be had (otherwise it is refused).
    public var rlimitsOnlyAllowed = false
    /// For tests of the fallbacks only: mechanisms ("namespaces", "landlock")
    /// the worker acts as if the kernel refused. Not in plexus.yaml.
    public var simulateUnavailable: [String] = []
    /// Handler threads in one instance. More than one only for a plugin
    /// that declares PLEXUS_PLUGIN_CONCURRENT (the host refuses otherwise).
    public var concurrency = 1
    /// Half a frame followed by this much silence and the worker is killed.
    public var partialFrameTimeoutMs: Int64 = 2_000

    public init() {}

    func arguments(parent: Int32, maxPayload: UInt64) -> [String] {
        // The syscall grants are not arguments: they are compiled into the
        // filter the worker reads from descriptor 5 (SyscallFilters).
        var args: [String] = ["--parent", "\(parent)", "--as", "\(addressSpace)", "--cpu", "\(cpuSoftSeconds)",
                              "--cpu-hard", "\(cpuHardSeconds)", "--nofile", "\(openFiles)", "--fsize", "\(fileSize)",
                              "--max-payload", "\(maxPayload)", "--concurrency", "\(concurrency)"]
        args += ["--confine", rlimitsOnlyAllowed ? "rlimits-only" : "required", "--network", network ? "1" : "0",
                 "--tmp-size", "\(tmpSize)"]
        for p in Self.systemPaths + readPaths { args += ["--ro", p] }
        for p in writePaths { args += ["--rw", p] }
        if !simulateUnavailable.isEmpty { args += ["--without", simulateUnavailable.joined(separator: ",")] }
        return args
    }

    /// What the dynamic loader and the language runtimes need, read-only:
    /// the system's libraries (merged /usr), the loader's cache, and the
    /// Swift runtime directory that Swift plugins' RUNPATH names (the one the
    /// host itself runs with). Nothing else of /etc.
    public static let systemPaths: [String] = {
        var paths = ["/usr", "/etc/ld.so.cache"]
        for lib in ["/lib", "/lib64"] where Self.isDirectoryNotLink(lib) { paths.append(lib) }
        if let swift = swiftRuntimeDirectory(), !swift.hasPrefix("/usr/") { paths.append(swift) }
        return paths
    }()

    /// Whether a system call can never be granted by name: it reaches
    /// outside the worker or undoes its confinement (plexus_syscalls.h, the
    /// list the worker's filter keeps too).
    public static func isNeverGrantable(_ name: String) -> Bool { plexus_posix_never_grantable(name) != 0 }

    /// Whether this architecture has a system call called name.
    public static func isKnownSyscall(_ name: String) -> Bool { plexus_posix_syscall_number(name) >= 0 }

    private static func isDirectoryNotLink(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// The directory of the libswiftCore.so this process runs with, if it
    /// links one dynamically (from /proc/self/maps).
    static func swiftRuntimeDirectory() -> String? {
        guard let f = fopen("/proc/self/maps", "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), f) != nil {
            let text = String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard let start = text.firstIndex(of: "/"), text.hasSuffix("/libswiftCore.so") else { continue }
            let path = text[start...]
            return String(path.dropLast("/libswiftCore.so".count))
        }
        return nil
    }
}
