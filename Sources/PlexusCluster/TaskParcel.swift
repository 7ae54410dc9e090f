import PlexusCore

/// What durable tasks carry on JetStream: one line of JSON (who, which
/// attempt, when), a newline, then the envelope's wire frame as the router
/// encodes it. Used for a task's attempt (its request), for its outcome
/// (the agent's answer) and for the done-marker (the same bytes as the
/// outcome it records).
struct TaskParcel {
    var meta: [String: JSONValue]
    var envelope: Envelope

    init(meta: [String: JSONValue], envelope: Envelope) { self.meta = meta; self.envelope = envelope }

    func encode() throws(PlexusError) -> [UInt8] {
        Array(JSONValue.object(meta).text.utf8) + [0x0A] + (try envelope.encode())
    }

    /// nil for bytes that are not a parcel (logged by the caller).
    init?(_ bytes: [UInt8]) {
        guard let nl = bytes.firstIndex(of: 0x0A), case .object(let m)? = try? JSONValue.parse(Array(bytes[..<nl])),
              let env = try? Envelope(frame: Array(bytes[(nl + 1)...])) else { return nil }
        meta = m
        envelope = env
    }

    func string(_ k: String) -> String? { if case .string(let s)? = meta[k] { return s } else { return nil } }
    func int(_ k: String) -> Int64? { if case .int(let n)? = meta[k] { return n } else { return nil } }
}
