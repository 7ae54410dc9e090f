import PlexusThreads
import CPlexus
import CPlexusInternal
import Glibc
import Logging
import PlexusCore

/// The plexus_host function table every plugin receives at init. Each entry
/// recovers its Agent from the opaque ctx and turns Swift errors into a
/// status: nothing thrown here ever reaches plugin code. The argument checks
/// are the C ones the worker's table runs too (plexus_contract.h), so a
/// plugin hears the same status in process and sandboxed.
enum HostTable {
    nonisolated(unsafe) static let pointer: UnsafePointer<plexus_host> = {
        let p = UnsafeMutablePointer<plexus_host>.allocate(capacity: 1)
        p.initialize(to: plexus_host())
        p.pointee.struct_size = UInt32(MemoryLayout<plexus_host>.size)
        p.pointee.abi_major = UInt16(PLEXUS_ABI_MAJOR)
        p.pointee.abi_minor = UInt16(PLEXUS_ABI_MINOR)
        // send, request and reply borrow the agent from ctx (Agent.borrow):
        // the message path takes no reference to it until a mailbox must.
        p.pointee.send = { ctx, msg in
            guard let ctx else { return PLEXUS_INVALID_ARGUMENT.status }
            return Agent.borrow(ctx) { a in
                checked(msg, a) { e throws(PlexusError) in _ = try a.borrowRouter { r throws(PlexusError) in try r.route(e, from: origin(a)) } }
            }
        }
        p.pointee.request = { ctx, msg, timeoutMs, outID in
            guard let ctx else { return PLEXUS_INVALID_ARGUMENT.status }
            return Agent.borrow(ctx) { a in
                checked(msg, a, kind: .query) { e throws(PlexusError) in
                    let id = try a.borrowRouter { r throws(PlexusError) in try r.route(e, from: origin(a), request: (.agent(a), Int64(timeoutMs))) }
                    outID?.pointee = id
                }
            }
        }
        p.pointee.reply = { ctx, msg in
            guard let ctx else { return PLEXUS_INVALID_ARGUMENT.status }
            var e = plexus_envelope()
            let s = plexus_contract_envelope(msg, &e, nil)
            guard s == 0 else { return s }
            // The fields are checked once the request is found (Router.reply):
            // a refused reply then ends the request with that status.
            return Agent.borrow(ctx) { a in
                status { () throws(PlexusError) in try a.borrowRouter { r throws(PlexusError) in try r.reply(&e, from: origin(a)) } }
            }
        }
        p.pointee.publish = { ctx, msg in
            guard let ctx else { return PLEXUS_INVALID_ARGUMENT.status }
            let a = Agent.from(ctx)
            return checked(msg, a, kind: .event, topicOnly: true) { e throws(PlexusError) in try a.router.route(e, from: origin(a)) }
        }
        p.pointee.subscribe = { ctx, pattern in
            guard let ctx, let pattern else { return PLEXUS_INVALID_ARGUMENT.status }
            let a = Agent.from(ctx)
            return status { () throws(PlexusError) in try a.router.subscribe(a, String(cString: pattern)) }
        }
        p.pointee.unsubscribe = { ctx, pattern in
            guard let ctx, let pattern else { return PLEXUS_INVALID_ARGUMENT.status }
            let a = Agent.from(ctx)
            return a.router.registry.unsubscribe(a, String(cString: pattern)) ? 0 : PLEXUS_INVALID_ARGUMENT.status
        }
        p.pointee.log = { ctx, level, message in
            guard let ctx, let message else { return }
            let a = Agent.from(ctx)
            a.logger.log(level: logLevel(level), "\(String(cString: message))")
        }
        p.pointee.alloc = { size in plexus_contract_alloc(size) }   // NULL past PTRDIFF_MAX: Int(size) would trap
        p.pointee.free = { ptr in free(ptr) }
        p.pointee.now_unix_ns = { Clock.unixNanos() }
        p.pointee.agent_name = { ctx in
            guard let ctx else { return nil }
            return UnsafePointer(Agent.from(ctx).cName)
        }
        installKeyValue(p)
        installStreams(p)
        installSpawn(p)
        return UnsafePointer(p)
    }()

