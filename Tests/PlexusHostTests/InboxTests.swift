@testable import PlexusHost
import PlexusThreads
import Synchronization
import Glibc
import Testing

/// An agent's lock-free inbox (Inbox.swift): the capacity, replies admitted
/// past it, the closed states, order through the spill into the locked lane
/// and back, and with real threads, that concurrent senders lose nothing,
/// keep their order, and never leave a message without a runner.
@Suite("Agent inbox")
struct InboxTests {
    func message(_ n: Int, priority: UInt8 = 1) -> Unmanaged<Message> {
        Unmanaged.passRetained(MailboxTests.message(UInt64(n), priority: priority))
    }

    func accepted(_ a: Agent.Admission) -> Bool { if case .accepted = a { true } else { false } }

    @Test func aFullInboxRefusesRepliesPassAndClosingRefusesAsTheStateSays() {
        let b = Inbox(capacity: 4, concurrency: 1, fast: true)
        for n in 0..<4 { #expect(accepted(b.admit(message(n), force: false, workerLoad: nil))) }
        let refused = message(99)
        guard case .full = b.admit(refused, force: false, workerLoad: nil) else { Issue.record("not full"); return }
        refused.release()   // a refusal leaves the reference with the caller
        #expect(accepted(b.admit(message(4), force: true, workerLoad: nil)))   // a reply the agent asked for
        b.close(all: false, new: true)                                          // draining
        let late = message(98)
        guard case .closed = b.admit(late, force: false, workerLoad: nil) else { Issue.record("draining took a message"); return }
        late.release()
        #expect(accepted(b.admit(message(5), force: true, workerLoad: nil)))
        b.close(all: true, new: false)                                          // terminated
        let last = message(97)
        guard case .closed = b.admit(last, force: true, workerLoad: nil) else { Issue.record("terminated took a reply"); return }
        last.release()
        #expect(b.count == 6)
        #expect(b.drain().map(\.id.lo) == [0, 1, 2, 3, 4, 5])
        #expect(b.count == 0)
        // A worker's unstarted messages count against the same limit: its load is
        // queued + held unstarted + the one running.
        let w = Inbox(capacity: 4, concurrency: 1, fast: false)
        #expect(accepted(w.admit(message(0), force: false, workerLoad: 3)))
        let over = message(1)
        guard case .full = w.admit(over, force: false, workerLoad: 5) else { Issue.record("worker inbox not full"); return }
        over.release()
    }

    /// 6,000 messages into a normal-priority lane of 4,096: the rest spill
    /// into the locked lane, later ones follow them there while it is in use,
    /// a higher priority still comes first, and the order is exact.
    @Test func orderHoldsThroughTheSpillIntoTheLockedLaneAndBack() {
        let b = Inbox(capacity: 10_000, concurrency: 1, fast: true)
        #expect(accepted(b.admit(message(0), force: false, workerLoad: nil)))   // claims the runner
        for n in 1..<6_000 { _ = b.admit(message(n), force: false, workerLoad: nil) }
        var out: [UInt64] = []
        for _ in 0..<100 { if let m = b.next() { out.append(m.id.lo) } }
        for n in 6_000..<6_050 { _ = b.admit(message(n), force: false, workerLoad: nil) }
        _ = b.admit(message(1_000_000, priority: 3), force: false, workerLoad: nil)
        #expect(b.next()?.id.lo == 1_000_000)
        while let m = b.next() { out.append(m.id.lo) }   // the last, nil, gives the runner up
        #expect(out == (0..<6_050).map(UInt64.init))
        // Empty again, the fast lane serves: the next message claims a runner.
        guard case .accepted(let schedule) = b.admit(message(7), force: false, workerLoad: nil) else { Issue.record("refused"); return }
        #expect(schedule)
        #expect(b.next()?.id.lo == 7)
    }

    @Test func requeuedMessagesGoBackInFrontOfNewerOnes() {
        for fast in [true, false] {
            let b = Inbox(capacity: 100, concurrency: 1, fast: fast)
            for n in 10..<15 { _ = b.admit(message(n), force: false, workerLoad: nil) }
            let first = b.next()
            #expect(first?.id.lo == 10)
            _ = b.requeueFront([MailboxTests.message(1), MailboxTests.message(2)])
            var order: [UInt64] = []
            while let m = b.next() { order.append(m.id.lo) }
            #expect(order == [1, 2, 11, 12, 13, 14], "fast lane: \(fast)")
        }
    }

    /// Four sender threads, 20,000 messages each, into an inbox whose normal
    /// lane (4,096) overflows into the locked one; a runner thread runs the
    /// agent each time an admission says it must be scheduled, as the
    /// dispatcher does. Every message arrives once, each sender's in order,
    /// and there is exactly one run per claim (never two runners at once,
    /// and no message left without one).
    @Test func concurrentSendersLoseNothingAndKeepTheirOrder() throws {
        let senders = 4, perSender = 20_000
        let b = Inbox(capacity: 1_000_000, concurrency: 1, fast: true)
        let claims = Atomic<Int>(0)
        var threads: [OwnedThread] = []
        for s in 0..<senders {
            threads.append(try startThread(name: "inbox-sender") {
                for i in 1...perSender {
                    let u = Unmanaged.passRetained(MailboxTests.message(UInt64(s) << 32 | UInt64(i), priority: UInt8(i % 97 == 0 ? 2 : 1)))
                    guard case .accepted(let schedule) = b.admit(u, force: false, workerLoad: nil) else { u.release(); continue }
                    if schedule { claims.add(1, ordering: .relaxed) }
                }
            })
        }
        var last = [UInt64](repeating: 0, count: senders), lastUrgent = last
        var received = 0, runs = 0, outOfOrder = 0
        var idle = 0
        while received < senders * perSender && idle < 50_000_000 {
            guard claims.load(ordering: .acquiring) > runs else { idle += 1; sched_yield(); continue }
            runs += 1
            while let m = b.next() {
                let s = Int(m.id.lo >> 32), i = m.id.lo & 0xFFFF_FFFF
                if m.header.priority == 2 {
                    if i <= lastUrgent[s] { outOfOrder += 1 }
                    lastUrgent[s] = i
                } else {
                    if i <= last[s] { outOfOrder += 1 }
                    last[s] = i
                }
                received += 1
            }
        }
        for t in threads { t.join() }
        #expect(received == senders * perSender)
        #expect(outOfOrder == 0)
        #expect(claims.load(ordering: .relaxed) == runs)
        #expect(b.count == 0)
    }
}
