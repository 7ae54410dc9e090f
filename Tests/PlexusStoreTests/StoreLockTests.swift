import Foundation
import Glibc
import PlexusStore
import PlexusTestSupport
import Testing

/// FAULTS.md 44, in one process: the store's lock is a flock on its own open
/// of `<store>.lock`, so even a second open from this process is refused —
/// and naming this process's pid — until the first closes.
@Suite("Store lock")
struct StoreLockTests {
    func freshPath() -> String {
        TestDirectory.make("lock") + "/plexus.db"
    }

    @Test func aSecondOpenIsRefusedNamingThePathAndTheHoldersPid() throws {
        let path = freshPath()
        let first = try Store(path: path)
        do {
            _ = try Store(path: path)
            Issue.record("a second open of \(path) was allowed")
        } catch {
            #expect(error.description.hasPrefix("\(path) is in use by another host (pid \(getpid()), per \(path).lock)"), "\(error)")
        }
        #expect(try String(contentsOfFile: path + ".lock", encoding: .utf8) == "\(getpid())\n")
        first.close()
        let again = try Store(path: path)   // closing lets the next one in
        defer { again.close() }
        try again.put("ns", "k", Array("v".utf8))
        #expect(try again.get("ns", "k")?.value == Array("v".utf8))
    }

    @Test func aStaleLockFileFromADeadHolderDoesNotKeepTheStoreClosed() throws {
        let path = freshPath()
        try "99999999\n".write(toFile: path + ".lock", atomically: false, encoding: .utf8)   // left by a host that died
        let store = try Store(path: path)
        defer { store.close() }
        #expect(try String(contentsOfFile: path + ".lock", encoding: .utf8) == "\(getpid())\n")
    }

    /// Another name for the same store is the same store: a symlink finds
    /// the target's lock (and names its holder), a hard link the file's.
    @Test func aLinkToAStoreInUseIsRefusedToo() throws {
        let path = freshPath()
        let first = try Store(path: path)
        defer { first.close() }
        let soft = path + "-soft.db", hard = path + "-hard.db"
        #expect(symlink(path, soft) == 0)
        #expect(link(path, hard) == 0)
        do { _ = try Store(path: soft); Issue.record("a symlink to a store in use was opened") } catch {
            #expect(error.description.contains("is in use by another host (pid \(getpid()), per \(path).lock)"), "\(error)")
        }
        do { _ = try Store(path: hard); Issue.record("a hard link to a store in use was opened") } catch {
            #expect(error.description.contains("is in use by another host under another name (a hard link to the same file)"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: hard + "-wal"))   // refused before SQLite touched it
    }
}
