import PlexusConfig
import PlexusCore
import PlexusHost
import Testing

/// plexus.yaml's `nats.events`: the cluster's JetStream event stream.
@Suite("plexus.yaml nats.events")
struct NATSEventsConfigTests: ConfigParsing {

    @Test func theStreamLimitsAndCatchUpAreReadWithTheirDefaults() throws {
        let d = try parse("nats: { url: nats://127.0.0.1:4222 }\n").nats.events
        #expect(d.maxAgeSeconds == 7 * 86_400 && d.maxBytes == 1 << 30 && d.maxMessages == 1_000_000 && d.catchUp == 10_000)
        let e = try parse("nats: { events: { max_hours: 2, max_bytes: 64MiB, max_messages: 5000, catch_up: 0 } }\n").nats.events
        #expect(e.maxAgeSeconds == 7_200 && e.maxBytes == 64 << 20 && e.maxMessages == 5_000 && e.catchUp == 0)
    }

    @Test func badValuesNameTheirLineAndField() {
        #expect(error("nats:\n  events: {}\n").hasPrefix("plexus.yaml:2:11: nats.events: is empty"))
        #expect(error("nats:\n  events: { max_hours: 0 }\n") == "plexus.yaml:2:24: nats.events.max_hours: 0 is out of range 1...1000000")
        #expect(error("nats:\n  events: { max_bytes: 1KiB }\n") == "plexus.yaml:2:24: nats.events.max_bytes: 1024 bytes is less than the 1MiB allowed")
        #expect(error("nats:\n  events: { max_messages: 10 }\n").hasPrefix("plexus.yaml:2:27: nats.events.max_messages: 10 is out of range 1000...1000000000"))
        #expect(error("nats:\n  events: { catch_up: many }\n").hasPrefix("plexus.yaml:2:23: nats.events.catch_up: expected a whole number"))
        #expect(error("nats:\n  events: { replicas: 3 }\n").hasPrefix("plexus.yaml:2:13: nats.events.replicas: unknown field"))
    }
}

/// plexus.yaml's `nats.kv`: the agents' key-value store local or on JetStream KV.
@Suite("plexus.yaml nats.kv")
struct NATSKeyValueConfigTests: ConfigParsing {
    @Test func localByDefaultJetStreamWhenAsked() throws {
        #expect(try parse("nats: { url: nats://127.0.0.1:4222 }\n").nats.sharedKeyValue == false)
        #expect(try parse("nats: { kv: jetstream }\n").nats.sharedKeyValue == true)
        #expect(try parse("nats: { kv: local }\n").nats.sharedKeyValue == false)
        #expect(error("nats:\n  kv: redis\n") == "plexus.yaml:2:7: nats.kv: expected local (each host's own store) or jetstream (one store shared by every host), found \"redis\"")
    }
}
