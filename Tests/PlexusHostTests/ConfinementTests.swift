import Foundation
import Glibc
import PlexusCore
import PlexusHost
import PlexusSandbox
import PlexusStore
import Testing

extension Fixtures {
    /// Lets a worker write in dir: it is bound into the worker's root, and
    /// the worker, uid 65534 on the host, may write there.
    static func grantWrite(_ dir: String, to policy: inout WorkerPolicy) {
        chmod(dir, 0o1777)   // sticky, as /tmp: the host also keeps sockets here, which others must not replace
        policy.writePaths.append(dir)
    }

    /// dir/plexus.yaml granting every plugin writes in dir and reads of `read`.
    static func writeGrantingConfig(_ dir: String, read: [String] = []) throws {
        chmod(dir, 0o1777)
        let list = read.map { "\"\($0)\"" }.joined(separator: ", ")
        try "defaults:\n  filesystem: { read: [\(list)], write: [\"\(dir)\"] }\n"
            .write(toFile: dir + "/plexus.yaml", atomically: true, encoding: .utf8)
    }

    static func intruder(named agent: String = "intruder") throws -> String {
        try build("intruder.c", ["-DAGENT_NAME=\"\(agent)\""], name: agent)
    }
}

/// A listening socket the tests own: TCP or UDP on 127.0.0.1, a unix path,
/// or an abstract unix name.
private final class Listener {
    let fd: Int32
    private(set) var port: Int = 0

    init(inet type: Int32) throws {
        fd = socket(AF_INET, type, 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { s in
                bind(fd, s, len) == 0 && getsockname(fd, s, &len) == 0
            }
        }
        guard ok, type != Int32(SOCK_STREAM.rawValue) || listen(fd, 8) == 0 else { throw Fixtures.FixtureError(description: "listener: \(errno)") }
        port = Int(UInt16(bigEndian: a.sin_port))
    }

    init(unix name: String, abstract: Bool) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_un()
        a.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(name.utf8)
        withUnsafeMutableBytes(of: &a.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i + (abstract ? 1 : 0)] = b }
        }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 1 : 0))
        let ok = withUnsafePointer(to: &a) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 } }
        guard ok, listen(fd, 8) == 0 else { throw Fixtures.FixtureError(description: "listener \(name): \(errno)") }
    }

    deinit { close(fd) }
}

/// FAULTS 37-39: a sandboxed plugin that tries to read what is not its own,
/// signal the host, or reach the network gets the exact errno below, and the
/// host and a bystander agent keep serving.
@Suite("Confinement of sandboxed workers", .serialized)
struct ConfinementAttackTests {
    func host(_ configure: (inout HostConfiguration, String) -> Void = { _, _ in }) throws -> (Host, intruder: String, bystander: String) {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = .process
        c.threads = 2
        c.defaultTimeoutMs = 10_000
        let intruder = try Fixtures.intruder()
        let bystander = try Fixtures.probe()
        configure(&c, PluginDescriptor.stem(of: intruder))
        let host = Host(c)
        try host.load(path: intruder)
        try host.load(path: bystander)
        host.start()
        return (host, intruder, bystander)
    }

    func attempt(_ host: Host, _ command: String) throws -> String {
        try host.callText("intruder.try", command)
    }

    /// The attempt's answer (an errno, "0" for success) is what is expected.
    func expectAttempt(_ host: Host, _ command: String, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let got = try attempt(host, command)
        #expect(got == expected, "\(command): expected \(expected), got \(got)", sourceLocation: sourceLocation)
    }

    func stillServing(_ host: Host) throws {
        #expect(try host.callText("probe.echo", "still here") == "still here")
        try expectAttempt(host, "open /usr", "0")
    }

    func workerPid(_ host: Host, _ name: String) -> Int32? {
        host.agentReports.first { $0.name == name }?.pid
    }

