/// What a worker process may use and do: its resource limits and the
/// system calls its filter lets through. Defaults suit the example agents.
public struct WorkerPolicy: Sendable, Equatable {
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
    /// Enter a new user namespace where the kernel allows it (the worker
    /// loses root's file privileges).
    public var namespaces = true
    /// Also enter an empty network namespace: for plugins granted sockets
    /// that must not reach the network. Costs ~0.6 ms per start.
    public var networkNamespace = false
    /// Handler threads in one instance. More than one only for a plugin
    /// that declares PLEXUS_PLUGIN_CONCURRENT (the host refuses otherwise).
    public var concurrency = 1
    /// Half a frame followed by this much silence and the worker is killed.
    public var partialFrameTimeoutMs: Int64 = 2_000

    public init() {}

    func arguments(parent: Int32, maxPayload: UInt64) -> [String] {
        let allow = [("fork", allowFork), ("exec", allowExec), ("socket", allowSocket), ("ptrace", allowPtrace)]
            .filter(\.1).map(\.0).joined(separator: ",")
        return ["--parent", "\(parent)", "--as", "\(addressSpace)", "--cpu", "\(cpuSoftSeconds)",
                "--cpu-hard", "\(cpuHardSeconds)", "--nofile", "\(openFiles)", "--fsize", "\(fileSize)",
                "--namespaces", namespaces ? "1" : "0", "--netns", networkNamespace ? "1" : "0",
                "--max-payload", "\(maxPayload)", "--concurrency", "\(concurrency)",
                "--allow", allow.isEmpty ? "none" : allow]
    }
}
