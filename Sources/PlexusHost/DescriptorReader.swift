import CPlexus
import PlexusCore

/// Reads and checks a raw descriptor. Every refusal names the field, what
/// the host expected and what the plugin has.
enum DescriptorReader {
    static let hostMajor = UInt16(PLEXUS_ABI_MAJOR)
    static let hostMinor = UInt16(PLEXUS_ABI_MINOR)

    static func read(_ d: UnsafePointer<plexus_plugin_descriptor>) throws(PlexusError) -> PluginDescriptor {
        // struct_size and the ABI version sit at the head in every version: read them first.
        let size = d.pointee.struct_size
        // At least the 1.0 size; a larger one (a newer plexus.h) has a tail this host ignores.
        let base = UInt32(PLEXUS_DESCRIPTOR_SIZE_1_0)
        guard size >= base else {
            throw PlexusError(.ABI_MISMATCH, "descriptor struct_size: expected at least \(base) (ABI 1.0), found \(size)")
        }
        let major = d.pointee.abi_major, minor = d.pointee.abi_minor
        guard major == hostMajor else {
            throw PlexusError(.ABI_MISMATCH, "ABI major version: expected \(hostMajor), found \(major) (plugin built for ABI \(major).\(minor), host speaks \(hostMajor).\(hostMinor))")
        }
        guard minor <= hostMinor else {
            throw PlexusError(.ABI_MISMATCH, "ABI minor version: expected at most \(hostMinor), found \(minor) (plugin built for ABI \(major).\(minor), a newer host is needed)")
        }
        let d = d.pointee
        // Envelopes cross both ways: the plugin's may be no smaller than 1.0's
        // and no larger than this host's (its minor is <= the host's).
        try expectSize("envelope_size", d.envelope_size, Int(PLEXUS_ENVELOPE_SIZE_1_0), MemoryLayout<plexus_envelope>.size)
        // The host table grows with minors: a plugin reads only what its plexus.h knew.
        let host10 = Int(PLEXUS_HOST_SIZE_1_0), hostNow = MemoryLayout<plexus_host>.size
        guard (host10...hostNow).contains(Int(d.host_size)) else {
            throw PlexusError(.ABI_MISMATCH, "host_size: expected \(host10) (ABI 1.0) to \(hostNow) (ABI \(hostMajor).\(hostMinor)), found \(d.host_size) (the plugin was compiled against a different plexus.h)")
        }
        let name = try requiredName(d.name, field: "name")
        guard let v = d.version, v.pointee != 0 else {
            throw PlexusError(.BAD_DESCRIPTOR, "version: expected a non-empty string, found \(d.version == nil ? "NULL" : "\"\"")")
        }
        guard d.`init` != nil else { throw PlexusError(.BAD_DESCRIPTOR, "init: expected a function, found NULL") }
        if d.capability_count > 0 && d.handle == nil {
            throw PlexusError(.BAD_DESCRIPTOR, "handle: expected a function (the plugin declares \(d.capability_count) capabilities), found NULL")
        }
        let caps = try capabilities(d)
        let exps = try exports(d)
        var seen = Set<String>()
        for n in caps.map(\.name) + exps.map(\.name) where !seen.insert(n).inserted {
            throw PlexusError(.BAD_DESCRIPTOR, "capability '\(n)' is declared twice")
        }
        return PluginDescriptor(
            name: name, version: String(cString: v), description: d.description.map { String(cString: $0) },
            abiMajor: major, abiMinor: minor,
            concurrent: d.flags & UInt32(PLEXUS_PLUGIN_CONCURRENT) != 0,
            capabilities: caps, permissions: try permissions(d), exports: exps)
    }

    private static func expectSize(_ field: String, _ found: UInt32, _ least: Int, _ most: Int) throws(PlexusError) {
        guard (least...most).contains(Int(found)) else {
            let expected = least == most ? "\(least)" : "\(least) (ABI 1.0) to \(most) (ABI \(hostMajor).\(hostMinor))"
            throw PlexusError(.ABI_MISMATCH, "\(field): expected \(expected), found \(found) (the plugin was compiled against a different plexus.h)")
        }
    }

    static func requiredName(_ p: UnsafePointer<CChar>?, field: String) throws(PlexusError) -> String {
        guard let p else { throw PlexusError(.BAD_DESCRIPTOR, "\(field): expected a name, found NULL") }
        let s = String(cString: p)
        guard !s.isEmpty, s.utf8.count <= 255,
              s.utf8.allSatisfy({ isNameByte($0) }) else {
            throw PlexusError(.BAD_DESCRIPTOR, "\(field): expected 1-255 characters from [A-Za-z0-9_.-], found \"\(s.prefix(60))\"")
        }
        return s
    }

