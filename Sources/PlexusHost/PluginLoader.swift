import CPlexus
import Glibc
import PlexusCore

/// A plugin whose file and descriptor passed every check.
public struct LoadedPlugin: @unchecked Sendable {
    public let path: String
    public let descriptor: PluginDescriptor
    let initFn: plexus_init_fn
    let handleFn: plexus_handle_fn?
    let shutdownFn: plexus_shutdown_fn?
}

/// A file the host would not load, and exactly why.
public struct PluginRefusal: Sendable, Error, CustomStringConvertible {
    public let path: String
    public let error: PlexusError
    public var description: String { "\(path): \(error.detail)" }
}

/// Finds and opens plugins. Plugins are opened with RTLD_NODELETE and never
/// closed: unmapping a Swift plugin leaves the Swift runtime holding dangling
/// metadata, and the host crashes later.
public enum PluginLoader {
    /// Every "*.so" directly inside dir, sorted by name so that conflicts
    /// between plugins are resolved the same way on every start.
    public static func discover(in dir: String) throws(PlexusError) -> [String] {
        guard let d = opendir(dir) else {
            throw PlexusError(.INVALID_ARGUMENT, "plugins directory '\(dir)': \(String(cString: strerror(errno)))")
        }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name.hasSuffix(".so") && !name.hasPrefix(".") { names.append(name) }
        }
        let base = dir.hasSuffix("/") ? dir : dir + "/"
        return names.sorted().map { base + $0 }
    }

    public static func load(path: String) throws(PluginRefusal) -> LoadedPlugin {
        do {
            return try open(path)
        } catch {
            throw PluginRefusal(path: path, error: error)
        }
    }

    private static func open(_ path: String) throws(PlexusError) -> LoadedPlugin {
        try ELFCheck.check(path: path)
        // RTLD_NOW binds every symbol now: a missing one is a load error here,
        // not a crash in the middle of a message later.
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            throw PlexusError(.BAD_DESCRIPTOR, "dlopen failed: \(why)")
        }
        guard let sym = dlsym(handle, PLEXUS_ENTRY_SYMBOL) else {
            throw PlexusError(.BAD_DESCRIPTOR, "missing symbol: expected the entry function '\(PLEXUS_ENTRY_SYMBOL)', found none exported")
        }
        let entry = unsafeBitCast(sym, to: plexus_entry_fn.self)
        guard let raw = entry() else {
            throw PlexusError(.BAD_DESCRIPTOR, "'\(PLEXUS_ENTRY_SYMBOL)' returned NULL instead of a descriptor")
        }
        let descriptor = try DescriptorReader.read(raw)
        return LoadedPlugin(path: path, descriptor: descriptor, initFn: raw.pointee.`init`!,
                            handleFn: raw.pointee.handle, shutdownFn: raw.pointee.shutdown)
    }
}
