import Foundation
import Glibc
import PlexusCore
import Synchronization
import Testing

/// FAULTS.md 34's last line: a slow consumer on another host pushes back
/// instead of growing memory. A client of host a floods an agent on host b
/// that handles one message every 20 ms with far more than b's mailbox
/// holds: b takes what fits, answers the rest MAILBOX_FULL at once (the
/// answer crosses back to the caller on a), and its memory stays bounded
/// while every request still ends exactly once.
@Suite(.serialized) struct ClusterSlowConsumerTests {
    static let requests = 60_000
    static let payloadBytes = 16 << 10   // 60,000 × 16 KiB = 938 MiB offered; a mailbox holds 4,096 (64 MiB)

    @Test func aFloodAtASlowAgentOnAnotherHostIsRefusedMailboxFullAndItsHostsMemoryStaysBounded() throws {
        let nats = try NatsServer()
        let a = try ClusterTests.node("a", nats.url, plugins: [:])
        let b = try ClusterTests.node("b", nats.url, plugins: ["slow.so": try ClusterTests.probe("slow")])
        #expect(ClusterTests.waitForNodes(a.socket, up: ["b"]))
        #expect(try ClusterTests.call(a.socket, .agent("slow"), "probe.whoami x").payloadString == "slow")
        let rssBefore = b.usage.rss

        let client = try #require(RawClient.connect(a.socket))
        defer { close(client.fd) }
        // "probe.sleep 20" then padding: the probe reads the number and sleeps 20 ms.
        let payload = Array("probe.sleep 20 ".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: Self.payloadBytes)
        let deadline = unixNow() + 4_000_000_000   // what waits in b's mailbox expires instead of taking 80 s
        let writer = Thread {
            for i in 1...Self.requests {
                var q = Envelope(kind: .query, target: .agent("slow"), payload: payload, contentType: "text/plain")
                q.id = plexus_id(hi: 9, lo: UInt64(i))
                q.deadlineUnixNs = deadline
                guard let frame = try? q.encode(), client.send(frame) else { return }
            }
        }
        writer.start()

        var answered = Set<UInt64>(), byStatus: [String: Int] = [:], peakRSS = rssBefore
        for n in 0..<Self.requests {
            let e = try #require(client.readFrame(), "host a stopped answering after \(n) of \(Self.requests) requests")
            #expect(answered.insert(e.correlationID.lo).inserted, "request \(e.correlationID.lo) answered twice")
            byStatus[e.kind == .response ? "reply" : statusName(e.status), default: 0] += 1
            if n % 1_000 == 0 { peakRSS = max(peakRSS, b.usage.rss) }
        }
        peakRSS = max(peakRSS, b.usage.rss)
        #expect(answered.count == Self.requests)
        let full = byStatus["MAILBOX_FULL", default: 0]
        // b refuses what does not fit rather than queueing it; what waited past
        // its deadline (in b's mailbox, or in libnats' bounded pending queue
        // for b's subscription) ends EXPIRED or, on a, TIMEOUT: never silence.
        #expect(full >= Self.requests / 10, "answers by kind: \(byStatus)")
        #expect(byStatus.keys.allSatisfy { ["reply", "MAILBOX_FULL", "EXPIRED", "TIMEOUT"].contains($0) }, "answers by kind: \(byStatus)")
        let grownMiB = (peakRSS - rssBefore) >> 20, offeredMiB = (Self.requests * Self.payloadBytes) >> 20
        print("slow consumer: answers \(byStatus); host b grew \(grownMiB) MiB while \(offeredMiB) MiB were offered")
        // b holds at most a mailbox (64 MiB here) and libnats' pending bound
        // (64 MiB) of it, each byte at most twice (the NATS message and the
        // envelope decoded from it) before the allocator gives memory back:
        // 256 MiB, plus slack. Queueing the flood would take the 938 MiB.
        #expect(grownMiB < 320, "host b grew by \(grownMiB) MiB while \(offeredMiB) MiB were offered (answers: \(byStatus))")

        // The flood is over and b still serves (its mailbox drains or expires).
        #expect(waitFor(seconds: 60) { (try? ClusterTests.call(a.socket, .agent("slow"), "probe.whoami x", timeoutMs: 5_000).payloadString) == "slow" })
        #expect(b.process.isRunning)
    }
}
