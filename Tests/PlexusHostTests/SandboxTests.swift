import Foundation
import PlexusCore
import PlexusHost
import Synchronization
import Testing

/// Plugins in worker processes: the same messages as in-process, and a
/// worker that dies loses nothing the host accepted.
@Suite("Sandboxed workers", .serialized)
struct SandboxTests {
    func workerPid(_ host: Host, _ name: String = "probe") -> Int32? {
        host.agentReports.first { $0.name == name }?.pid
    }

    @Test func aWorkerAnswersLikeAnInProcessAgent() throws {
        let host = try sandboxedHost([try Fixtures.probe()])
        defer { host.shutdown() }
        #expect(try host.callText("probe.echo", "{\"hello\":\"world\"}") == "{\"hello\":\"world\"}")
        let report = try #require(host.agentReports.first { $0.name == "probe" })
        #expect(report.kind == "worker")
        let pid = try #require(report.pid)
        #expect(pid != getpid())
        #expect(try host.callText("probe.pid") == "\(pid)")
        #expect(try host.callText("agent:probe", "probe.sender") == "client:api")
    }

    @Test func killingAWorkerMidStreamLosesNoRequest() throws {
        let host = try sandboxedHost([try Fixtures.probe()])
        defer { host.shutdown() }
        let first = try #require(workerPid(host))
        let n = 3000
        let answers = Mutex<[Int: String]>([:])
        let group = DispatchGroup()
        for i in 0..<n {
            group.enter()
            try host.request(Envelope(kind: .query, target: .capability("probe.echo"), payload: Array("\(i)".utf8)),
                             timeoutMs: 20_000) { a in
                answers.withLock { $0[i] = a.kind == .error ? "error: \(Host.error(from: a))" : a.payloadString }
                group.leave()
            }
            if i == n / 3 { kill(first, SIGKILL) }
        }
        #expect(group.wait(timeout: .now() + 30) == .success)
        let got = answers.withLock { $0 }
        for i in 0..<n { #expect(got[i] == "\(i)", "request \(i)") }
        let report = try #require(host.agentReports.first { $0.name == "probe" })
        #expect(report.restarts >= 1)
        #expect(report.last_exit?.hasPrefix("SIGKILL") == true)
        #expect(report.pid != first)
    }

    @Test func aPoisonMessageIsDeadLetteredAndTheRestFlow() throws {
        let host = try sandboxedHost([try Fixtures.probe()])
        defer { host.shutdown() }
        let err = expectError(.AGENT_CRASHED) { _ = try host.callText("probe.crash", timeoutMs: 20_000) }
        #expect(err?.detail.contains("died 3 times") == true)
        #expect(err?.detail.contains("SIGSEGV") == true)
        #expect(try host.callText("probe.echo", "still here") == "still here")
        #expect(host.deadLetters.contains { $0.reason.contains("SIGSEGV") })
    }

    @Test func theFilterDeniesForkAndSockets() throws {
        let host = try sandboxedHost([try Fixtures.probe()])
        defer { host.shutdown() }
        #expect(try host.callText("probe.fork") == "-\(EPERM)")
        #expect(try host.callText("probe.socket") == "-\(EPERM)")
        #expect(try host.callText("probe.echo", "alive") == "alive")
    }

    @Test func grantedCallsAreAllowed() throws {
        let host = try sandboxedHost([try Fixtures.probe()]) { $0.workerPolicy.allowSocket = true }
        defer { host.shutdown() }
        #expect(Int(try host.callText("probe.socket")) ?? -1 >= 0)
    }
}

/// Typed exports answer the same in a worker as in-process, errors included.
@Suite("Typed exports in workers", .serialized)
struct WorkerExportTests {
    @Test func workerAndInProcessAgree() throws {
        let calls: [(String, String)] = [
            ("probe.add", "[2, 40]"), ("probe.add", "{\"a\": -5, \"b\": 3}"), ("probe.negate", "[7]"),
            ("probe.half", "[3]"), ("probe.is_even", "[10]"), ("probe.shout", "[\"hey\"]"),
            ("probe.constant", "[]"), ("probe.count", "[\"four\"]"),
            ("probe.add", "[1]"), ("probe.negate", "[\"x\"]"), ("probe.negate", "[3000000000]"),
        ]
        func answers(_ mode: SandboxMode) throws -> [String] {
            var c = HostConfiguration(pluginsDirectory: nil)
            c.sandbox = mode
            let host = Host(c)
            try host.load(path: try Fixtures.probe())
            host.start()
            defer { host.shutdown() }
            return calls.map { target, json in
                do { return try host.callText(target, json) } catch { return "\(error)" }
            }
        }
        let worker = try answers(.process)
        let inProcess = try answers(.inProcess)
        #expect(worker == inProcess)
        #expect(worker[0] == "{\"result\":42}")
        #expect(worker[8].contains("ARITY_MISMATCH"))
    }
}

/// instances: N runs N workers of one plugin behind its capabilities.
@Suite("Instances", .serialized)
struct InstanceTests {
    @Test func threeInstancesShareTheWork() throws {
        let file = try Fixtures.probe(named: "multi")
        var c = HostConfiguration(pluginsDirectory: nil)
        var s = c.settings(for: file)
        s.instances = 3
        c.plugins[URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent] = s
        let host = Host(c)
        try host.load(path: file)
        host.start()
        defer { host.shutdown() }
        let names = host.agentReports.map(\.name).filter { $0.hasPrefix("multi") }
        #expect(names == ["multi", "multi.2", "multi.3"])
        let pids = Set(host.agentReports.compactMap { names.contains($0.name) ? $0.pid : nil })
        #expect(pids.count == 3)
        // Slow requests in parallel: the least-loaded choice spreads them over the workers.
        let seen = Mutex<Set<String>>([])
        let group = DispatchGroup()
        for _ in 0..<6 {
            group.enter()
            try host.request(Envelope(kind: .query, target: .capability("probe.sleep"), payload: Array("100".utf8)), timeoutMs: 10_000) { a in
                seen.withLock { _ = $0.insert(a.payloadString) }
                group.leave()
            }
        }
        #expect(group.wait(timeout: .now() + 10) == .success)
        #expect(seen.withLock { $0 } == ["multi"])   // every instance answers as its plugin
        let handled = host.agentReports.filter { names.contains($0.name) }.map(\.handled)
        #expect(handled.filter { $0 > 0 }.count >= 2, "\(handled)")
    }
}

/// concurrency: N runs N handlers of one instance at once, in a worker or in
/// the host, and only for a plugin that declares PLEXUS_PLUGIN_CONCURRENT.
@Suite("Concurrency", .serialized)
struct ConcurrencyTests {
    func host(_ mode: SandboxMode, concurrency: Int, flags: [String] = []) throws -> (Host, String) {
        let file = try Fixtures.build("parallel.c", flags, name: "parallel")
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = mode
        c.threads = 6   // in the host, handlers run on dispatcher threads: at most this many at once
        var s = c.settings(for: file)
        s.policy.concurrency = concurrency
        c.plugins[URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent] = s
        return (Host(c), file)
    }

