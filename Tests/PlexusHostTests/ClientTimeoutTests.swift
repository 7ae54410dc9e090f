import Foundation
import Glibc
import PlexusCore
import PlexusHost
import PlexusSocket
import Testing

/// FAULTS 41: a client that sends half a frame and then nothing is closed
/// after a timeout, like a worker; an idle client between frames is not.
@Suite("Silent clients", .serialized)
struct ClientTimeoutTests {
    @Test func halfAFrameThenSilenceIsClosedButAnIdleClientStays() throws {
        let h = try startedHost([])
        defer { h.shutdown() }
        let path = Fixtures.dir + "/half-\(UUID().uuidString.prefix(8)).sock"
        var options = SocketServer.Options()
        options.partialFrameTimeoutMs = 300
        let server = try SocketServer(host: h, path: path, options: options)
        try server.start()
        defer { server.stop() }

        // The idle client completes a call first, then sends nothing at all.
        let idle = try #require(RawClient.connect(path))
        defer { idle.close() }
        #expect(idle.send(RawClient.query("plexus.plugins", id: 1)))
        #expect(idle.readFrame()?.kind == .response)

        // The silent one sends the first 20 bytes of a frame and stops.
        let half = try #require(RawClient.connect(path))
        defer { half.close() }
        #expect(half.send(Array(RawClient.query("plexus.plugins").prefix(20))))
        let answer = try #require(half.readFrame(), "no ERROR frame before the connection ended")
        #expect(answer.kind == .error)
        #expect(answer.status == PLEXUS_MALFORMED_FRAME.status)
        #expect(String(decoding: answer.payload, as: UTF8.self).contains("half a frame, then silence for 300 ms"))
        #expect(half.atEnd())

        // The idle client was silent longer than that, but between frames: it is still served.
        #expect(idle.send(RawClient.query("plexus.plugins", id: 2)))
        #expect(idle.readFrame()?.kind == .response)
    }
}
