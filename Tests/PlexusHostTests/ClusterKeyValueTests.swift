import Foundation
import Glibc
import PlexusCore
import PlexusSocket
import PlexusTestSupport
import Synchronization
import Testing

/// `nats.kv: jetstream`: the agents' key-value store on JetStream KV, shared
/// by the hosts of a cluster; real `nats-server -js` and real hosts.
@Suite(.serialized) struct ClusterKeyValueTests {
    static let yaml = "nats: { kv: jetstream }\n"

    static func kv(_ socket: String, _ args: [String]) throws -> PlexusCommand.Outcome {
        try PlexusCommand.run(["kv"] + args + ["--socket", socket])
    }

    @Test func aPutOnOneHostIsReadOnAnotherAndAStaleVersionIsAConflictThere() throws {
        let nats = try ClusterEventTests.jetStream()
        let a = try ClusterTests.node("a", nats.url, plugins: ["counter.so": try KeyValueTests.counter()], yaml: Self.yaml)
        let b = try ClusterTests.node("b", nats.url, plugins: ["counter.so": try KeyValueTests.counter()], yaml: Self.yaml)

        let put = try Self.kv(a.socket, ["put", "counter", "greeting", "hello"])
        #expect(put.status == 0, "\(put.err)")
        let v1 = try #require(Int64(put.out.trimmingCharacters(in: .whitespacesAndNewlines)))
        let got = try Self.kv(b.socket, ["get", "counter", "greeting", "--json"])
        let entry = try JSONValue.parse(Array(got.out.utf8))
        #expect(entry["value"] == .string("hello") && entry["version"] == .int(v1), "\(got.out) \(got.err)")

        // B writes expecting what it read; A's write expecting the same version is now stale.
        let put2 = try Self.kv(b.socket, ["put", "counter", "greeting", "again", "--expected", "\(v1)"])
        #expect(put2.status == 0, "\(put2.err)")
        let v2 = try #require(Int64(put2.out.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(v2 > v1)
        let stale = try Self.kv(a.socket, ["put", "counter", "greeting", "stale", "--expected", "\(v1)"])
        #expect(stale.status == 1)
        #expect(stale.err.contains("CONFLICT: key 'greeting' is at version \(v2), not \(v1)"), "\(stale.err)")
        // Create-only (0) refuses a key that exists on another host.
        let create = try Self.kv(a.socket, ["put", "counter", "greeting", "new", "--expected", "0"])
        #expect(create.status == 1 && create.err.contains("CONFLICT"), "\(create.err)")
        #expect(try Self.kv(a.socket, ["get", "counter", "greeting"]).out == "again\n")

        // Keys with any characters, listed on the other host as written.
        let odd = "a.b c=ü/*>"
        #expect(try Self.kv(a.socket, ["put", "counter", odd, "x"]).status == 0)
        let listed = try Self.kv(b.socket, ["list", "counter"])
        #expect(listed.out == "a.b c=ü/*>\ngreeting\n", "\(listed.out) \(listed.err)")
        #expect(try Self.kv(b.socket, ["list", "counter", "--prefix", "gr"]).out == "greeting\n")

        // A conditional delete with a stale version is refused; with the current one it removes the key everywhere.
        let staleDelete = try Self.kv(b.socket, ["delete", "counter", "greeting", "--expected", "\(v1)"])
        #expect(staleDelete.status == 1 && staleDelete.err.contains("is at version \(v2), not \(v1)"), "\(staleDelete.err)")
        #expect(try Self.kv(b.socket, ["delete", "counter", "greeting", "--expected", "\(v2)"]).status == 0)
        let gone = try Self.kv(a.socket, ["get", "counter", "greeting"])
        #expect(gone.status == 1 && gone.err.contains("has no key 'greeting'"), "\(gone.err)")
        #expect(try Self.kv(a.socket, ["list", "counter"]).out == "a.b c=ü/*>\n")
    }

