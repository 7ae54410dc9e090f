// PlexusAgent — write a Plexus agent in Swift.
//
//     final class Upper: PlexusAgent.Agent {
//         init(context: AgentContext, config: String) throws {}
//         func handle(_ m: AgentMessage, context: AgentContext) throws {
//             guard m.target == "text.upper" else { throw AgentError(PLEXUS_UNSUPPORTED, "upper answers text.upper only") }
//             try context.reply(to: m, text: m.text.uppercased())
//         }
//     }
//     @_cdecl("plexus_plugin_entry")
//     public func plexusPluginEntry() -> UnsafeRawPointer {
//         PluginExport.descriptor(Upper.self, name: "upper", version: "1.0.0",
//                                 capabilities: [.init("text.upper", "upper-cases text")])
//     }
//
// Build it as a `.dynamic` library product. Errors thrown from init/handle
// become a status (AgentError's, or HANDLER_FAILED); nothing unwinds into C.
// The caller of a query whose handler threw gets that status with the
// AgentError's message (or the error's description) as the error's message.
@_exported import CPlexus
import Glibc

public struct AgentError: Error, Sendable {
    public let status: plexus_status
    public let message: String
    public init(_ status: plexus_status_code, _ message: String = "") {
        self.status = plexus_status(status.rawValue); self.message = message
    }
    init(code: plexus_status) { status = code; message = String(cString: plexus_status_name(code)) }
}

public enum AgentMessageKind: UInt8, Sendable {
    case command = 0, query, response, event, error
    /// (ABI 1.2) The caller of the query `correlationID` names cancelled it.
    case cancel
}

/// A delivered message, copied out of the borrowed envelope.
public struct AgentMessage: Sendable {
    public let kind: AgentMessageKind
    public let target: String
    public let sender: String
    public let contentType: String
    public let id: plexus_id
    public let correlationID: plexus_id
    public let status: plexus_status
    public let payload: [UInt8]
    /// PLEXUS_FLAG_* (ABI 1.2).
    public let flags: UInt8
    public var text: String { String(decoding: payload, as: UTF8.self) }
    /// A partial answer to one of this agent's requests: more follow (ABI 1.2).
    public var isPartial: Bool { kind == .response && flags & UInt8(PLEXUS_FLAG_MORE) != 0 }
    /// The host's news that a child this agent spawned ended (ABI 1.2): an
    /// EVENT to "plexus.agent.terminated" from "plexus"; `text` is
    /// {"name":..., "reason":..., "exit":...}.
    public var isChildTerminated: Bool { kind == .event && target == "plexus.agent.terminated" && sender == "plexus" }

    init(_ e: UnsafePointer<plexus_envelope>) {
        let c = e.pointee
        func s(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }
        kind = AgentMessageKind(rawValue: c.kind) ?? .command
        target = s(c.target); sender = s(c.sender); contentType = s(c.content_type)
        id = c.id; correlationID = c.correlation_id; status = c.status; flags = c.flags
        payload = c.payload.map { Array(UnsafeBufferPointer(start: $0, count: Int(c.payload_len))) } ?? []
    }
}

/// The agent's handle on the host, valid from init until shutdown returns.
public struct AgentContext: @unchecked Sendable {
    let host: UnsafePointer<plexus_host>
    let ctx: OpaquePointer

    private func check(_ s: plexus_status) throws(AgentError) { if s != 0 { throw AgentError(code: s) } }

    private func withEnvelope<R>(target: String, kind: UInt8, targetKind: UInt32, contentType: String,
                                 payload: [UInt8], _ body: (UnsafeMutablePointer<plexus_envelope>) -> R) -> R {
        target.withCString { t in
            contentType.withCString { ct in
                payload.withUnsafeBufferPointer { p in
                    var e = plexus_envelope_init()
                    e.kind = kind; e.target_kind = UInt8(targetKind)
                    e.target = t; e.content_type = ct
                    e.payload = p.baseAddress; e.payload_len = UInt64(p.count)
                    return body(&e)
                }
            }
        }
    }

    /// Answers the query `request` (or the query with id `request.id` later).
    public func reply(to request: AgentMessage, payload: [UInt8], contentType: String = "application/json") throws(AgentError) {
        try reply(toID: request.id, payload: payload, contentType: contentType)
    }

    public func reply(to request: AgentMessage, text: String, contentType: String = "text/plain") throws(AgentError) {
        try reply(toID: request.id, payload: Array(text.utf8), contentType: contentType)
    }

