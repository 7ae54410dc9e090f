import CPlexus
import CPlexusFFI
import Glibc
import PlexusCore

/// Calls a plugin's plain C function as a capability: JSON arguments in,
/// {"result": value} out, through libffi. Arguments arrive as a JSON array in
/// declaration order, or as an object keyed by the declared argument names.
enum TypedExports {
    static func invoke(_ x: PluginDescriptor.Export, message e: UnsafePointer<plexus_envelope>,
                       agent: Agent, router: Router) -> plexus_status {
        let bytes = e.pointee.payload.map { Array(UnsafeBufferPointer(start: $0, count: Int(e.pointee.payload_len))) } ?? []
        let result: Result<JSONValue, PlexusError>
        do { result = .success(try call(x, payload: bytes)) } catch { result = .failure(error) }
        guard e.pointee.kind == MessageKind.query.rawValue else { return (try? result.get()) != nil ? 0 : PLEXUS_HANDLER_FAILED.status }
        let reply: Envelope
        switch result {
        case .success(let v):
            reply = Envelope(kind: .response, target: .reply, payload: Array(JSONValue.object(["result": v]).text.utf8),
                             correlationID: e.pointee.id)
        case .failure(let err):
            reply = Envelope(kind: .error, target: .reply,
                             payload: Array(JSONValue.object(["error": .string(err.name), "message": .string(err.detail)]).text.utf8),
                             correlationID: e.pointee.id, status: err.status)
        }
        reply.withCEnvelope { r in _ = try? router.reply(r, from: HostTable.origin(agent)) }
        return 0
    }

    /// Converts, calls and converts back. Throws TYPE_MISMATCH or
    /// ARITY_MISMATCH naming the argument, its declared type and what came.
    static func call(_ x: PluginDescriptor.Export, payload: [UInt8]) throws(PlexusError) -> JSONValue {
        guard let function = x.function else {
            throw PlexusError(.INTERNAL, "\(x.name): the export's function lives in a worker process")
        }
        var holders: [ContiguousArray<UInt8>] = []   // keeps string/buffer bytes alive for the call
        let values = try marshal(x, payload: payload, holders: &holders)
        var out = plexus_ffi_value()
        var what: UnsafePointer<CChar>?
        let s = withExtendedLifetime(holders) {
            x.argTypes.withUnsafeBufferPointer { types in
                values.withUnsafeBufferPointer { vals in
                    plexus_ffi_call(function, x.returnType, types.baseAddress, UInt32(types.count),
                                    vals.baseAddress, &out, &what)
                }
            }
        }
        if s != 0 { throw PlexusError(status: s, "\(x.name): \(what.map { String(cString: $0) } ?? "call failed")") }
        return result(out, type: x.returnType)
    }

    /// The JSON payload as C argument values, checked against the signature.
    static func marshal(_ x: PluginDescriptor.Export, payload: [UInt8],
                        holders: inout [ContiguousArray<UInt8>]) throws(PlexusError) -> [plexus_ffi_value] {
        let json = payload.isEmpty ? JSONValue.array([]) : try JSONValue.parse(payload)
        let args = try arguments(of: x, from: json)
        var values: [plexus_ffi_value] = []
        for (i, (t, v)) in zip(x.argTypes, args).enumerated() {
            values.append(try convert(v, to: t, index: i, export: x, holders: &holders))
        }
        return values
    }

    private static func arguments(of x: PluginDescriptor.Export, from json: JSONValue) throws(PlexusError) -> [JSONValue] {
        switch json {
        case .array(let a):
            guard a.count == x.argTypes.count else {
                throw PlexusError(.ARITY_MISMATCH, "\(x.signature) takes \(x.argTypes.count) argument\(x.argTypes.count == 1 ? "" : "s"), got \(a.count)")
            }
            return a
        case .object(let o):
            guard let names = x.argNames else {
                throw PlexusError(.TYPE_MISMATCH, "\(x.signature) declares no argument names: pass a JSON array")
            }
            if let extra = o.keys.sorted().first(where: { !names.contains($0) }) {
                throw PlexusError(.ARITY_MISMATCH, "\(x.signature) has no argument named '\(extra)'")
            }
            return try names.map { (n) throws(PlexusError) -> JSONValue in
                guard let v = o[n] else { throw PlexusError(.ARITY_MISMATCH, "\(x.signature): argument '\(n)' is missing") }
                return v
            }
        default:
            throw PlexusError(.TYPE_MISMATCH, "\(x.signature) expects a JSON array (or object) of arguments, got a \(json.typeName)")
        }
    }