    @Test func aPluginsInstancesOnTwoHostsShareItsNamespaceAndCompareAndSetCountsEveryIncrementOnce() throws {
        let nats = try ClusterEventTests.jetStream()
        let a = try ClusterTests.node("a", nats.url, plugins: ["counter.so": try KeyValueTests.counter()], yaml: Self.yaml)
        let b = try ClusterTests.node("b", nats.url, plugins: ["counter.so": try KeyValueTests.counter()], yaml: Self.yaml)
        // The counter plugin's kv.incr: read, write expecting the version read, read again on CONFLICT.
        // 20 on each host at once, each call answered by that host's own instance (a local provider with room).
        let failures = Mutex<[String]>([])
        let conflicted = Atomic<Int>(0)
        let threads = [a.socket, b.socket].map { socket in
            Thread {
                for _ in 0..<20 {
                    do throws(PlexusError) {
                        let r = try SocketClient(path: socket).call(Envelope(kind: .query, target: .capability("kv.incr"), payload: Array("visits".utf8)),
                                                                    timeoutMs: 30_000)
                        if !r.payloadString.contains("\"conflicts\":0") { conflicted.add(1, ordering: .relaxed) }
                    } catch { failures.withLock { $0.append("\(error)") } }
                }
            }
        }
        for t in threads { t.start() }
        #expect(waitFor(seconds: 120) { threads.allSatisfy { $0.isFinished } })
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        let read = try SocketClient(path: b.socket).call(Envelope(kind: .query, target: .capability("kv.read"), payload: Array("visits".utf8)), timeoutMs: 30_000)
        #expect(try JSONValue.parse(read.payload)["value"] == .string("40"), "\(read.payloadString)")
        #expect(try Self.kv(a.socket, ["get", "counter", "visits"]).out == "40\n")
        // Both instances incremented (each host kept calls on its own while it had room): they shared the key.
        #expect(ClusterTests.picks(a.socket).0 > 0 && ClusterTests.picks(b.socket).0 > 0, "\(ClusterTests.picks(a.socket)) \(ClusterTests.picks(b.socket))")
        print("cluster kv: 40 increments from two hosts, \(conflicted.load(ordering: .relaxed)) of them retried after a CONFLICT")
    }

    @Test func jetStreamKeyValueOnAServerWithoutJetStreamStopsTheHostWithTheReason() throws {
        let plain = try NatsServer(jetStream: false)
        let dir = Fixtures.dir + "/kv-nojs-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir + "/plugins", withIntermediateDirectories: true)
        try Self.yaml.write(toFile: dir + "/plexus.yaml", atomically: true, encoding: .utf8)
        let r = try PlexusCommand.run(["run", "--plugins", dir + "/plugins", "--socket", dir + "/h.sock", "--store", dir + "/h.db",
                                       "--nats", plain.url, "--node", "a", "--config", dir + "/plexus.yaml"])
        #expect(r.status == 1)
        #expect(r.err.contains("nats.kv: jetstream: cannot open the key-value bucket PLEXUS_plexus_KV: the NATS server has no JetStream"), "\(r.err)")
        // Without NATS at all, the setting is refused as needing it.
        let alone = try PlexusCommand.run(["run", "--plugins", dir + "/plugins", "--socket", dir + "/h2.sock", "--store", dir + "/h2.db",
                                           "--config", dir + "/plexus.yaml"])
        #expect(alone.status == 1)
        #expect(alone.err.contains("nats.kv: jetstream shares the key-value store over NATS: give --nats"), "\(alone.err)")
    }

    /// Review finding: a write made while NATS was away was reported failed,
    /// then applied when NATS came back (libnats' reconnect buffer sent it).
    /// Now it is refused at once with nothing sent, and the key keeps its value.
    @Test func aWriteWhileNATSIsAwayIsRefusedAtOnceAndNeverAppliedLater() throws {
        let store = Fixtures.dir + "/kv-away-\(UUID().uuidString.prefix(6))"
        var nats: NatsServer? = try ClusterEventTests.jetStream(storeDir: store)
        let port = nats!.port
        let a = try ClusterTests.node("a", nats!.url, plugins: ["counter.so": try KeyValueTests.counter()], yaml: Self.yaml)
        let first = try Self.kv(a.socket, ["put", "counter", "x", "2"])
        #expect(first.status == 0, "\(first.err)")
        let v = try #require(Int64(first.out.trimmingCharacters(in: .whitespacesAndNewlines)))

        nats = nil   // SIGKILL
        #expect(waitFor(seconds: 20) { (try? ClusterTests.plexus(["nodes", "--socket", a.socket]))?.out.contains("reconnecting") == true })
        let away = try Self.kv(a.socket, ["put", "counter", "x", "3", "--expected", "\(v)"])
        #expect(away.status == 1)
        #expect(away.err.contains("NATS is unreachable") && away.err.contains("nothing was sent"), "\(away.err)")

        nats = try ClusterEventTests.jetStream(storeDir: store, port: port)
        #expect(waitFor(seconds: 30) { (try? Self.kv(a.socket, ["get", "counter", "x", "--json"]))?.status == 0 })
        // Give a buffered write every chance to land: a write that goes through now is ordered after it.
        let probe = try Self.kv(a.socket, ["put", "counter", "probe", "1"])
        #expect(probe.status == 0, "\(probe.err)")
        let got = try JSONValue.parse(Array(try Self.kv(a.socket, ["get", "counter", "x", "--json"]).out.utf8))
        #expect(got["value"] == .string("2") && got["version"] == .int(v), "the refused write was applied: \(got.text)")
        _ = nats
    }
}
