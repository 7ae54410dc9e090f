import Glibc
import PlexusHost
import Synchronization

/// Runs the agent that a message from another host wakes on libnats'
/// delivery thread, instead of waking a dispatcher thread for it: a
/// cross-host round trip then costs libnats' own hand-off (its reader to
/// its delivery thread) on each host and nothing more, as raw libnats
/// request/reply does. The agent runs exactly as a dispatcher worker would
/// run it (one batch, InlineRunner); what it wakes goes to the workers, and
/// what it sends to other hosts is written from this thread.
///
/// While an agent runs here, later messages on the same subscription wait.
/// So an agent whose inline runs are slow (InlineDeliveryPolicy: three in
/// a row) is sent back to the dispatcher's workers for `penaltyNanos`, as the socket
/// server's loop does with its inline runs (PlexusSocket's InlinePolicy);
/// the announcements (heartbeats) have their own subscription and thread,
/// so a slow handler never makes this host miss another host's heartbeat.
/// One per subscription: libnats never runs one subscription's callback on
/// two threads at once, which InlineRunner requires.
final class InlineDelivery: Sendable {
    private let runner: InlineRunner
    private let policy: InlineDeliveryPolicy
    /// The last run's wall time was slow: measure the next ones' CPU time.
    private let checkCPU = Atomic<Bool>(false)

    init(_ runner: InlineRunner, policy: InlineDeliveryPolicy) {
        self.runner = runner
        self.policy = policy
    }

    /// Routes with `route` (which hands the message to the host's router),
    /// then runs the agent it woke here, or hands it to the workers.
    func deliver(_ route: () -> Void) {
        guard let woken = runner.routing(route) else { return }
        let t0 = InlineDeliveryPolicy.now()
        guard policy.mayRunInline(woken.name, now: t0) else { return woken.handOff() }
        // The thread's CPU time costs a system call (about 1 µs): it is read
        // only after a run whose wall time looked slow, until a run is quick
        // again. Until then a run counts by its wall time as quick.
        let checking = checkCPU.load(ordering: .relaxed)
        let cpu0 = checking ? InlineDeliveryPolicy.threadCPU() : 0
        woken.run()
        let t1 = InlineDeliveryPolicy.now()
        let wall = t1 - t0
        let cpu = checking ? InlineDeliveryPolicy.threadCPU() - cpu0 : min(wall, policy.quickRunNanos)
        policy.ranInline(woken.name, nanos: wall, cpuNanos: cpu, now: t1)
        let suspect = wall > policy.quickRunNanos
        if suspect != checking { checkCPU.store(suspect, ordering: .relaxed) }
    }
}

/// Which agents may run on a delivery thread: every agent, until its
/// inline runs are slow `strikes` times in a row; then not for a while.
/// Slow: more than `quickRunNanos` of this thread's CPU time (a busy
/// handler), or more than `blockedRunNanos` of wall time (one that blocks).
/// Wall time alone would say little on a busy machine, where the thread is
/// preempted in the middle of quick runs; in a row for the same reason. Shared
/// by a host's subscriptions. The numbers are fixed (not plexus.yaml
/// settings): they only decide on which thread a handler runs, never what
/// it does.
final class InlineDeliveryPolicy: Sendable {
    let quickRunNanos: Int64
    let blockedRunNanos: Int64
    let strikes: Int
    let penaltyNanos: Int64
    /// Agents remembered at most (names come and go): past this the record starts over.
    private let remembered = 4_096

    private struct Record {
        var slowInARow = 0
        /// Until when it runs on the workers only (monotonic ns).
        var offUntil: Int64 = 0
    }
    private let records = Mutex<[String: Record]>([:])

    init(quickRunNanos: Int64 = 200_000, blockedRunNanos: Int64 = 20_000_000, strikes: Int = 3, penaltyNanos: Int64 = 10_000_000_000) {
        self.quickRunNanos = quickRunNanos
        self.blockedRunNanos = blockedRunNanos
        self.strikes = strikes
        self.penaltyNanos = penaltyNanos
    }

    func mayRunInline(_ agent: String, now: Int64) -> Bool {
        records.withLock { r in
            guard let x = r[agent] else { return true }
            return now >= x.offUntil
        }
    }

    /// An inline run of `agent` took `nanos` (`cpuNanos` of them on the CPU), ending at `now`.
    func ranInline(_ agent: String, nanos: Int64, cpuNanos: Int64, now: Int64) {
        let slow = cpuNanos > quickRunNanos || nanos > blockedRunNanos
        records.withLock { r in
            if !slow {
                if r[agent] != nil { r[agent] = nil }   // the common case touches nothing
                return
            }
            if r[agent] == nil && r.count >= remembered { r.removeAll(keepingCapacity: true) }
            var x = r[agent, default: Record()]
            x.slowInARow += 1
            if x.slowInARow >= strikes {
                x.slowInARow = 0
                x.offUntil = now + penaltyNanos
            }
            r[agent] = x
        }
    }

    static func now() -> Int64 { read(CLOCK_MONOTONIC) }

    /// The calling thread's CPU time (a system call, not the vDSO).
    static func threadCPU() -> Int64 { read(CLOCK_THREAD_CPUTIME_ID) }

    private static func read(_ clock: clockid_t) -> Int64 {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
