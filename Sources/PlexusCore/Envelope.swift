import CPlexus

public enum MessageKind: UInt8, Sendable, CaseIterable {
    case command = 0, query = 1, response = 2, event = 3, error = 4
    /// (ABI 1.2) The caller cancelled the query correlationID names.
    case cancel = 5
    public var name: String { String(describing: self) }
}

public enum Priority: UInt8, Sendable, CaseIterable, Comparable {
    case low = 0, normal = 1, high = 2, critical = 3
    public static func < (a: Priority, b: Priority) -> Bool { a.rawValue < b.rawValue }
}

/// Where a message goes. Spelled on the command line as `NAME` (a capability),
/// `agent:NAME` or `topic:SUBJECT`.
public enum Target: Equatable, Sendable, CustomStringConvertible {
    case agent(String)
    case capability(String)
    case topic(String)
    case reply

    public init(parsing s: String) {
        if s.hasPrefix("agent:") { self = .agent(String(s.dropFirst(6))) }
        else if s.hasPrefix("topic:") { self = .topic(String(s.dropFirst(6))) }
        else { self = .capability(s) }
    }

    public var kind: plexus_target_kind {
        switch self {
        case .agent: PLEXUS_TARGET_AGENT
        case .capability: PLEXUS_TARGET_CAPABILITY
        case .topic: PLEXUS_TARGET_TOPIC
        case .reply: PLEXUS_TARGET_REPLY
        }
    }

    public var name: String {
        switch self {
        case .agent(let n), .capability(let n), .topic(let n): n
        case .reply: ""
        }
    }

    public init(kind: UInt8, name: String) {
        switch UInt32(kind) {
        case PLEXUS_TARGET_AGENT.rawValue: self = .agent(name)
        case PLEXUS_TARGET_TOPIC.rawValue: self = .topic(name)
        case PLEXUS_TARGET_REPLY.rawValue: self = .reply
        default: self = .capability(name)
        }
    }

    public var description: String {
        switch self {
        case .agent(let n): "agent:\(n)"
        case .capability(let n): n
        case .topic(let n): "topic:\(n)"
        case .reply: "reply"
        }
    }
}

/// An owned, Swift-side envelope: what tests, the CLI and socket clients build
/// and receive. Its bytes on the wire are exactly `plexus_wire_encode`'s.
public struct Envelope: Sendable, Equatable {
    public var kind: MessageKind
    public var target: Target
    public var priority: Priority
    public var id: plexus_id
    public var correlationID: plexus_id
    public var traceID: plexus_id
    public var deadlineUnixNs: Int64
    public var sender: String
    public var contentType: String
    public var payload: [UInt8]
    public var status: plexus_status
    /// PLEXUS_FLAG_* (ABI 1.2): `more` on a partial RESPONSE.
    public var flags: UInt8 = 0

    public init(kind: MessageKind = .command, target: Target, priority: Priority = .normal,
                payload: [UInt8] = [], contentType: String = "application/json",
                deadlineUnixNs: Int64 = 0, sender: String = "",
                id: plexus_id = .none, correlationID: plexus_id = .none, traceID: plexus_id = .none,
                status: plexus_status = 0, flags: UInt8 = 0) {
        self.kind = kind; self.target = target; self.priority = priority; self.payload = payload
        self.contentType = contentType; self.deadlineUnixNs = deadlineUnixNs; self.sender = sender
        self.id = id; self.correlationID = correlationID; self.traceID = traceID; self.status = status
        self.flags = flags
    }

    /// A partial answer of a stream: more answers to the same request follow.
    public var isPartial: Bool { kind == .response && flags & UInt8(PLEXUS_FLAG_MORE) != 0 }

    public var payloadString: String { String(decoding: payload, as: UTF8.self) }

