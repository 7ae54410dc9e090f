import Foundation
import PlexusCore
import PlexusHost
import PlexusStore
import PlexusTasks
import Synchronization
import Testing

/// The kv_* host functions (ABI 1.1): plugins keep durable, versioned state
/// with compare-and-set, in a sandboxed worker and in the host alike.
@Suite("Key-value host functions", .serialized)
struct KeyValueTests {
    /// A host with counter plugins and a store.
    final class Rig: @unchecked Sendable {
        let host: Host
        let store: Store
        let path: String

        init(_ files: [String], sandbox: SandboxMode = .process, instances: Int = 1, path: String? = nil) throws {
            self.path = path ?? Fixtures.dir + "/kv-\(UUID().uuidString.prefix(8)).db"
            var c = HostConfiguration(pluginsDirectory: nil)
            c.threads = 2
            c.sandbox = sandbox
            for f in files {
                var s = c.settings(for: f)
                s.instances = instances
                c.plugins[PluginDescriptor.stem(of: f)] = s
            }
            host = Host(c)
            for f in files { try host.load(path: f) }
            store = try Store(path: self.path)
            try KeyValueService.install(on: host, store: store)
            host.start()
        }

        func stop() { host.shutdown(); store.close() }

        func json(_ target: String, _ payload: String) throws -> JSONValue {
            try JSONValue.parse(Array(try host.callText(target, payload).utf8))
        }
    }

    static func counter(_ name: String = "counter", cap: String = "kv", _ flags: [String] = []) throws -> String {
        try Fixtures.build("counter.c", ["-DAGENT_NAME=\"\(name)\"", "-DCAP=\"\(cap)\""] + flags, name: name)
    }

    @Test("read, write with versions, delete, refuse bad keys", arguments: [SandboxMode.process, .inProcess])
    func basics(mode: SandboxMode) throws {
        let r = try Rig([try Self.counter()], sandbox: mode)
        defer { r.stop() }
        #expect(try r.json("kv.read", "visits") == .object(["value": .string(""), "version": .int(0)]))
        #expect(try r.json("kv.incr", "visits")["value"] == .int(1))
        #expect(try r.json("kv.incr", "visits") == .object(["value": .int(2), "version": .int(2), "conflicts": .int(0)]))
        #expect(try r.json("kv.read", "visits") == .object(["value": .string("2"), "version": .int(2)]))
        #expect(try r.store.get("counter", "visits")?.version == 2)   // on disk, in the plugin's namespace
        _ = try r.host.callText("kv.drop", "visits")
        #expect(try r.json("kv.read", "visits")["version"] == .int(0))
        #expect(try r.json("kv.bad", "") == .object(["empty": .string("INVALID_ARGUMENT"), "long": .string("INVALID_ARGUMENT"),
                                                    "stale_delete": .string("CONFLICT")]))
    }

    @Test("compare-and-set under concurrent writers: 4 workers, 8 callers, 200 increments, none lost", arguments: [SandboxMode.process, .inProcess])
    func concurrentWriters(mode: SandboxMode) throws {
        let r = try Rig([try Self.counter()], sandbox: mode, instances: 4)
        defer { r.stop() }
        let seen = Mutex<[Int64]>([])
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<25 {
                do {
                    guard case .int(let v)? = try r.json("kv.incr", "hits")["value"] else { throw PlexusError(.INTERNAL, "no value") }
                    seen.withLock { $0.append(v) }
                } catch { failures.withLock { $0.append("\(error)") } }
            }
        }
        #expect(failures.withLock { $0 } == [])
        // Each increment read a different value: no two writers both won one version.
        #expect(seen.withLock { $0.sorted() } == Array(1...200))
        #expect(try r.store.get("counter", "hits") == Store.Entry(value: Array("200".utf8), version: 200))
    }

    @Test("the namespace is the plugin's: its instances share it, other plugins do not see it; plexus.kv reads any")
    func namespaces() throws {
        let r = try Rig([try Self.counter("tally", cap: "tally"), try Self.counter("other", cap: "other")])
        defer { r.stop() }
        _ = try r.host.callText("tally.incr", "n")
        #expect(try r.json("other.read", "n")["version"] == .int(0))
        let got = try r.json("plexus.kv.get", #"{"namespace":"tally","key":"n"}"#)
        #expect(got == .object(["namespace": .string("tally"), "key": .string("n"), "value": .string("1"), "version": .int(1)]))
        let put = try r.json("plexus.kv.put", #"{"namespace":"tally","key":"n","value":"41","expected":1}"#)
        #expect(put["version"] == .int(2))
        #expect(try r.json("tally.incr", "n")["value"] == .int(42))
        let e = expectError(.CONFLICT) { _ = try r.host.callText("plexus.kv.put", #"{"namespace":"tally","key":"n","value":"0","expected":1}"#) }
        #expect(e?.detail.contains("key 'n' is at version 3, not 1") == true, "\(e?.detail ?? "")")
        #expect(try r.json("plexus.kv.list", #"{"namespace":"tally"}"#) == .array([.string("n")]))
        _ = expectError(.INVALID_ARGUMENT) { _ = try r.host.callText("plexus.kv.get", #"{"key":"n"}"#) }
        // What no plugin could read back is refused: an empty or ill-formed
        // namespace, an empty key or one over PLEXUS_KV_MAX_KEY bytes.
        let long = String(repeating: "k", count: 513)
        for bad in [#"{"namespace":"","key":"n","value":"v"}"#, #"{"namespace":"a b/../x","key":"n","value":"v"}"#,
                    #"{"namespace":"tally","key":"","value":"v"}"#, #"{"namespace":"tally","key":"\#(long)","value":"v"}"#] {
            let e = expectError(.INVALID_ARGUMENT) { _ = try r.host.callText("plexus.kv.put", bad) }
            #expect(e != nil, "accepted \(bad.prefix(60))")
        }
        #expect(try r.json("plexus.kv.list", #"{"namespace":"tally"}"#) == .array([.string("n")]))
    }

    @Test("what a plugin keeps survives the host")
    func survivesRestart() throws {
        let file = try Self.counter()
        let first = try Rig([file])
        for _ in 0..<3 { _ = try first.host.callText("kv.incr", "boots") }
        first.stop()
        let second = try Rig([file], path: first.path)
        defer { second.stop() }
        #expect(try second.json("kv.incr", "boots")["value"] == .int(4))
    }

    @Test("a plugin built for ABI 1.0 still loads and runs, in a worker and in the host", arguments: [SandboxMode.process, .inProcess])
    func olderMinorLoads(mode: SandboxMode) throws {
        let file = try Self.counter("oldie", ["-DOLD_ABI"])
        let r = try Rig([file], sandbox: mode)
        defer { r.stop() }
        #expect(try r.host.callText("kv.read", "x") == #"{"abi":"1.0"}"#)
        #expect(r.host.pluginReports.first { $0.name == "oldie" }?.status == "loaded")
    }

    @Test("a host without a store answers UNSUPPORTED")
    func noStore() throws {
        let host = try startedHost([try Self.counter()])
        defer { host.shutdown() }
        let e = expectError(.UNSUPPORTED) { _ = try host.callText("kv.incr", "x") }
        #expect(e != nil)
    }
}
