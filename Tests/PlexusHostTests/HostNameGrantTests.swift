import Foundation
import PlexusCore
import PlexusHost
import PlexusStore
import PlexusTasks
import Testing

/// plexus.h: a plugin's key-value namespace is its own; "no other plugin
/// can read it". The host's capabilities (plexus.kv.get reaches every
/// namespace) are therefore reached only by a grant that names them, which
/// only plexus.yaml gives: `call >` from a descriptor does not reach them.
@Suite("The host's names need a grant that names them", .serialized)
struct HostNameGrantTests {
    func rig(_ mode: SandboxMode, relay: String, grants: [Grants.Action: [String]]? = nil,
             _ body: (Host) throws -> Void) throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.threads = 2
        c.sandbox = mode
        if let grants {
            var s = c.settings(for: relay)
            s.grants = grants
            c.plugins[PluginDescriptor.stem(of: relay)] = s
        }
        let host = Host(c)
        let store = try Store(path: Fixtures.dir + "/hostnames-\(UUID().uuidString.prefix(8)).db")
        defer { host.shutdown(); store.close() }
        try host.load(path: relay)
        try KeyValueService.install(on: host, store: store)
        host.start()
        _ = try store.put("victim", "secret", Array("only-victim".utf8), expected: 0)
        try body(host)
    }

    let ask = "plexus.kv.get\n{\"namespace\":\"victim\",\"key\":\"secret\"}"

    @Test(arguments: [SandboxMode.process, .inProcess])
    func callAnythingDoesNotReachAnotherPluginsNamespace(mode: SandboxMode) throws {
        let relay = try Fixtures.build("relay.c", name: "relay")
        try rig(mode, relay: relay) { host in
            let err = expectError(.PERMISSION_DENIED) { _ = try host.callText("relay.ask", ask, timeoutMs: 10_000) }
            #expect(err?.detail.contains("plexus.kv.get") == true, "\(err?.detail ?? "no error")")
        }
    }

    @Test func theOperatorMayGrantItByName() throws {
        let relay = try Fixtures.build("relay.c", name: "relay")
        try rig(.process, relay: relay, grants: [.call: ["plexus.kv.get"]]) { host in
            let answer = try host.callText("relay.ask", ask, timeoutMs: 10_000)
            #expect(answer.contains("only-victim"), "\(answer)")
        }
    }

    @Test func aDescriptorThatAsksForTheHostsNamesIsRefused() throws {
        let relay = try Fixtures.build("relay.c", ["-DRELAY_PERMIT=\"plexus.kv.get\""], name: "relay")
        let host = Host(HostConfiguration(pluginsDirectory: nil))
        defer { host.shutdown() }
        #expect(throws: (any Error).self) { try host.load(path: relay) }
        let reason = host.pluginReports.first { $0.file == relay }?.reason ?? ""
        #expect(reason.contains("the descriptor requests \"call plexus.kv.get\", a name of the host's: only plexus.yaml can grant it"), "\(reason)")
    }
}
