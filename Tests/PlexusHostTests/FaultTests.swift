import Foundation
import PlexusCore
import PlexusHost
import PlexusThreads
import Synchronization
import Testing

/// FAULTS.md, run against real worker processes: a hostile plugin breaks in
/// one way per capability; every test checks that the host survived, that a
/// bystander agent still answers, and what became of the messages.
@Suite("Faults in sandboxed workers", .serialized)
struct FaultTests {
    /// A host with the hostile agent and a well-behaved probe, tight limits
    /// and fast health checks so hangs are found in well under a second.
    func faultHost(_ hostileFlags: [String] = [], configure: (inout HostConfiguration) -> Void = { _ in }) throws -> Host {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = .process
        c.threads = 2
        c.defaultTimeoutMs = 20_000
        c.workerPolicy.addressSpace = 256 << 20
        c.workerPolicy.fileSize = 8 << 20
        c.workerPolicy.openFiles = 64
        c.workerPolicy.partialFrameTimeoutMs = 300
        c.restartPolicy.backoffBaseMs = 5
        c.restartPolicy.intensity = 50
        c.restartPolicy.heartbeatIntervalMs = 100
        c.restartPolicy.heartbeatTimeoutMs = 400
        c.restartPolicy.graceMs = 200
        c.restartPolicy.loadTimeoutMs = 1_500
        configure(&c)
        let host = Host(c)
        try host.load(path: try Fixtures.build("hostile.c", hostileFlags, name: "hostile"))
        try host.load(path: try Fixtures.probe())
        host.start()
        return host
    }

    func report(_ host: Host, _ name: String = "hostile") -> AgentReport? {
        host.agentReports.first { $0.name == name }
    }

    /// The message dies with its worker every time: after three deliveries it
    /// is dead-lettered, the caller hears why, and the agent is serving again.
    func expectPoison(_ cap: String, reason: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let host = try faultHost()
        defer { host.shutdown() }
        let err = expectError(.AGENT_CRASHED) { _ = try host.callText("hostile.\(cap)", timeoutMs: 20_000) }
        #expect(err?.detail.contains("died 3 times") == true, "\(err?.detail ?? "no error")", sourceLocation: sourceLocation)
        #expect(err?.detail.contains(reason) == true, "\(err?.detail ?? "no error")", sourceLocation: sourceLocation)
        #expect(host.deadLetters.contains { $0.reason.contains(reason) }, sourceLocation: sourceLocation)
        #expect(try host.callText("probe.echo", "bystander") == "bystander", sourceLocation: sourceLocation)
        #expect(try host.callText("hostile.ok") == "ok", sourceLocation: sourceLocation)
        #expect((report(host)?.restarts ?? 0) >= 3, sourceLocation: sourceLocation)
    }

    // MARK: crashes (1-3, 5)

    @Test func abortIsACrash() throws { try expectPoison("abort", reason: "SIGABRT") }
    @Test func exitWithoutGoodbyeIsACrash() throws { try expectPoison("exit", reason: "exit 0") }

    /// A poison message among many pipelined to the same worker: it alone
    /// is dead-lettered; the messages queued behind it (and before it) are
    /// each answered, however often the worker died with them in its ring.
    @Test func aPoisonMessageDoesNotTakeTheMessagesQueuedWithItDown() throws {
        let host = try faultHost()
        defer { host.shutdown() }
        let answers = Mutex<[Int: String]>([:])
        let done = OneShot<Void>()
        let total = 401
        @Sendable func note(_ i: Int, _ a: Envelope) {
            let n: Int = answers.withLock { $0[i] = a.kind == .error ? "error: \(a.payloadString)" : a.payloadString; return $0.count }
            if n == total { done.set(()) }
        }
        for i in 0..<total {
            let cap = i == 200 ? "hostile.abort" : "hostile.ok"
            try host.request(Envelope(kind: .query, target: .capability(cap), payload: Array("m\(i)".utf8)), timeoutMs: 30_000) { note(i, $0) }
        }
        #expect(done.wait(untilMonotonic: Clock.monotonicNanos() + 60_000_000_000) != nil, "\(answers.withLock { $0.count }) of \(total) answered")
        let got = answers.withLock { $0 }
        #expect(got[200]?.contains("died 3 times") == true, "\(got[200] ?? "no answer")")
        let wrong = (0..<total).filter { $0 != 200 && got[$0] != "ok" }
        #expect(wrong.isEmpty, "\(wrong.count) bystanders not answered, first: \(wrong.first.map { "\($0): \(got[$0] ?? "none")" } ?? "")")
        #expect(host.deadLetters.filter { $0.reason.contains("died 3 times") }.count == 1)
    }

    // MARK: hangs (6-8)

    @Test func aSpinningWorkerIsReplaced() throws { try expectPoison("spin", reason: "hung") }
    @Test func aSleepingWorkerIsReplaced() throws { try expectPoison("sleep", reason: "hung") }
    @Test func aStoppedWorkerIsKilled() throws { try expectPoison("stop", reason: "hung") }
    @Test func aWorkerIgnoringSigtermIsKilled() throws { try expectPoison("ignore-term", reason: "still alive") }

