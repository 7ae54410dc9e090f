import Glibc
import PlexusHost
import PlexusThreads

/// The bound on `plexus run`'s shutdown: the host lets accepted work finish
/// for the grace period, but an in-process handler that never returns
/// cannot be interrupted (it runs on a dispatcher thread inside the host's
/// own process). So a detached watchdog waits the grace period plus half a
/// second; if the process is still here, it names the agents still running
/// and exits with status 1, well within grace + 1 s.
enum ShutdownDeadline {
    static let marginMs: Int64 = 500

    static func arm(host: Host, graceMs: Int64) throws {
        let deadline = Clock.monotonicNanos() + (graceMs + marginMs) * 1_000_000
        do {
            try startDetachedThread(name: "plexus-shutdown") {
                while Clock.monotonicNanos() < deadline {
                    let left = deadline - Clock.monotonicNanos()
                    var ts = timespec(tv_sec: Int(left / 1_000_000_000), tv_nsec: Int(left % 1_000_000_000))
                    nanosleep(&ts, nil)
                }
                let busy = host.busyAgents
                let names = busy.isEmpty ? "none reported busy" : busy.joined(separator: ", ")
                FileHandleErr.note("plexus: shutdown did not finish within --shutdown-grace-ms \(graceMs) + \(marginMs) ms; "
                                   + "exiting with agents still running: \(names)")
                _exit(1)
            }
        } catch {
            throw CLIError("\(error)")
        }
    }
}
