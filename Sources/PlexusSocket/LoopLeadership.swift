import Glibc
import PlexusThreads
import Synchronization

/// Who serves the socket's event loop, so that an agent run inline on the
/// loop thread (InlineRunner) can hold up the other clients for about one
/// tick at most, however long its handler takes.
///
/// The loop's state is touched only by the thread holding `token`. The loop
/// thread gives the token up while an agent runs inline (`runAside`), and a
/// standby thread watches those runs: one still going after a whole tick
/// (1-2 ms) makes the standby take the token and serve the loop itself —
/// with no inline runs, so it cannot be held up in turn — until that run
/// ends; then the loop thread takes the token back. The standby ticks only
/// while inline runs happen (it sleeps after a second without one), so an
/// idle host has no extra wake-ups.
final class LoopLeadership: @unchecked Sendable {
    /// Held by whichever thread serves the loop.
    private let token = ConditionLock()
    /// Bumped before and after every inline run: odd while one runs.
    private let runs = Atomic<UInt64>(0)
    /// Bumped each time the standby served the loop.
    private let takeovers = Atomic<UInt64>(0)
    private let armed = Atomic<Bool>(false)
    /// True while the standby serves: the run that ends rings `wakeLoop` so
    /// the standby's wait returns at once and it gives the token back.
    private let serving = Atomic<Bool>(false)
    private var wakeLoop: @Sendable () -> Void = {}
    private let stopping = Atomic<Bool>(false)
    /// The standby sleeps here while disarmed.
    private let bell = ConditionLock()
    private let standby = Mutex<OwnedThread?>(nil)

    static let tickNanos = 1_000_000
    /// Ticks without an inline run before the standby sleeps.
    static let idleTicks = 1_000

    /// Starts the standby. `serve(stillStuck)` serves the loop (token held,
    /// no inline runs) until stillStuck() turns false.
    func start(wakeLoop: @escaping @Sendable () -> Void,
               serve: @escaping @Sendable (_ stillStuck: () -> Bool) -> Void) throws(ThreadStartError) {
        self.wakeLoop = wakeLoop
        let t = try startThread(name: "plexus-standby") { [self] in watch(serve) }
        standby.withLock { $0 = t }
    }

    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        bell.withLock { bell.signal() }
        standby.withLock { $0.take() }?.join()
    }

    /// The loop thread takes the token to serve, and gives it back when it ends.
    func lead() { token.lock() }
    func resign() { token.unlock() }

    /// How many times the standby served so far (a loop thread that sees
    /// this change after `runAside` drops the events it had read: they are stale).
    var served: UInt64 { takeovers.load(ordering: .sequentiallyConsistent) }

    /// Inline runs so far.
    var inlineRuns: UInt64 { runs.load(ordering: .relaxed) / 2 }

    /// Runs `body` (an agent's batch) with the token given up, and takes it back.
    func runAside(_ body: () -> Void) {
        runs.add(1, ordering: .sequentiallyConsistent)   // odd: a run is on
        if !armed.load(ordering: .sequentiallyConsistent) {   // after the bump: see watch()'s disarm
            bell.withLock { armed.store(true, ordering: .sequentiallyConsistent); bell.signal() }
        }
        token.unlock()
        body()
        runs.add(1, ordering: .sequentiallyConsistent)   // even: the standby, if serving, stops and gives the token back
        if serving.load(ordering: .sequentiallyConsistent) { wakeLoop() }
        token.lock()
    }

    private func watch(_ serve: (_ stillStuck: () -> Bool) -> Void) {
        while !stopping.load(ordering: .sequentiallyConsistent) {
            bell.lock()
            while !armed.load(ordering: .sequentiallyConsistent) && !stopping.load(ordering: .sequentiallyConsistent) { bell.wait() }
            bell.unlock()
            var seen = runs.load(ordering: .sequentiallyConsistent)
            var quiet = 0
            while !stopping.load(ordering: .sequentiallyConsistent) {
                var ts = timespec(tv_sec: 0, tv_nsec: Self.tickNanos)
                nanosleep(&ts, nil)
                let now = runs.load(ordering: .sequentiallyConsistent)
                if now == seen && now & 1 == 1 {
                    // The same run for a whole tick: serve the others until it ends.
                    token.lock()
                    takeovers.add(1, ordering: .sequentiallyConsistent)
                    serving.store(true, ordering: .sequentiallyConsistent)
                    serve { runs.load(ordering: .sequentiallyConsistent) == now && !stopping.load(ordering: .sequentiallyConsistent) }
                    serving.store(false, ordering: .sequentiallyConsistent)
                    token.unlock()
                }
                quiet = now == seen ? quiet + 1 : 0
                seen = runs.load(ordering: .sequentiallyConsistent)
                if quiet >= Self.idleTicks {
                    armed.store(false, ordering: .sequentiallyConsistent)
                    // A run that began before the loop could see the disarm is still watched.
                    if runs.load(ordering: .sequentiallyConsistent) != seen { armed.store(true, ordering: .sequentiallyConsistent) }
                    break
                }
            }
        }
    }
}
