import CPlexus
import CPlexusFFI
import PlexusCore

/// Typed exports of a plugin in a worker. The host checks and converts the
/// JSON arguments exactly as for an in-process call, then sends them as
/// binary (content type `ffiCall`); the worker makes the libffi call and
/// answers in binary (`ffiResult`), which the host turns into the usual
/// {"result": value}. The layouts are in plexus_channel.h (Sources/CPlexusInternal).
enum WorkerExports {
    static let ffiCall = "application/x-plexus-ffi-call"
    static let ffiResult = "application/x-plexus-ffi-result"

    /// Scalars as 8 little-endian bytes; strings and buffers as a u64
    /// length, the bytes and a NUL.
    static func encodeCall(_ x: PluginDescriptor.Export, payload: [UInt8]) throws(PlexusError) -> [UInt8] {
        var holders: [ContiguousArray<UInt8>] = []
        let values = try TypedExports.marshal(x, payload: payload, holders: &holders)
        var out: [UInt8] = []
        for (t, v) in zip(x.argTypes, values) {
            switch UInt32(t) {
            case PLEXUS_TYPE_STRING.rawValue, PLEXUS_TYPE_BUFFER.rawValue:
                out += LittleEndian.bytes(v.u64, 8)
                let bytes = UnsafeRawBufferPointer(start: v.ptr, count: Int(v.u64))
                out.append(contentsOf: bytes)
                out.append(0)
            case PLEXUS_TYPE_F32.rawValue, PLEXUS_TYPE_F64.rawValue: out += LittleEndian.bytes(v.f64.bitPattern, 8)
            case PLEXUS_TYPE_U32.rawValue, PLEXUS_TYPE_U64.rawValue: out += LittleEndian.bytes(v.u64, 8)
            default: out += LittleEndian.bytes(UInt64(bitPattern: v.i64), 8)
            }
        }
        withExtendedLifetime(holders) {}
        return out
    }

    /// A result frame's payload: the return type, then 8 bytes for a
    /// scalar or the string's bytes.
    static func decodeResult(_ p: [UInt8]) throws(PlexusError) -> JSONValue {
        guard let t = p.first else { throw PlexusError(.MALFORMED_FRAME, "an empty typed-export result") }
        var v = plexus_ffi_value()
        let rest = Array(p.dropFirst())
        switch UInt32(t) {
        case PLEXUS_TYPE_VOID.rawValue: return .null
        case PLEXUS_TYPE_STRING.rawValue, PLEXUS_TYPE_STRING_OWNED.rawValue:
            return .string(String(decoding: rest, as: UTF8.self))
        default:
            guard rest.count == 8 else { throw PlexusError(.MALFORMED_FRAME, "a typed-export result of \(rest.count) bytes, expected 8") }
            let bits = LittleEndian.read(rest, 0, 8)
            v.i64 = Int64(bitPattern: bits); v.u64 = bits; v.f64 = Double(bitPattern: bits)
            return TypedExports.result(v, type: t)
        }
    }
}
