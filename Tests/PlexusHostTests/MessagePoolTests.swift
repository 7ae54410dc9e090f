@testable import PlexusHost
import CPlexus
import CPlexusInternal
import PlexusCore
import PlexusThreads
import Synchronization
import Testing

/// Recycled message buffers (Message.recycle, plexus_pool.h): a buffer is
/// reused only when nothing else holds it, a reused one carries nothing of
/// its last message, large frames are not pooled, a thread's cache is not
/// lost when the thread ends, and messages of every size cross agents and
/// workers intact while buffers are recycled under them, in both modes.
@Suite("Message pool")
struct MessagePoolTests {
    static func message(_ payload: [UInt8], id: UInt64 = 1, target: String = "probe") -> Message {
        var e = plexus_envelope_init()
        e.kind = UInt8(PLEXUS_KIND_COMMAND.rawValue)
        e.target_kind = UInt8(PLEXUS_TARGET_AGENT.rawValue)
        e.id = plexus_id(hi: 7, lo: id)
        return target.withCString { t in
            payload.withUnsafeBufferPointer { p in
                e.target = t
                e.payload = p.baseAddress
                e.payload_len = UInt64(p.count)
                return try! Message.make(&e, maxPayload: 1 << 20)
            }
        }
    }

    // These run on the test's own thread without suspending, so its cache is theirs alone.

    @Test func aBufferNoOneElseHoldsServesTheNextMessageMadeOnThisThread() {
        let first = Self.message(Array(repeating: 0x41, count: 100), id: 1)
        first.header.tRoute = 12345            // as tracing stamps a routed message
        let identity = ObjectIdentifier(first)
        Message.recycle(consume first)
        let second = Self.message(Array("fresh".utf8), id: 2, target: "other")
        #expect(ObjectIdentifier(second) == identity, "the recycled buffer was not reused")
        let e = second.envelope
        #expect(e.id.lo == 2 && e.payloadString == "fresh" && e.target == .agent("other"))
        #expect(second.header.tRoute == 0, "a reused buffer kept its last message's header")
        #expect(second.header.frameLength == second.withFrame { $0.count })
    }

    @Test func aBufferSomeoneElseHoldsIsLeftAlone() {
        let first = Self.message(Array("kept".utf8), id: 1)
        let holder = [first]                  // a second mailbox, a trace, a dead letter…
        let identity = ObjectIdentifier(first)
        Message.recycle(consume first)
        let second = Self.message(Array("other".utf8), id: 2)
        #expect(ObjectIdentifier(second) != identity)
        #expect(holder[0].envelope.payloadString == "kept")
    }

    @Test func aFrameLargerThanTheSizeClassesIsNotPooled() {
        let big = Self.message(Array(repeating: 7, count: 4000), id: 1)
        #expect(big.header.poolClass == -1)
        let before = plexus_pool_local_count(1)
        Message.recycle(consume big)
        #expect(plexus_pool_local_count(1) == before && plexus_pool_local_count(0) >= 0)
        let small = Self.message([1, 2, 3])
        #expect(small.header.poolClass == 0)
        let mid = Self.message(Array(repeating: 9, count: 600))
        #expect(mid.header.poolClass == 1)
    }

    @Test func aThreadsCacheIsHandedOnWhenTheThreadEnds() throws {
        let held = Atomic<Int>(-1)
        let before = plexus_pool_flushed()
        let t = try startThread(name: "pool-test") {
            var ms = (0..<100).map { Self.message(Array(repeating: UInt8($0 & 0xff), count: 500), id: UInt64($0)) }
            while let m = ms.popLast() { Message.recycle(consume m) }
            held.store(Int(plexus_pool_local_count(1)), ordering: .relaxed)
        }
        t.join()
        let kept = held.load(ordering: .relaxed)
        #expect(kept > 0, "the thread's cache held nothing to hand on")
        #expect(plexus_pool_flushed() - before >= UInt64(kept), "the thread's cache was lost when it ended")
    }

    // End to end: buffers recycled by dispatcher threads (in process) and
    // by workers' I/O threads (sandboxed) while callers on four threads
    // send frames of every size class and above.

    static let sizes = [0, 10, 150, 240, 300, 900, 1000, 1100, 3000]

    @Test(arguments: [SandboxMode.inProcess, .process])
    func everyAnswerCarriesItsOwnPayloadWhileBuffersAreRecycled(mode: SandboxMode) throws {
        let relay = try Fixtures.build("relay.c", name: "relay")
        let probe = try Fixtures.probe()
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = mode
        c.threads = 2
        c.defaultTimeoutMs = 20_000
        let host = Host(c)
        defer { host.shutdown() }
        try host.load(path: relay)
        try host.load(path: probe)
        host.start()
        let wrong = Mutex<[String]>([])
        let threads = try (0..<4).map { k in
            try startThread(name: "pool-caller-\(k)") {
                for i in 0..<300 {
                    let n = Self.sizes[(i + k) % Self.sizes.count]
                    let tag = "caller \(k) call \(i) "
                    let body = String(tag + String(repeating: Character(UnicodeScalar(UInt8(97 + (i % 26)))), count: n)).prefix(max(n, tag.count))
                    do {
                        let answer = try host.callText("relay.ask", "probe.echo\n" + body, timeoutMs: 20_000)
                        if answer != body { wrong.withLock { $0.append("\(tag)(\(n) bytes) came back as \(answer.prefix(60))…") } }
                    } catch {
                        wrong.withLock { $0.append("\(tag)(\(n) bytes): \(error)") }
                    }
                }
            }
        }
        for t in threads { t.join() }
        let errors = wrong.withLock { $0 }
        #expect(errors.isEmpty, "\(errors.count) wrong answers, first: \(errors.first ?? "")")
    }
}