    func started(_ mode: SandboxMode, concurrency: Int) throws -> Host {
        let (host, file) = try host(mode, concurrency: concurrency)
        try host.load(path: file)
        host.start()
        return host
    }

    /// Sends n holds of ms each at once and returns the peak parallelism.
    func peak(_ host: Host, holds n: Int, ms: Int) throws -> Int {
        let group = DispatchGroup()
        let answers = Mutex<[String]>([])
        for _ in 0..<n {
            group.enter()
            try host.request(Envelope(kind: .query, target: .capability("parallel.hold"), payload: Array("\(ms)".utf8)), timeoutMs: 20_000) { a in
                answers.withLock { $0.append(a.payloadString) }
                group.leave()
            }
        }
        #expect(group.wait(timeout: .now() + 20) == .success)
        #expect(answers.withLock { $0 } == Array(repeating: "held", count: n))
        return Int(try host.callText("parallel.peak")) ?? -1
    }

    @Test(arguments: [SandboxMode.process, .inProcess])
    func handlersRunTogetherUpToTheLimit(_ mode: SandboxMode) throws {
        let host = try started(mode, concurrency: 4)
        defer { host.shutdown() }
        // Eight holds of 1 s with four handlers: the peak is exactly four
        // (long enough that four overlap even on a loaded 2-core machine).
        #expect(try peak(host, holds: 8, ms: 1000) == 4)
        #expect(host.agentReports.first { $0.name == "parallel" }?.concurrency == 4)
    }

