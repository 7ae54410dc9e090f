import Foundation
import Glibc
import PlexusCore
import PlexusSocket
import PlexusTestSupport
import Testing

/// Where NATS's own limits meet a host's: a tls:// URL never falls back to
/// plain text, and a message larger than the server's max_payload is
/// TOO_LARGE (not retried), not UNAVAILABLE.
@Suite(.serialized) struct ClusterLimitsTests {
    @Test func aTLSURLAgainstAServerWithoutTLSIsRefusedNotDowngraded() throws {
        let plain = try NatsServer(jetStream: false)
        let dir = Fixtures.dir + "/tls-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir + "/plugins", withIntermediateDirectories: true)
        let r = try PlexusCommand.run(["run", "--plugins", dir + "/plugins", "--socket", dir + "/h.sock", "--store", dir + "/h.db",
                                       "--nats", "tls://127.0.0.1:\(plain.port)", "--node", "t"])
        #expect(r.status == 1, "a host joined over plain text though it was told tls://: \(r.err)")
        #expect(r.err.contains("cannot connect to NATS at tls://127.0.0.1:\(plain.port)"), "\(r.err)")
    }

    @Test func aMessageOverTheServersMaxPayloadIsTooLargeAndSaysWhy() throws {
        let nats = try NatsServer()   // max_payload: 1 MiB, nats-server's default
        let a = try ClusterTests.node("a", nats.url, plugins: [:])
        let b = try ClusterTests.node("b", nats.url, plugins: ["beta.so": try ClusterTests.probe("beta")])
        #expect(ClusterTests.waitForNodes(a.socket, up: ["b"]))
        #expect(try ClusterTests.call(a.socket, .agent("beta"), "probe.whoami x").payloadString == "beta")
        let big = "probe.echo " + String(repeating: "x", count: 2 << 20)
        do throws(PlexusError) {
            _ = try ClusterTests.call(a.socket, .agent("beta"), big)
            Issue.record("a 2 MiB message crossed a server whose max_payload is 1 MiB")
        } catch {
            #expect(error.status == PLEXUS_TOO_LARGE.status, "\(error)")
            #expect(error.detail.contains("max_payload") && error.detail.contains("1048576"), "\(error.detail)")
        }
        // The same message on b itself is fine: the limit is NATS's, not the host's.
        #expect(try ClusterTests.call(b.socket, .agent("beta"), big).payload.count == 2 << 20)
    }

    /// A mistyped capability that only another host provides gets the same
    /// "did you mean" as one on the host itself.
    @Test func aTypoOfAnotherHostsCapabilityIsAnsweredWithTheClosestName() throws {
        let nats = try NatsServer()
        let a = try ClusterTests.node("a", nats.url, plugins: [:])
        _ = try ClusterTests.node("b", nats.url, plugins: ["textkit.so": try ClusterTests.textkit()])
        #expect(ClusterTests.waitForNodes(a.socket, up: ["b"]))
        let r = try PlexusCommand.run(["call", "text.stat", "--socket", a.socket, "--json", "\"x\""])
        #expect(r.status == 1)
        #expect(r.err.contains("did you mean text.stats?"), "\(r.err)")
    }
}
