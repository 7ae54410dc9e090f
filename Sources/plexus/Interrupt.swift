import Glibc
import PlexusCore
import PlexusThreads
import Synchronization

/// Ctrl-C during `plexus call`: the first one cancels the request in flight
/// (its answer is then CANCELLED, and the agent handling it hears CANCEL);
/// a second one, or one with no request in flight yet, exits at once with
/// the shell's status for an interrupt.
final class CallInterrupt: Sendable {
    /// The request in flight, and how to cancel it.
    private let inFlight = Mutex<(id: plexus_id, cancel: @Sendable (plexus_id) -> Void)?>(nil)
    private let interrupts = Atomic<Int>(0)

    /// SIGINT is blocked in this thread and in every thread started after
    /// (the embedded host's too), so only the waiting thread below takes it.
    init() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        try? startDetachedThread(name: "plexus-sigint") { [self] in
            var waited = sigset_t()
            sigemptyset(&waited)
            sigaddset(&waited, SIGINT)
            while true {
                var sig: Int32 = 0
                guard sigwait(&waited, &sig) == 0 else { continue }
                let n = interrupts.add(1, ordering: .relaxed).newValue
                let call = inFlight.withLock { $0 }
                guard n == 1, let call else {
                    FileHandleErr.note("plexus: interrupted")
                    Glibc.exit(ExitStatus.interrupted)
                }
                FileHandleErr.note("plexus: cancelling the request (Ctrl-C again to quit at once)")
                call.cancel(call.id)
            }
        }
    }

    /// The request now in flight; `cancel` is called from the signal's thread.
    func started(_ id: plexus_id, cancel: @escaping @Sendable (plexus_id) -> Void) {
        inFlight.withLock { $0 = (id, cancel) }
    }
}

/// Lends a value that is not Sendable to the signal's thread; its use there
/// (SocketClient.cancel, which only writes one frame) is safe alongside the
/// waiting call.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
}
