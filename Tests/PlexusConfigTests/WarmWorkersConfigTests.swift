import PlexusConfig
import PlexusHost
import Testing

/// plexus.yaml's `workers: { warm: N }`: the warm pool's size per worker
/// policy, validated with file:line:column like every other key.
@Suite("plexus.yaml warm workers")
struct WarmWorkersConfigTests {
    func parse(_ yaml: String) throws(ConfigError) -> HostConfiguration {
        try ConfigFile.parse(yaml, file: "plexus.yaml", into: HostConfiguration(pluginsDirectory: nil))
    }

    func error(_ yaml: String) -> String {
        do { _ = try parse(yaml); return "no error" } catch { return error.description }
    }

    @Test func theSizeIsReadAndZeroTurnsThePoolOff() throws {
        #expect(try parse("workers: { warm: 3 }\n").warmWorkers == 3)
        #expect(try parse("workers:\n  warm: 0\n").warmWorkers == 0)
        #expect(try parse("defaults: { sandbox: process }\n").warmWorkers == HostConfiguration(pluginsDirectory: nil).warmWorkers)
    }

    @Test func mistakesNameFileLineAndField() {
        #expect(error("workers: { warm: -1 }\n") == "plexus.yaml:1:18: workers.warm: -1 is out of range 0...16")
        #expect(error("workers: { warm: 17 }\n") == "plexus.yaml:1:18: workers.warm: 17 is out of range 0...16")
        #expect(error("workers: { warm: two }\n") == "plexus.yaml:1:18: workers.warm: expected a whole number, found \"two\"")
        #expect(error("workers: { hot: 1 }\n").hasPrefix("plexus.yaml:1:12: workers.hot: unknown field; expected one of: warm"))
        #expect(error("workers: 2\n").hasPrefix("plexus.yaml:1:10: workers:"))
    }
}
