import ArgumentParser
import Foundation
import PlexusCore
import PlexusHost

private typealias Host = PlexusHost.Host

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure in-process routing between C agents; prints `name: value unit` lines.",
        discussion: "Build the agents first: Benchmarks/build.sh (Benchmarks/run.sh does everything).")

    @Option(help: "Directory holding ping0/pong0/ping1/pong1.so.") var agents = "Benchmarks/agents"
    @Option(help: "Round trips per measurement.") var roundTrips = 2_000_000
    @Option(help: "One-way messages per measurement.") var messages = 5_000_000
    @Option(help: "Repetitions; the median is printed.") var repetitions = 5

    func run() throws {
        bootstrapLogging(default: .error)
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        print("# plexus bench: \(cores) cores, \(repetitions) repetitions, median shown")
        let one = try host(pairs: 1, threads: cores)
        _ = try drive(one, pairs: 1, "rr 20000")   // warm-up
        print("inproc_rr_per_s: \(try median { try rate(one, pairs: 1, "rr", roundTrips) }) round trips/s (1 pair, \(cores) dispatcher threads)")
        print("inproc_oneway_per_s: \(try median { try rate(one, pairs: 1, "oneway", messages) }) msgs/s (64-byte payloads, 1 sender, 1 receiver)")
        one.shutdown()
        let all = try host(pairs: 2, threads: cores)
        _ = try drive(all, pairs: 2, "rr 20000")
        print("inproc_rr_all_cores_per_s: \(try median { try rate(all, pairs: 2, "rr", roundTrips) }) round trips/s (2 pairs on \(cores) cores)")
        all.shutdown()
        print("# Benchmarks/run.sh runs the Erlang/OTP ping-pong next, in the same run, for comparison")
    }

    private func host(pairs: Int, threads: Int) throws -> Host {
        var c = HostConfiguration(pluginsDirectory: nil)
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

    private func median(_ f: () throws -> Int) rethrows -> Int {
        var xs: [Int] = []
        for _ in 0..<repetitions { xs.append(try f()) }
        return xs.sorted()[xs.count / 2]
    }
}
