import Glibc
import PlexusCore
import PlexusHost

/// Who a connection is: the name its messages carry as sender and what it
/// may do. It comes from the connection's peer credentials and, when the
/// client says hello, from a client entry of plexus.yaml and its token —
/// never from anything a frame claims.
struct Identity {
    /// The sender name: "client:PID" for the host's own user, "client:NAME"
    /// for a configured client.
    let name: String
    /// nil: anything (the host's own user, unless clients.owner narrows it).
    let grants: Grants?

    /// What a new connection is before any hello. nil when the peer must
    /// say hello first; throws when nothing in the configuration could ever
    /// admit it.
    static func atConnect(pid: Int32, uid: UInt32, _ c: HostConfiguration) throws(PlexusError) -> Identity? {
        if uid == getuid() { return try owner(pid: pid, c) }
        let byUID = c.clients.filter { $0.value.uid == uid }
        if byUID.count == 1, let (name, spec) = byUID.first, spec.token == nil { return try client(name, spec) }
        if !byUID.isEmpty || c.clients.values.contains(where: { $0.uid == nil }) { return nil }
        throw PlexusError(.PERMISSION_DENIED,
            "uid \(uid) may not use this host: plexus.yaml lists no client with uid: \(uid) (and none that says hello with a token only)")
    }

    /// The host's own user, without a hello.
    static func owner(pid: Int32, _ c: HostConfiguration) throws(PlexusError) -> Identity {
        let name = "client:\(pid)"
        guard let g = c.ownerGrants else { return Identity(name: name, grants: nil) }
        return Identity(name: name, grants: try Grants(g, holder: "\(name) (the host's own user)", source: "clients.owner.grants"))
    }

    static func client(_ name: String, _ spec: ClientSpec) throws(PlexusError) -> Identity {
        Identity(name: "client:\(name)", grants: try Grants(spec.grants, holder: "client '\(name)'", source: "clients.\(name).grants"))
    }

    /// A hello: `{"client": NAME, "token": TOKEN}` checked against
    /// clients.NAME — its uid when it sets one, its token when it sets one.
    static func hello(_ args: [String: JSONValue], uid: UInt32, _ c: HostConfiguration) throws(PlexusError) -> (String, Identity) {
        guard case .string(let name)? = args["client"] else {
            throw PlexusError(.INVALID_ARGUMENT, "plexus.hello: \"client\" must be the name of a client in plexus.yaml")
        }
        guard name != "owner", let spec = c.clients[name] else {
            throw PlexusError(.PERMISSION_DENIED, "plexus.hello: plexus.yaml has no client named '\(name)'")
        }
        if let want = spec.uid, want != uid {
            throw PlexusError(.PERMISSION_DENIED, "plexus.hello: client '\(name)' must connect as uid \(want); this connection is uid \(uid)")
        }
        if let token = spec.token {
            guard case .string(let given)? = args["token"] else {
                throw PlexusError(.PERMISSION_DENIED, "plexus.hello: client '\(name)' needs its token (\"token\" is missing)")
            }
            guard sameBytes(given, token) else {
                throw PlexusError(.PERMISSION_DENIED, "plexus.hello: wrong token for client '\(name)'")
            }
        }
        return (name, try client(name, spec))
    }

    /// Compares in time that depends only on the lengths, so a wrong token
    /// reveals nothing of the right one through timing.
    private static func sameBytes(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) { diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return diff == 0
    }
}
