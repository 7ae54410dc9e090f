import Foundation
import Glibc
import PlexusCore
import PlexusSocket
import PlexusThreads
import Synchronization

/// `plexus bench --cluster`: two hosts joined through a NATS server, all
/// started here on loopback, and the cross-host lines each beside the raw
/// libnats figure measured on the same server in the same run
/// (Benchmarks/cluster/cluster_rr.c, built by Benchmarks/build.sh):
/// - cluster_rr: ping0 on host a calling pong0 on host b by name, one call
///   at a time (ping0 times each round trip), beside libnats
///   request/reply between two connections;
/// - cluster_publish: ping0 publishing 64-byte events that pong0 on b
///   counts on arrival, beside libnats publishes counted by a subscriber.
/// The measurements alternate, one of each per repetition, so machine load
/// moves both sides alike; medians are printed.
struct ClusterBench {
    let agents: String
    /// The plexus executable the two hosts run (another build, to compare).
    let hostExecutable: String
    let roundTrips: Int
    let messages: Int
    let repetitions: Int

    struct Figures {
        var rrPerS: [Double] = [], rrP50: [Double] = [], rawRRPerS: [Double] = [], rawRRP50: [Double] = []
        var publishPerS: [Double] = [], rawPublishPerS: [Double] = []
        var lost = 0, rawLost = 0
    }

    func run() throws {
        guard let natsServer = onPath("nats-server") else {
            throw CLIError("bench --cluster needs nats-server on PATH (apt-get install nats-server)")
        }
        let floorTool = "\(agents)/cluster_rr"
        guard FileManager.default.isExecutableFile(atPath: floorTool),
              FileManager.default.isReadableFile(atPath: "\(agents)/ping0.so"), FileManager.default.isReadableFile(atPath: "\(agents)/pong0.so") else {
            throw CLIError("\(agents) lacks cluster_rr, ping0.so or pong0.so: build them with Benchmarks/build.sh (needs libnats-dev)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plexus-bench-cluster-\(getpid())").path
        let children = Children(directory: dir)
        children.stopOnSignals()
        defer { children.stopAll() }
        do { try measure(children, in: dir, natsServer: natsServer, floorTool: floorTool) } catch {
            // Ctrl-C stops the hosts under a call in flight: that is no failure to report.
            if children.interrupted { children.awaitExit() }
            throw error
        }
    }

    private func measure(_ children: Children, in dir: String, natsServer: String, floorTool: String) throws {
        do {
            for sub in ["a", "b"] { try FileManager.default.createDirectory(atPath: "\(dir)/\(sub)", withIntermediateDirectories: true) }
            try FileManager.default.copyItem(atPath: "\(agents)/ping0.so", toPath: "\(dir)/a/ping0.so")
            try FileManager.default.copyItem(atPath: "\(agents)/pong0.so", toPath: "\(dir)/b/pong0.so")
        } catch { throw CLIError("bench --cluster: cannot prepare \(dir): \(error)") }

        // The server picks a free port itself (-p -1) and logs it. JetStream on,
        // as a cluster runs: the hosts publish their events and fetch tasks as they would.
        try children.start(natsServer, ["-a", "127.0.0.1", "-p", "-1", "-js", "-sd", "\(dir)/jetstream"], log: "\(dir)/nats.log", in: dir)
        guard let port = waitForLine(in: "\(dir)/nats.log", seconds: 10, { line in
            line.range(of: "Listening for client connections on 127.0.0.1:").map { Int(line[$0.upperBound...].prefix { $0.isNumber }) } ?? nil
        }) else { throw CLIError("bench --cluster: nats-server did not start: \(tail("\(dir)/nats.log"))") }
        let url = "nats://127.0.0.1:\(port)"

        for n in ["a", "b"] {
            try children.start(hostExecutable, ["run", "--plugins", "\(dir)/\(n)", "--socket", "\(dir)/\(n).sock", "--store", "\(dir)/\(n).db",
                                                "--sandbox", "in-process", "--nats", url, "--node", n],
                               log: "\(dir)/\(n).log", in: dir)
        }
        let a = try connect("\(dir)/a.sock", log: "\(dir)/a.log")
        let b = try connect("\(dir)/b.sock", log: "\(dir)/b.log")
        // Host a must have heard b announce pong0 before calling it by name.
        let heard = waitUntil(seconds: 15) {
            guard let r = try? a.call(Envelope(kind: .query, target: .capability("plexus.nodes")), timeoutMs: 5_000),
                  let report = try? JSONDecoder().decode(ClusterReport.self, from: Data(r.payload)) else { return false }
            return report.nodes.contains { $0.node == "b" && $0.state == "up" && $0.agents.contains { $0.name == "pong0" } }
        }
        guard heard else { throw CLIError("bench --cluster: host a never heard host b announce pong0: \(tail("\(dir)/a.log")) \(tail("\(dir)/b.log"))") }

        let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3).joined(separator: " ")
        print("# bench --cluster: nats-server \(url), hosts a (ping0) and b (pong0) in process, load average \(load) before")
        fflush(nil)   // now, when stdout is a pipe: the line says the cluster is up
        _ = try ask(a, "ping0", "rr \(min(1_000, roundTrips))")   // warm-up: connections, caches, the route
        var f = Figures()
        for _ in 0..<repetitions {
            let raw = try floor(floorTool, ["raw", url, "\(roundTrips)"])
            f.rawRRPerS.append(try number(raw, "raw_nats_rr_per_s")); f.rawRRP50.append(try number(raw, "raw_nats_rr_p50_us"))
            let timed = try ask(a, "ping0", "rrtimed \(roundTrips)").split(separator: " ").compactMap { Double($0) }
            guard timed.count == 2 else { throw CLIError("bench --cluster: ping0 answered rrtimed with \(timed)") }
            f.rrPerS.append(timed[0]); f.rrP50.append(timed[1])
            let rawPub = try floor(floorTool, ["pub", url, "\(messages)"])
            f.rawPublishPerS.append(try number(rawPub, "raw_nats_publish_per_s"))
            f.rawLost += Int((try? number(rawPub, "raw_nats_publish_lost")) ?? 0)
            let (rate, lost) = try publishRate(from: a, to: b)
            f.publishPerS.append(rate); f.lost += lost
        }
        print(lines(f))
    }

