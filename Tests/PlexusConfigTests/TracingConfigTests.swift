import PlexusConfig
import PlexusHost
import Testing

/// plexus.yaml's `tracing: { enabled, spans, rate }`, validated with
/// file:line:column like every other key.
@Suite("plexus.yaml tracing")
struct TracingConfigTests: ConfigParsing {

    @Test func theKeysAreReadAndDefaultToOn() throws {
        #expect(try parse("store: { path: x.db }\n").tracing == TracingSettings(enabled: true, spans: 16_384, rate: 2_000))
        #expect(try parse("tracing: { enabled: false }\n").tracing.enabled == false)
        #expect(try parse("tracing:\n  spans: 1024\n  rate: 0\n").tracing == TracingSettings(enabled: true, spans: 1024, rate: 0))
    }

    @Test func mistakesNameFileLineAndField() {
        #expect(error("tracing: { spans: 8 }\n") == "plexus.yaml:1:19: tracing.spans: 8 is out of range 16...16777216")
        #expect(error("tracing:\n  rate: -1\n") == "plexus.yaml:2:9: tracing.rate: -1 is out of range 0...100000000")
        #expect(error("tracing: { enabled: maybe }\n").hasPrefix("plexus.yaml:1:21: tracing.enabled: "))
        #expect(error("tracing: { span: 10 }\n") == "plexus.yaml:1:12: tracing.span: unknown field; expected one of: enabled, spans, rate")
    }
}
