import Foundation
import Glibc
import PlexusCore
import PlexusSocket
import Testing

/// FAULTS 47: an in-process handler that never returns cannot keep
/// `plexus run` from exiting on SIGTERM.
@Suite("Shutdown with a stuck handler", .serialized)
struct StuckShutdownTests {
    @Test func sigtermStopsTheHostWhileAnInProcessHandlerSpinsAndTheLogNamesIt() throws {
        let so = try Fixtures.build("hostile.c", ["-DAGENT_NAME=\"spinner\""], name: "spinner")
        let host = try HostProcess("stuck", plugins: ["spinner.so": so],
                                   arguments: ["--sandbox", "in-process", "--shutdown-grace-ms", "500"])
        // A command (answered at once with its id) whose handler spins forever.
        let client = try SocketClient(path: host.socket)
        _ = try client.send(Envelope(kind: .command, target: .capability("hostile.spin")))
        // The handler is running once a host thread burns CPU; wait for that event.
        #expect(waitFor(seconds: 60) { Self.cpuTicks(host.pid) > 20 })

        let sent = Date()
        kill(host.pid, SIGTERM)
        // Far more than grace + 1 s: failing this means the host hung.
        let exited = waitFor(seconds: 60) { !host.process.isRunning }
        let took = Date().timeIntervalSince(sent)
        #expect(exited, "plexus run still running \(took) s after SIGTERM")
        if exited { host.process.waitUntilExit() }
        print("stuck handler: plexus run exited \(String(format: "%.2f", took)) s after SIGTERM (grace 0.5 s), status \(exited ? host.process.terminationStatus : -1)")
        #expect(host.process.terminationStatus == 1)
        #expect(host.logText.contains("exiting with agents still running: spinner"), "\(host.logText)")
    }

    /// utime + stime of a process, in clock ticks.
    static func cpuTicks(_ pid: Int32) -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the name: state is field 3, utime 14, stime 15.
        guard fields.count > 12, let u = Int(fields[11]), let s = Int(fields[12]) else { return 0 }
        return u + s
    }
}