    /// ping0 on a publishes `messages` events; pong0 on b counts them. The
    /// rate is what arrived over the time from the request to the last
    /// arrival (one CLOCK_MONOTONIC for all processes of this machine);
    /// waiting ends 2 s after the last arrival when some never come.
    private func publishRate(from a: SocketClient, to b: SocketClient) throws -> (Double, Int) {
        func count() throws -> (Int, Int64) {
            let p = try ask(b, "pong0", "count").split(separator: " ")
            guard p.count == 2, let n = Int(p[0]), let t = Int64(p[1]) else { throw CLIError("bench --cluster: pong0 answered count with \(p)") }
            return (n, t)
        }
        let (before, _) = try count()
        let t0 = monoNow()
        _ = try ask(a, "ping0", "pub \(messages)")
        var (n, last) = try count()
        var seen = n, since = monoNow()
        while n - before < messages && monoNow() - since < 2_000_000_000 {
            usleep(2_000)
            (n, last) = try count()
            if n != seen { seen = n; since = monoNow() }
        }
        let arrived = n - before
        guard arrived > 0 else { throw CLIError("bench --cluster: none of the \(messages) events published on host a reached pong0 on host b") }
        return (Double(arrived) / (Double(last - t0) / 1e9), messages - arrived)
    }

    private func lines(_ f: Figures) -> String {
        let rr = median(f.rrPerS), p50 = median(f.rrP50), rawRR = median(f.rawRRPerS), rawP50 = median(f.rawRRP50)
        let pub = median(f.publishPerS), rawPub = median(f.rawPublishPerS)
        let path = "C agent ping0 on host a -> NATS -> C agent pong0 on host b -> back, one call at a time, \(roundTrips) calls"
        var out = [
            "cluster_rr_per_s: \(Int(rr)) round trips/s (\(path); floor: raw_nats_rr_per_s: \(Int(rawRR)) (libnats request/reply between two connections, same server); \(ratio(rr, rawRR, "floor")))",
            "cluster_rr_p50_us: \(fixed(p50, 1)) us (the same calls' median; floor: raw_nats_rr_p50_us: \(fixed(rawP50, 1)) us; \(ratio(p50, rawP50, "floor")), goal <= 1.3x)",
            "cluster_publish_per_s: \(Int(pub)) msgs/s (\(messages) 64-byte events published by ping0 on host a, counted on arrival by pong0 on host b\(f.lost > 0 ? ", \(f.lost) never arrived" : ""); "
                + "floor: raw_nats_publish_per_s: \(Int(rawPub)) (libnats publishes counted by a subscriber on a second connection\(f.rawLost > 0 ? ", \(f.rawLost) never arrived" : "")); \(ratio(pub, rawPub, "floor")), goal >= 0.5x)",
            "# raw_nats_rr_per_s: \(Int(rawRR))",
            "# raw_nats_rr_p50_us: \(fixed(rawP50, 1))",
            "# raw_nats_publish_per_s: \(Int(rawPub))",
        ]
        if repetitions > 1 {
            out.append("# each run: cluster_rr_p50_us \(f.rrP50.map { fixed($0, 1) }.joined(separator: " ")); raw_nats_rr_p50_us \(f.rawRRP50.map { fixed($0, 1) }.joined(separator: " ")); "
                       + "cluster_publish_per_s \(f.publishPerS.map { String(Int($0)) }.joined(separator: " ")); raw_nats_publish_per_s \(f.rawPublishPerS.map { String(Int($0)) }.joined(separator: " "))")
        }
        return out.joined(separator: "\n")
    }

