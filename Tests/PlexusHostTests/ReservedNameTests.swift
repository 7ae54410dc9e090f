import Foundation
import PlexusCore
import PlexusHost
import PlexusSocket
import PlexusStore
import PlexusTasks
import Testing

/// FAULTS.md 42 and 43: names that are the host's (`plexus.`, `_plexus.`,
/// `client:`) cannot be claimed by a plugin or a client, on any road, and
/// two files claiming one agent name are both named while the rest loads.
@Suite("Reserved and duplicate names", .serialized)
struct ReservedNameTests {
    static let reservedEvents = "capability 'plexus.events' is reserved for the host"

    /// A host with a store, the task service and a socket, plus `files`.
    final class Rig {
        let host: Host
        let store: Store
        let scheduler: Scheduler
        let server: SocketServer
        let socket: String

        init(files: [String], sandbox: SandboxMode = .process) throws {
            let dir = Fixtures.dir + "/reserved-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var c = HostConfiguration(pluginsDirectory: nil)
            c.threads = 2
            c.sandbox = sandbox
            host = Host(c)
            for f in files { _ = try? host.load(path: f) }   // refusals are what some tests look at
            store = try Store(path: dir + "/plexus.db")
            scheduler = try Scheduler(host: host, store: store)
            try TaskService.install(on: host, scheduler: scheduler)
            host.start()
            try scheduler.start()
            socket = dir + "/h.sock"
            server = try SocketServer(host: host, path: socket)
            try server.start()
        }

        func stop() { server.stop(); scheduler.stop(); host.shutdown(); store.close() }

        func refusal(_ file: String) -> String? { host.pluginReports.first { $0.file == file && $0.status == "refused" }?.reason }
    }

    static func json(_ s: String) -> [UInt8] { Array(s.utf8) }

    static func register(_ c: SocketClient, _ name: String, _ caps: [String]) throws(PlexusError) {
        let args = JSONValue.object(["name": .string(name), "capabilities": .array(caps.map(JSONValue.string))])
        _ = try c.call(Envelope(kind: .query, target: .capability("plexus.register"), payload: Array(args.text.utf8)), timeoutMs: 10_000)
    }

    // MARK: plugins, at load

