import Dispatch
import Foundation
import Glibc
import PlexusCore
import PlexusSocket
import Synchronization
import Testing

/// FAULTS 40: a host serving clients for months. The host is a real `plexus
/// run` process, so its /proc figures are its own, not the test runner's.
@Suite("A host that serves clients for months", .serialized)
struct SocketChurnTests {
    /// Each cycle is a real session: connect, one QUERY to plexus.plugins
    /// answered through the router, close.
    static func cycles(_ n: Int, threads: Int, path: String) -> (answered: Int, failed: Int) {
        let answered = Atomic<Int>(0), failed = Atomic<Int>(0)
        let frame = RawClient.query("plexus.plugins")
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for _ in 0..<(n / threads + (t < n % threads ? 1 : 0)) {
                guard let c = RawClient.connect(path) else { failed.add(1, ordering: .relaxed); continue }
                if c.send(frame), let a = c.readFrame(), a.kind == .response { answered.add(1, ordering: .relaxed) } else { failed.add(1, ordering: .relaxed) }
                c.close()
            }
        }
        return (answered.load(ordering: .relaxed), failed.load(ordering: .relaxed))
    }

    @Test func twoHundredThousandConnectionsAndTenThousandAtOnceLeaveNothingBehind() throws {
        // 10,000 held connections are 10,000 descriptors on this side too.
        if case .success(let l) = FileLimit.raiseToHard() { #expect(l.new >= 10_100, "RLIMIT_NOFILE hard limit \(l.new) is too low for this test") }
        let host = try HostProcess("churn")
        let path = host.socket
        // Warm up what is built once (allocator arenas, lazily made tables), then measure.
        #expect(Self.cycles(2_000, threads: 2, path: path) == (2_000, 0))
        let before = host.usage

        let start = Date()
        let churn = Self.cycles(200_000, threads: 4, path: path)
        let churnSeconds = Date().timeIntervalSince(start)
        #expect(churn.answered == 200_000, "\(churn.failed) cycles failed")

        // 10,000 at once, in bursts of 2,000 (under the SOMAXCONN backlog of
        // 4,096): non-blocking connects, so a full backlog would show as EAGAIN.
        var held: [RawClient] = []
        var refused: [Int32: Int] = [:]
        var answeredHeld = 0
        let frame = RawClient.query("plexus.plugins")
        for _ in 0..<5 {
            var burst: [RawClient] = []
            for _ in 0..<2_000 {
                if let c = RawClient.connect(path, nonblocking: true) { burst.append(c) } else { refused[errno, default: 0] += 1 }
            }
            for c in burst where c.send(frame) {}
            for c in burst where c.readFrame()?.kind == .response { answeredHeld += 1 }
            held += burst
        }
        #expect(refused.isEmpty, "connects refused, by errno: \(refused)")
        #expect(answeredHeld == 10_000)
        let peak = host.usage
        // A fixed set of threads, however many clients (one of the host's
        // short-lived threads, a restart or spawn, may have ended meanwhile).
        #expect(peak.threads <= before.threads, "before: \(before); with 10,000 clients: \(peak)")
        for c in held { c.close() }

        // The host closes them as it reads their end: wait for the descriptors to go back.
        waitFor(seconds: 120) { host.usage.fds <= before.fds }
        let after = host.usage
        print("churn: 200,000 cycles in \(String(format: "%.1f", churnSeconds)) s; before: \(before); with 10,000 held: \(peak); after: \(after)")
        #expect(after.threads <= before.threads, "\(after) vs \(before)")
        #expect(after.fds <= before.fds, "\(after) vs \(before)")
        #expect(after.maps <= before.maps + 8, "\(after) vs \(before)")
        #expect(after.vsize <= before.vsize + (64 << 20), "\(after) vs \(before)")
        #expect(after.rss <= before.rss + (16 << 20), "\(after) vs \(before)")
    }

    /// Out of descriptors, a new client is accepted and closed at once (it
    /// sees the end instead of waiting), the host says so in its log, and it
    /// serves again as soon as descriptors are free.
    @Test func outOfDescriptorsNewClientsAreClosedAndTheHostRecovers() throws {
        let host = try HostProcess("emfile", openFiles: 64)
        #expect(host.logText.contains("the open-file limit is 64"))
        let frame = RawClient.query("plexus.plugins")
        var served: [RawClient] = []
        var turnedAway = 0
        for _ in 0..<80 {
            guard let c = RawClient.connect(host.socket) else { continue }
            if c.send(frame), c.readFrame()?.kind == .response { served.append(c) } else { turnedAway += 1; c.close() }
        }
        #expect(!served.isEmpty && served.count < 64, "\(served.count) served")
        #expect(turnedAway > 0)
        #expect(waitFor(seconds: 60) { host.logText.contains("out of file descriptors") }, "\(host.logText)")
        for c in served { c.close() }
        // Descriptors free again: a new client is answered.
        #expect(waitFor(seconds: 60) {
            guard let c = RawClient.connect(host.socket) else { return false }
            defer { c.close() }
            return c.send(frame) && c.readFrame()?.kind == .response
        })
        #expect(host.process.isRunning)
    }
}
