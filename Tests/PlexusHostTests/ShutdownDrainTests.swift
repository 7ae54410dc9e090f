import Foundation
import Glibc
import PlexusTestSupport
import Testing

/// README, Shutdown: accepted work finishes within the grace period and its
/// caller hears the answer, socket clients included; nobody new gets in.
@Suite("Shutdown drains socket callers")
struct ShutdownDrainTests {
    @Test func aSocketCallerInFlightIsAnsweredWithinTheGrace() throws {
        let host = try HostProcess("drain", plugins: ["textkit.so": Fixtures.root + "/Plugins/textkit.so"],
                                   arguments: ["--shutdown-grace-ms", "10000"])
        let listed = try PlexusCommand.run(["agents", "--json", "--socket", host.socket])
        let agents = try #require(try JSONSerialization.jsonObject(with: Data(listed.out.utf8)) as? [[String: Any]])
        let worker = try #require(agents.first { $0["name"] as? String == "textkit" }?["pid"] as? Int32)
        // The worker holds the request without answering until it is let go.
        kill(worker, SIGSTOP)
        let call = Process()
        call.executableURL = URL(fileURLWithPath: PlexusCommand.path)
        call.arguments = ["call", "echo", "--json", "\"drained\"", "--timeout", "30", "--socket", host.socket]
        let out = Pipe(), err = Pipe()
        call.standardOutput = out
        call.standardError = err
        try call.run()
        let inFlight = waitFor(seconds: 20) {
            guard let r = try? PlexusCommand.run(["agents", "--json", "--socket", host.socket]),
                  let a = try? JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]] else { return false }
            return (a.first { $0["name"] as? String == "textkit" }?["in_flight"] as? Int ?? 0) > 0
        }
        #expect(inFlight, "the call never reached the worker")
        kill(host.pid, SIGTERM)
        #expect(waitFor(seconds: 20) { host.logText.contains("SIGTERM received") })
        // Draining: the socket file is gone, so a new client hears that no host runs there.
        #expect(waitFor(seconds: 20) { (try? PlexusCommand.run(["agents", "--socket", host.socket]))?.status == 3 })
        kill(worker, SIGCONT)
        let answer = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let why = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        call.waitUntilExit()
        #expect(call.terminationStatus == 0 && answer.trimmingCharacters(in: .whitespacesAndNewlines) == "\"drained\"", "\(answer) \(why)")
        host.process.waitUntilExit()
        #expect(host.process.terminationStatus == 0, "\(host.logText.suffix(2000))")
    }
}
