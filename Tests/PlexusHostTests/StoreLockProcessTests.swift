import Foundation
import PlexusCore
import PlexusSocket
import Testing

/// FAULTS.md 44 across processes: `plexus run --store X` while another
/// host runs on X is refused at start, naming X and the first host's pid,
/// and a task running on the first host runs once.
@Suite("One host per store", .serialized)
struct StoreLockProcessTests {
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("plexus").path

    func plexusRun(_ dir: String, socket: String, log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["run", "--plugins", dir + "/plugins", "--socket", dir + "/" + socket, "--store", dir + "/shared.db"]
        FileManager.default.createFile(atPath: dir + "/" + log, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: dir + "/" + log)
        try p.run()
        return p
    }

    func connect(_ path: String, _ p: Process, log: String) throws -> SocketClient {
        for _ in 0..<400 where p.isRunning {
            if let c = try? SocketClient(path: path), (try? c.call(Envelope(kind: .query, target: .capability("plexus.agents")), timeoutMs: 2000)) != nil {
                return c
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw Fixtures.FixtureError(description: "the host did not come up: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    func task(_ c: SocketClient, _ id: String) throws -> JSONValue {
        let r = try c.call(Envelope(kind: .query, target: .capability("plexus.tasks.show"), payload: Array(#"{"id":"\#(id)"}"#.utf8)), timeoutMs: 10_000)
        return try JSONValue.parse(r.payload)
    }

    @Test func aSecondPlexusRunOnTheSameStoreIsRefusedWithTheHoldersPid() throws {
        let dir = Fixtures.dir + "/dual-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/plugins", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try Fixtures.probe(), toPath: dir + "/plugins/probe.so")
        let first = try plexusRun(dir, socket: "one.sock", log: "one.log")
        defer { if first.isRunning { first.interrupt(); first.waitUntilExit() } }
        let c = try connect(dir + "/one.sock", first, log: dir + "/one.log")

        // A task that is running on the first host while the second starts.
        let submitted = try c.call(Envelope(kind: .query, target: .capability("plexus.tasks.submit"),
                                            payload: Array(#"{"capability":"probe.sleep","payload":"3000","timeout_ms":60000}"#.utf8)), timeoutMs: 10_000)
        guard case .array(let a) = try JSONValue.parse(submitted.payload), case .string(let id)? = a.first?["id"] else {
            Issue.record("no task id: \(submitted.payloadString)"); return
        }
        // Waits while queued, and stops asking as soon as it is not: a
        // `for … where` went on asking 800 times, long enough on a loaded
        // machine for the 3 s task to end before the check below.
        var state = try task(c, id)["state"]
        for _ in 0..<800 where state == .string("queued") {
            Thread.sleep(forTimeInterval: 0.025)
            state = try task(c, id)["state"]
        }
        #expect(state == .string("running"))

        let second = try plexusRun(dir, socket: "two.sock", log: "two.log")
        second.waitUntilExit()
        let said = try String(contentsOfFile: dir + "/two.log", encoding: .utf8)
        #expect(second.terminationStatus != 0)
        #expect(said.contains("\(dir)/shared.db is in use by another host (pid \(first.processIdentifier), per \(dir)/shared.db.lock)"), "\(said)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/two.sock"), "the second host served a socket")

        var t = try task(c, id)
        for _ in 0..<1600 where t["state"] == .string("running") || t["state"] == .string("queued") {
            Thread.sleep(forTimeInterval: 0.025)
            t = try task(c, id)
        }
        #expect(t["state"] == .string("completed"))
        #expect(t["attempts"] == .int(1), "\(t.text)")
    }
}
