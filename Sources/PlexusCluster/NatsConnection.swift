import CNats
import Glibc
import Logging
import PlexusCore
import Synchronization

/// One connection to a NATS server through libnats, the official C client:
/// publish, subscribe (with a queue group or not), request. Messages reach
/// a subscription's handler on that subscription's libnats delivery
/// thread; handlers must not block for long (ClusterNode runs quick agents
/// there, InlineDelivery).
/// @unchecked: the libnats handle is thread-safe (libnats locks inside).
final class NatsConnection: @unchecked Sendable {
    typealias Handler = @Sendable (_ subject: String, _ reply: String?, _ data: UnsafeRawBufferPointer) -> Void

    /// The libnats connection; valid from init until close().
    let nc: OpaquePointer   // internal: the JetStream code (JetStream.swift, EventStream.swift) makes its contexts on it
    private let subscriptions = Mutex<[Int: Subscription]>([:])
    private let nextID = Atomic<Int>(0)
    private let closed = Atomic<Bool>(false)
    /// Told when the connection drops and when it is back (libnats' threads).
    let events: ConnectionEvents

    /// Connects, or throws UNAVAILABLE naming the URL and libnats' reason.
    /// `name` shows in the server's connection list (`nats-server` monitoring).
    init(url: String, name: String, credentials: String?) throws(PlexusError) {
        var opts: OpaquePointer?
        guard natsOptions_Create(&opts) == NATS_OK, let opts else { throw PlexusError(.NO_MEMORY, "cannot create NATS options") }
        defer { natsOptions_Destroy(opts) }
        // Several servers (a NATS cluster), comma-separated: libnats connects
        // to one and fails over to the others when it goes away.
        let urls = url.split(separator: ",").map { String($0.filter { !$0.isWhitespace }) }.filter { !$0.isEmpty }
        var s: natsStatus
        if urls.count > 1 {
            var ptrs = urls.map { strdup($0) }
            defer { for p in ptrs { free(p) } }
            s = ptrs.withUnsafeMutableBufferPointer { b in
                b.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: b.count) {
                    natsOptions_SetServers(opts, $0, Int32(b.count))
                }
            }
        } else {
            s = natsOptions_SetURL(opts, urls.first ?? url)
        }
        // tls:// means TLS or no connection: libnats alone would fall back to
        // plain text against a server that does not offer it.
        if s == NATS_OK, urls.contains(where: { $0.lowercased().hasPrefix("tls://") }) { s = natsOptions_SetSecure(opts, true) }
        if s == NATS_OK { s = natsOptions_SetName(opts, name) }
        if s == NATS_OK { s = natsOptions_SetTimeout(opts, 2_000) }
        // Each publish is written at once: otherwise libnats' flusher sends it
        // up to a millisecond later, which would be most of a round trip.
        if s == NATS_OK { s = natsOptions_SetSendAsap(opts, true) }
        // A delivery thread per subscription (not one pool shared by all):
        // agents run on them (InlineDelivery), and a slow one must not hold
        // up the heartbeats' subscription.
        if s == NATS_OK { s = natsOptions_UseGlobalMessageDelivery(opts, false) }
        // Reconnect for as long as the host runs (a restarted server is found again).
        if s == NATS_OK { s = natsOptions_SetMaxReconnect(opts, -1) }
        if s == NATS_OK { s = natsOptions_SetReconnectWait(opts, 250) }
        // libnats' own reconnect buffer is kept small (64 KiB): it only takes
        // what is published in the instant between the connection dropping
        // and libnats noticing. The host's outbox (Outbox.swift, nats.outbox)
        // holds the rest, bounded and visible in `plexus nodes`.
        if s == NATS_OK { s = natsOptions_SetReconnectBufSize(opts, 64 << 10) }
        let events = ConnectionEvents()
        self.events = events
        let ev = Unmanaged.passUnretained(events).toOpaque()
        if s == NATS_OK { s = natsOptions_SetDisconnectedCB(opts, natsDisconnected, ev) }
        if s == NATS_OK { s = natsOptions_SetReconnectedCB(opts, natsReconnected, ev) }
        if s == NATS_OK, let credentials { s = natsOptions_SetUserCredentialsFromFiles(opts, credentials, nil) }
        // What the server refuses later (a publish outside this user's permissions) is logged, not lost.
        if s == NATS_OK { s = natsOptions_SetErrorHandler(opts, natsAsyncError, nil) }
        guard s == NATS_OK else { throw PlexusError(.INVALID_ARGUMENT, "NATS options refused: \(NatsConnection.reason(s))") }
        var conn: OpaquePointer?
        let c = natsConnection_Connect(&conn, opts)
        guard c == NATS_OK, let conn else {
            throw PlexusError(.UNAVAILABLE, "cannot connect to NATS at \(NatsConnection.redacted(url)): \(NatsConnection.reason(c))")
        }
        nc = conn
    }

    /// libnats' text for a status, with its last error's detail when it has one.
    static func reason(_ s: natsStatus) -> String {
        let text = String(cString: natsStatus_GetText(s))
        var last = NATS_OK
        if let p = nats_GetLastError(&last), last == s {
            // libnats' detail reads "(conn.c:773): <text or more>": keep only
            // what it adds beyond the status's own text.
            var detail = String(cString: p)
            if detail.hasPrefix("("), let close = detail.firstIndex(of: ")"), detail[detail.index(after: close)...].hasPrefix(": ") {
                detail = String(detail[detail.index(close, offsetBy: 3)...])
            }
            if !detail.isEmpty && detail != text { return detail.contains(text) ? detail : "\(text): \(detail)" }
        }
        return text
    }

    /// A URL (or a comma-separated list) with any password replaced, for messages and logs.
    static func redacted(_ url: String) -> String {
        if url.contains(",") { return url.split(separator: ",").map { redacted(String($0)) }.joined(separator: ",") }
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let at = parts[1].firstIndex(of: "@") else { return url }
        let user = parts[1][..<at]
        guard user.contains(":") else { return url }
        let name = user.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
        return "\(parts[0])://\(name):***" + String(parts[1][at...])
    }

    /// The client side of the connection: "127.0.0.1:51234".
    var localAddress: String {
        var ip: UnsafeMutablePointer<CChar>?
        var port: Int32 = 0
        guard natsConnection_GetLocalIPAndPort(nc, &ip, &port) == NATS_OK, let ip else { return "?" }
        defer { free(ip) }
        return "\(String(cString: ip)):\(port)"
    }

    var isConnected: Bool { natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED }

    /// "connected", "reconnecting", "closed"…, for `plexus nodes`.
    var stateText: String {
        switch natsConnection_Status(nc) {
        case NATS_CONN_STATUS_CONNECTED: return "connected"
        case NATS_CONN_STATUS_RECONNECTING: return "reconnecting"
        case NATS_CONN_STATUS_CONNECTING: return "connecting"
        case NATS_CONN_STATUS_CLOSED: return "closed"
        case NATS_CONN_STATUS_DISCONNECTED: return "disconnected"
        default: return "draining"
        }
    }

    /// The server this connection is on now ("" while reconnecting).
    var connectedURL: String {
        var buf = [CChar](repeating: 0, count: 512)
        guard natsConnection_GetConnectedUrl(nc, &buf, buf.count) == NATS_OK else { return "" }
        return NatsConnection.redacted(String(cString: buf))
    }

    /// TOO_LARGE for a message the server would refuse (its max_payload,
    /// 1 MiB by default, may be below the host's own payload limit); nil
    /// when it fits or the limit is not known yet (not connected).
    func refusal(ofSize bytes: Int) -> PlexusError? {
        let max = natsConnection_GetMaxPayload(nc)
        guard max > 0, bytes > Int(max) else { return nil }
        return PlexusError(.TOO_LARGE, "the message is \(bytes) bytes across hosts; the NATS server takes at most \(max) per message (its max_payload: raise it in nats-server's configuration)")
    }

    /// Hands bytes to libnats when connected: .down while it reconnects (or
    /// its small reconnect buffer is full), .failed when closed or refused.
    func tryPublish(_ subject: String, _ data: UnsafeRawBufferPointer) -> PublishOutcome {
        if let tooLarge = refusal(ofSize: data.count) { return .failed(tooLarge) }
        guard isConnected else { return closed.load(ordering: .relaxed) ? .failed(PlexusError(.UNAVAILABLE, "the NATS connection is closed (the host is stopping)")) : .down }
        let s = natsConnection_Publish(nc, subject, data.baseAddress, Int32(data.count))
        switch s {
        case NATS_OK: return .sent
        case NATS_INSUFFICIENT_BUFFER, NATS_CONNECTION_DISCONNECTED, NATS_NOT_YET_CONNECTED, NATS_IO_ERROR: return .down
        default: return .failed(PlexusError(.UNAVAILABLE, "NATS did not take the message for \(subject): \(NatsConnection.reason(s))"))
        }
    }

    /// Publishes bytes on subject (buffered; libnats' flusher sends them).
    func publish(_ subject: String, _ data: UnsafeRawBufferPointer) throws(PlexusError) {
        if let tooLarge = refusal(ofSize: data.count) { throw tooLarge }
        let s = natsConnection_Publish(nc, subject, data.baseAddress, Int32(data.count))
        guard s == NATS_OK else { throw PlexusError(.UNAVAILABLE, "NATS did not take the message for \(subject): \(NatsConnection.reason(s))") }
    }

    func publish(_ subject: String, _ bytes: [UInt8]) throws(PlexusError) {
        let r: Result<Void, PlexusError> = bytes.withUnsafeBytes { b in
            do throws(PlexusError) { try publish(subject, b); return .success(()) } catch { return .failure(error) }
        }
        try r.get()
    }

    /// Sends everything buffered and waits for the server to have it.
    func flush(timeoutMs: Int64) { _ = natsConnection_FlushTimeout(nc, timeoutMs) }

    /// Sends a request and waits for the first answer: its bytes, or nil
    /// when no one answered (no responders, or timeoutMs passed).
    func request(_ subject: String, _ bytes: [UInt8], timeoutMs: Int64) -> [UInt8]? {
        var reply: OpaquePointer?
        let s = bytes.withUnsafeBytes { b in natsConnection_Request(&reply, nc, subject, b.baseAddress, Int32(b.count), timeoutMs) }
        guard s == NATS_OK, let reply else { return nil }
        defer { natsMsg_Destroy(reply) }
        if natsMsg_IsNoResponders(reply) { return nil }
        let n = Int(natsMsg_GetDataLength(reply))
        guard n > 0, let p = natsMsg_GetData(reply) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n).bindMemory(to: UInt8.self))
    }

    /// Subscribes handler to subject (NATS wildcards allowed), in `queue`'s
    /// group when given: the group's members share its messages, each
    /// message going to one. Returns the id unsubscribe takes.
    func subscribe(_ subject: String, queue: String? = nil, _ handler: @escaping Handler) throws(PlexusError) -> Int {
        let box = Unmanaged.passRetained(HandlerBox(handler))
        var sub: OpaquePointer?
        let s: natsStatus
        if let queue {
            s = natsConnection_QueueSubscribe(&sub, nc, subject, queue, natsDeliver, box.toOpaque())
        } else {
            s = natsConnection_Subscribe(&sub, nc, subject, natsDeliver, box.toOpaque())
        }
        guard s == NATS_OK, let sub else {
            box.release()
            throw PlexusError(.UNAVAILABLE, "cannot subscribe to \(subject): \(NatsConnection.reason(s))")
        }
        // Bounded: at most 65,536 messages or 64 MiB wait in libnats for one
        // subscription's handler; past that libnats drops them and reports a
        // slow consumer (logged), so a flood from other hosts cannot grow
        // this host's memory without bound. Handlers never block (a full
        // mailbox answers MAILBOX_FULL to the remote caller), so the limit
        // is reached only when the delivery thread itself falls behind.
        _ = natsSubscription_SetPendingLimits(sub, NatsConnection.pendingMessages, NatsConnection.pendingBytes)
        let id = nextID.add(1, ordering: .relaxed).newValue
        subscriptions.withLock { $0[id] = Subscription(sub: sub, box: box) }
        return id
    }

    static let pendingMessages: Int32 = 65_536
    static let pendingBytes: Int32 = 64 << 20

    func unsubscribe(_ id: Int) {
        guard let s = subscriptions.withLock({ $0.removeValue(forKey: id) }) else { return }
        s.end()
    }

    /// Unsubscribes everything and closes the connection (sending what is
    /// buffered first). A publish after it fails (CONNECTION_CLOSED); the
    /// handle itself is freed only with this object, so a router thread
    /// still holding the routes never reaches freed memory.
    func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = natsConnection_FlushTimeout(nc, 500)
        for s in subscriptions.withLock({ d -> [Subscription] in let all = Array(d.values); d.removeAll(); return all }) { s.end() }
        natsConnection_Close(nc)
    }

    deinit {
        close()
        natsConnection_Destroy(nc)
    }
}