    public func reply(toID id: plexus_id, payload: [UInt8], contentType: String = "application/json",
                      error: plexus_status = 0) throws(AgentError) {
        let s = withEnvelope(target: "", kind: error == 0 ? 2 : 4, targetKind: PLEXUS_TARGET_REPLY.rawValue,
                             contentType: contentType, payload: payload) { e in
            e.pointee.correlation_id = id
            e.pointee.status = error
            return host.pointee.reply(ctx, e)
        }
        try check(s)
    }

    /// Sends a query; its answer arrives at handle() with correlationID == the returned id.
    public func request(_ capability: String, payload: [UInt8], contentType: String = "application/json",
                        timeoutMs: UInt32 = 0) throws(AgentError) -> plexus_id {
        var id = plexus_id(hi: 0, lo: 0)
        let s = withEnvelope(target: capability, kind: 1, targetKind: PLEXUS_TARGET_CAPABILITY.rawValue,
                             contentType: contentType, payload: payload) { e in
            host.pointee.request(ctx, e, timeoutMs, &id)
        }
        try check(s)
        return id
    }

    /// Sends one partial answer to the query `request` (ABI 1.2); the
    /// request stays open for more and for the final reply. NOT_A_REQUEST
    /// once its caller cancelled or its deadline passed: stop there.
    public func replyPartial(to request: AgentMessage, payload: [UInt8], contentType: String = "application/json") throws(AgentError) {
        guard host.pointee.struct_size >= PLEXUS_HOST_SIZE_1_2, let f = host.pointee.reply_partial else {
            throw AgentError(PLEXUS_UNSUPPORTED, "the host is older than ABI 1.2: no streaming replies")
        }
        let s = withEnvelope(target: "", kind: 2, targetKind: PLEXUS_TARGET_REPLY.rawValue,
                             contentType: contentType, payload: payload) { e in
            e.pointee.correlation_id = request.id
            return f(ctx, e)
        }
        try check(s)
    }

    /// Cancels one of this agent's requests (ABI 1.2): its answer becomes an
    /// ERROR CANCELLED, and its handler receives a CANCEL.
    public func cancel(_ requestID: plexus_id) throws(AgentError) {
        guard host.pointee.struct_size >= PLEXUS_HOST_SIZE_1_2, let f = host.pointee.cancel else {
            throw AgentError(PLEXUS_UNSUPPORTED, "the host is older than ABI 1.2: no cancel")
        }
        try check(f(ctx, requestID))
    }

    /// Starts a child of this agent from the loaded plugin `plugin` (ABI
    /// 1.2), `config` (a JSON object; nil: "{}") given to its init; returns
    /// its agent name (THIS_AGENT/INSTANCE; `instance` nil lets the host
    /// choose). plexus.yaml must let this plugin spawn that one
    /// (`plugins.NAME.spawn`): PERMISSION_DENIED otherwise, LIMIT_REACHED
    /// over its max_children. Blocks until the child's init returned.
    public func spawn(_ plugin: String, instance: String? = nil, config: String? = nil) throws(AgentError) -> String {
        guard host.pointee.struct_size >= PLEXUS_HOST_SIZE_1_2, let f = host.pointee.spawn else {
            throw AgentError(PLEXUS_UNSUPPORTED, "the host is older than ABI 1.2: no spawn")
        }
        var out = [CChar](repeating: 0, count: Int(PLEXUS_MAX_NAME_LEN) + 1)
        let n = UInt32(out.count)
        let s = plugin.withCString { p in
            Self.withOptionalCString(instance) { i in
                Self.withOptionalCString(config) { c in out.withUnsafeMutableBufferPointer { f(ctx, p, i, c, $0.baseAddress, n) } }
            }
        }
        try check(s)
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Stops a child this agent spawned (ABI 1.2); PERMISSION_DENIED for any other agent.
    public func stop(_ child: String) throws(AgentError) {
        guard host.pointee.struct_size >= PLEXUS_HOST_SIZE_1_2, let f = host.pointee.stop else {
            throw AgentError(PLEXUS_UNSUPPORTED, "the host is older than ABI 1.2: no stop")
        }
        try check(child.withCString { f(ctx, $0) })
    }

    private static func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
        guard let s else { return body(nil) }
        return s.withCString { body($0) }
    }

    public func send(_ capability: String, payload: [UInt8], contentType: String = "application/json") throws(AgentError) {
        let s = withEnvelope(target: capability, kind: 0, targetKind: PLEXUS_TARGET_CAPABILITY.rawValue,
                             contentType: contentType, payload: payload) { host.pointee.send(ctx, $0) }
        try check(s)
    }

    public func publish(_ subject: String, payload: [UInt8], contentType: String = "application/json") throws(AgentError) {
        let s = withEnvelope(target: subject, kind: 3, targetKind: PLEXUS_TARGET_TOPIC.rawValue,
                             contentType: contentType, payload: payload) { host.pointee.publish(ctx, $0) }
        try check(s)
    }