    /// send/request/publish: the envelope read no further than its
    /// struct_size, the kind the function forces, then the fields, in the
    /// order the worker checks them; then `body` routes the checked copy.
    private static func checked(_ msg: UnsafePointer<plexus_envelope>?, _ a: Agent, kind: MessageKind? = nil, topicOnly: Bool = false,
                                _ body: (UnsafePointer<plexus_envelope>) throws(PlexusError) -> Void) -> plexus_status {
        var e = plexus_envelope()
        var s = plexus_contract_envelope(msg, &e, nil)
        guard s == 0 else { return s }
        if topicOnly && e.target_kind != UInt8(PLEXUS_TARGET_TOPIC.rawValue) { return PLEXUS_INVALID_ARGUMENT.status }
        if let kind { e.kind = kind.rawValue }
        s = plexus_contract_fields(&e, a.router.limits.maxPayload, nil)
        guard s == 0 else { return s }
        return withUnsafePointer(to: &e) { p in status { () throws(PlexusError) in try body(p) } }
    }

    /// The kv_* arguments as plexus_contract_kv checks them, before any
    /// store is asked; then `body` with the key as a String.
    private static func kvChecked(_ a: Agent, _ key: UnsafePointer<CChar>, _ value: UnsafePointer<UInt8>? = nil,
                                  _ len: UInt64 = 0, _ expected: Int64 = Int64(PLEXUS_KV_ANY),
                                  _ body: (String) throws(PlexusError) -> Void) -> plexus_status {
        var what: UnsafePointer<CChar>?
        let s = plexus_contract_kv(key, value, len, expected, a.router.limits.maxPayload, &what)
        guard s == 0 else { return s }
        return status { () throws(PlexusError) in try body(String(cString: key)) }
    }

    /// kv_get / kv_put / kv_delete (ABI 1.1) for plugins in the host.
    private static func installKeyValue(_ p: UnsafeMutablePointer<plexus_host>) {
        p.pointee.kv_get = { ctx, key, outValue, outLen, outVersion in
            guard let ctx, let key, let outValue, let outLen, let outVersion else { return PLEXUS_INVALID_ARGUMENT.status }
            let a = Agent.from(ctx)
            return HostTable.kvChecked(a, key) { k throws(PlexusError) in
                let (kv, ns) = try KeyValueCalls.backend(a)
                guard let e = try kv.get(ns, k) else {
                    outValue.pointee = nil; outLen.pointee = 0; outVersion.pointee = 0
                    return
                }
                guard let buf = malloc(e.value.count + 1)?.assumingMemoryBound(to: UInt8.self) else { throw PlexusError(.NO_MEMORY, "") }
                e.value.withUnsafeBufferPointer { if let b = $0.baseAddress { buf.update(from: b, count: $0.count) } }
                buf[e.value.count] = 0
                outValue.pointee = buf; outLen.pointee = UInt64(e.value.count); outVersion.pointee = UInt64(e.version)
            }
        }
        p.pointee.kv_put = { ctx, key, value, len, expected, outVersion in
            guard let ctx, let key else { return PLEXUS_INVALID_ARGUMENT.status }
            let a = Agent.from(ctx)
            // len is checked against the limit before the bytes are copied.
            return HostTable.kvChecked(a, key, value, len, expected) { k throws(PlexusError) in
                let (kv, ns) = try KeyValueCalls.backend(a)
                let bytes = len == 0 ? [] : Array(UnsafeBufferPointer(start: value, count: Int(len)))
                let v = try KeyValueCalls.wait { done in kv.put(ns, k, bytes, expected: KeyValueCalls.expected(expected), done: done) }
                outVersion?.pointee = UInt64(v)
            }
        }
        p.pointee.kv_delete = { ctx, key, expected in
            guard let ctx, let key else { return PLEXUS_INVALID_ARGUMENT.status }
            let a = Agent.from(ctx)
            return HostTable.kvChecked(a, key, nil, 0, expected) { k throws(PlexusError) in
                let (kv, ns) = try KeyValueCalls.backend(a)
                try KeyValueCalls.wait { done in kv.delete(ns, k, expected: KeyValueCalls.expected(expected), done: done) }
            }
        }
    }