/// A live libnats subscription and the handler it calls.
private struct Subscription: @unchecked Sendable {
    let sub: OpaquePointer
    let box: Unmanaged<HandlerBox>
    /// Unsubscribes. The handler box is never released: a delivery already
    /// under way on libnats' thread may still read it, and it is a few bytes
    /// per subscription ended (capabilities come and go rarely).
    func end() {
        _ = natsSubscription_Unsubscribe(sub)
        natsSubscription_Destroy(sub)
    }
}

/// The connection's drop and return, for the outbox (set once, before use).
final class ConnectionEvents: Sendable {
    private let handlers = Mutex<(down: (@Sendable () -> Void)?, back: (@Sendable () -> Void)?)>((nil, nil))
    func on(down: @escaping @Sendable () -> Void, back: @escaping @Sendable () -> Void) { handlers.withLock { $0 = (down, back) } }
    func disconnected() { handlers.withLock { $0.down }?() }
    func reconnected() { handlers.withLock { $0.back }?() }
}

private func natsDisconnected(_ nc: OpaquePointer?, _ closure: UnsafeMutableRawPointer?) {
    guard let closure else { return }
    Unmanaged<ConnectionEvents>.fromOpaque(closure).takeUnretainedValue().disconnected()
}

private func natsReconnected(_ nc: OpaquePointer?, _ closure: UnsafeMutableRawPointer?) {
    guard let closure else { return }
    Unmanaged<ConnectionEvents>.fromOpaque(closure).takeUnretainedValue().reconnected()
}