    @Test func filesOutsideItsRootAreAbsent() throws {
        let dir = Fixtures.dir + "/confine-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // A real store in WAL mode, its files made world-readable on purpose:
        // only the worker's root keeps them out of reach.
        let store = try Store(path: dir + "/plexus.db")
        defer { store.close() }
        for f in ["plexus.db", "plexus.db-wal"] {
            #expect(FileManager.default.fileExists(atPath: "\(dir)/\(f)"))
            chmod("\(dir)/\(f)", 0o666)
        }
        let sock = try Listener(unix: dir + "/h.sock", abstract: false)
        _ = sock
        let (host, _, bystander) = try host()
        defer { host.shutdown() }
        try expectAttempt(host, "open /etc/shadow", "\(ENOENT)")
        try expectAttempt(host, "open /etc/passwd", "\(ENOENT)")
        try expectAttempt(host, "open \(dir)/plexus.db", "\(ENOENT)")
        try expectAttempt(host, "openrw \(dir)/plexus.db", "\(ENOENT)")
        try expectAttempt(host, "open \(dir)/plexus.db-wal", "\(ENOENT)")
        try expectAttempt(host, "open \(bystander)", "\(ENOENT)")
        try expectAttempt(host, "open \(dir)/h.sock", "\(ENOENT)")
        try expectAttempt(host, "open /proc/self/status", "\(ENOENT)")
        // Its /tmp is its own: what it writes there never reaches the host's.
        let name = "/tmp/intruder-\(UUID().uuidString.prefix(8))"
        try expectAttempt(host, "creat \(name)", "0")
        try expectAttempt(host, "cat \(name)", "intruder\n")
        #expect(!FileManager.default.fileExists(atPath: name))
        // The root and the system's files are read-only.
        try expectAttempt(host, "creat /intruder", "\(EROFS)")
        try expectAttempt(host, "creat /usr/intruder", "\(EROFS)")
        try expectAttempt(host, "openrw /usr/lib/os-release", "\(EACCES)")   // root's file, and the worker is nobody
        try stillServing(host)
    }

    @Test func signalsNeverLeaveTheWorker() throws {
        let (host, _, _) = try host()
        defer { host.shutdown() }
        let targets = [getpid(), workerPid(host, "probe") ?? 1]
        for pid in targets {
            for a in ["kill \(pid) 0", "kill \(pid) 9", "tkill \(pid) 9", "tgkill \(pid) 9", "sigqueue \(pid) 9",
                      "tgsigqueue \(pid) 9", "pidfd_open \(pid)", "pidfd_send_signal \(pid) 9"] {
                try expectAttempt(host, a, "\(EPERM)")
            }
        }
        try expectAttempt(host, "io_uring_setup 0", "\(EPERM)")
        // Nor can it lower another process's priority (the victim could not raise it back).
        for pid in targets { try expectAttempt(host, "renice \(pid) 19", "\(EPERM)") }
        try expectAttempt(host, "renice_user 65534 19", "\(EPERM)")
        // To itself, signal 0 (a probe) and its own priority still work.
        let own = try #require(workerPid(host, "intruder"))
        try expectAttempt(host, "kill \(own) 0", "0")
        try expectAttempt(host, "renice 0 5", "0")
        #expect(workerPid(host, "probe") == targets[1])
        try stillServing(host)
        #expect((host.agentReports.first { $0.name == "intruder" }?.denied_syscalls ?? 0) > 0)
    }

