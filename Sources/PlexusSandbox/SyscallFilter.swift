import CPlexusPOSIX
import Glibc
import PlexusCore
import Synchronization

/// The workers' seccomp filters, compiled once per distinct set of grants
/// (`syscalls:` in plexus.yaml) and kept for the life of the process: a
/// worker reads its program from descriptor 5 and only patches in its pid,
/// instead of running libseccomp's compiler at every start.
final class SyscallFilters: Sendable {
    static let shared = SyscallFilters()

    struct Key: Hashable {
        let fork: Bool, exec: Bool, socket: Bool, ptrace: Bool
        let extra: [String]
    }

    /// Sealed memfds (plexus_filter.h); never closed, one per key.
    private let compiled = Mutex<[Key: Int32]>([:])

    /// The filter's descriptor for policy's grants (borrowed: spawn dups it).
    func descriptor(for policy: WorkerPolicy) throws(PlexusError) -> Int32 {
        let key = Key(fork: policy.allowFork, exec: policy.allowExec, socket: policy.allowSocket,
                      ptrace: policy.allowPtrace, extra: policy.extraSyscalls)
        if let fd = compiled.withLock({ $0[key] }) { return fd }
        // Compiled outside the lock (a few hundred microseconds); a race
        // compiles twice and keeps the first.
        var what: UnsafePointer<CChar>?
        var cstrings = key.extra.map { strdup($0) }
        defer { for p in cstrings { free(p) } }
        let fd: Int32 = cstrings.withUnsafeMutableBufferPointer { names in
            names.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(names.count, 1)) { p in
                var g = plexus_filter_grants(allow_fork: key.fork ? 1 : 0, allow_exec: key.exec ? 1 : 0,
                                             allow_socket: key.socket ? 1 : 0, allow_ptrace: key.ptrace ? 1 : 0,
                                             extra: names.isEmpty ? nil : p, n_extra: Int32(names.count))
                return plexus_posix_filter_build(&g, &what)
            }
        }
        guard fd >= 0 else {
            let why = what.map { String(cString: $0) } ?? "compiling the seccomp filter failed"
            throw PlexusError(.INTERNAL, "\(why): \(String(cString: strerror(errno)))")
        }
        return compiled.withLock { table in
            if let first = table[key] { close(fd); return first }
            table[key] = fd
            return fd
        }
    }
}
