import Yams
import PlexusCore
import PlexusHost

extension Reader {
    /// `nats: { url, node, cluster, credentials, grants, outbox }`.
    func nats(_ node: Node, over base: NATSSettings) throws(ConfigError) -> NATSSettings {
        var n = base
        let m = try mapping(node, "nats", keys: ["url", "node", "cluster", "credentials", "grants", "outbox"])
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
        return n
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
