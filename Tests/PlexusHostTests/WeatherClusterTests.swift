import Foundation
import Glibc
import PlexusCore
import PlexusTestSupport
import Testing

/// Issue 16's last promise, the one `./run.sh --cluster` shows: the weather
/// crew split over two hosts (collector, analyst and reporter on a; the
/// cleaner and the visualiser on b) writes the same report, byte for byte,
/// as the whole crew on one host. The fan-out's 48 cleaning tasks and the
/// chart cross to b through JetStream; the run's record stays on a.
@Suite(.serialized) struct WeatherClusterTests {
    static let crewA = ["collector", "analyst", "reporter"]
    static let crewB = ["cleaner", "visualiser"]

    static func plugins(_ names: [String]) throws -> [String: String] {
        var files: [String: String] = [:]
        for p in names {
            let built = PipelineTests.plugins + "/\(p).so"
            try #require(FileManager.default.fileExists(atPath: built), "\(built) is missing: run Plugins/build.sh first")
            files["\(p).so"] = built
        }
        return files
    }

    /// `plexus workflow run` of the weather report through the host at socket, its outputs written to out.
    static func runWeather(_ socket: String, out: String) throws {
        let input = JSONValue.object(["path": .string(Fixtures.root + "/data/seattle-weather/seattle-weather.csv"), "pace_ms": .int(0)]).text
        let run = try PlexusCommand.run(["workflow", "run", Fixtures.root + "/workflows/weather-report.yaml",
                                         "--socket", socket, "--input", input, "--out", out])
        #expect(run.status == 0, "\(run.out)\n\(run.err)")
    }

    @Test func theWeatherCrewSplitOverTwoHostsWritesTheSameReportByteForByte() throws {
        // The collector reads data/ (granted), wherever it runs.
        let yaml = "plugins:\n  collector:\n    filesystem: { read: [\"\(Fixtures.root)/data\"] }\n"
        let configFile = Fixtures.dir + "/weather-\(UUID().uuidString.prefix(6)).yaml"
        try yaml.write(toFile: configFile, atomically: true, encoding: .utf8)

        let one = try HostProcess("weather-one", plugins: try Self.plugins(Self.crewA + Self.crewB), arguments: ["--config", configFile])
        let alone = one.dir + "/report"
        try Self.runWeather(one.socket, out: alone)

        let nats = try NatsServer()   // with JetStream
        let a = try ClusterTests.node("a", nats.url, plugins: try Self.plugins(Self.crewA), yaml: yaml)
        let b = try ClusterTests.node("b", nats.url, plugins: try Self.plugins(Self.crewB), yaml: yaml)
        #expect(ClusterTests.waitForNodes(a.socket, up: ["b"]))
        // workflow check on a counts b's capabilities as provided: no warning.
        let check = try PlexusCommand.run(["workflow", "check", Fixtures.root + "/workflows/weather-report.yaml", "--socket", a.socket])
        #expect(check.status == 0 && !check.out.contains("warning"), "\(check.out)\n\(check.err)")
        let split = a.dir + "/report-cluster"
        try Self.runWeather(a.socket, out: split)

        for file in ["report.html", "report.md", "chart.svg"] {
            let x = FileManager.default.contents(atPath: "\(alone)/\(file)")
            let y = FileManager.default.contents(atPath: "\(split)/\(file)")
            #expect(x != nil && x == y, "\(file): \(x?.count ?? -1) bytes on one host, \(y?.count ?? -1) split over two")
        }
        // The cleaning and the chart ran on b: a's task records say so.
        let listed = try PlexusCommand.run(["tasks", "list", "--socket", a.socket, "--limit", "200", "--json"])
        guard case .array(let tasks)? = try? JSONValue.parse(Array(listed.out.utf8)) else {
            Issue.record("tasks list --json: \(listed.out) \(listed.err)"); return
        }
        var nodeOf: [String: Set<String>] = [:]
        for t in tasks {
            if case .string(let cap)? = t["capability"], case .string(let node)? = t["node"] { nodeOf[cap, default: []].insert(node) }
        }
        #expect(nodeOf["data.clean"] == ["b"] && nodeOf["chart.render"] == ["b"] && nodeOf["data.collect"] == ["a"], "\(nodeOf)")
        withExtendedLifetime((b, nats)) {}   // host b and the server serve until here
    }
}