    @Test func theNetworkIsOutOfReachWithoutAGrant() throws {
        let tcp = try Listener(inet: Int32(SOCK_STREAM.rawValue))
        let udp = try Listener(inet: Int32(SOCK_DGRAM.rawValue))
        let path = Fixtures.dir + "/net-\(UUID().uuidString.prefix(8)).sock"
        let unix = try Listener(unix: path, abstract: false)
        let abstractName = "plexus-test-\(UUID().uuidString.prefix(8))"
        let abstract = try Listener(unix: abstractName, abstract: true)
        _ = (unix, abstract)
        do {   // no socket at all by default
            let (host, _, _) = try host()
            defer { host.shutdown() }
            try expectAttempt(host, "tcp \(tcp.port)", "\(EPERM)")
            try expectAttempt(host, "udp \(udp.port)", "\(EPERM)")
            try expectAttempt(host, "abstract \(abstractName)", "\(EPERM)")
            try stillServing(host)
        }
        do {   // sockets granted: an empty network namespace, no route anywhere
            let (host, _, _) = try host { c, name in
                var s = c.settings(for: name)
                s.policy.allowSocket = true
                c.plugins[name] = s
            }
            defer { host.shutdown() }
            try expectAttempt(host, "tcp \(tcp.port)", "\(EACCES)")   // Landlock refuses TCP before routing

            try expectAttempt(host, "udp \(udp.port)", "\(ENETUNREACH)")
            try expectAttempt(host, "unix \(path)", "\(ENOENT)")
            try expectAttempt(host, "abstract \(abstractName)", "\(ECONNREFUSED)")
            try stillServing(host)
        }
    }

    /// Workers without socket grants join one empty network namespace the
    /// host made (making one costs each start half a millisecond); their
    /// filter refuses them every socket call, so there is nothing in it to
    /// share. A worker granted sockets still gets one of its own, so it can
    /// reach no other worker's sockets (the test above: no route, no
    /// abstract name but its own).
    @Test func onlyWorkersWithoutSocketsShareTheirEmptyNetworkNamespace() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = .process
        c.threads = 2
        c.defaultTimeoutMs = 10_000
        let intruderPath = try Fixtures.intruder()
        var s = c.settings(for: PluginDescriptor.stem(of: intruderPath))
        s.policy.allowSocket = true
        c.plugins[PluginDescriptor.stem(of: intruderPath)] = s
        let host = Host(c)
        defer { host.shutdown() }
        for p in [intruderPath, try Fixtures.probe(), try Fixtures.probe(named: "second")] { try host.load(path: p) }
        host.start()
        func net(_ agent: String) -> String? {
            guard let pid = workerPid(host, agent) else { return nil }
            return try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")
        }
        let mine = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        let (probe, second, intruder) = (net("probe"), net("second"), net("intruder"))
        #expect(probe != nil && second != nil && intruder != nil)
        #expect(probe != mine && second != mine && intruder != mine, "every worker is out of the host's network")
        #expect(intruder != probe && intruder != second, "the worker granted sockets has a namespace of its own")
        if geteuid() == 0 { #expect(probe == second, "workers without sockets share the host's empty namespace") }
        try expectAttempt(host, "udp 9", "\(ENETUNREACH)")
        #expect(try host.callText("probe.echo", "shared") == "shared")
    }

    @Test func networkTrueGrantsTheHostsNetwork() throws {
        let tcp = try Listener(inet: Int32(SOCK_STREAM.rawValue))
        let (host, _, _) = try host { c, name in
            var s = c.settings(for: name)
            s.policy.allowSocket = true
            s.policy.network = true
            c.plugins[name] = s
        }
        defer { host.shutdown() }
        try expectAttempt(host, "tcp \(tcp.port)", "0")
    }

    @Test func noCapabilityRemainsInAnyNamespace() throws {
        let (host, _, _) = try host()
        defer { host.shutdown() }
        try expectAttempt(host, "caps", "eff=0 prm=0 inh=0 bnd=0 amb=0")
        // uid 0 inside maps to 65534 outside: root-owned 0600 files stay closed.
        try expectAttempt(host, "open /usr/bin", "0")
    }

