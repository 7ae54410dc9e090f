import Yams
import PlexusCore
import PlexusHost

extension Reader {
    /// `nats: { url, node, cluster, credentials, grants }`.
    func nats(_ node: Node, over base: NATSSettings) throws(ConfigError) -> NATSSettings {
        var n = base
        let m = try mapping(node, "nats", keys: ["url", "node", "cluster", "credentials", "grants"])
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
        return n
    }
}
