import CPlexusPOSIX

/// One empty network namespace that the workers of plugins without
/// network or socket grants join, instead of each creating its own: making
/// a network namespace costs about half a millisecond of every worker's
/// start (its loopback device, its sysctls), and tearing it down more
/// kernel work after every exit.
///
/// Sharing it gives such workers nothing to share: the syscall filter
/// refuses them `socket`, `socketpair`, `bind` and `connect`, so they can
/// neither reach its loopback (down, in any case) nor name an abstract
/// unix socket in it. A plugin granted sockets (`syscalls: [socket]`) gets
/// a namespace of its own as before, so it cannot reach another worker's
/// sockets; one granted the network (`network: true`) keeps the host's.
/// Made once per process, when first needed; when it cannot be made (a
/// host without CAP_SYS_ADMIN, whose workers make theirs in a user
/// namespace), every worker makes its own.
enum SharedNetwork {
    private static let fd: Int32 = plexus_posix_empty_netns()

    /// The namespace for a worker under policy, or -1: it makes its own.
    static func descriptor(for policy: WorkerPolicy) -> Int32 {
        guard !policy.network, !policy.allowSocket, policy.simulateUnavailable.isEmpty else { return -1 }
        return fd
    }
}
