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
