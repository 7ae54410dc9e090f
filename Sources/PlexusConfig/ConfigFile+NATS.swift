import Yams
import PlexusCore
import PlexusHost

extension Reader {
    /// `nats: { url, node, cluster, credentials, grants, outbox, events, kv, replicas }`.
    func nats(_ node: Node, over base: NATSSettings) throws(ConfigError) -> NATSSettings {
        var n = base
        let m = try mapping(node, "nats", keys: ["url", "node", "cluster", "credentials", "grants", "outbox", "events", "kv", "replicas"])
        guard !m.isEmpty else { throw fail(node, "nats", "is empty: give url (such as nats://127.0.0.1:4222), and node for this host's name") }
        if let u = m["url"] {
            let text = try string(u, "nats.url")
            do throws(PlexusError) { try NATSSettings.checkURL(text) } catch { throw fail(u, "nats.url", error.detail) }
            n.url = text
        }
        if let v = m["node"] {
            let text = try string(v, "nats.node")
            do throws(PlexusError) { try NATSSettings.checkToken(text, what: "the node name") } catch { throw fail(v, "nats.node", error.detail) }
            n.node = text
        }
        if let v = m["cluster"] {
            let text = try string(v, "nats.cluster")
            do throws(PlexusError) { try NATSSettings.checkToken(text, what: "the cluster name") } catch { throw fail(v, "nats.cluster", error.detail) }
            n.cluster = text
        }
        if let v = m["credentials"] {
            let text = try string(v, "nats.credentials")
            guard !text.isEmpty else { throw fail(v, "nats.credentials", "names a NATS credentials file; it is empty") }
            n.credentials = text
        }
        if let g = m["grants"] {
            let grants = try grants(g, "nats.grants", actions: [.call, .publish])
            n.peerGrants = grants
        }
        if let o = m["outbox"] { try outbox(o, into: &n) }
        if let e = m["events"] { try events(e, into: &n.events) }
        if let v = m["kv"] {
            switch try string(v, "nats.kv") {
            case "jetstream": n.sharedKeyValue = true
            case "local": n.sharedKeyValue = false
            case let other: throw fail(v, "nats.kv", "expected local (each host's own store) or jetstream (one store shared by every host), found \"\(other)\"")
            }
        }
        if let v = m["replicas"] {
            let r = try integer(v, "nats.replicas", in: Int64.min...Int64.max)
            guard (1...5).contains(r) else {
                throw fail(v, "nats.replicas", "expected 1 to 5 (how many NATS servers keep a copy of each stream; 3 on a three-server cluster), found \(r)")
            }
            n.replicas = Int(r)
        }
        return n
    }

    /// `events: { max_hours: 168, max_bytes: 1GiB, max_messages: 1000000, catch_up: 10000 }`.
    private func events(_ node: Node, into e: inout EventStreamSettings) throws(ConfigError) {
        let m = try mapping(node, "nats.events", keys: ["max_hours", "max_bytes", "max_messages", "catch_up"])
        guard !m.isEmpty else { throw fail(node, "nats.events", "is empty: give max_hours, max_bytes, max_messages and/or catch_up") }
        if let v = m["max_hours"] { e.maxAgeSeconds = 3600 * (try integer(v, "nats.events.max_hours", in: 1...1_000_000)) }
        if let v = m["max_bytes"] {
            let b = try size(v, "nats.events.max_bytes")
            guard b >= 1 << 20 else { throw fail(v, "nats.events.max_bytes", "\(b) bytes is less than the 1MiB allowed") }
            guard b <= 1 << 40 else { throw fail(v, "nats.events.max_bytes", "\(b) bytes is more than the 1TiB allowed") }
            e.maxBytes = Int64(b)
        }
        if let v = m["max_messages"] { e.maxMessages = try integer(v, "nats.events.max_messages", in: 1_000...1_000_000_000) }
        if let v = m["catch_up"] { e.catchUp = Int(try integer(v, "nats.events.catch_up", in: 0...10_000_000)) }
    }

    /// `outbox: 10000` (messages) or `outbox: { messages: 10000, bytes: 64MiB }`.
    private func outbox(_ node: Node, into n: inout NATSSettings) throws(ConfigError) {
        if case .scalar = node {
            n.outboxMessages = Int(try integer(node, "nats.outbox", in: 0...10_000_000))
            return
        }
        let m = try mapping(node, "nats.outbox", keys: ["messages", "bytes"])
        guard !m.isEmpty else { throw fail(node, "nats.outbox", "is empty: give messages (such as 10000) and/or bytes (such as 64MiB)") }
        if let v = m["messages"] { n.outboxMessages = Int(try integer(v, "nats.outbox.messages", in: 0...10_000_000)) }
        if let v = m["bytes"] {
            let b = try size(v, "nats.outbox.bytes")
            guard b <= 1 << 34 else { throw fail(v, "nats.outbox.bytes", "\(b) bytes is more than the 16GiB allowed") }
            n.outboxBytes = Int(b)
        }
    }
}
