import PlexusConfig
import PlexusHost
import Testing

/// plugins.NAME.spawn and defaults.spawn.max_total (agents that spawn agents).
@Suite struct SpawnConfigTests: ConfigParsing {
    @Test func spawnIsReadPerPluginWithSafeDefaults() throws {
        let c = try parse("plugins:\n  boss: { spawn: { max_children: 3, plugins: [worker, helper], restart: transient } }\n  other: {}\n")
        #expect(c.plugins["boss"]?.spawn == SpawnSettings(maxChildren: 3, plugins: ["worker", "helper"], restart: .transient))
        // Not configured: spawns nothing.
        #expect(c.plugins["other"]?.spawn == nil)
        #expect(try parse("plugins:\n  boss: { spawn: { plugins: [worker] } }\n").plugins["boss"]?.spawn
                == SpawnSettings(maxChildren: 8, plugins: ["worker"], restart: .temporary))
        #expect(try parse("defaults: { spawn: { max_total: 12 } }\n").spawnMaxTotal == 12)
        #expect(try parse("defaults: { sandbox: process }\n").spawnMaxTotal == 256)
    }

    @Test func mistakesNameFileLineAndField() {
        #expect(error("plugins:\n  boss: { spawn: { max_children: 2 } }\n")
                == "plexus.yaml:2:18: plugins.boss.spawn.plugins: missing: name the plugins its agents may spawn, e.g. plugins: [worker]")
        #expect(error("plugins:\n  boss: { spawn: { plugins: [w], restart: sometimes } }\n")
                == "plexus.yaml:2:43: plugins.boss.spawn.restart: expected temporary, transient or permanent, found \"sometimes\"")
        #expect(error("plugins:\n  boss: { spawn: { plugins: [w], max_children: 5000 } }\n")
                == "plexus.yaml:2:48: plugins.boss.spawn.max_children: 5000 is out of range 0...1024")
        #expect(error("plugins:\n  boss: { spawn: { plugins: [\"a b\"] } }\n").hasPrefix("plexus.yaml:2:30: plugins.boss.spawn.plugins: a plugin name 'a b' has the character ' '"))
        #expect(error("plugins:\n  boss: { spawn: { plugins: w } }\n").hasPrefix("plexus.yaml:2:29: plugins.boss.spawn.plugins: expected a list"))
        #expect(error("plugins:\n  boss: { spawn: { plugins: [w], max_total: 3 } }\n").hasPrefix("plexus.yaml:2:34: plugins.boss.spawn.max_total: unknown field; expected one of: max_children, plugins, restart"))
        #expect(error("defaults: { spawn: { plugins: [w] } }\n").hasPrefix("plexus.yaml:1:22: defaults.spawn.plugins: unknown field; expected one of: max_total"))
        #expect(error("defaults: { spawn: { max_total: -1 } }\n") == "plexus.yaml:1:33: defaults.spawn.max_total: -1 is out of range 0...65536")
    }
}
