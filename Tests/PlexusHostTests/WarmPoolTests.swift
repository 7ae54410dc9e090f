import Foundation
import Glibc
import PlexusCore
import PlexusHost
import PlexusSandbox
import Testing

/// The warm pool (`defaults: { warm_workers: N }`): workers started before they are
/// needed, each for one worker policy, so that a restart takes one; a warm
/// worker runs its plugin under exactly that plugin's policy.
@Suite("Warm workers", .serialized)
struct WarmPoolTests {
    /// sandboxedHost's, with `warm` warm workers, a 20 s timeout and a 1 ms backoff.
    func host(warm: Int, _ files: [String], configure: (inout HostConfiguration) -> Void = { _ in }) throws -> Host {
        try sandboxedHost(files) { c in
            c.defaultTimeoutMs = 20_000
            c.warmWorkers = warm
            c.restartPolicy.backoffBaseMs = 1
            configure(&c)
        }
    }

    /// Waits (up to a generous deadline) until cond holds; false if it never did.
    func eventually(_ cond: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if cond() { return true }
            usleep(2_000)
        }
        return cond()
    }

    func report(_ host: Host, _ name: String) -> AgentReport? { host.agentReports.first { $0.name == name } }

    /// Kills name's worker and waits until a new one answers call with
    /// answer (the payload itself by default); returns the new pid.
    func killAndAwaitRestart(_ host: Host, _ name: String, call: String, _ payload: String, answer: String? = nil) throws -> Int32 {
        let old = try #require(report(host, name)?.pid)
        kill(old, SIGKILL)
        #expect(try host.callText(call, payload) == answer ?? payload)
        let new = try #require(report(host, name)?.pid)
        #expect(new != old)
        return new
    }

    @Test func aRestartTakesAWarmWorkerAndThePoolRefills() throws {
        let host = try host(warm: 2, [try Fixtures.probe()])
        defer { host.shutdown() }
        let pool = try #require(host.warmPool)
        #expect(eventually { report(host, "probe")?.warm_workers == 2 }, "the pool never filled: \(String(describing: report(host, "probe")))")
        let waiting = pool.readyPids
        #expect(waiting.count == 2)
        let new = try killAndAwaitRestart(host, "probe", call: "probe.echo", "after the restart")
        #expect(waiting.contains(new), "the restarted worker \(new) was not one of the warm ones \(waiting)")
        #expect(pool.takenCount == 1)
        // Refilled in the background, with workers other than the one taken.
        #expect(eventually { pool.ready(for: WorkerPolicy(), maxPayload: UInt64(PLEXUS_MAX_PAYLOAD_LEN)) == 2 })
        #expect(!pool.readyPids.contains(new))
        #expect(try host.callText("probe.pid") == "\(new)")
        let json = String(decoding: try JSONEncoder().encode(try #require(report(host, "probe"))), as: UTF8.self)
        #expect(json.contains("\"warm_workers\":2"), "\(json)")
    }

    /// A warm worker killed while it waits is reaped (no zombie), no longer
    /// counted as ready, and replaced.
    @Test func aWarmWorkerThatDiesWaitingIsReapedAndReplaced() throws {
        let host = try host(warm: 2, [try Fixtures.probe()])
        defer { host.shutdown() }
        let pool = try #require(host.warmPool)
        #expect(eventually { pool.readyPids.count == 2 })
        let victim = try #require(pool.readyPids.first)
        kill(victim, SIGKILL)
        #expect(eventually { let p = pool.readyPids; return p.count == 2 && !p.contains(victim) }, "\(pool.readyPids)")
        #expect(waitpid(victim, nil, WNOHANG) == -1, "the dead warm worker \(victim) was not reaped")
        #expect(report(host, "probe")?.warm_workers == 2)
    }

    /// A restart that takes a warm worker stopped (SIGSTOP) before its HELLO:
    /// the load deadline kills it, as at load, and the agent comes back
    /// instead of staying suspended with its mail queued.
    @Test func aRestartIntoAStoppedWarmWorkerEndsAtTheLoadDeadline() throws {
        let host = try host(warm: 2, [try Fixtures.probe()]) { c in c.restartPolicy.loadTimeoutMs = 300 }
        defer { host.shutdown() }
        let pool = try #require(host.warmPool)
        #expect(eventually { pool.readyPids.count == 2 })
        let stopped = pool.readyPids
        for p in stopped { kill(p, SIGSTOP) }
        defer { for p in stopped { kill(p, SIGKILL) } }
        let old = try #require(report(host, "probe")?.pid)
        kill(old, SIGKILL)
        #expect(try host.callText("probe.echo", "back") == "back")
        let now = try #require(report(host, "probe")?.pid)
        #expect(now != old && !stopped.contains(now), "served by \(now); stopped warm workers \(stopped)")
    }

    /// Two plugins, two policies: each restart takes a worker warmed for its
    /// own policy, and the intruder's attempts meet exactly its own grants.
    @Test func aWarmWorkerRunsItsPluginUnderExactlyItsPolicy() throws {
        let base = Fixtures.dir + "/warm-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: base + "/data.txt", contents: Data("granted\n".utf8), attributes: [.posixPermissions: 0o644])
        let granted = try Fixtures.intruder(named: "granted"), plain = try Fixtures.intruder(named: "plain")
        let host = try host(warm: 1, [granted, plain]) { c in
            var s = c.settings(for: granted)
            s.policy.readPaths = [base]
            c.plugins[PluginDescriptor.stem(of: granted)] = s
        }
        defer { host.shutdown() }
        let pool = try #require(host.warmPool)
        #expect(eventually { pool.readyCount == 2 && report(host, "granted")?.warm_workers == 1 && report(host, "plain")?.warm_workers == 1 })
        let waiting = pool.readyPids
        for name in ["granted", "plain"] {
            let pid = try killAndAwaitRestart(host, name, call: "\(name).try", "open /usr", answer: "0")
            #expect(waiting.contains(pid), "\(name)'s worker \(pid) was not warm (\(waiting))")
            #expect(report(host, name)?.confinement == "mount-namespace+landlock")
        }
        func attempt(_ name: String, _ command: String) throws -> String { try host.callText("\(name).try", command) }
        #expect(try attempt("granted", "cat \(base)/data.txt") == "granted\n")
        #expect(try attempt("plain", "cat \(base)/data.txt") == "\(ENOENT)")
        for name in ["granted", "plain"] {
            let own = try #require(report(host, name)?.pid)
            #expect(try attempt(name, "open /etc/shadow") == "\(ENOENT)")
            #expect(try attempt(name, "creat /usr/intruder") == "\(EROFS)")
            #expect(try attempt(name, "caps") == "eff=0 prm=0 inh=0 bnd=0 amb=0")
            // The filter's self-only rules hold this worker's pid, patched in at its start.
            #expect(try attempt(name, "kill \(own) 0") == "0")
            #expect(try attempt(name, "kill \(getpid()) 0") == "\(EPERM)")
            #expect(try attempt(name, "renice \(getpid()) 19") == "\(EPERM)")
        }
    }

    @Test func poolSizeZeroStartsEveryWorkerCold() throws {
        let host = try host(warm: 0, [try Fixtures.probe()])
        defer { host.shutdown() }
        #expect(host.warmPool == nil)
        #expect(report(host, "probe")?.warm_workers == nil)
        _ = try killAndAwaitRestart(host, "probe", call: "probe.echo", "cold")
        let json = String(decoding: try JSONEncoder().encode(try #require(report(host, "probe"))), as: UTF8.self)
        #expect(!json.contains("warm_workers"), "\(json)")
    }

    /// Shutting the host down ends its warm workers too.
    @Test func shutdownEndsTheWarmWorkers() throws {
        let host = try host(warm: 2, [try Fixtures.probe()])
        let pool = try #require(host.warmPool)
        #expect(eventually { pool.readyCount == 2 })
        let waiting = pool.readyPids
        host.shutdown()
        #expect(pool.readyCount == 0)
        for pid in waiting { #expect(kill(pid, 0) != 0, "warm worker \(pid) outlived the host") }
    }
}