    @Test func grantedPathsAreReachableAndNothingMore() throws {
        let base = Fixtures.dir + "/grants-\(UUID().uuidString.prefix(8))"
        let readable = base + "/in", writable = base + "/out"
        for d in [readable, writable] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        FileManager.default.createFile(atPath: readable + "/data.txt", contents: Data("granted\n".utf8), attributes: [.posixPermissions: 0o644])
        FileManager.default.createFile(atPath: base + "/beside.txt", contents: Data("not granted".utf8), attributes: [.posixPermissions: 0o644])
        let (host, _, _) = try host { c, name in
            var s = c.settings(for: name)
            s.policy.readPaths = [readable]
            Fixtures.grantWrite(writable, to: &s.policy)
            c.plugins[name] = s
        }
        defer { host.shutdown() }
        try expectAttempt(host, "cat \(readable)/data.txt", "granted\n")
        try expectAttempt(host, "creat \(readable)/new.txt", "\(EROFS)")
        try expectAttempt(host, "open \(base)/beside.txt", "\(ENOENT)")
        try expectAttempt(host, "creat \(writable)/made.txt", "0")
        #expect((try? String(contentsOfFile: writable + "/made.txt", encoding: .utf8)) == "intruder\n")
    }

    @Test func theMechanismIsReported() throws {
        let (host, _, _) = try host()
        defer { host.shutdown() }
        let report = try #require(host.agentReports.first { $0.name == "intruder" })
        #expect(report.confinement == "mount-namespace+landlock")
        let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        #expect(json.contains("\"confinement\":\"mount-namespace+landlock\""))
    }

    /// Where the kernel gives no mount namespace, Landlock alone confines
    /// (the plugin is still loaded, through its descriptor).
    @Test func landlockAloneStillConfines() throws {
        let (host, _, _) = try host { c, name in
            var s = c.settings(for: name)
            s.policy.simulateUnavailable = ["namespaces"]
            c.plugins[name] = s
        }
        defer { host.shutdown() }
        #expect(host.agentReports.first { $0.name == "intruder" }?.confinement == "landlock")
        try expectAttempt(host, "open /etc/shadow", "\(EACCES)")
        try expectAttempt(host, "open /etc/hostname", "\(EACCES)")
        try expectAttempt(host, "creat /tmp/intruder-landlock", "\(EACCES)")
        try expectAttempt(host, "kill \(getpid()) 0", "\(EPERM)")
        try expectAttempt(host, "caps", "eff=0 prm=0 inh=0 bnd=0 amb=0")
        try stillServing(host)
    }

    /// Neither mechanism: refused with the reason, unless plexus.yaml accepts
    /// rlimits-only.
    @Test func noConfinementIsRefusedUnlessRlimitsOnlyIsAccepted() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = .process
        c.workerPolicy.simulateUnavailable = ["namespaces", "landlock"]
        let refusing = Host(c)
        defer { refusing.shutdown() }
        var reason = "loaded"
        do { try refusing.load(path: try Fixtures.intruder()) } catch { reason = "\(error)" }
        #expect(reason.contains("no confinement is possible: unshare (left out by --without namespaces) failed"), "\(reason)")
        #expect(reason.contains("Landlock is not available"), "\(reason)")
        #expect(reason.contains("set confinement: rlimits-only under defaults in plexus.yaml"), "\(reason)")

        let (host, _, _) = try host { c, _ in
            c.workerPolicy.simulateUnavailable = ["namespaces", "landlock"]
            c.workerPolicy.rlimitsOnlyAllowed = true
        }
        defer { host.shutdown() }
        #expect(host.agentReports.first { $0.name == "intruder" }?.confinement == "rlimits-only")
        try expectAttempt(host, "open /etc/shadow", "\(EACCES)")   // nobody, without capabilities
        try expectAttempt(host, "kill \(getpid()) 9", "\(EPERM)")
        try stillServing(host)
    }

    /// spawn.c's renumbering, with its four sources on every descriptor from
    /// 1 to 20 (Tests/Fixtures/fdplace.c spawns itself 380 times).
    @Test func descriptorsReachTheWorkerWhereverTheyStart() throws {
        let exe = Fixtures.dir + "/fdplace"
        try Fixtures.run("/usr/bin/cc", ["-std=gnu11", "-O1", "-I\(Fixtures.root)/Sources/CPlexusPOSIX/include",
                                          "\(Fixtures.root)/Tests/Fixtures/fdplace.c", "\(Fixtures.root)/Sources/CPlexusPOSIX/spawn.c",
                                          "-o", exe])
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(text == "ok 380 placements\n")
    }
}