    @Test(arguments: [SandboxMode.process, .inProcess])
    func aPluginDeclaringAHostCapabilityIsRefusedAtLoadAndTheRestStarts(mode: SandboxMode) throws {
        let squatter = try Fixtures.build("squatter.c", ["-DCAP=\"plexus.events\""], name: "squatter")
        let probe = try Fixtures.probe()
        let rig = try Rig(files: [squatter, probe], sandbox: mode)
        defer { rig.stop() }
        #expect(rig.refusal(squatter) == Self.reservedEvents)
        #expect(try rig.host.callText("probe.echo", "up") == "up")
        // plexus.events always reaches the host's own service (it answers a JSON array).
        for _ in 0..<4 {
            let reply = try rig.host.call(Envelope(kind: .query, target: .capability("plexus.events"), payload: Self.json(#"{"last":5}"#)),
                                          timeoutMs: 10_000)
            guard case .array = try JSONValue.parse(reply.payload) else { Issue.record("not the host's answer: \(reply.payloadString)"); return }
        }
    }

    @Test func aPluginNamedLikeAHostServiceIsRefusedWithItsFileAndTheHostStarts() throws {
        let dir = Fixtures.dir + "/reserved-dir-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try Fixtures.probe(named: "plexus.kv"), toPath: dir + "/kv.so")
        try FileManager.default.copyItem(atPath: try Fixtures.probe(named: "client:1.1"), toPath: dir + "/client.so")
        try FileManager.default.copyItem(atPath: try Fixtures.probe(), toPath: dir + "/probe.so")
        var c = HostConfiguration(pluginsDirectory: dir)
        c.threads = 2
        let host = Host(c)
        try host.loadPlugins()
        let store = try Store(path: dir + "/plexus.db")
        defer { store.close() }
        try KeyValueService.install(on: host, store: store)   // the host's own plexus.kv: no collision any more
        host.start()
        defer { host.shutdown() }
        let reports = Dictionary(uniqueKeysWithValues: host.pluginReports.map { ($0.file, $0) })
        #expect(reports[dir + "/kv.so"]?.status == "refused")
        #expect(reports[dir + "/kv.so"]?.reason == "agent name 'plexus.kv' is reserved for the host")
        // A plugin's name cannot even spell 'client:' (the descriptor allows no ':').
        #expect(reports[dir + "/client.so"]?.reason == "name: expected 1-255 characters from [A-Za-z0-9_.-], found \"client:1.1\"")
        #expect(reports[dir + "/probe.so"]?.status == "loaded")
        let put = try host.call(Envelope(kind: .query, target: .capability("plexus.kv.put"),
                                         payload: Self.json(#"{"namespace":"n","key":"k","value":"v"}"#)), timeoutMs: 10_000)
        #expect(put.sender == "plexus.kv", "answered by \(put.sender)")
    }

    // MARK: plugins, at runtime (subscribe, publish)

    @Test(arguments: [SandboxMode.process, .inProcess])
    func aPluginCannotSubscribeToOrPublishControlSubjects(mode: SandboxMode) throws {
        let squatter = try Fixtures.build("squatter.c", [], name: "squatter")
        let rig = try Rig(files: [squatter], sandbox: mode)
        defer { rig.stop() }
        let h = rig.host
        #expect(try h.callText("squat.try", "sub _plexus.>") == "PERMISSION_DENIED")
        #expect(try h.callText("squat.try", "sub _plexus.shutdown") == "PERMISSION_DENIED")
        #expect(try h.callText("squat.try", "pub _plexus.shutdown") == "PERMISSION_DENIED")
        #expect(try h.callText("squat.try", "pub plexus.audit.denied") == "PERMISSION_DENIED")
        #expect(try h.callText("squat.try", "sub >") == "OK")
        // A '>' subscriber hears ordinary subjects, never the host's.
        h.audit(holder: "test", sender: "test", action: "call", name: "x", reason: "a refusal, published on plexus.audit.denied")
        let reply = Envelope(kind: .event, target: .topic("_plexus.shutdown"), payload: [])
        #expect(expectError(.PERMISSION_DENIED) { try h.send(reply) }?.detail == "subject '_plexus.shutdown' is reserved for the host")
        try h.send(Envelope(kind: .event, target: .topic("news.today"), payload: Self.json("{}")))
        var seen = ""
        for _ in 0..<400 where !seen.contains("news.today") {
            seen = try h.callText("squat.seen")
            if !seen.contains("news.today") { Thread.sleep(forTimeInterval: 0.025) }
        }
        #expect(seen == "news.today", "a '>' subscriber received: \(seen)")
        // The descriptor's own "subscribe >" does not reach the host's subjects
        // either: watching plexus.audit.denied takes a grant in plexus.yaml that names it.
        #expect(try h.callText("squat.try", "sub plexus.audit.denied") == "PERMISSION_DENIED")
        #expect(try h.callText("squat.echo") == "squatter")   // and the worker is alive and well
    }

    // MARK: socket clients

    @Test func aClientCannotRegisterTheHostsCapabilitiesOrAnotherConnectionsName() throws {
        let rig = try Rig(files: [try Fixtures.probe()])
        defer { rig.stop() }
        let impostor = try SocketClient(path: rig.socket)
        let refused = expectError(.PERMISSION_DENIED) { try Self.register(impostor, "impostor", ["plexus.tasks.submit"]) }
        #expect(refused?.detail == "capability 'plexus.tasks.submit' is reserved for the host")
        let other = expectError(.PERMISSION_DENIED) { try Self.register(impostor, "client:\(getpid()).1", []) }
        #expect(other?.detail == "agent name 'client:\(getpid()).1' is reserved for the host: 'client:' names are the identities it gives socket connections")
        let control = expectError(.PERMISSION_DENIED) { try Self.register(impostor, "_plexus.ready", []) }
        #expect(control?.detail == "agent name '_plexus.ready' is reserved for the host")
        let sub = expectError(.PERMISSION_DENIED) {
            _ = try impostor.call(Envelope(kind: .query, target: .capability("plexus.subscribe"), payload: Self.json(#"{"pattern":"_plexus.>"}"#)),
                                  timeoutMs: 10_000)
        }
        #expect(sub?.detail.hasPrefix("pattern '_plexus.>' is reserved for the host") == true)
        let pub = expectError(.PERMISSION_DENIED) { _ = try impostor.send(Envelope(kind: .event, target: .topic("_plexus.shutdown"), payload: [])) }
        #expect(pub?.detail == "subject '_plexus.shutdown' is reserved for the host")

        // `plexus tasks submit` reaches the host's scheduler, every time.
        let user = try SocketClient(path: rig.socket)
        for i in 0..<4 {
            let reply = try user.call(Envelope(kind: .query, target: .capability("plexus.tasks.submit"),
                                               payload: Self.json(#"{"capability":"probe.echo","payload":"t\#(i)"}"#)), timeoutMs: 10_000)
            #expect(reply.sender == "plexus.tasks")
            guard case .array(let a) = try JSONValue.parse(reply.payload), case .string(let id)? = a.first?["id"] else {
                Issue.record("not the scheduler's answer: \(reply.payloadString)"); continue
            }
            #expect(try rig.store.task(id) != nil)
        }
    }

    // MARK: duplicate agent names (FAULTS 43)

    @Test func twoFilesClaimingOneNameAreBothNamedAndTheRestStarts() throws {
        let dir = Fixtures.dir + "/twins-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try Fixtures.probe(named: "twin"), toPath: dir + "/b.so")
        try FileManager.default.copyItem(atPath: try Fixtures.probe(named: "twin"), toPath: dir + "/a.so")
        try FileManager.default.copyItem(atPath: try Fixtures.build("squatter.c", [], name: "squatter"), toPath: dir + "/c.so")
        for _ in 0..<2 {   // the same file wins on every start
            let host = Host(HostConfiguration(pluginsDirectory: dir))
            try host.loadPlugins()
            host.start()
            defer { host.shutdown() }
            #expect(host.pluginReports.map(\.status) == ["loaded", "refused", "loaded"])
            #expect(host.pluginReports[1].file == dir + "/b.so")
            #expect(host.pluginReports[1].reason
                    == "duplicate agent name 'twin': already provided by \(dir)/a.so, which loaded first (plugin files load in name order)")
            #expect(try host.callText("squat.echo") == "squatter")
        }
    }

    // MARK: the same through `plexus run`

    @Test func plexusRunStartsWithTheRestAndListsBothRefusals() throws {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("plexus").path
        let dir = Fixtures.dir + "/reserved-run-\(UUID().uuidString.prefix(8))"
        let plugins = dir + "/plugins"
        try FileManager.default.createDirectory(atPath: plugins, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try Fixtures.probe(named: "plexus.kv"), toPath: plugins + "/kv.so")
        try FileManager.default.copyItem(atPath: try Fixtures.probe(named: "twin"), toPath: plugins + "/a.so")
        try FileManager.default.copyItem(atPath: try Fixtures.probe(named: "twin"), toPath: plugins + "/b.so")
        try FileManager.default.copyItem(atPath: try Fixtures.build("squatter.c", ["-DCAP=\"plexus.tasks.submit\""], name: "squatter"),
                                         toPath: plugins + "/squat.so")
        FileManager.default.createFile(atPath: dir + "/host.log", contents: nil)
        let run = Process()
        run.executableURL = URL(fileURLWithPath: exe)
        // In process: the loading loop is the same, and no worker's start-up
        // timeout on a loaded machine can stand in for the refusal looked for.
        run.arguments = ["run", "--plugins", plugins, "--socket", dir + "/h.sock", "--store", dir + "/plexus.db", "--sandbox", "in-process"]
        run.standardError = FileHandle(forWritingAtPath: dir + "/host.log")
        try run.run()
        defer { if run.isRunning { run.interrupt(); run.waitUntilExit() } }
        var client: SocketClient?
        for _ in 0..<400 where client == nil && run.isRunning {
            if let c = try? SocketClient(path: dir + "/h.sock"), (try? c.call(Envelope(kind: .query, target: .capability("plexus.agents")), timeoutMs: 2000)) != nil {
                client = c
            } else { Thread.sleep(forTimeInterval: 0.05) }
        }
        let c = try #require(client, "the host did not start: \((try? String(contentsOfFile: dir + "/host.log", encoding: .utf8)) ?? "")")
        let log = try String(contentsOfFile: dir + "/host.log", encoding: .utf8)
        #expect(log.contains("plexus: refused \(plugins)/kv.so: agent name 'plexus.kv' is reserved for the host"), "\(log)")
        #expect(log.contains("plexus: refused \(plugins)/squat.so: capability 'plexus.tasks.submit' is reserved for the host"), "\(log)")
        #expect(log.contains("plexus: refused \(plugins)/b.so: duplicate agent name 'twin': already provided by \(plugins)/a.so"), "\(log)")
        // plexus plugins list (the host's plexus.plugins) names the same files.
        let listed = try JSONValue.parse(try c.call(Envelope(kind: .query, target: .capability("plexus.plugins")), timeoutMs: 10_000).payload)
        guard case .array(let reports) = listed else { Issue.record("\(listed.text)"); return }
        let status = Dictionary(uniqueKeysWithValues: reports.map { (str($0["file"]), str($0["status"])) })
        #expect(status == [plugins + "/a.so": "loaded", plugins + "/b.so": "refused", plugins + "/kv.so": "refused", plugins + "/squat.so": "refused"])
        // The host's own services answer.
        let kv = try c.call(Envelope(kind: .query, target: .capability("plexus.kv.put"),
                                     payload: Self.json(#"{"namespace":"n","key":"k","value":"v"}"#)), timeoutMs: 10_000)
        #expect(kv.sender == "plexus.kv")
        let task = try c.call(Envelope(kind: .query, target: .capability("plexus.tasks.submit"),
                                       payload: Self.json(#"{"capability":"probe.echo"}"#)), timeoutMs: 10_000)
        #expect(task.sender == "plexus.tasks")
    }

    private func str(_ v: JSONValue?) -> String { if case .string(let s)? = v { s } else { "" } }
}