    public func subscribe(_ pattern: String) throws(AgentError) {
        try check(pattern.withCString { host.pointee.subscribe(ctx, $0) })
    }

    public func log(_ level: plexus_log_level, _ message: String) {
        message.withCString { host.pointee.log(ctx, Int32(level.rawValue), $0) }
    }

    // MARK: key-value (ABI 1.1): this plugin's durable namespace

    /// A host older than ABI 1.1 has no kv_* functions.
    private func kvHost() throws(AgentError) -> plexus_host {
        // Read no further than the host's struct_size: only a 1.1 table has kv_*.
        guard host.pointee.struct_size >= PLEXUS_HOST_SIZE_1_1, host.pointee.kv_get != nil else { throw AgentError(PLEXUS_UNSUPPORTED, "the host is older than ABI 1.1: no key-value store") }
        return host.pointee
    }

    /// The value and version of key; nil when absent.
    public func kvGet(_ key: String) throws(AgentError) -> (value: [UInt8], version: UInt64)? {
        let h = try kvHost()
        var p: UnsafeMutablePointer<UInt8>?
        var n: UInt64 = 0, v: UInt64 = 0
        try check(key.withCString { h.kv_get(ctx, $0, &p, &n, &v) })
        guard v > 0 else { return nil }
        defer { h.free(p) }
        return (p.map { Array(UnsafeBufferPointer(start: $0, count: Int(n))) } ?? [], v)
    }

    /// Writes key when it is at `expected` (nil: any version; 0: create
    /// only) and returns the new version; throws CONFLICT when it moved on.
    @discardableResult
    public func kvPut(_ key: String, _ value: [UInt8], expected: UInt64? = nil) throws(AgentError) -> UInt64 {
        let h = try kvHost()
        var v: UInt64 = 0
        let e = expected.map { Int64($0) } ?? Int64(PLEXUS_KV_ANY)
        try check(key.withCString { k in value.withUnsafeBufferPointer { h.kv_put(ctx, k, $0.baseAddress, UInt64($0.count), e, &v) } })
        return v
    }

    /// Removes key when it is at `expected` (nil: whatever is there).
    public func kvDelete(_ key: String, expected: UInt64? = nil) throws(AgentError) {
        let h = try kvHost()
        let e = expected.map { Int64($0) } ?? Int64(PLEXUS_KV_ANY)
        try check(key.withCString { h.kv_delete(ctx, $0, e) })
    }
}

public protocol Agent: AnyObject {
    init(context: AgentContext, config: String) throws
    func handle(_ message: AgentMessage, context: AgentContext) throws
    func shutdown(context: AgentContext)
}

extension Agent {
    public func shutdown(context: AgentContext) {}
}

/// Builds the static descriptor for one Agent type and the C trampolines
/// that call it. One agent type per library.
public enum PluginExport {
    public struct Capability: Sendable {
        let name: String, description: String, input: String?, output: String?
        public init(_ name: String, _ description: String, input: String? = nil, output: String? = nil) {
            self.name = name; self.description = description; self.input = input; self.output = output
        }
    }

    /// What the agent asks to reach; plexus.yaml may grant otherwise.
    /// Without a grant, a request, send, publish or subscribe is refused
    /// with PERMISSION_DENIED.
    public struct Permission: Sendable {
        let kind: plexus_permission_kind, pattern: String
        public static func call(_ pattern: String) -> Permission { .init(kind: PLEXUS_PERMIT_CALL, pattern: pattern) }
        public static func publish(_ pattern: String) -> Permission { .init(kind: PLEXUS_PERMIT_PUBLISH, pattern: pattern) }
        public static func subscribe(_ pattern: String) -> Permission { .init(kind: PLEXUS_PERMIT_SUBSCRIBE, pattern: pattern) }
    }

    private final class Instance {
        let agent: any Agent
        let context: AgentContext
        init(_ a: any Agent, _ c: AgentContext) { agent = a; context = c }
    }

    nonisolated(unsafe) private static var factory: ((AgentContext, String) throws -> any Agent)?
    nonisolated(unsafe) private static var built: UnsafePointer<plexus_plugin_descriptor>?

    private static func status(of error: any Error) -> plexus_status {
        (error as? AgentError).map { $0.status != 0 ? $0.status : plexus_status(PLEXUS_HANDLER_FAILED.rawValue) }
            ?? plexus_status(PLEXUS_HANDLER_FAILED.rawValue)
    }

