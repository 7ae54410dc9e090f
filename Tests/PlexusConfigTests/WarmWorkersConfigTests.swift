import PlexusConfig
import PlexusHost
import Testing

/// plexus.yaml's `defaults: { warm_workers: N }`: the warm pool's size per
/// worker policy, validated with file:line:column like every other key.
@Suite("plexus.yaml warm workers")
struct WarmWorkersConfigTests: ConfigParsing {

    @Test func theSizeIsReadAndZeroTurnsThePoolOff() throws {
        #expect(try parse("defaults: { warm_workers: 3 }\n").warmWorkers == 3)
        var base = HostConfiguration(pluginsDirectory: nil)
        base.warmWorkers = 2
        #expect(try ConfigFile.parse("defaults:\n  warm_workers: 0\n", file: "plexus.yaml", into: base).warmWorkers == 0)
        // Unset, the size is the one the file is read over (plexus run's 2).
        #expect(try ConfigFile.parse("defaults: { sandbox: process }\n", file: "plexus.yaml", into: base).warmWorkers == 2)
    }

    @Test func mistakesNameFileLineAndField() {
        #expect(error("defaults: { warm_workers: -1 }\n") == "plexus.yaml:1:27: defaults.warm_workers: -1 is out of range 0...16")
        #expect(error("defaults: { warm_workers: 17 }\n") == "plexus.yaml:1:27: defaults.warm_workers: 17 is out of range 0...16")
        #expect(error("defaults: { warm_workers: two }\n") == "plexus.yaml:1:27: defaults.warm_workers: expected a whole number, found \"two\"")
        #expect(error("plugins:\n  x: { warm_workers: 1 }\n").hasPrefix("plexus.yaml:2:22: plugins.x.warm_workers: set warm_workers under defaults"))
    }
}
