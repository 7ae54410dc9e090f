import ArgumentParser
import Foundation
import PlexusCore
import PlexusHost
import CPlexusPOSIX
import PlexusSocket

private typealias Host = PlexusHost.Host

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure routing between C agents, in process, through sockets, workers and NATS; prints `name: value unit` lines.",
        discussion: """
            Build the agents first: Benchmarks/build.sh (Benchmarks/run.sh does everything). Each line is printed beside \
            a floor measured in the same run. --cluster measures across hosts instead: it starts its own nats-server on \
            127.0.0.1 (a free port) and two hosts (`plexus run --nats`) with the benchmark agents, prints \
            cluster_rr_per_s, cluster_rr_p50_us and cluster_publish_per_s beside raw libnats request/reply and publish \
            on the same server, and stops them all at the end, on an error and on Ctrl-C.
            """)

    @Option(help: "Directory holding ping0/pong0/ping1/pong1.so.") var agents = "Benchmarks/agents"
    @Option(parsing: .unconditional, help: "Round trips per measurement.") var roundTrips = 2_000_000
    @Option(parsing: .unconditional, help: "One-way messages per measurement.") var messages = 5_000_000
    @Option(parsing: .unconditional, help: "Repetitions; the median is printed.") var repetitions = 5
    @Option(parsing: .unconditional, help: "Durable tasks per measurement.") var tasks = 20_000
    @Flag(help: "Only the in-process lines (for profiling the router).") var inprocOnly = false
    @Flag(help: "Only the durable task line.") var tasksOnly = false
    @Flag(help: "Only the workflow lines.") var workflowsOnly = false
    @Flag(help: "Only the sandboxed-worker lines.") var sandboxOnly = false
    @Option(parsing: .unconditional, help: "Items of the workflow measurement's for_each step.") var workflowItems = 5_000
    @Option(help: "The Erlang/OTP ping-pong run beside inproc_rr_per_s when `erl` is on PATH.") var erlangSource = "Benchmarks/peers/erlang_pingpong.erl"
    @Option(parsing: .unconditional, help: "Requests the pipelined client keeps in flight.") var window = 256
    @Flag(help: "Only sandbox_rr_p50_us, without its floor (for profiling the sandboxed round trip).") var sandboxRrOnly = false
    @Flag(help: "Only sandbox_oneway_per_s, median of --repetitions, without its floor (for profiling one-way delivery to a worker).") var sandboxOnewayOnly = false
    @Flag(help: "Only the socket client lines, client_rr_per_s and client_rr_pipelined_per_s, with their floors.") var clientOnly = false
    @Flag(help: "Only inproc_rr_per_s and inproc_rr_observed_per_s, run alternately (observability's cost).") var observedOnly = false
    @Option(help: ArgumentHelp("With --observed-only: run only `on` (metrics and tracing) or `off`, one mode per process (for perf stat).", visibility: .hidden))
    var observability: String?
    private var onlyMode: Bool? { observability.map { $0 == "on" } }
    @Flag(help: "Only the cross-host lines (cluster_rr_per_s, cluster_rr_p50_us, cluster_publish_per_s), each beside raw libnats: starts its own nats-server on 127.0.0.1 and two hosts (plexus run --nats), and stops them at the end.")
    var cluster = false
    @Option(parsing: .unconditional, help: "With --cluster: round trips per measurement, one at a time.") var clusterRoundTrips = 20_000
    @Option(parsing: .unconditional, help: "With --cluster: events published per measurement.") var clusterMessages = 100_000
    @Option(help: ArgumentHelp("With --cluster: the plexus executable the two hosts run (default: this one), to compare two builds in one run.", visibility: .hidden))
    var clusterHostPlexus: String?

    func validate() throws {
        if let o = observability, o != "on" && o != "off" { throw ValidationError("--observability takes on or off, not '\(o)'") }
        let counts: [(String, Int)] = [("--round-trips", roundTrips), ("--messages", messages), ("--repetitions", repetitions),
                                       ("--tasks", tasks), ("--workflow-items", workflowItems), ("--window", window),
                                       ("--cluster-round-trips", clusterRoundTrips), ("--cluster-messages", clusterMessages)]
        for (flag, n) in counts where n < 1 { throw ValidationError("\(flag) takes 1 or more, not \(n)") }
        let only = [("--inproc-only", inprocOnly), ("--observed-only", observedOnly), ("--client-only", clientOnly),
                    ("--sandbox-only", sandboxOnly), ("--sandbox-rr-only", sandboxRrOnly), ("--sandbox-oneway-only", sandboxOnewayOnly),
                    ("--tasks-only", tasksOnly), ("--workflows-only", workflowsOnly), ("--cluster", cluster)].filter(\.1).map(\.0)
        if only.count > 1 { throw ValidationError("\(only.joined(separator: " and ")) each choose which lines run: give one") }
    }

    func run() throws {
        // The restart lines kill workers on purpose, hundreds of times: their
        // "worker died" errors would bury the figures ($PLEXUS_LOG_LEVEL still wins).
        bootstrapLogging(default: .critical)
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        print("# plexus bench: \(cores) cores, \(repetitions) repetitions, median shown")
        if cluster {
            let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            return try ClusterBench(agents: agents, hostExecutable: clusterHostPlexus ?? me, roundTrips: clusterRoundTrips,
                                    messages: clusterMessages, repetitions: repetitions).run()
        }
        if tasksOnly { return try tasks(pong: "\(agents)/pong0.so", count: tasks) }
        if workflowsOnly { return try workflows(pong: "\(agents)/pong0.so", items: workflowItems) }
        if sandboxOnly { return try sandbox() }
        if clientOnly { return try client(threads: cores) }
        if sandboxOnewayOnly {
            return print("sandbox_oneway_per_s: \(try median { try sandboxOneWay("\(agents)/pong0.so", n: messages) }) msgs/s (64-byte commands)")
        }
        if sandboxRrOnly {
            return print("sandbox_rr_p50_us: \(fixed(try sandboxRoundTrip("\(agents)/pong0.so", samples: 20_000), 2)) us (host -> sandboxed C agent -> host, host and worker on CPU 0)")
        }
        // Observability's cost: the same round trips on a host with metrics
        // and tracing on (as `plexus run --http` has them), measured
        // alternately with the plain one (load moves both alike). One host at
        // a time: both would load the same ping0.so, whose statics (its host
        // table and ctx) the second load would take over.
        var plain: [Int] = [], observed: [Int] = []
        for _ in 0..<repetitions {
            for watched in [false, true] where onlyMode == nil || onlyMode == watched {
                let h = try host(pairs: 1, threads: cores, observed: watched)
                _ = try drive(h, pairs: 1, "rr 20000")   // warm-up
                let r = try rate(h, pairs: 1, "rr", roundTrips)
                if watched { observed.append(r) } else { plain.append(r) }
                h.shutdown()
            }
        }
        if let onlyMode {   // one mode per process, for `perf stat` (cycles per round trip)
            let xs = onlyMode ? observed : plain
            return print("inproc_rr\(onlyMode ? "_observed" : "")_per_s: \(xs.sorted()[xs.count / 2]) round trips/s (only this mode; each run: \(xs.map(String.init).joined(separator: " ")))")
        }
        let inproc = plain.sorted()[plain.count / 2], inprocObserved = observed.sorted()[observed.count / 2]
        if observedOnly {
            print("inproc_rr_per_s: \(inproc) round trips/s (metrics and tracing off; each run: \(plain.map(String.init).joined(separator: " ")))")
            return print("inproc_rr_observed_per_s: \(inprocObserved) round trips/s (metrics and tracing on; each run: \(observed.map(String.init).joined(separator: " ")); \(ratio(Double(inprocObserved), Double(inproc), "inproc_rr_per_s")), goal 0.95x)")
        }
        let one = try host(pairs: 1, threads: cores)
        _ = try drive(one, pairs: 1, "rr 20000")
        let erlang = erlangPingPong()
        print("inproc_rr_per_s: \(inproc) round trips/s (1 pair, \(cores) dispatcher threads, metrics and tracing off; beside: \(erlang.line); \(ratio(Double(inproc), erlang.value, "Erlang")))")
        print("inproc_rr_observed_per_s: \(inprocObserved) round trips/s (the same with metrics and tracing on, run alternately with inproc_rr_per_s; \(ratio(Double(inprocObserved), Double(inproc), "inproc_rr_per_s")), goal 0.95x)")
        print(erlang.value == nil ? "# \(erlang.line)" : erlang.line)
        print("inproc_oneway_per_s: \(try median { try rate(one, pairs: 1, "oneway", messages) }) msgs/s (64-byte payloads, 1 sender, 1 receiver)")
        one.shutdown()
        let all = try host(pairs: 2, threads: cores)
        _ = try drive(all, pairs: 2, "rr 20000")
        print("inproc_rr_all_cores_per_s: \(try median { try rate(all, pairs: 2, "rr", roundTrips) }) round trips/s (2 pairs on \(cores) cores)")
        all.shutdown()
        if inprocOnly { return }
        try client(threads: cores)
        try sandbox()
        try tasks(pong: "\(agents)/pong0.so", count: tasks)
        try workflows(pong: "\(agents)/pong0.so", items: workflowItems)
    }

    // MARK: socket clients

    /// A C program (Benchmarks/client_rr.c) calling an in-process agent
    /// through the host's socket, beside a raw socketpair ping-pong.
    private func client(threads: Int) throws {
        let h = try host(pairs: 1, threads: threads)
        defer { h.shutdown() }
        let path = "/tmp/plexus-bench-\(getpid()).sock"
        let server: SocketServer
        do { server = try SocketServer(host: h, path: path); try server.start() } catch { throw CLIError("\(error)") }
        defer { server.stop() }
        let n = max(1000, roundTrips / 20)
        let rate = try median { () throws -> Int in
            let out = try tool("client_rr", [path, "pong0", "\(n)"])
            // "client_rr_per_s: R round trips/s"
            guard let v = out.first?.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
                throw CLIError("client_rr printed \(out)")
            }
            return v
        }
        let floor = try tool("floor", ["rrps", "\(n)"])
        print("client_rr_per_s: \(rate) round trips/s (C client -> socket -> in-process C agent -> C client; floor: \(line(floor, "raw_unix_stream_rr_per_s")); \(ratio(Double(rate), value(floor, "raw_unix_stream_rr_per_s"), "floor")))")
        let pipelined = try median { () throws -> Int in
            let out = try tool("client_rr", [path, "pong0", "\(n * 20)", "\(window)"])
            guard let v = out.first?.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
                throw CLIError("client_rr printed \(out)")
            }
            return v
        }
        print("client_rr_pipelined_per_s: \(pipelined) requests/s (\(window) in flight on one connection; floor: the goal, \(Self.pipelinedGoal) requests/s; \(ratio(Double(pipelined), Double(Self.pipelinedGoal), "goal")))")
    }

    static let pipelinedGoal = 500_000

    // MARK: sandboxed workers

    /// The sandbox lines, each printed beside its raw floor from Benchmarks/floor.c.
    private func sandbox() throws {
        let pong = "\(agents)/pong0.so"
        let floors = try tool("floor", ["rr", "20000"]) + tool("floor", ["batch", "\(messages)"]) + tool("floor", ["spawn", "100", pong])
        let rr = try sandboxRoundTrip(pong, samples: 20_000)
        print("sandbox_rr_p50_us: \(fixed(rr, 2)) us (host -> sandboxed C agent -> host, host and worker on CPU 0; floor: \(line(floors, "raw_pipe_rr")); \(ratio(rr, value(floors, "raw_pipe_rr"), "pipe floor")))")
        let oneway = try sandboxOneWay(pong, n: messages)
        print("sandbox_oneway_per_s: \(oneway) msgs/s (64-byte commands; floor: \(line(floors, "raw_unix_stream_batched")); \(ratio(Double(oneway), value(floors, "raw_unix_stream_batched"), "floor")))")
        let spawn = try sandboxSpawn(pong, samples: 50)
        print("sandbox_spawn_ready_p50_ms: \(fixed(spawn, 3)) ms (copy, spawn, sandbox, load, init; floor: \(line(floors, "raw_spawn")); \(ratio(spawn, value(floors, "raw_spawn"), "floor")))")
        let warm = try sandboxRestart(pong, warm: 2, samples: 50)
        let cold = try sandboxRestart(pong, warm: 0, samples: 50)
        print("sandbox_spawn_warm_p50_ms: \(fixed(warm, 3)) ms (SIGKILL to answering again, the restart taking a warm worker; the same restart cold: \(fixed(cold, 3)) ms)")
        for f in floors { print("# \(f)") }
    }

    private func sandboxHost(_ plugin: String, mailbox: Int = 4096) throws -> Host {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = .process
        c.mailboxCapacity = mailbox
        c.defaultTimeoutMs = 600_000
        let h = Host(c)
        do { try h.load(path: plugin) } catch { throw CLIError("\(error)") }
        h.start()
        return h
    }

    /// Host threads (created after the pin, so they inherit it) and the
    /// worker share CPU 0, as the goal is stated.
    private func sandboxRoundTrip(_ plugin: String, samples: Int) throws -> Double {
        plexus_posix_pin(0, 0)
        defer { plexus_posix_pin(0, -1) }
        let h = try sandboxHost(plugin)
        defer { h.shutdown() }
        if let pid = h.agentReports.first(where: { $0.name == "pong0" })?.pid { plexus_posix_pin(pid, 0) }
        let q = Envelope(kind: .query, target: .agent("pong0"), payload: [])
        var times: [Double] = []
        times.reserveCapacity(samples)
        for i in 0..<(samples + 1000) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try h.call(q, timeoutMs: 10_000)
            if i >= 1000 { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000) }
        }
        return times.sorted()[times.count / 2]
    }

    private func sandboxOneWay(_ plugin: String, n: Int) throws -> Int {
        let h = try sandboxHost(plugin, mailbox: 1 << 16)
        defer { h.shutdown() }
        let cmd = Envelope(kind: .command, target: .agent("pong0"), payload: Array(repeating: 0x61, count: 64))
        _ = try h.call(Envelope(kind: .query, target: .agent("pong0"), payload: []), timeoutMs: 10_000)
        let t0 = DispatchTime.now().uptimeNanoseconds
        var sent = 0
        while sent < n {
            do throws(PlexusError) { try h.send(cmd); sent += 1 } catch {
                guard error.status == PLEXUS_MAILBOX_FULL.status else { throw error }
                sched_yield()
            }
        }
        _ = try h.call(Envelope(kind: .query, target: .agent("pong0"), payload: []), timeoutMs: 600_000)  // after every command (FIFO)
        return Int(Double(n) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
    }

    private func sandboxSpawn(_ plugin: String, samples: Int) throws -> Double {
        var times: [Double] = []
        for _ in 0..<samples {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let h = try sandboxHost(plugin)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            h.shutdown()
        }
        return times.sorted()[times.count / 2]
    }

    /// A sandboxed agent killed (SIGKILL) until it answers again: death
    /// seen, restart (no backoff), worker ready, one round trip. With a warm
    /// pool each sample first waits for the pool to refill.
    private func sandboxRestart(_ plugin: String, warm: Int, samples: Int) throws -> Double {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = .process
        c.defaultTimeoutMs = 600_000
        c.warmWorkers = warm
        c.restartPolicy.backoffBaseMs = 0
        c.restartPolicy.intensity = 1_000_000
        c.restartPolicy.breakerThreshold = 1_000_000
        c.restartPolicy.maxAttempts = 1_000_000
        let h = Host(c)
        do { try h.load(path: plugin) } catch { throw CLIError("\(error)") }
        h.start()
        defer { h.shutdown() }
        let q = Envelope(kind: .query, target: .agent("pong0"), payload: [])
        _ = try h.call(q, timeoutMs: 10_000)
        var times: [Double] = []
        for _ in 0..<samples {
            let refilled = DispatchTime.now().uptimeNanoseconds + 5_000_000_000
            while let pool = h.warmPool, pool.readyCount < warm, DispatchTime.now().uptimeNanoseconds < refilled { usleep(1000) }
            guard let pid = h.agentReports.first(where: { $0.name == "pong0" })?.pid else { throw CLIError("pong0 has no worker") }
            let t0 = DispatchTime.now().uptimeNanoseconds
            kill(pid, SIGKILL)
            _ = try h.call(q, timeoutMs: 10_000)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        return times.sorted()[times.count / 2]
    }

    private func line(_ lines: [String], _ prefix: String) -> String { lines.first { $0.hasPrefix(prefix) } ?? "not measured" }

    /// The figure of a `name: value unit` line.
    private func value(_ lines: [String], _ prefix: String) -> Double? {
        lines.first { $0.hasPrefix(prefix) }.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Double($0) }
    }

    /// "ratio 0.52x Erlang": the figure over what is printed beside it.
    func ratio(_ v: Double, _ beside: Double?, _ name: String) -> String {
        guard let beside, beside > 0 else { return "ratio: none, nothing measured beside it" }
        return "ratio \(fixed(v / beside, 2))x \(name)"
    }

    // MARK: Erlang

    /// Erlang/OTP's process ping-pong (Benchmarks/peers/erlang_pingpong.erl),
    /// compiled into a temporary directory and run now, so it is measured
    /// beside inproc_rr_per_s in the same run; when `erl` is not on PATH, a
    /// line that says so.
    private func erlangPingPong() -> (line: String, value: Double?) {
        guard let erl = onPath("erl"), let erlc = onPath("erlc") else {
            return ("erlang_pingpong_per_s: not measured, erl is not on PATH (apt-get install erlang-base)", nil)
        }
        // The default is relative to the repository's root; run from elsewhere,
        // it is found beside the agents directory (Benchmarks/agents).
        let beside = URL(fileURLWithPath: agents).deletingLastPathComponent().appendingPathComponent("peers/erlang_pingpong.erl").path
        let source = FileManager.default.fileExists(atPath: erlangSource) ? erlangSource : beside
        guard FileManager.default.fileExists(atPath: source) else {
            return ("erlang_pingpong_per_s: not measured, \(erlangSource) is not there (run from the repository's root, or pass --erlang-source)", nil)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plexus-bench-erlang-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            _ = try runProgram(erlc, ["-o", dir, source], environment: [:])
            let out = try runProgram(erl, ["-noshell", "-pa", dir, "-s", "erlang_pingpong", "main", "-s", "init", "stop"],
                              environment: ["PINGS": "\(roundTrips)", "REPS": "\(repetitions)"])
            guard let l = out.first(where: { $0.hasPrefix("erlang_pingpong_per_s:") }) else {
                return ("erlang_pingpong_per_s: not measured, erl printed \(out)", nil)
            }
            return (l, value([l], "erlang_pingpong_per_s"))
        } catch {
            return ("erlang_pingpong_per_s: not measured: \(error)", nil)
        }
    }

    private func onPath(_ name: String) -> String? {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/\(name)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private func runProgram(_ exe: String, _ args: [String], environment: [String: String]) throws -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CLIError("\(exe) \(args.joined(separator: " ")) exited with \(p.terminationStatus)") }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    private func fixed(_ v: Double, _ digits: Int) -> String {
        let scale = (0..<digits).reduce(1.0) { r, _ in r * 10 }
        let n = Int((v * scale).rounded())
        let frac = String(n % Int(scale))
        return "\(n / Int(scale)).\(String(repeating: "0", count: digits - frac.count))\(frac)"
    }

    /// Runs a program built by Benchmarks/build.sh; returns its output lines.
    private func tool(_ name: String, _ args: [String]) throws -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "\(agents)/\(name)")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        do { try p.run() } catch { throw CLIError("\(agents)/\(name): \(error) — build it with Benchmarks/build.sh") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CLIError("\(agents)/\(name) \(args.joined(separator: " ")) exited with \(p.terminationStatus)") }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// observed: metrics and tracing on, as `plexus run --http` has them; else both off.
    private func host(pairs: Int, threads: Int, observed: Bool = false) throws -> Host {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.metrics.enabled = observed
        c.tracing.enabled = observed
        c.sandbox = .inProcess   // the inproc_* lines measure the router itself
        c.threads = threads
        c.defaultTimeoutMs = 600_000
        let h = Host(c)
        for k in 0..<pairs {
            for role in ["ping", "pong"] {
                do { try h.load(path: "\(agents)/\(role)\(k).so") } catch {
                    throw CLIError("\(error) — build the benchmark agents with Benchmarks/build.sh")
                }
            }
        }
        h.start()
        return h
    }

    /// Starts every pair's ping with cmd and waits for all to finish; returns seconds.
    private func drive(_ h: Host, pairs: Int, _ cmd: String) throws -> Double {
        let group = DispatchGroup()
        let failure = NSLock()
        nonisolated(unsafe) var error: PlexusError?
        let t0 = DispatchTime.now().uptimeNanoseconds
        for k in 0..<pairs {
            group.enter()
            try h.request(Envelope(kind: .query, target: .agent("ping\(k)"), payload: Array(cmd.utf8)), timeoutMs: 600_000) { a in
                if a.kind == .error { failure.lock(); error = Host.error(from: a); failure.unlock() }
                group.leave()
            }
        }
        group.wait()
        if let error { throw CLIError("benchmark failed: \(error)") }
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    private func rate(_ h: Host, pairs: Int, _ kind: String, _ n: Int) throws -> Int {
        Int(Double(n * pairs) / (try drive(h, pairs: pairs, "\(kind) \(n)")))
    }

    func median(_ f: () throws -> Int) rethrows -> Int {
        var xs: [Int] = []
        for _ in 0..<repetitions { xs.append(try f()) }
        return xs.sorted()[xs.count / 2]
    }
}