    static func isNameByte(_ c: UInt8) -> Bool {
        (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 95 || c == 46 || c == 45
    }

    /// Walks an array of growable structs with the stride of its first element's struct_size.
    private static func walk<T>(_ base: UnsafePointer<T>?, count: UInt32, field: String, least: UInt32,
                                _ body: (UnsafePointer<T>, Int) throws(PlexusError) -> Void) throws(PlexusError) {
        guard count > 0 else { return }
        guard let base else { throw PlexusError(.BAD_DESCRIPTOR, "\(field): count is \(count) but the array is NULL") }
        let stride = Int(UnsafeRawPointer(base).load(as: UInt32.self))
        // At least the 1.0 size; the tail of a larger element is ignored (walked past by stride).
        guard stride >= Int(least) else {
            throw PlexusError(.ABI_MISMATCH, "\(field)[0].struct_size: expected at least \(least) (ABI 1.0), found \(stride)")
        }
        guard count <= 4096 else { throw PlexusError(.BAD_DESCRIPTOR, "\(field): count \(count) exceeds 4096") }
        for i in 0..<Int(count) {
            let p = UnsafeRawPointer(base).advanced(by: i * stride)
            let sz = Int(p.load(as: UInt32.self))
            guard sz == stride else {
                throw PlexusError(.BAD_DESCRIPTOR, "\(field)[\(i)].struct_size: expected \(stride) like element 0, found \(sz)")
            }
            try body(p.assumingMemoryBound(to: T.self), i)
        }
    }

    private static func opt(_ p: UnsafePointer<CChar>?) -> String? { p.map { String(cString: $0) } }

    private static func capabilities(_ d: plexus_plugin_descriptor) throws(PlexusError) -> [PluginDescriptor.Capability] {
        var out: [PluginDescriptor.Capability] = []
        try walk(d.capabilities, count: d.capability_count, field: "capabilities", least: PLEXUS_CAPABILITY_SIZE_1_0) { (c: UnsafePointer<plexus_capability>, i: Int) throws(PlexusError) in
            let name = try requiredName(c.pointee.name, field: "capabilities[\(i)].name")
            out.append(.init(name: name, description: opt(c.pointee.description),
                             input: opt(c.pointee.input), output: opt(c.pointee.output)))
        }
        return out
    }

    private static func permissions(_ d: plexus_plugin_descriptor) throws(PlexusError) -> [PluginDescriptor.Permission] {
        var out: [PluginDescriptor.Permission] = []
        try walk(d.permissions, count: d.permission_count, field: "permissions", least: PLEXUS_PERMISSION_SIZE_1_0) { (p: UnsafePointer<plexus_permission>, i: Int) throws(PlexusError) in
            let kinds = ["call", "publish", "subscribe"]
            guard Int(p.pointee.kind) < kinds.count else {
                throw PlexusError(.BAD_DESCRIPTOR, "permissions[\(i)].kind: expected 0 (call), 1 (publish) or 2 (subscribe), found \(p.pointee.kind)")
            }
            guard let pat = p.pointee.pattern else { throw PlexusError(.BAD_DESCRIPTOR, "permissions[\(i)].pattern: expected a pattern, found NULL") }
            let pattern = String(cString: pat)
            do throws(PlexusError) { try Subject.validatePattern(pattern) } catch {
                throw PlexusError(.BAD_DESCRIPTOR, "permissions[\(i)].pattern: \(error.detail)")
            }
            out.append(.init(kind: kinds[Int(p.pointee.kind)], pattern: pattern))
        }
        return out
    }

    private static func exports(_ d: plexus_plugin_descriptor) throws(PlexusError) -> [PluginDescriptor.Export] {
        var out: [PluginDescriptor.Export] = []
        try walk(d.exports, count: d.export_count, field: "exports", least: PLEXUS_EXPORT_SIZE_1_0) { (e: UnsafePointer<plexus_export>, i: Int) throws(PlexusError) in
            let x = e.pointee
            let name = try requiredName(x.name, field: "exports[\(i)].name")
            guard let fn = x.function else { throw PlexusError(.BAD_DESCRIPTOR, "exports[\(i)] '\(name)': function is NULL") }
            guard x.arg_count <= UInt8(PLEXUS_MAX_EXPORT_ARGS) else {
                throw PlexusError(.BAD_DESCRIPTOR, "exports[\(i)] '\(name)': arg_count expected at most \(PLEXUS_MAX_EXPORT_ARGS), found \(x.arg_count)")
            }
            let okReturn: Set<UInt32> = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10]
            guard okReturn.contains(UInt32(x.return_type)) else {
                throw PlexusError(.BAD_DESCRIPTOR, "exports[\(i)] '\(name)': return_type \(TypeName.of(x.return_type)) cannot be returned")
            }
            var types: [UInt8] = []
            if x.arg_count > 0 {
                guard let at = x.arg_types else { throw PlexusError(.BAD_DESCRIPTOR, "exports[\(i)] '\(name)': arg_types is NULL") }
                types = Array(UnsafeBufferPointer(start: at, count: Int(x.arg_count)))
            }
            for (j, t) in types.enumerated() where !(1...9).contains(t) {
                throw PlexusError(.BAD_DESCRIPTOR, "exports[\(i)] '\(name)': argument \(j + 1) has type \(TypeName.of(t)), which cannot be passed")
            }
            var names: [String]?
            if let an = x.arg_names, x.arg_count > 0 {
                var ns: [String] = []
                for j in 0..<Int(x.arg_count) {
                    guard let s = an[j] else { throw PlexusError(.BAD_DESCRIPTOR, "exports[\(i)] '\(name)': arg_names[\(j)] is NULL") }
                    ns.append(String(cString: s))
                }
                names = ns
            }
            out.append(.init(name: name, description: opt(x.description), function: fn,
                             returnType: x.return_type, argTypes: types, argNames: names))
        }
        return out
    }
}