    /// Answers the query a handler threw on with the error's status and text
    /// (an AgentError's message, else the error's description), so that the
    /// caller learns why; the host then finds the query answered. An
    /// AgentError without a message is left to the host's generic answer, and
    /// a query the handler already answered refuses this one (harmless).
    private static func answer(_ m: AgentMessage, failedWith s: plexus_status, _ error: any Error, context: AgentContext) {
        guard m.kind == .query else { return }
        let text = (error as? AgentError).map(\.message) ?? String(describing: error)
        guard !text.isEmpty else { return }
        let body = "{\"error\":\(jsonString(String(cString: plexus_status_name(s)))),\"message\":\(jsonString(text))}"
        try? context.reply(toID: m.id, payload: Array(body.utf8), contentType: "application/json", error: s)
    }

    /// Returns the descriptor, building it on first use (strings are copied
    /// once and live as long as the library).
    public static func descriptor<A: Agent>(_ type: A.Type, name: String, version: String,
                                            description: String? = nil,
                                            capabilities: [Capability],
                                            permissions: [Permission] = []) -> UnsafeRawPointer {
        if let built { return UnsafeRawPointer(built) }
        factory = { try A(context: $0, config: $1) }
        let caps = UnsafeMutablePointer<plexus_capability>.allocate(capacity: max(1, capabilities.count))
        for (i, c) in capabilities.enumerated() {
            caps[i] = plexus_capability(struct_size: UInt32(MemoryLayout<plexus_capability>.size),
                                        name: strdup(c.name), description: strdup(c.description),
                                        input: c.input.map { UnsafePointer(strdup($0)) }, output: c.output.map { UnsafePointer(strdup($0)) })
        }
        let d = UnsafeMutablePointer<plexus_plugin_descriptor>.allocate(capacity: 1)
        d.initialize(to: plexus_plugin_descriptor())
        d.pointee.struct_size = UInt32(MemoryLayout<plexus_plugin_descriptor>.size)
        d.pointee.abi_major = UInt16(PLEXUS_ABI_MAJOR)
        d.pointee.abi_minor = UInt16(PLEXUS_ABI_MINOR)
        d.pointee.envelope_size = UInt32(MemoryLayout<plexus_envelope>.size)
        d.pointee.host_size = UInt32(MemoryLayout<plexus_host>.size)
        d.pointee.name = UnsafePointer(strdup(name))
        d.pointee.version = UnsafePointer(strdup(version))
        d.pointee.description = description.map { UnsafePointer(strdup($0)) }
        d.pointee.capability_count = UInt32(capabilities.count)
        d.pointee.capabilities = UnsafePointer(caps)
        let perms = UnsafeMutablePointer<plexus_permission>.allocate(capacity: max(1, permissions.count))
        for (i, p) in permissions.enumerated() {
            perms[i] = plexus_permission(struct_size: UInt32(MemoryLayout<plexus_permission>.size),
                                         kind: p.kind.rawValue, pattern: strdup(p.pattern))
        }
        d.pointee.permission_count = UInt32(permissions.count)
        d.pointee.permissions = UnsafePointer(perms)
        d.pointee.`init` = { host, ctx, config, out in
            guard let host, let ctx, let out, let factory = PluginExport.factory else { return plexus_status(PLEXUS_INVALID_ARGUMENT.rawValue) }
            let context = AgentContext(host: host, ctx: ctx)
            do {
                let agent = try factory(context, config.map { String(cString: $0) } ?? "{}")
                out.pointee = Unmanaged.passRetained(Instance(agent, context)).toOpaque()
                return 0
            } catch { return PluginExport.status(of: error) }
        }
        d.pointee.handle = { state, _, msg in
            guard let state, let msg else { return plexus_status(PLEXUS_INVALID_ARGUMENT.rawValue) }
            let inst = Unmanaged<Instance>.fromOpaque(state).takeUnretainedValue()
            let m = AgentMessage(msg)
            do { try inst.agent.handle(m, context: inst.context); return 0 }
            catch {
                let s = PluginExport.status(of: error)
                PluginExport.answer(m, failedWith: s, error, context: inst.context)
                return s
            }
        }
        d.pointee.shutdown = { state in
            guard let state else { return }
            let inst = Unmanaged<Instance>.fromOpaque(state).takeRetainedValue()
            inst.agent.shutdown(context: inst.context)
        }
        built = UnsafePointer(d)
        return UnsafeRawPointer(d)
    }
}

/// A JSON string literal (quotes included) for s.
public func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where u.value < 0x20:
            let h = String(u.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}

extension plexus_id: @retroactive Equatable, @retroactive Hashable, @unchecked @retroactive Sendable {
    public static func == (a: plexus_id, b: plexus_id) -> Bool { a.hi == b.hi && a.lo == b.lo }
    public func hash(into h: inout Hasher) { h.combine(hi); h.combine(lo) }
}