    @Test(arguments: [SandboxMode.process, .inProcess])
    func oneHandlerAtATimeByDefault(_ mode: SandboxMode) throws {
        let host = try started(mode, concurrency: 1)
        defer { host.shutdown() }
        #expect(try peak(host, holds: 4, ms: 50) == 1)
    }

    @Test(arguments: [SandboxMode.process, .inProcess])
    func aPluginThatIsNotConcurrentIsRefused(_ mode: SandboxMode) throws {
        let (host, file) = try host(mode, concurrency: 3, flags: ["-DNOT_CONCURRENT"])
        defer { host.shutdown() }
        #expect(throws: PluginRefusal.self) { try host.load(path: file) }
        let reason = host.pluginReports.first?.reason ?? ""
        #expect(reason.contains("concurrency: 3"), "\(reason)")
        #expect(reason.contains("PLEXUS_PLUGIN_CONCURRENT"), "\(reason)")
        #expect(host.agentReports.allSatisfy { $0.name != "parallel" })
    }

    /// A quick reply must not wait for a slow handler that started after it.
    @Test func aReplyIsNotHeldBehindASlowHandler() throws {
        let host = try started(.process, concurrency: 1)
        defer { host.shutdown() }
        let quick = DispatchSemaphore(value: 0)
        let slow = DispatchSemaphore(value: 0)
        // Both reach the worker together; the quick one is handled first.
        try host.request(Envelope(kind: .query, target: .capability("parallel.hold"), payload: Array("0".utf8)), timeoutMs: 20_000) { _ in quick.signal() }
        try host.request(Envelope(kind: .query, target: .capability("parallel.hold"), payload: Array("3000".utf8)), timeoutMs: 20_000) { _ in slow.signal() }
        #expect(quick.wait(timeout: .now() + 1.5) == .success)   // not after the 3 s hold
        #expect(slow.wait(timeout: .now() + 10) == .success)
    }
}

/// Shutdown finishes accepted work within its grace period and hands back
/// the rest: every caller is answered once, nothing vanishes.
@Suite("Graceful shutdown", .serialized)
struct ShutdownTests {
    /// n slow queries, then shutdown; returns the answers (payload or status name).
    func answersAfterShutdown(_ mode: SandboxMode, graceMs: Int64, queries n: Int) throws -> (answers: [String], host: Host) {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = mode
        c.shutdownGraceMs = graceMs
        let host = Host(c)
        try host.load(path: try Fixtures.probe(named: "slow"))
        host.start()
        let answers = Mutex<[String]>([])
        for _ in 0..<n {
            try host.request(Envelope(kind: .query, target: .capability("probe.sleep"), payload: Array("100".utf8)), timeoutMs: 60_000) { a in
                answers.withLock { $0.append(a.kind == .error ? statusName(a.status) : a.payloadString) }
            }
        }
        host.shutdown()
        return (answers.withLock { $0 }, host)
    }

    @Test(arguments: [SandboxMode.process, .inProcess])
    func acceptedWorkFinishesWithinTheGrace(_ mode: SandboxMode) throws {
        let (answers, host) = try answersAfterShutdown(mode, graceMs: 5_000, queries: 8)
        #expect(answers == Array(repeating: "slow", count: 8))
        #expect(host.deadLetters.isEmpty)
    }

    @Test(arguments: [SandboxMode.process, .inProcess])
    func whatIsNotFinishedIsHandedBack(_ mode: SandboxMode) throws {
        let (answers, host) = try answersAfterShutdown(mode, graceMs: 350, queries: 12)
        #expect(answers.count == 12)                                   // every caller answered, once
        let done = answers.filter { $0 == "slow" }.count
        let refused = answers.filter { $0 == "SHUTTING_DOWN" }.count
        #expect(done >= 1 && refused >= 1 && done + refused == 12, "\(answers)")
        #expect(host.deadLetters.count == refused)                     // and recorded with the reason
        #expect(host.deadLetters.allSatisfy { $0.reason.contains("shut down") })
    }
}
