import Foundation
import Glibc
import PlexusCore
import PlexusStore
import Synchronization
import PlexusTestSupport
import Testing

/// The store: compare-and-set under concurrent writers, durable group
/// commit, and a damaged file salvaged on open (FAULTS.md 33).
@Suite("Store")
struct StoreTests {
    func freshPath() -> String {
        TestDirectory.make("store") + "/plexus.db"
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

    @Test func aFailingWriteIsRolledBackAloneAndTheOthersInItsBatchCommit() throws {
        let store = try Store(path: freshPath())
        defer { store.close() }
        let results = Mutex<[Int: Bool]>([:])
        let group = DispatchGroup()
        for i in 0..<30 {
            group.enter()
            store.enqueue({ db in
                try Store.appendEvent(db, kind: "test.batch", subject: "w\(i)", data: [:], at: Int64(i))
                if i % 3 == 1 { throw PlexusError(.CONFLICT, "write \(i) refuses") }   // after it wrote its row
            }, done: { e in results.withLock { $0[i] = e == nil }; group.leave() })
        }
        group.wait()
        let kept = try store.events(after: 0, limit: 100, kind: "test.batch").map(\.subject)
        #expect(kept == (0..<30).filter { $0 % 3 != 1 }.map { "w\($0)" })
        #expect(results.withLock { $0 } == Dictionary(uniqueKeysWithValues: (0..<30).map { ($0, $0 % 3 != 1) }))
    }

    /// A task row in `state`, finished at `finished` (0: not finished), with one attempt.
    func task(_ id: String, seq: Int64, _ state: TaskState, finished: Int64) -> (TaskRecord, AttemptRecord) {
        (TaskRecord(id: id, seq: seq, capability: "c", payload: Data(), content_type: "text/plain", priority: 1, deadline_unix_ns: 0,
                    max_attempts: 3, backoff_ms: 1, backoff_max_ms: 1, timeout_ms: 1, idempotency_key: nil, depends_on: "",
                    state: state, attempts: 1, not_before_unix_ns: 0, submitted_unix_ns: 1, finished_unix_ns: finished,
                    agent: nil, result: nil, result_type: nil, error: nil),
         AttemptRecord(task_id: id, attempt: 1, agent: "a", started_unix_ns: 1, finished_unix_ns: finished, outcome: "x", detail: ""))
    }

    @Test func retentionRemovesOnlyWhatFinishedLongAgo() throws {
        let store = try Store(path: freshPath())
        defer { store.close() }
        try store.commit { db in
            for i in 0..<12_000 { try Store.appendEvent(db, kind: "test", subject: "e", data: [:], at: Int64(i)) }
            let rows = [self.task("old-done", seq: 1, .completed, finished: 100), self.task("old-dead", seq: 2, .dead, finished: 100),
                        self.task("new-done", seq: 3, .completed, finished: 5_000), self.task("running", seq: 4, .running, finished: 0),
                        self.task("waiting", seq: 5, .waiting, finished: 0)]
            for (t, a) in rows { try t.insert(db); try a.insert(db) }
            for (n, (id, state, finished)) in [("old-run", "completed", Int64(100)), ("new-run", "failed", 5_000), ("live-run", "running", 0)].enumerated() {
                try RunRecord(id: id, seq: Int64(n + 1), workflow: "w", file: "f", source: "", input: "{}", state: state,
                              generation: 0, created_unix_ns: 1, finished_unix_ns: finished).insert(db)
                try CheckpointRecord(run_id: id, step: "s", item: -1, state: "done", output: "1", error: nil, task_id: nil,
                                     started_unix_ns: 1, finished_unix_ns: finished).insert(db)
            }
        }
        try store.put("ns", "kept", Array("yes".utf8))
        let p = try store.prune(keepEvents: 1_000, tasksBefore: 1_000, runsBefore: 1_000)
        #expect(p == Store.Pruned(events: 11_000, tasks: 2, runs: 1))   // events in three slices
        #expect(try store.events(after: 0, limit: 10_000).map(\.seq) == Array(11_001...12_000))
        #expect(try store.tasks(limit: 10).map(\.id).sorted() == ["new-done", "running", "waiting"])
        #expect(try store.attempts(of: "old-done").isEmpty && store.attempts(of: "new-done").count == 1)
        #expect(try store.runs(limit: 10).map(\.id).sorted() == ["live-run", "new-run"])
        #expect(try store.checkpoints(of: "old-run").isEmpty && store.checkpoints(of: "new-run").count == 1)
        #expect(try store.get("ns", "kept") != nil)
        #expect(try store.prune(keepEvents: 1_000, tasksBefore: 1_000, runsBefore: 1_000) == Store.Pruned())
    }

    @Test func retentionRunsOnItsTimerAndStopsWithTheStore() throws {
        let store = try Store(path: freshPath())
        for i in 0..<500 { store.enqueue { db in try Store.appendEvent(db, kind: "test", subject: "e", data: [:], at: Int64(i)) } }
        var r = StoreSettings.Retention()
        r.events = 100
        r.intervalSeconds = 0.05
        try store.startRetention(r)
        var left = 500
        var reported: EventRecord?
        for _ in 0..<200 where left > 100 || reported == nil {
            usleep(20_000)
            left = try store.events(after: 0, limit: 10_000).filter { $0.kind == "test" }.count
            reported = try store.latestEvents(1, kind: "store.pruned").first
        }
        #expect(left <= 100)
        #expect(reported?.data.contains("\"tasks\":0") == true, "\(reported?.data ?? "no store.pruned event")")
        store.close()   // returns: the timer does not hold the store open
    }
}

final class Tally: Sendable {
    let count = Atomic<Int>(0)
}
