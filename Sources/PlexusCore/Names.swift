/// Agent and capability names as they travel in frames.
public enum Names {
    /// 1 to 255 bytes of [A-Za-z0-9_.:/@-]: what the wire accepts in a
    /// target, without the wildcards only subscriptions may use.
    public static func check(_ s: String, what: String) throws(PlexusError) {
        guard !s.isEmpty else { throw PlexusError(.INVALID_ARGUMENT, "\(what) is empty") }
        guard s.utf8.count <= 255 else { throw PlexusError(.INVALID_ARGUMENT, "\(what) '\(s.prefix(40))…' is longer than 255 bytes") }
        if let bad = s.unicodeScalars.first(where: { !allowed($0) }) {
            throw PlexusError(.INVALID_ARGUMENT, "\(what) '\(s)' has the character '\(bad)'; allowed are A-Z a-z 0-9 _ . : / @ -")
        }
    }

    private static func allowed(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9", "_", ".", ":", "/", "@", "-": true
        default: false
        }
    }
}

/// Names only the host may claim. A capability, subject, agent or pattern
/// whose first token is `plexus` or `_plexus` is the host's: `plexus.*` are
/// its own capabilities and events (`plexus.tasks.submit`,
/// `plexus.audit.denied`), `_plexus.*` the control frames of a worker's
/// channel, which the host never routes. Agent names under `client:` are
/// the identities the host gives socket connections. Checked where names
/// enter the registry and the router, so every road (plugin descriptor,
/// in-process host table, worker channel, socket client) meets one check.
public enum ReservedNames {
    public enum Use: String, Sendable {
        case capability, agent = "agent name", subject, pattern
    }

    /// Whether the first dot-separated token is the host's.
    public static func isHostOwned(_ name: String) -> Bool {
        let first = name.utf8.split(separator: UInt8(ascii: "."), maxSplits: 1, omittingEmptySubsequences: false).first
        guard let first else { return false }
        return first.elementsEqual("plexus".utf8) || first.elementsEqual("_plexus".utf8)
    }

    /// Whether a subject is a channel's control subject (never routed).
    public static func isControl(_ name: String) -> Bool { name == "_plexus" || name.hasPrefix("_plexus.") }

    /// The refusal for a plugin or client claiming `name` as `use`; nil when
    /// the name is free to claim. Subscribing to the host's own events
    /// (`plexus.audit.denied`) is allowed, within grants; `_plexus.` is not.
    public static func refusal(_ name: String, as use: Use) -> PlexusError? {
        switch use {
        case .pattern:
            guard isControl(name) else { return nil }
            return PlexusError(.PERMISSION_DENIED, "pattern '\(name)' is reserved for the host: '_plexus.' subjects are a worker channel's control frames and are never routed")
        case .agent where name.hasPrefix("client:"):
            return PlexusError(.PERMISSION_DENIED, "agent name '\(name)' is reserved for the host: 'client:' names are the identities it gives socket connections")
        default:
            guard isHostOwned(name) else { return nil }
            return PlexusError(.PERMISSION_DENIED, "\(use.rawValue) '\(name)' is reserved for the host")
        }
    }

    /// Throws the refusal, if any.
    public static func check(_ name: String, as use: Use) throws(PlexusError) {
        if let e = refusal(name, as: use) { throw e }
    }
}
