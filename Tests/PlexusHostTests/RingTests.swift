import Foundation
import PlexusCore
import PlexusHost
import Testing

/// The shared-memory ring between the host and a worker
/// (Sources/CPlexusInternal/include/plexus_ring.h), against real workers: a
/// worker that breaks its ring is killed alone with the reason, and frames
/// larger than the ring travel in pieces, both ways.
@Suite("Shared-memory rings to workers", .serialized)
struct RingTests {
    func ringHost() throws -> Host {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = .process
        c.threads = 2
        c.defaultTimeoutMs = 20_000
        c.maxPayload = 4 << 20
        c.restartPolicy.backoffBaseMs = 5
        c.restartPolicy.intensity = 50
        c.restartPolicy.heartbeatIntervalMs = 100
        c.restartPolicy.heartbeatTimeoutMs = 2_000   // the ring's check, not a hang, must end the worker
        c.restartPolicy.graceMs = 200
        let host = Host(c)
        try host.load(path: try Fixtures.build("ringbreaker.c", name: "ringbreaker"))
        try host.load(path: try Fixtures.probe())
        host.start()
        return host
    }

    func report(_ host: Host) -> AgentReport? { host.agentReports.first { $0.name == "ringbreaker" } }

    /// The worker writes its ring's indices or a frame header in place, or a
    /// valid frame on the socket (frames travel only on the ring); each
    /// time the host kills that worker for it, the message is dead-lettered
    /// after three deaths with the reason, and everything else keeps working.
    @Test(arguments: [("head", "broke its shared-memory ring: write index"),
                      ("tail", "broke its shared-memory ring: read index"),
                      ("length", "malformed frame"),
                      ("socket-frame", "sent a frame over its socket")])
    func aWorkerThatBreaksItsRingIsKilledAlone(_ how: String, _ reason: String) throws {
        let host = try ringHost()
        defer { host.shutdown() }
        // The fixture really reaches the ring, so a pass below is not for want of it.
        #expect(try host.callText("ringbreaker.found") == "found")
        let err = expectError(.AGENT_CRASHED) { _ = try host.callText("ringbreaker.\(how)", timeoutMs: 20_000) }
        #expect(err?.detail.contains("died 3 times") == true, "\(err?.detail ?? "no error")")
        #expect(err?.detail.contains(reason) == true, "\(err?.detail ?? "no error")")
        #expect(report(host)?.last_exit?.contains(reason) == true, "\(report(host)?.last_exit ?? "no exit")")
        #expect(host.deadLetters.contains { $0.reason.contains(reason) })
        #expect(try host.callText("probe.echo", "bystander") == "bystander")
        #expect(try host.callText("ringbreaker.ok") == "ok")
        #expect((report(host)?.restarts ?? 0) >= 3)
    }

    /// A request and its reply each several times the ring's 256 KiB: both
    /// go through in pieces and arrive whole, byte for byte, again and again.
    @Test func framesLargerThanTheRingTravelInPieces() throws {
        let host = try startedHost([try Fixtures.probe()], maxPayload: 4 << 20)
        defer { host.shutdown() }
        for size in [(256 << 10) - 100, 256 << 10, 1 << 20, (3 << 20) + 17] {
            // Bytes that differ from one position to the next, so a piece out of place shows.
            let payload = (0..<size).map { i in UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 13) }
            let answer = try host.call(Envelope(kind: .query, target: Target(parsing: "probe.echo"), payload: payload), timeoutMs: 20_000)
            #expect(answer.payload == payload, "\(size) bytes")
        }
        #expect(try host.callText("probe.echo", "after") == "after")
    }
}
