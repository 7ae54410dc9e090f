import FoundationEssentials
import Glibc
import PlexusCore
import PlexusHost
import PlexusStore
import PlexusTasks
import PlexusThreads

private typealias Host = PlexusHost.Host

/// `tasks_durable_per_s`: durable tasks submitted (each acknowledged only
/// once on disk) and completed through sandboxed agents, beside the floor
/// of one fsync'd SQLite transaction per task in the same run.
extension BenchCommand {
    func tasks(pong: String, count: Int) throws {
        let dir = "/tmp/plexus-bench-tasks-\(getpid())"
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        let rate = try median { () throws -> Int in
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            return try tasksRun(pong: pong, store: dir + "/plexus.db", count: count)
        }
        let floor = try commitFloor(dir + "/floor.db", count: 2_000)
        print("tasks_durable_per_s: \(rate) tasks/s (submitted in batches of 500, each batch on disk before it is acknowledged; "
              + "completed by 2 sandboxed C agents; floor: one fsync'd SQLite transaction per task: \(floor)/s; \(ratio(Double(rate), Double(floor), "floor")))")
    }

    private func tasksRun(pong: String, store path: String, count: Int) throws -> Int {
        let (h, store, scheduler) = try durableHost(pong: pong, store: path)
        // Counted as each completion reaches the disk (not by polling the table).
        let completed = ConditionLock()
        nonisolated(unsafe) var done = 0
        scheduler.onFinished = { t in
            guard t.state == .completed else { return }
            completed.withLock { done += 1; if done == count { completed.signal() } }
        }
        h.start()
        try scheduler.start()
        defer { scheduler.stop(); h.shutdown(); store.close() }
        let cap = "bench.pong0"
        let t0 = Clock.monotonicNanos()
        var submitted = 0
        while submitted < count {
            let n = min(500, count - submitted)
            do { _ = try scheduler.submit((0..<n).map { _ in TaskSpec(capability: cap, payload: Array("x".utf8)) }) } catch {
                throw CLIError("\(error)")
            }
            submitted += n
        }
        let finished = completed.withLock { () -> Bool in
            while done < count && Clock.monotonicNanos() - t0 < 120_000_000_000 {
                completed.wait(untilMonotonic: t0 + 120_000_000_000)
            }
            return done >= count
        }
        guard finished, try store.count(state: .completed) == count else { throw CLIError("tasks did not complete within 120 s") }
        return Int(Double(count) / (Double(Clock.monotonicNanos() - t0) / 1e9))
    }

    /// A host with two sandboxed instances of the pong agent, a store and a scheduler, not yet started.
    func durableHost(pong: String, store path: String) throws -> (PlexusHost.Host, Store, Scheduler) {
        var c = HostConfiguration(pluginsDirectory: nil)
        var s = c.settings(for: pong)
        s.instances = 2
        c.plugins[PluginDescriptor.stem(of: pong)] = s
        c.mailboxCapacity = 65_536
        let h = Host(c)
        do { try h.load(path: pong) } catch { throw CLIError(error.description) }
        let store: Store
        do { store = try Store(path: path) } catch { throw CLIError(error.description) }
        return (h, store, try Scheduler(host: h, store: store))
    }

    /// One transaction, one fsync, per write: what durability costs without group commit.
    private func commitFloor(_ path: String, count: Int) throws -> Int {
        let store: Store
        do { store = try Store(path: path) } catch { throw CLIError(error.description) }
        defer { store.close() }
        let t0 = Clock.monotonicNanos()
        for i in 0..<count { try store.put("floor", "k\(i)", [1]) }   // one waiting writer: one transaction each
        return Int(Double(count) / (Double(Clock.monotonicNanos() - t0) / 1e9))
    }
}
