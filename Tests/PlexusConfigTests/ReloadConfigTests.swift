import PlexusConfig
import PlexusHost
import Testing

/// plexus.yaml's `reload:`: how a running host takes in changed plugin
/// files (watching, probation, drain), validated like every other key.
@Suite("plexus.yaml reload")
struct ReloadConfigTests: ConfigParsing {
    @Test func settingsAreReadAndDefaultOtherwise() throws {
        let d = try parse("store: { path: x.db }\n").reload
        #expect(d == ReloadSettings())
        #expect(d.watch && d.probationMessages == 10)
        let c = try parse("reload:\n  watch: false\n  probation_messages: 0\n  drain_timeout_ms: 5000\n  debounce_ms: 200\n").reload
        #expect(!c.watch)
        #expect(c.probationMessages == 0)
        #expect(c.drainTimeoutMs == 5000)
        #expect(c.debounceMs == 200)
    }

    @Test func mistakesNameFileLineAndField() {
        #expect(error("reload: { probation_messages: -1 }\n") == "plexus.yaml:1:31: reload.probation_messages: -1 is out of range 0...1000000")
        #expect(error("reload: { probation: 5 }\n").hasPrefix("plexus.yaml:1:11: reload.probation: unknown field; expected one of: watch, probation_messages, drain_timeout_ms, debounce_ms"))
        #expect(error("reload: { watch: maybe }\n").hasPrefix("plexus.yaml:1:18: reload.watch:"))
        #expect(error("reload: { debounce_ms: 0 }\n") == "plexus.yaml:1:24: reload.debounce_ms: 0 is out of range 1...10000")
    }
}