    /// Copies a borrowed C envelope (all pointers are read during this call only).
    public init(_ e: UnsafePointer<plexus_envelope>) {
        let c = e.pointee
        func str(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }
        self.kind = MessageKind(rawValue: c.kind) ?? .command
        self.target = Target(kind: c.target_kind, name: str(c.target))
        self.priority = Priority(rawValue: c.priority) ?? .normal
        self.id = c.id; self.correlationID = c.correlation_id; self.traceID = c.trace_id
        self.deadlineUnixNs = c.deadline_unix_ns
        self.sender = str(c.sender); self.contentType = str(c.content_type)
        if let p = c.payload, c.payload_len > 0 {
            self.payload = Array(UnsafeBufferPointer(start: p, count: Int(c.payload_len)))
        } else { self.payload = [] }
        self.status = c.status
        self.flags = c.flags
    }

    /// Lends a C view of this envelope for the duration of body.
    public func withCEnvelope<R>(_ body: (UnsafePointer<plexus_envelope>) throws -> R) rethrows -> R {
        try sender.withCString { s in
            try target.name.withCString { t in
                try contentType.withCString { ct in
                    try payload.withUnsafeBufferPointer { p in
                        var e = plexus_envelope_init()
                        e.kind = kind.rawValue; e.target_kind = UInt8(target.kind.rawValue)
                        e.priority = priority.rawValue
                        e.id = id; e.correlation_id = correlationID; e.trace_id = traceID
                        e.deadline_unix_ns = deadlineUnixNs
                        e.sender = s; e.target = t; e.content_type = ct
                        e.payload = p.baseAddress; e.payload_len = UInt64(p.count)
                        e.status = status
                        e.flags = flags
                        return try withUnsafePointer(to: &e) { try body($0) }
                    }
                }
            }
        }
    }

    /// The envelope as one wire frame.
    public func encode(maxPayload: UInt64 = UInt64(PLEXUS_MAX_PAYLOAD_LEN)) throws(PlexusError) -> [UInt8] {
        let r: Result<[UInt8], PlexusError> = withCEnvelope { e in
            var what: UnsafePointer<CChar>?
            let v = plexus_wire_validate(e, maxPayload, &what)
            if v != 0 { return .failure(PlexusError(status: v, Wire.describe(what))) }
            let size = Int(plexus_wire_frame_size(e))
            var out = [UInt8](repeating: 0, count: size)
            var len: UInt64 = 0
            let s = out.withUnsafeMutableBufferPointer {
                plexus_wire_encode(e, maxPayload, $0.baseAddress, UInt64(size), &len, &what)
            }
            return s == 0 ? .success(out) : .failure(PlexusError(status: s, Wire.describe(what)))
        }
        return try r.get()
    }

    /// Decodes one whole frame, validating every field.
    public init(frame: [UInt8], maxPayload: UInt64 = UInt64(PLEXUS_MAX_PAYLOAD_LEN)) throws(PlexusError) {
        var e = plexus_envelope_init()
        var what: UnsafePointer<CChar>?
        let r: Result<Envelope, PlexusError> = frame.withUnsafeBufferPointer { b in
            let s = plexus_wire_decode(b.baseAddress, UInt64(b.count), maxPayload, &e, &what)
            if s != 0 { return .failure(PlexusError(status: s, Wire.describe(what))) }
            return withUnsafePointer(to: &e) { .success(Envelope($0)) }
        }
        self = try r.get()
    }
}

public enum Wire {
    public static let headerLength = Int(PLEXUS_WIRE_HEADER_LEN)

    static func describe(_ what: UnsafePointer<CChar>?) -> String {
        what.map { String(cString: $0) } ?? "invalid envelope"
    }

    /// Checks a frame header and returns the body length to read next.
    public static func bodyLength(header: UnsafeRawBufferPointer, maxPayload: UInt64) throws(PlexusError) -> Int {
        var type: UInt8 = 0
        var body: UInt32 = 0
        var what: UnsafePointer<CChar>?
        let s = plexus_wire_decode_header(header.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                          UInt64(header.count), plexus_wire_max_body(maxPayload),
                                          &type, &body, &what)
        if s != 0 { throw PlexusError(status: s, describe(what)) }
        return Int(body)
    }
}