    // MARK: exhaustion (9, 12, 14)

    @Test func memoryBombsHitTheLimitNotTheHost() throws {
        // Touching 256 MiB page by page on a loaded machine can starve the
        // worker's heartbeat answer past 400 ms; hangs are tested elsewhere.
        let host = try faultHost { $0.restartPolicy.heartbeatTimeoutMs = 3_000 }
        defer { host.shutdown() }
        for cap in ["malloc", "mmap"] {
            let mb = Int(try host.callText("hostile.\(cap)", timeoutMs: 20_000)) ?? -1
            #expect(mb >= 0 && mb < 256, "\(cap): \(mb) MB")
        }
        let threads = Int(try host.callText("hostile.threads", timeoutMs: 20_000)) ?? -1
        #expect(threads >= 0 && threads < 100_000)
        #expect(try host.callText("probe.echo", "fine") == "fine")
    }

    @Test func diskAndDescriptorLimitsHold() throws {
        let host = try faultHost()
        defer { host.shutdown() }
        let written = Int(try host.callText("hostile.fill-disk", timeoutMs: 20_000)) ?? -1
        #expect(written <= 8 << 20, "wrote \(written) bytes")
        let fds = Int(try host.callText("hostile.fds")) ?? -1
        #expect(fds >= 0 && fds < 64)
        #expect(try host.callText("probe.echo", "fine") == "fine")
    }

    // MARK: the filter (10)

    @Test func deniedCallsFailAndAreAudited() throws {
        let host = try faultHost()
        defer { host.shutdown() }
        for cap in ["fork", "exec", "socket", "ptrace", "kill-host"] {
            #expect(try host.callText("hostile.\(cap)") == "-\(EPERM)", "\(cap)")
        }
        #expect(try host.callText("hostile.ok") == "ok")   // denied is not dead
        Thread.sleep(forTimeInterval: 0.1)
        #expect((report(host)?.denied_syscalls ?? 0) >= 1)
        #expect(report(host)?.restarts == 0)
    }

    /// 11: even with fork granted, a double-forked grandchild cannot leave
    /// the worker's process group (setsid/setpgid are denied), so tearing
    /// the worker down leaves no descendant alive.
    @Test func aDoubleForkedDaemonDiesWithItsWorker() throws {
        let host = try faultHost { $0.workerPolicy.allowFork = true }
        defer { host.shutdown() }
        let answer = try host.callText("hostile.daemon").split(separator: " ").compactMap { Int32($0) }
        #expect(answer.count == 3, "\(answer)")
        guard answer.count == 3 else { return }
        let (grandchild, setsid, setpgid) = (answer[0], answer[1], answer[2])
        #expect(setsid == -EPERM && setpgid == -EPERM)
        #expect(alive(grandchild))
        let worker = try #require(report(host)?.pid)
        kill(worker, SIGKILL)
        var gone = false
        for _ in 0..<200 where !gone { gone = !alive(grandchild); if !gone { usleep(10_000) } }
        #expect(gone, "grandchild \(grandchild) outlived its worker")
        #expect(try host.callText("probe.echo", "fine") == "fine")
    }

    /// Running, sleeping or stopped; gone or a zombie is not alive.
    func alive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }

    // MARK: channels and frames (15-20)

    @Test func closingTheChannelIsACrash() throws { try expectPoison("close-channel", reason: "closed its channel") }
    @Test func garbageOnTheChannelKillsTheWorker() throws { try expectPoison("garbage", reason: "malformed frame") }
    @Test func aHugeLengthIsRefusedBeforeAllocating() throws { try expectPoison("huge", reason: "malformed frame") }
    @Test func halfAFrameThenSilenceKillsTheWorker() throws { try expectPoison("half", reason: "half a frame") }

    @Test func passedDescriptorsAreRefusedAndClosed() throws {
        try expectPoison("pass-fd", reason: "file descriptors")
        // Other suites open descriptors concurrently, so look for the passed
        // one by name rather than counting.
        #expect(openDescriptorTargets().filter { $0.contains("hostile-passed-fd") }.isEmpty)
    }

    @Test func aFloodOfOutputNeitherBlocksNorBreaksFrames() throws {
        let host = try faultHost()
        defer { host.shutdown() }
        #expect(try host.callText("hostile.flood", timeoutMs: 20_000) == "flooded")
        #expect(try host.callText("hostile.ok") == "ok")
        #expect(report(host)?.restarts == 0)
    }

    // MARK: loading (23, 25)

    @Test func constructorsThatMisbehaveOnlyRefuseTheirPlugin() throws {
        for (flag, reason) in [("-DCTOR_EXIT", "exit 3"), ("-DCTOR_CRASH", "SIGSEGV"), ("-DCTOR_SPIN", "within 1500 ms")] {
            var c = HostConfiguration(pluginsDirectory: nil)
            c.restartPolicy.loadTimeoutMs = 1_500
            let host = Host(c)
            let bad = try Fixtures.build("hostile.c", [flag], name: "ctor")
            #expect(throws: PluginRefusal.self) { try host.load(path: bad) }
            let refusal = host.pluginReports.first { $0.file == bad }
            #expect(refusal?.reason?.contains(reason) == true, "\(flag): \(refusal?.reason ?? "none")")
            try host.load(path: try Fixtures.probe())
            host.start()
            #expect(try host.callText("probe.echo", "ok") == "ok")
            host.shutdown()
        }
    }

    @Test func aPluginOverwrittenInPlaceKeepsRunningItsOwnCopy() throws {
        let file = try Fixtures.probe(named: "mutable")
        var c = HostConfiguration(pluginsDirectory: nil)
        c.restartPolicy.backoffBaseMs = 5
        let host = Host(c)
        try host.load(path: file)
        host.start()
        defer { host.shutdown() }
        #expect(try host.callText("probe.whoami") == "mutable")
        try Data("overwritten: not a plugin any more".utf8).write(to: URL(fileURLWithPath: file))
        #expect(try host.callText("probe.whoami") == "mutable")
        let pid = try #require(report(host, "mutable")?.pid)
        kill(pid, SIGKILL)   // the restart loads the sealed copy, not the new bytes
        #expect(try host.callText("probe.whoami", timeoutMs: 10_000) == "mutable")
        #expect(report(host, "mutable")?.pid != pid)
    }

    // MARK: process ties (36)

    @Test func aWorkerOutlivesTheThreadThatLoadedIt() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = .process
        let host = Host(c)
        let file = try Fixtures.probe()
        let loader = Thread { try? host.load(path: file) }
        loader.start()
        while !loader.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        Thread.sleep(forTimeInterval: 0.2)
        host.start()
        defer { host.shutdown() }
        #expect(try host.callText("probe.echo", "alive") == "alive")
    }

    func openDescriptorTargets() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)") }
    }
}