    private static func convert(_ v: JSONValue, to t: UInt8, index i: Int, export x: PluginDescriptor.Export,
                                holders: inout [ContiguousArray<UInt8>]) throws(PlexusError) -> plexus_ffi_value {
        let label = "argument \(i + 1)\(x.argNames.map { " ('\($0[i])')" } ?? "") of \(x.name)"
        func mismatch(_ why: String = "") -> PlexusError {
            PlexusError(.TYPE_MISMATCH, "\(label): expected \(TypeName.of(t)), got \(v.typeName) \(v.text.prefix(40))\(why)")
        }
        var out = plexus_ffi_value()
        switch UInt32(t) {
        case PLEXUS_TYPE_BOOL.rawValue:
            guard case .bool(let b) = v else { throw mismatch() }
            out.i64 = b ? 1 : 0
        case PLEXUS_TYPE_I32.rawValue, PLEXUS_TYPE_I64.rawValue:
            guard case .int(let n) = v else { throw mismatch() }
            if t == UInt8(PLEXUS_TYPE_I32.rawValue) && (n < Int64(Int32.min) || n > Int64(Int32.max)) { throw mismatch(" (out of range)") }
            out.i64 = n
        case PLEXUS_TYPE_U32.rawValue, PLEXUS_TYPE_U64.rawValue:
            let u: UInt64
            switch v {
            case .int(let n) where n >= 0: u = UInt64(n)
            case .uint(let n): u = n
            default: throw mismatch()
            }
            if t == UInt8(PLEXUS_TYPE_U32.rawValue) && u > UInt64(UInt32.max) { throw mismatch(" (out of range)") }
            out.u64 = u
        case PLEXUS_TYPE_F32.rawValue, PLEXUS_TYPE_F64.rawValue:
            switch v {
            case .int(let n): out.f64 = Double(n)
            case .uint(let n): out.f64 = Double(n)
            case .double(let d): out.f64 = d
            default: throw mismatch()
            }
        case PLEXUS_TYPE_STRING.rawValue, PLEXUS_TYPE_BUFFER.rawValue:
            guard case .string(let s) = v else { throw mismatch() }
            var bytes = ContiguousArray(s.utf8)
            if t == UInt8(PLEXUS_TYPE_STRING.rawValue) && bytes.contains(0) { throw mismatch(" (contains a NUL)") }
            out.u64 = UInt64(bytes.count)
            bytes.append(0)
            holders.append(bytes)
            out.ptr = holders.last!.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) }
        default:
            throw mismatch()
        }
        return out
    }

    static func result(_ v: plexus_ffi_value, type t: UInt8) -> JSONValue {
        switch UInt32(t) {
        case PLEXUS_TYPE_VOID.rawValue: return .null
        case PLEXUS_TYPE_BOOL.rawValue: return .bool(v.i64 != 0)
        case PLEXUS_TYPE_I32.rawValue, PLEXUS_TYPE_I64.rawValue: return .int(v.i64)
        case PLEXUS_TYPE_U32.rawValue, PLEXUS_TYPE_U64.rawValue: return .uint(v.u64)
        case PLEXUS_TYPE_F32.rawValue, PLEXUS_TYPE_F64.rawValue: return v.f64.isFinite ? .double(v.f64) : .null
        case PLEXUS_TYPE_STRING.rawValue:
            return v.ptr.map { .string(String(cString: $0.assumingMemoryBound(to: CChar.self))) } ?? .null
        case PLEXUS_TYPE_STRING_OWNED.rawValue:
            guard let p = v.ptr else { return .null }
            defer { free(UnsafeMutableRawPointer(mutating: p)) }
            return .string(String(cString: p.assumingMemoryBound(to: CChar.self)))
        default: return .null
        }
    }
}