    // MARK: helpers

    /// Connects once the host's socket answers (it starts within seconds).
    private func connect(_ path: String, log: String) throws -> SocketClient {
        var client: SocketClient?
        _ = waitUntil(seconds: 15) { client = try? SocketClient(path: path); return client != nil }
        guard let client else { throw CLIError("bench --cluster: the host at \(path) did not start: \(tail(log))") }
        return client
    }

    /// Asks an agent with a text command; returns its answer's text.
    private func ask(_ c: SocketClient, _ agent: String, _ command: String) throws -> String {
        let r: Envelope
        do { r = try c.call(Envelope(kind: .query, target: .agent(agent), payload: Array(command.utf8)), timeoutMs: 600_000) } catch {
            throw CLIError("bench --cluster: \(agent) asked '\(command)': \(error.name): \(error.detail)")
        }
        guard r.kind != .error else { throw CLIError("bench --cluster: \(agent) asked '\(command)' answered \(String(decoding: r.payload, as: UTF8.self))") }
        return String(decoding: r.payload, as: UTF8.self)
    }

    private func floor(_ tool: String, _ args: [String]) throws -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        do { try p.run() } catch { throw CLIError("\(tool): \(error) — build it with Benchmarks/build.sh") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CLIError("\(tool) \(args.joined(separator: " ")) exited with \(p.terminationStatus)") }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    private func number(_ lines: [String], _ name: String) throws -> Double {
        guard let v = lines.first(where: { $0.hasPrefix(name + ":") }).flatMap({ $0.split(separator: " ").dropFirst().first }).flatMap({ Double($0) }) else {
            throw CLIError("bench --cluster: no \(name) in \(lines)")
        }
        return v
    }

    private func monoNow() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    private func median(_ xs: [Double]) -> Double { xs.isEmpty ? 0 : xs.sorted()[xs.count / 2] }

    private func ratio(_ v: Double, _ beside: Double, _ name: String) -> String {
        beside > 0 ? "ratio \(fixed(v / beside, 2))x \(name)" : "ratio: none, nothing measured beside it"
    }

    private func fixed(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }

    private func onPath(_ name: String) -> String? {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/\(name)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private func waitUntil(seconds: Double, _ done: () -> Bool) -> Bool {
        let end = monoNow() + Int64(seconds * 1e9)
        while monoNow() < end {
            if done() { return true }
            usleep(20_000)
        }
        return done()
    }

    private func waitForLine<T>(in path: String, seconds: Double, _ match: (Substring) -> T?) -> T? {
        var found: T?
        _ = waitUntil(seconds: seconds) {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            found = text.split(separator: "\n").lazy.compactMap(match).first
            return found != nil
        }
        return found
    }

    /// The end of a child's log, for an error message.
    private func tail(_ path: String) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return "[\(path): \(text.split(separator: "\n").suffix(5).joined(separator: " | "))]"
    }
}

/// The processes `bench --cluster` started, stopped on every way out: at
/// the end, on an error (the caller's defer), and on SIGINT or SIGTERM
/// (a thread waits for them; they are blocked in every other thread).
final class Children: Sendable {
    private let running = Mutex<[(pid: pid_t, graceful: Bool)]>([])
    /// Their working directory (sockets, stores, logs), removed with them.
    let directory: String
    private let stopping = Atomic<Bool>(false)
    /// A signal came: the thread that took it stops the children and exits.
    var interrupted: Bool { stopping.load(ordering: .acquiring) }

    /// Waits for the signal's thread to end the process (with status 130).
    func awaitExit() -> Never {
        while true { pause() }
    }

    init(directory: String) { self.directory = directory }

    /// From here on SIGINT and SIGTERM stop the children, then this process.
    /// Blocked before any child starts: the children inherit the mask,
    /// which `plexus run` wants (it waits for them with sigwait), and
    /// nats-server is stopped with SIGKILL.
    func stopOnSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        try? startDetachedThread(name: "plexus-benchsig") { [self] in
            var waited = sigset_t()
            sigemptyset(&waited)
            sigaddset(&waited, SIGINT)
            sigaddset(&waited, SIGTERM)
            var sig: Int32 = 0
            guard sigwait(&waited, &sig) == 0 else { return }
            stopping.store(true, ordering: .releasing)
            FileHandleErr.note("plexus: interrupted: stopping the benchmark's nats-server and hosts")
            stopAll()
            Glibc.exit(ExitStatus.interrupted)
        }
    }

    /// Starts exe with its output in `log`; `plexus run` children are
    /// stopped with SIGTERM first, anything else with SIGKILL.
    func start(_ exe: String, _ args: [String], log: String, in dir: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)   // no ./plexus.yaml of the caller's
        var env = ProcessInfo.processInfo.environment
        for k in ["PLEXUS_CONFIG", "PLEXUS_SOCKET", "PLEXUS_STORE", "PLEXUS_SANDBOX"] { env[k] = nil }
        p.environment = env
        FileManager.default.createFile(atPath: log, contents: nil)
        guard let h = FileHandle(forWritingAtPath: log) else { throw CLIError("bench --cluster: cannot write \(log)") }
        p.standardOutput = h
        p.standardError = h
        do { try p.run() } catch { throw CLIError("bench --cluster: cannot start \(exe): \(error)") }
        let graceful = args.first == "run"
        running.withLock { $0.append((p.processIdentifier, graceful)) }
    }

    /// Stops every child and waits for it: SIGTERM and up to 5 s for a
    /// host to stop, then SIGKILL; then removes their directory.
    func stopAll() {
        let all = running.withLock { r -> [(pid: pid_t, graceful: Bool)] in let x = r; r.removeAll(); return x }
        for c in all { kill(c.pid, c.graceful ? SIGTERM : SIGKILL) }
        for c in all {
            var status: Int32 = 0
            var ticks = 0
            // 0: still running; the child may also have been reaped by Foundation already (-1).
            while waitpid(c.pid, &status, WNOHANG) == 0 {
                ticks += 1
                if ticks == 500 { kill(c.pid, SIGKILL) }
                usleep(10_000)
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