/// The descriptor a worker sends in HELLO, as JSON. The worker has already
/// checked the ABI version, struct sizes and required functions in the
/// plugin's own memory; names and patterns are checked here, with the same
/// messages as an in-process load.
extension DescriptorReader {
    static func read(json bytes: [UInt8]) throws(PlexusError) -> PluginDescriptor {
        guard case .object(let o) = try JSONValue.parse(bytes) else {
            throw PlexusError(.MALFORMED_FRAME, "the worker's HELLO is not a JSON object")
        }
        func string(_ v: JSONValue?) -> String? { if case .string(let s)? = v { return s } else { return nil } }
        func uint(_ v: JSONValue?) -> UInt64? {
            switch v { case .uint(let u)?: return u; case .int(let i)? where i >= 0: return UInt64(i); default: return nil }
        }
        func array(_ k: String) -> [[String: JSONValue]] {
            guard case .array(let a)? = o[k] else { return [] }
            return a.compactMap { if case .object(let x) = $0 { return x } else { return nil } }
        }
        let name = try checked(string(o["name"]), field: "name")
        guard let version = string(o["version"]), !version.isEmpty else {
            throw PlexusError(.BAD_DESCRIPTOR, "version: expected a non-empty string")
        }
        let caps = try array("capabilities").enumerated().map { (i, c) throws(PlexusError) in
            PluginDescriptor.Capability(name: try checked(string(c["name"]), field: "capabilities[\(i)].name"),
                                        description: string(c["description"]), input: string(c["input"]),
                                        output: string(c["output"]))
        }
        let exports = try array("exports").enumerated().map { (i, x) throws(PlexusError) in
            let types: [UInt8]
            if case .array(let a)? = x["arg_types"] { types = a.compactMap { uint($0).map { UInt8(truncatingIfNeeded: $0) } } } else { types = [] }
            var names: [String]?
            if case .array(let a)? = x["arg_names"] { names = a.compactMap { string($0) } }
            return PluginDescriptor.Export(name: try checked(string(x["name"]), field: "exports[\(i)].name"),
                                           description: string(x["description"]), function: nil,
                                           returnType: UInt8(truncatingIfNeeded: uint(x["return_type"]) ?? 0),
                                           argTypes: types, argNames: names)
        }
        var seen = Set<String>()
        for n in caps.map(\.name) + exports.map(\.name) where !seen.insert(n).inserted {
            throw PlexusError(.BAD_DESCRIPTOR, "capability '\(n)' is declared twice")
        }
        let kinds = ["call", "publish", "subscribe"]
        let perms = try array("permissions").enumerated().map { (i, p) throws(PlexusError) in
            guard let k = uint(p["kind"]), k < 3 else {
                throw PlexusError(.BAD_DESCRIPTOR, "permissions[\(i)].kind: expected 0 (call), 1 (publish) or 2 (subscribe), found \(p["kind"]?.text ?? "nothing")")
            }
            let pattern = string(p["pattern"]) ?? ""
            do throws(PlexusError) { try Subject.validatePattern(pattern) } catch {
                throw PlexusError(.BAD_DESCRIPTOR, "permissions[\(i)].pattern: \(error.detail)")
            }
            return PluginDescriptor.Permission(kind: kinds[Int(k)], pattern: pattern)
        }
        return PluginDescriptor(
            name: name, version: version, description: string(o["description"]),
            abiMajor: UInt16(uint(o["abi_major"]) ?? 0), abiMinor: UInt16(uint(o["abi_minor"]) ?? 0),
            concurrent: o["concurrent"] == .bool(true), capabilities: caps, permissions: perms, exports: exports,
            confinement: string(o["confinement"]))
    }

    private static func checked(_ s: String?, field: String) throws(PlexusError) -> String {
        guard let s else { throw PlexusError(.BAD_DESCRIPTOR, "\(field): expected a name, found nothing") }
        let r: Result<String, PlexusError> = s.withCString { p in
            do throws(PlexusError) { return .success(try requiredName(p, field: field)) } catch { return .failure(error) }
        }
        return try r.get()
    }
}
