import Glibc
import PlexusCore
import PlexusHost

/// A connection to a running host, speaking envelope frames. Every frame the
/// client sends is answered by exactly one final frame whose correlation_id
/// is the client's frame id: the reply for a QUERY (after any partial
/// answers, flag MORE), an acknowledgement (RESPONSE) or an ERROR for a
/// COMMAND or EVENT. Not thread-safe: one call at a time (cancel excepted).
public final class SocketClient {
    private let fd: Int32
    private let io: FrameIO
    private var nextID: UInt64 = 1
    private let node = UInt64.random(in: 1...UInt64.max)

    /// Connects; throws when no host is listening at path.
    public init(path: String, maxPayload: UInt64 = UInt64(PLEXUS_MAX_PAYLOAD_LEN)) throws(PlexusError) {
        guard var addr = SocketPath.address(path) else {
            throw PlexusError(.INVALID_ARGUMENT, "socket path is longer than 107 bytes: \(path)")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw PlexusError(.INTERNAL, "socket: \(String(cString: strerror(errno)))") }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw PlexusError(.SHUTTING_DOWN, "no host is running at \(path) (\(why))")
        }
        self.fd = fd
        self.io = FrameIO(fd: fd, maxPayload: maxPayload)
    }

    deinit { close(fd) }

    /// Sends a query and waits for its answer; an ERROR answer is thrown.
    public func call(_ env: Envelope, timeoutMs: Int64) throws(PlexusError) -> Envelope {
        var q = env
        q.kind = .query
        q.deadlineUnixNs = unixNow() + timeoutMs * 1_000_000
        let reply = try exchange(q)
        if reply.kind == .error { throw Host.error(from: reply) }
        return reply
    }

    /// Sends a query and hands each partial answer to `onPartial` as it
    /// arrives; returns the final answer (an ERROR is thrown: TIMEOUT when
    /// the deadline passes mid-stream, CANCELLED after cancel). `started`
    /// gets the query's id, for cancel, before the wait begins.
    public func stream(_ env: Envelope, timeoutMs: Int64, started: (plexus_id) -> Void = { _ in },
                       onPartial: (Envelope) -> Void) throws(PlexusError) -> Envelope {
        var q = env
        q.kind = .query
        q.deadlineUnixNs = unixNow() + timeoutMs * 1_000_000
        let reply = try exchange(q, started: started, onPartial: onPartial)
        if reply.kind == .error { throw Host.error(from: reply) }
        return reply
    }

    /// Asks the host to cancel the query `id` (from `stream`'s started):
    /// its answer becomes ERROR CANCELLED and its agent is told. Safe to call
    /// from another thread while `stream` or `call` waits (it only writes
    /// one frame); a refusal (the query was answered already) arrives as an
    /// ERROR the waiting call skips.
    public func cancel(_ id: plexus_id) throws(PlexusError) {
        // Its own id space (hi differs from every query's), so no counter is shared with the waiting thread.
        let e = Envelope(kind: .cancel, target: .reply, contentType: "", id: plexus_id(hi: ~node, lo: id.lo), correlationID: id)
        try io.write(e)
    }

    /// Says hello as `client` of the host's plexus.yaml, with its token:
    /// its grants then decide what this connection may do. Returns them.
    @discardableResult
    public func hello(_ client: String, token: String?) throws(PlexusError) -> JSONValue {
        var args: [String: JSONValue] = ["client": .string(client)]
        if let token { args["token"] = .string(token) }
        let reply = try call(Envelope(kind: .query, target: .capability("plexus.hello"), payload: Array(JSONValue.object(args).text.utf8),
                                      contentType: "application/json"), timeoutMs: 10_000)
        return (try? JSONValue.parse(reply.payload))?["grants"] ?? .null
    }

    /// Sends a command or event; returns the id the host gave it.
    public func send(_ env: Envelope) throws(PlexusError) -> plexus_id {
        let ack = try exchange(env)
        if ack.kind == .error { throw Host.error(from: ack) }
        if case .string(let hex)? = (try? JSONValue.parse(ack.payload))?["id"], let id = plexus_id(hex: hex) { return id }
        return .none
    }

    private func exchange(_ env: Envelope, started: (plexus_id) -> Void = { _ in },
                          onPartial: (Envelope) -> Void = { _ in }) throws(PlexusError) -> Envelope {
        var e = env
        e.id = plexus_id(hi: node, lo: nextID)
        nextID += 1
        try io.write(e)
        started(e.id)
        while true {
            guard case .frame(let f) = try io.read() else {
                throw PlexusError(.SHUTTING_DOWN, "the host closed the connection before answering")
            }
            let reply = try Envelope(frame: f)
            guard reply.correlationID == e.id else { continue }
            if reply.isPartial { onPartial(reply); continue }
            return reply
        }
    }

    private func unixNow() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
