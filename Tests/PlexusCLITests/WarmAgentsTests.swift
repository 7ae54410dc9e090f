import Foundation
import PlexusTestSupport
import Testing

/// `defaults: { warm_workers: N }` as a user meets it: `plexus agents` says how many
/// warm workers wait for each agent, and a bad size stops `plexus run` with
/// the file, line and field.
@Suite("Warm workers in plexus agents", .serialized)
struct WarmAgentsTests {
    func workspace(_ yaml: String) throws -> String {
        let dir = TestDirectory.make("warm-cli")
        try FileManager.default.createDirectory(atPath: dir + "/Plugins", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: CLITests.root + "/Plugins/textkit.so", toPath: dir + "/Plugins/textkit.so")
        try yaml.write(toFile: dir + "/plexus.yaml", atomically: true, encoding: .utf8)
        return dir
    }

    @Test func agentsShowsTheWarmWorkersOfEachAgent() throws {
        let dir = try workspace("defaults: { warm_workers: 1 }\n")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sock = dir + "/h.sock"
        let host = try PlexusCommand.startHost(in: dir, socket: sock)
        defer { host.interrupt(); host.waitUntilExit() }
        // The pool fills in the background once textkit's first worker is ready.
        var warm: Int?
        let deadline = Date().addingTimeInterval(30)
        while warm != 1 && Date() < deadline {
            if let r = try? PlexusCommand.run(["agents", "--json", "--socket", sock], in: dir), r.status == 0,
               let list = try? JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]] {
                warm = list.first { $0["name"] as? String == "textkit" }?["warm_workers"] as? Int
            }
            if warm != 1 { usleep(20_000) }
        }
        #expect(warm == 1)
        let table = try PlexusCommand.run(["agents", "--socket", sock], in: dir)
        #expect(table.out.contains("warm workers ready for a restart or a new instance: textkit 1"), "\(table.out)")
    }

    @Test func aBadPoolSizeStopsRunWithItsPlace() throws {
        let dir = try workspace("defaults:\n  warm_workers: 99\n")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try PlexusCommand.run(["run", "--socket", dir + "/h.sock", "--store", dir + "/plexus.db"], in: dir)
        #expect(r.status != 0)
        #expect(r.err.contains("plexus.yaml:2:17: defaults.warm_workers: 99 is out of range 0...16"), "\(r.err)")
    }
}