/// The sandbox a worker runs in, read from /proc while it runs (cases 10, 13).
@Suite("Worker confinement", .serialized)
struct ConfinementTests {
    @Test func limitsFilterAndPrivilegesAreInPlace() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.workerPolicy.addressSpace = 300 << 20
        c.workerPolicy.openFiles = 77
        c.workerPolicy.fileSize = 5 << 20
        c.workerPolicy.cpuSoftSeconds = 30
        c.workerPolicy.cpuHardSeconds = 40
        let host = Host(c)
        try host.load(path: try Fixtures.probe())
        host.start()
        defer { host.shutdown() }
        let pid = try #require(host.agentReports.first { $0.name == "probe" }?.pid)
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        func row(_ name: String) -> [String] {
            let line = limits.split(separator: "\n").first { $0.hasPrefix(name) }.map(String.init) ?? ""
            return line.dropFirst(name.count).split(separator: " ").map(String.init)
        }
        #expect(row("Max core file size").prefix(2) == ["0", "0"])
        #expect(row("Max address space").prefix(2) == ["\(300 << 20)", "\(300 << 20)"])
        #expect(row("Max open files").prefix(2) == ["77", "77"])
        #expect(row("Max file size").prefix(2) == ["\(5 << 20)", "\(5 << 20)"])
        #expect(row("Max cpu time").prefix(2) == ["30", "40"])
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        #expect(status.contains("NoNewPrivs:\t1"))
        #expect(status.contains("Seccomp:\t2"))
        // Only the channel, the output pipes, /dev/null and what the worker made itself.
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap(Int.init).sorted()
        #expect(fds.count <= 6, "\(fds)")
        #expect(getpgid(pid) == pid)
    }

    @Test func whenTheHostDiesItsWorkersDie() throws {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("plexus").path
        let dir = Fixtures.dir + "/host-death-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try Fixtures.probe(), toPath: dir + "/probe.so")
        let socket = dir + "/plexus.sock"
        let run = Process()
        run.executableURL = URL(fileURLWithPath: exe)
        run.arguments = ["run", "--plugins", dir, "--socket", socket, "--store", dir + "/plexus.db"]
        run.standardError = FileHandle.nullDevice
        try run.run()
        defer { if run.isRunning { run.terminate() } }
        var pids: [Int32] = []
        for _ in 0..<100 where pids.isEmpty {
            Thread.sleep(forTimeInterval: 0.05)
            let q = Process()
            q.executableURL = URL(fileURLWithPath: exe)
            q.arguments = ["agents", "--json", "--socket", socket]
            let out = Pipe()
            q.standardOutput = out
            q.standardError = FileHandle.nullDevice
            try q.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            q.waitUntilExit()
            if let rs = try? JSONDecoder().decode([AgentReport].self, from: data) { pids = rs.compactMap(\.pid) }
        }
        #expect(!pids.isEmpty)
        kill(run.processIdentifier, SIGKILL)
        run.waitUntilExit()
        for pid in pids {
            var gone = false
            for _ in 0..<100 where !gone {
                gone = kill(pid, 0) != 0 && errno == ESRCH
                if !gone { Thread.sleep(forTimeInterval: 0.02) }
            }
            #expect(gone, "worker \(pid) outlived its host")
        }
    }
}
