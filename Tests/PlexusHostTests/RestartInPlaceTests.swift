import Foundation
import PlexusCore
import PlexusHost
import PlexusStore
import PlexusTasks
import Testing

/// With no restart backoff (`backoff_ms: 0`) a dead worker's replacement is
/// started on the dead worker's own I/O thread, and a restart of the image
/// whose HELLO was already accepted sends START with the image instead of
/// waiting for HELLO. These check what that must keep: the restarted agent
/// gets its own name and configuration every time, warm or cold, and a
/// worker that dies at every start is still given up by its supervisor.
@Suite("Restarts without a backoff", .serialized)
struct RestartInPlaceTests {
    func host(_ files: [String], warm: Int, intensity: Int = 100, configure: (inout HostConfiguration) -> Void = { _ in }) throws -> Host {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = .process
        c.threads = 2
        c.defaultTimeoutMs = 20_000
        c.warmWorkers = warm
        c.restartPolicy.backoffBaseMs = 0
        c.restartPolicy.intensity = intensity
        c.restartPolicy.breakerThreshold = 1_000
        configure(&c)
        let h = Host(c)
        for f in files { try h.load(path: f) }
        return h
    }

    /// Ten crashes in a row: each replacement answers with the agent's name
    /// and the configuration its init got, which came in the START sent
    /// with the image.
    @Test(arguments: [0, 1])
    func eachRestartGetsTheAgentsNameAndConfiguration(warm: Int) throws {
        let helper = try Fixtures.build("helper.c", name: "helper")
        let h = try host([], warm: warm) { c in
            var s = c.settings(for: helper)
            s.config = #"{"greeting":"hi"}"#
            c.plugins[PluginDescriptor.stem(of: helper)] = s
        }
        try h.load(path: helper)
        h.start()
        defer { h.shutdown() }
        let expected = #"helper|{"greeting":"hi"}"#
        #expect(try h.callText("agent:helper", "who") == expected)
        for round in 1...10 {
            _ = try? h.callText("agent:helper", "crash", timeoutMs: 20_000)   // it dies handling it, three times (then the message is dead-lettered)
            #expect(try h.callText("agent:helper", "who", timeoutMs: 20_000) == expected, "after crash \(round)")
        }
        #expect((h.agentReports.first { $0.name == "helper" }?.restarts ?? 0) >= 10)
    }

    /// The worker aborts in init on every start after its first: restarted
    /// at once each time, until its supervisor gives up after `intensity`
    /// restarts; everything else keeps running.
    @Test func aWorkerThatDiesAtEveryStartIsGivenUp() throws {
        let path = Fixtures.dir + "/restartcrash-\(UUID().uuidString.prefix(8)).db"
        let h = try host([try Fixtures.build("restartcrash.c", name: "restartcrash"), try Fixtures.probe()], warm: 1, intensity: 20)
        let store = try Store(path: path)
        try KeyValueService.install(on: h, store: store)
        h.start()
        defer { h.shutdown(); store.close() }
        #expect(try h.callText("restartcrash.ping") == "up")
        _ = try? h.callText("restartcrash.crash", timeoutMs: 20_000)
        let deadline = Date().addingTimeInterval(60)
        while h.agentReports.first(where: { $0.name == "restartcrash" })?.state != "terminated" && Date() < deadline { usleep(5_000) }
        let report = h.agentReports.first { $0.name == "restartcrash" }
        #expect(report?.state == "terminated", "\(String(describing: report))")
        #expect((report?.restarts ?? 0) >= 20)
        #expect(try h.callText("probe.echo", "bystander") == "bystander")
    }
}