    /// reply_partial / cancel (ABI 1.2) for plugins in the host.
    private static func installStreams(_ p: UnsafeMutablePointer<plexus_host>) {
        p.pointee.reply_partial = { ctx, msg in
            guard let ctx else { return PLEXUS_INVALID_ARGUMENT.status }
            var e = plexus_envelope()
            let s = plexus_contract_envelope(msg, &e, nil)
            guard s == 0 else { return s }
            return Agent.borrow(ctx) { a in
                HostTable.status { () throws(PlexusError) in try a.router.replyPartial(&e, from: HostTable.origin(a)) }
            }
        }
        p.pointee.cancel = { ctx, id in
            guard let ctx else { return PLEXUS_INVALID_ARGUMENT.status }
            return Agent.borrow(ctx) { a in
                HostTable.status { () throws(PlexusError) in
                    try a.router.cancel(id, requesterID: Unmanaged.passUnretained(a).toOpaque(), by: "agent '\(a.name)'")
                }
            }
        }
    }

    /// spawn / stop (ABI 1.2) for plugins in the host: the C checks, then
    /// the host (Host+Spawn.swift). They block until the child has started
    /// or stopped, as the worker's do.
    private static func installSpawn(_ p: UnsafeMutablePointer<plexus_host>) {
        p.pointee.spawn = { ctx, plugin, instance, config, outName, outSize in
            guard let ctx else { return PLEXUS_INVALID_ARGUMENT.status }
            let a = Agent.from(ctx)
            let s = plexus_contract_spawn(plugin, instance, config, outName, outSize, a.router.limits.maxPayload, nil)
            guard s == 0, let plugin else { return s }
            return HostTable.status { () throws(PlexusError) in
                guard let spawns = a.router.spawns else { throw PlexusError(.SHUTTING_DOWN, "the host is gone") }
                let name = try spawns.spawn(by: a, plugin: String(cString: plugin), instance: instance.map { String(cString: $0) },
                                            config: config.map { String(cString: $0) })
                if let outName {
                    let bytes = Array(name.utf8)
                    for (i, b) in bytes.enumerated() { outName[i] = CChar(bitPattern: b) }
                    outName[bytes.count] = 0
                }
            }
        }
        p.pointee.stop = { ctx, name in
            guard let ctx else { return PLEXUS_INVALID_ARGUMENT.status }
            let s = plexus_contract_stop(name, nil)
            guard s == 0, let name else { return s }
            let a = Agent.from(ctx)
            return HostTable.status { () throws(PlexusError) in
                guard let spawns = a.router.spawns else { throw PlexusError(.SHUTTING_DOWN, "the host is gone") }
                try spawns.stop(by: a, child: String(cString: name))
            }
        }
    }

    static func origin(_ a: Agent) -> Router.Origin {
        Router.Origin(cName: a.cName, agent: a, trace: CurrentMessage.trace, grants: a.grants)
    }

    fileprivate static func status(_ body: () throws(PlexusError) -> Void) -> plexus_status {
        do { try body(); return 0 } catch { return error.status }
    }

    static func logLevel(_ l: Int32) -> Logger.Level {
        switch UInt32(max(0, l)) {
        case PLEXUS_LOG_TRACE.rawValue: .trace
        case PLEXUS_LOG_DEBUG.rawValue: .debug
        case PLEXUS_LOG_INFO.rawValue: .info
        case PLEXUS_LOG_WARNING.rawValue: .warning
        default: .error
        }
    }
}
