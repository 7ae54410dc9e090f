import PlexusConfig
import PlexusCore
import PlexusHost
import Testing

/// plexus.yaml's `nats:`: joining several hosts into one system.
@Suite("plexus.yaml nats")
struct NATSConfigTests: ConfigParsing {

    @Test func everyKeyIsReadWithItsDefaults() throws {
        #expect(try parse("store: { path: x.db }\n").nats.url == nil)
        let c = try parse("nats: { url: \"nats://b:pw@10.0.0.2:4222\", node: b-1, cluster: weather, credentials: /etc/b.creds, grants: { call: [report.>], publish: [docs.new] } }\n")
        #expect(c.nats.url == "nats://b:pw@10.0.0.2:4222" && c.nats.node == "b-1" && c.nats.cluster == "weather")
        #expect(c.nats.credentials == "/etc/b.creds")
        #expect(c.nats.peerGrants?[.call] == ["report.>"] && c.nats.peerGrants?[.publish] == ["docs.new"])
        let d = try parse("nats: { url: nats://127.0.0.1:4222 }\n")
        #expect(d.nats.cluster == "plexus" && d.nats.node == nil && d.nats.peerGrants == nil)
    }

    @Test func badValuesNameTheirLineAndField() {
        #expect(error("nats: {}\n").hasPrefix("plexus.yaml:1:7: nats: is empty"))
        #expect(error("nats:\n  url: http://x:4222\n") == "plexus.yaml:2:8: nats.url: \"http://x:4222\": the scheme must be nats:// or tls://, not http://")
        #expect(error("nats:\n  url: nats://x\n").hasPrefix("plexus.yaml:2:8: nats.url: \"nats://x\": expected HOST:PORT"))
        #expect(error("nats:\n  node: a.b\n") == "plexus.yaml:2:9: nats.node: the node name 'a.b' has the character '.'; allowed are A-Z a-z 0-9 _ -")
        #expect(error("nats:\n  cluster: \"\"\n") == "plexus.yaml:2:12: nats.cluster: the cluster name is empty")
        #expect(error("nats:\n  grants: { subscribe: [x] }\n").hasPrefix("plexus.yaml:2:13: nats.grants.subscribe: unknown field; expected one of: call, publish"))
        #expect(error("nats:\n  port: 4222\n").hasPrefix("plexus.yaml:2:3: nats.port: unknown field"))
    }

    @Test func theOutboxTakesACountOrMessagesAndBytesAndTheURLAListOfServers() throws {
        let d = try parse("nats: { url: nats://127.0.0.1:4222 }\n")
        #expect(d.nats.outboxMessages == 10_000 && d.nats.outboxBytes == 64 << 20)
        #expect(try parse("nats: { outbox: 500 }\n").nats.outboxMessages == 500)
        #expect(try parse("nats: { outbox: 0 }\n").nats.outboxMessages == 0)
        let both = try parse("nats: { outbox: { messages: 20, bytes: 1MiB } }\n")
        #expect(both.nats.outboxMessages == 20 && both.nats.outboxBytes == 1 << 20)
        let list = try parse("nats: { url: \"nats://10.0.0.1:4222, nats://10.0.0.2:4222,nats://u:p@10.0.0.3:4222\" }\n")
        #expect(list.nats.url == "nats://10.0.0.1:4222, nats://10.0.0.2:4222,nats://u:p@10.0.0.3:4222")
    }

    @Test func badOutboxAndURLListsNameTheirField() {
        #expect(error("nats:\n  outbox: -1\n") == "plexus.yaml:2:11: nats.outbox: -1 is out of range 0...10000000")
        #expect(error("nats:\n  outbox: lots\n").hasPrefix("plexus.yaml:2:11: nats.outbox: expected a whole number"))
        #expect(error("nats:\n  outbox: { bytes: 0 }\n").hasPrefix("plexus.yaml:2:20: nats.outbox.bytes: expected a size"))
        #expect(error("nats:\n  outbox: { size: 3 }\n").hasPrefix("plexus.yaml:2:13: nats.outbox.size: unknown field"))
        #expect(error("nats:\n  url: \"nats://a:1,\"\n").contains("nats.url: \"nats://a:1,\": an empty entry"))
        #expect(error("nats:\n  url: \"nats://a:1,http://b:2\"\n").contains("nats.url: \"http://b:2\": the scheme must be nats://"))
    }

    @Test func replicasAreOneByDefaultAndOneToFive() throws {
        #expect(try parse("nats: { url: nats://127.0.0.1:4222 }\n").nats.replicas == 1)
        #expect(try parse("nats: { replicas: 3 }\n").nats.replicas == 3)
        #expect(try parse("nats: { replicas: 5 }\n").nats.replicas == 5)
        #expect(error("nats:\n  replicas: 0\n")
                == "plexus.yaml:2:13: nats.replicas: expected 1 to 5 (how many NATS servers keep a copy of each stream; 3 on a three-server cluster), found 0")
        #expect(error("nats:\n  replicas: 7\n").hasSuffix("found 7"))
        #expect(error("nats:\n  replicas: three\n").hasPrefix("plexus.yaml:2:13: nats.replicas: expected a whole number"))
    }
}
