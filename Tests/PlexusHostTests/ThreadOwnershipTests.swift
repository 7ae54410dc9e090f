import Glibc
import PlexusCore
import PlexusTasks
import PlexusThreads
import Synchronization
import Testing

/// Every thread has an owner, and pthread_create failing is an error the
/// caller handles. Failures are injected with ThreadFaults (a lowered
/// RLIMIT_NPROC does not bind root, so it cannot fail reliably); each test
/// uses thread names of its own so parallel tests never see its faults.
@Suite("Thread ownership")
struct ThreadOwnershipTests {
    @Test func aThreadThatCannotStartIsAnErrorAndTheNextOneStarts() throws {
        ThreadFaults.failNext(1, named: "test-owned-a")
        #expect(throws: ThreadStartError.self) { _ = try startThread(name: "test-owned-a") {} }
        let ran = Flag()
        let t = try startThread(name: "test-owned-a") { ran.set() }
        t.join()
        #expect(ran.isSet)
        t.join()   // idempotent
    }

    /// The name a thread is started with is the one `top -H`, `ps -L`,
    /// perf and gdb show, cut to the kernel's 15 bytes.
    @Test func aThreadCarriesItsNameWhereToolsLookForIt() throws {
        for (asked, shown) in [("test-named", "test-named"), ("test-a-very-long-thread-name", "test-a-very-lon")] {
            let seen = OneShot<String>()
            let t = try startThread(name: asked) {
                var buf = [CChar](repeating: 0, count: 32)
                let fd = open("/proc/thread-self/comm", O_RDONLY)
                let n = fd < 0 ? 0 : read(fd, &buf, 31)
                if fd >= 0 { close(fd) }
                seen.set(String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            t.join()
            #expect(seen.wait() == shown + "\n")
        }
    }

    @Test func aPoolWithNoThreadRefusesTheCallAndAFullPoolAnswersMailboxFull() throws {
        // No thread can start: the caller hears INTERNAL at once, nothing waits.
        let broken = ServicePool(name: "test-pool-broken", threads: 2, queueLimit: 4)
        ThreadFaults.failNext(1, named: "test-pool-broken")
        let refusal = OneAnswer()
        broken.run("test.broken", answer: refusal.set) { () throws(PlexusError) in .null }
        #expect(refusal.wait()?.status == PLEXUS_INTERNAL.status)
        #expect(broken.pool.threadCount == 0)

        // One thread, room for one waiting call: with the thread busy and
        // one call waiting, the next is refused MAILBOX_FULL at once.
        let pool = ServicePool(name: "test-pool-full", threads: 1, queueLimit: 1)
        let gate = ConditionLock()
        nonisolated(unsafe) var open = false
        let running = Flag()
        let first = OneAnswer(), second = OneAnswer(), third = OneAnswer()
        pool.run("test.full", answer: first.set) { () throws(PlexusError) in
            running.set()
            gate.withLock { while !open { gate.wait() } }
            return .int(1)
        }
        #expect(waitFor(seconds: 30) { running.isSet })
        pool.run("test.full", answer: second.set) { () throws(PlexusError) in .int(2) }
        pool.run("test.full", answer: third.set) { () throws(PlexusError) in .int(3) }
        let busy = try #require(third.peek(), "the third call was not refused at once")
        #expect(busy.status == PLEXUS_MAILBOX_FULL.status)
        #expect(busy.detail.contains("test.full is busy"))
        #expect(pool.pool.threadCount == 1)
        gate.withLock { open = true; gate.broadcast() }
        #expect(first.wait() == nil)
        #expect(second.wait() == nil)
    }
}

final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

/// One answer from a service pool: the error, or nil for success.
final class OneAnswer: @unchecked Sendable {
    private let lock = ConditionLock()
    private var answer: Result<JSONValue, PlexusError>?

    var set: @Sendable (Result<JSONValue, PlexusError>) -> Void {
        { [self] r in lock.withLock { answer = r; lock.broadcast() } }
    }

    /// Waits (60 s at most) and returns the error, nil on success.
    func wait() -> PlexusError? {
        let deadline = Clock.monotonicNanos() + 60_000_000_000
        return lock.withLock {
            while answer == nil && Clock.monotonicNanos() < deadline { lock.wait(untilMonotonic: deadline) }
            if case .failure(let e)? = answer { return e }
            return nil
        }
    }

    /// The error if an answer came already.
    func peek() -> PlexusError? {
        lock.withLock { if case .failure(let e)? = answer { return e }; return nil }
    }
}
