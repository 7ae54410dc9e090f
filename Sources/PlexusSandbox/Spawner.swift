import CPlexusPOSIX
import Glibc
import PlexusCore
import PlexusThreads

/// Starts worker processes, all from one long-lived thread: the kernel ties a
/// child's parent-death signal to the thread that spawned it, so a spawning
/// thread that ended would kill its workers with it.
public final class Spawner: @unchecked Sendable {
    public static let shared = Spawner()

    private struct Job {
        let exe: String
        let argv: [String]
        let fds: (channel: Int32, plugin: Int32, filter: Int32, netns: Int32, out: Int32, err: Int32)
        let done: @Sendable (Result<Int32, PlexusError>) -> Void
    }

    private let lock = ConditionLock()
    private var jobs: [Job] = []
    /// The spawner thread is detached: it lives as long as the process.
    private var started = false

    private init() {}

    /// Spawns exe with argv (argv[0] included) and the descriptors (netns:
    /// -1 for none); returns the pid. Waits for the spawner thread to do it.
    func spawn(exe: String, argv: [String], channel: Int32, plugin: Int32, filter: Int32, netns: Int32 = -1,
               out: Int32, err: Int32) throws(PlexusError) -> Int32 {
        let result = OneShot<Result<Int32, PlexusError>>()
        let failed: ThreadStartError? = lock.withLock {
            if !started {
                do throws(ThreadStartError) { try startDetachedThread(name: "plexus-spawner") { [self] in loop() } } catch { return error }
                started = true
            }
            jobs.append(Job(exe: exe, argv: argv, fds: (channel, plugin, filter, netns, out, err)) { result.set($0) })
            lock.broadcast()
            return nil
        }
        if let failed { throw PlexusError(.INTERNAL, "cannot start the worker \(exe): \(failed)") }
        return try result.wait().get()
    }

    private func loop() {
        while true {
            lock.lock()
            while jobs.isEmpty { lock.wait() }
            let job = jobs.removeFirst()
            lock.unlock()
            job.done(Self.run(job))
        }
    }

    private static func run(_ job: Job) -> Result<Int32, PlexusError> {
        var cargs = job.argv.map { strdup($0) }
        cargs.append(nil)
        defer { for p in cargs { free(p) } }
        var pid: Int32 = 0
        let rc = cargs.withUnsafeMutableBufferPointer { argv in
            plexus_posix_spawn_worker_netns(job.exe, argv.baseAddress, job.fds.channel, job.fds.plugin, job.fds.filter,
                                            job.fds.netns, job.fds.out, job.fds.err, &pid)
        }
        if rc != 0 {
            return .failure(PlexusError(.INTERNAL, "cannot start the worker \(job.exe): \(String(cString: strerror(rc)))"))
        }
        return .success(pid)
    }
}
