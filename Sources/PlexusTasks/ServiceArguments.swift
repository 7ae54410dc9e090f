import PlexusCore

/// Reading the JSON arguments of the host's own services (tasks,
/// workflows): each mistake named with the field it is in.
public enum ServiceArguments {
    public static func parse(_ bytes: [UInt8]) throws(PlexusError) -> JSONValue {
        guard let v = try? JSONValue.parse(bytes) else {
            throw PlexusError(.INVALID_ARGUMENT, "the payload must be JSON, got '\(String(decoding: bytes.prefix(60), as: UTF8.self))'")
        }
        return v
    }

    public static func string(_ o: JSONValue, _ key: String) throws(PlexusError) -> String {
        guard case .string(let s)? = o[key] else { throw PlexusError(.INVALID_ARGUMENT, "\"\(key)\" must be a string") }
        return s
    }

    public static func int(_ o: JSONValue, _ key: String, default d: Int, in range: ClosedRange<Int>) throws(PlexusError) -> Int {
        guard let v = o[key] else { return d }
        guard case .int(let n) = v, range.contains(Int(n)) else {
            throw PlexusError(.INVALID_ARGUMENT, "\"\(key)\" must be a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(n)
    }
}
