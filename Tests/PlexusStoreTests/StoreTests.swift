import Foundation
import Glibc
import PlexusCore
import PlexusStore
import Synchronization
import Testing

/// The store: compare-and-set under concurrent writers, durable group
/// commit, and a damaged file salvaged on open (FAULTS.md 33).
@Suite("Store")
struct StoreTests {
    func freshPath() -> String {
        let dir = NSTemporaryDirectory() + "plexus-store-\(getpid())-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/plexus.db"
    }

    @Test func compareAndSetHoldsUnderConcurrentWriters() throws {
        let store = try Store(path: freshPath())
        defer { store.close() }
        #expect(try store.put("counters", "n", Array("0".utf8), expected: 0) == 1)
        let writers = 8, increments = 40
        let conflicts = Tally()
        let group = DispatchGroup()
        for _ in 0..<writers {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                for _ in 0..<increments { increment(store, conflicts) }
            }
        }
        group.wait()
        let final = try #require(try store.get("counters", "n"))
        #expect(String(decoding: final.value, as: UTF8.self) == "\(writers * increments)")   // no increment lost
        #expect(final.version == Int64(writers * increments + 1))
        #expect(conflicts.count.load(ordering: .relaxed) > 0, "the writers never raced: the test proved nothing")
    }

    /// Read, add one, write back only if nobody wrote in between; else again.
    func increment(_ store: Store, _ conflicts: Tally) {
        while true {
            let e = try! store.get("counters", "n")!
            let n = Int(String(decoding: e.value, as: UTF8.self))!
            do {
                try store.put("counters", "n", Array("\(n + 1)".utf8), expected: e.version)
                return
            } catch let err as PlexusError where err.status == PLEXUS_CONFLICT.rawValue {
                conflicts.count.add(1, ordering: .relaxed)
            } catch {
                Issue.record("\(error)")
                return
            }
        }
    }

    @Test func aStaleWriteIsRefusedNamingTheVersionFound() throws {
        let store = try Store(path: freshPath())
        defer { store.close() }
        try store.put("ns", "k", Array("a".utf8))
        try store.put("ns", "k", Array("b".utf8))
        do {
            try store.put("ns", "k", Array("c".utf8), expected: 1)
            Issue.record("a stale write was accepted")
        } catch let e as PlexusError {
            #expect(e.status == PLEXUS_CONFLICT.rawValue && e.detail == "key 'k' is at version 2, not 1")
        }
        #expect(throws: PlexusError.self) { try store.put("ns", "k", Array("d".utf8), expected: 0) }   // 0: create only
        #expect(try store.get("ns", "k") == Store.Entry(value: Array("b".utf8), version: 2))
        #expect(try store.delete("ns", "k", expected: 2))
        #expect(try store.get("ns", "k") == nil)
    }

    @Test func groupCommitCarriesConcurrentWritesInFewerTransactions() throws {
        let store = try Store(path: freshPath())
        defer { store.close() }
        // 50 threads each writing 4 keys: while one transaction is on its way
        // to disk, the writes arriving meanwhile wait and go together.
        let group = DispatchGroup()
        for t in 0..<50 {
            group.enter()
            Thread.detachNewThread {
                for j in 0..<4 { try! store.put("g", "k\(t * 4 + j)", [UInt8(j)]) }
                group.leave()
            }
        }
        group.wait()
        #expect(try store.keys("g").count == 200)
        #expect(store.writes == 200 && store.transactions < 200, "\(store.transactions) transactions for \(store.writes) writes")
    }

    @Test func aDamagedFileIsSalvagedAndReported() throws {
        let path = freshPath()
        do {
            let store = try Store(path: path)
            for i in 0..<3000 { store.enqueue { db in try Store.appendEvent(db, kind: "test.filler", subject: "s\(i)", data: ["i": .int(Int64(i)), "pad": .string(String(repeating: "x", count: 200))], at: Int64(i)) } }
            try store.put("ns", "kept", Array("yes".utf8))
            store.close()
        }
        try? FileManager.default.removeItem(atPath: path + "-wal")
        // Scribble over pages in the middle of the file, as a torn write or a bad disk would.
        let fd = open(path, O_WRONLY)
        let size = lseek(fd, 0, SEEK_END)
        let junk = [UInt8](repeating: 0xA5, count: 8192)
        _ = pwrite(fd, junk, junk.count, off_t(size / 2 / 4096 * 4096))
        close(fd)

        let store = try Store(path: path)
        defer { store.close() }
        #expect(store.openReport.hasPrefix("damaged ("), "\(store.openReport)")
        #expect(store.openReport.contains("the damaged file is kept at \(path).damaged-"), "\(store.openReport)")
        let kept = try store.events(after: 0, limit: 10_000).count
        #expect(kept > 0 && kept < 3000, "kept \(kept) of 3000 events")
        try store.put("ns", "after", Array("works".utf8))   // and the store is usable again
        #expect(try store.get("ns", "after")?.value == Array("works".utf8))
    }
}

final class Tally: Sendable {
    let count = Atomic<Int>(0)
}