private final class HandlerBox: Sendable {
    let handler: NatsConnection.Handler
    init(_ h: @escaping NatsConnection.Handler) { handler = h }
}

private let asyncLogger = Logger(label: "plexus.cluster.nats")

/// libnats' asynchronous errors: a permissions violation (a publish or
/// subscription this node's NATS user may not make), a slow consumer.
private func natsAsyncError(_ nc: OpaquePointer?, _ sub: OpaquePointer?, _ err: natsStatus, _ closure: UnsafeMutableRawPointer?) {
    var text: UnsafePointer<CChar>?
    if let nc { _ = natsConnection_GetLastError(nc, &text) }
    asyncLogger.error("NATS refused an operation", metadata: [
        "status": "\(String(cString: natsStatus_GetText(err)))", "detail": "\(text.map { String(cString: $0) } ?? "")"])
}

/// libnats' message callback: hands the message to the subscription's
/// handler, then frees it.
private func natsDeliver(_ nc: OpaquePointer?, _ sub: OpaquePointer?, _ msg: OpaquePointer?, _ closure: UnsafeMutableRawPointer?) {
    guard let msg, let closure else { return }
    defer { natsMsg_Destroy(msg) }
    let box = Unmanaged<HandlerBox>.fromOpaque(closure).takeUnretainedValue()
    let subject = natsMsg_GetSubject(msg).map { String(cString: $0) } ?? ""
    let reply = natsMsg_GetReply(msg).map { String(cString: $0) }
    let n = Int(natsMsg_GetDataLength(msg))
    box.handler(subject, reply, UnsafeRawBufferPointer(start: natsMsg_GetData(msg), count: n))
}

extension ClusterNode {
    /// A NATS URL with any password replaced, for messages and logs.
    public static func redacted(_ url: String) -> String { NatsConnection.redacted(url) }
}
