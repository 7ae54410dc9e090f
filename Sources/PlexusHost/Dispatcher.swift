import PlexusThreads
import Glibc
import CPlexusInternal
import DequeModule
import Synchronization

/// Runs agents that have mail on a fixed pool of OS threads. An agent is in
/// the run queue at most `concurrency` times (once, unless its plugin is
/// concurrent), so it runs on at most that many threads at a time.
///
/// Each worker has a one-agent "next" slot: when a handler running on a worker
/// wakes an idle agent, that agent runs next on the same worker, with no lock
/// hand-off and no thread wake-up (request/reply ping-pong stays on one core).
/// A worker that keeps using its slot hands it to the shared queue after
/// `slotBudget` turns, but only when other agents are waiting there, so they
/// are not starved; and a watchdog moves a slot's agent to the shared queue
/// when the worker's current handler runs longer than one watchdog tick
/// (1-2 ms), so an idle worker picks it up instead of it waiting.
final class Dispatcher: @unchecked Sendable {
    private let runQueue = ConditionLock()
    private var queue = Deque<Agent>()
    /// queue.count, readable without the lock (a hint for the slot budget).
    private let waiting = Atomic<Int>(0)
    private var idleWorkers = 0
    private var stopping = false
    /// Set by stop(): a running batch ends after its current message.
    let halted = Atomic<Bool>(false)
    private var threads: [OwnedThread] = []
    /// Runs an agent's batch; handed the dispatcher so it need not load
    /// (and retain) one. Set once, before start (Router.init).
    var deliver: (Dispatcher, Agent) -> Void = { _, _ in }
    let threadCount: Int

    /// How many messages an agent handles before yielding its worker.
    static let batch = 64
    static let slotBudget = 256

    static let watchdogTickNanos = 1_000_000

    final class Worker: Sendable {
        /// The next agent, as retained Unmanaged bits (0 = empty); the
        /// watchdog may take it from another thread.
        let next = Atomic<UInt>(0)
        /// Bumped before and after every batch: odd while one runs. The
        /// watchdog sees a stall when an odd value survives a whole tick,
        /// which costs the worker no clock read per batch.
        let batches = Atomic<UInt64>(0)
        nonisolated(unsafe) var slotTurns = 0
        /// Client writes this thread holds during a batch (HeldWrites.swift).
        let held = HeldWrites()

        /// Only this worker's thread writes batches: a load and a store, no
        /// locked read-modify-write (the watchdog only reads it).
        func bumpBatches() {
            batches.store(batches.load(ordering: .relaxed) &+ 1, ordering: .releasing)
        }

        func put(_ a: Agent) -> Agent? {
            Worker.take(next.exchange(UInt(bitPattern: Unmanaged.passRetained(a).toOpaque()), ordering: .acquiringAndReleasing))
        }
        func takeNext() -> Agent? { Worker.take(next.exchange(0, ordering: .acquiringAndReleasing)) }
        static func take(_ bits: UInt) -> Agent? {
            guard bits != 0, let p = UnsafeRawPointer(bitPattern: bits) else { return nil }
            return Unmanaged<Agent>.fromOpaque(p).takeRetainedValue()
        }
    }
    private var workers: [Worker] = []
    private var watchdog: OwnedThread?
    /// The watchdog sleeps on the run queue's condition (under runQueue).
    private var watchdogParked = false
    /// Times the watchdog went to sleep (tests).
    let watchdogParkings = Atomic<Int>(0)

    init(threads: Int) {
        self.threadCount = max(1, threads)
    }

    /// Throws when a thread cannot start; stop() then ends those that did.
    func start() throws(ThreadStartError) {
        workers = (0..<threadCount).map { _ in Worker() }
        for w in workers {
            threads.append(try startThread(name: "plexus-dispatch") { [self] in self.workerLoop(w) })
        }
        watchdog = try startThread(name: "plexus-watchdog") { [self] in self.watchdogLoop() }
    }

    /// Every tick: a worker stuck in one batch gives up its next slot.
    /// After `watchdogIdleTicks` ticks with every worker waiting for work
    /// it sleeps too (an idle host makes no wake-ups), until enqueue wakes
    /// a worker: the only way out of that wait.
    private func watchdogLoop() {
        var seen = [UInt64](repeating: 0, count: workers.count)
        var idleTicks = 0
        while !runQueue.withLock({ stopping }) {
            var ts = timespec(tv_sec: 0, tv_nsec: Self.watchdogTickNanos)
            nanosleep(&ts, nil)
            var busy = false
            for (i, w) in workers.enumerated() {
                let b = w.batches.load(ordering: .relaxed)
                if b == seen[i] && b & 1 == 1 {
                    w.held.release()   // a handler blocks: what earlier ones answered goes out now
                    if let a = w.takeNext() { enqueue(a) }
                }
                busy = busy || b != seen[i] || b & 1 == 1
                seen[i] = b
            }
            idleTicks = busy ? 0 : idleTicks + 1
            if idleTicks >= Self.watchdogIdleTicks { parkWatchdog(); idleTicks = 0 }
        }
    }

    static let watchdogIdleTicks = 100

    /// Sleeps while every worker waits on the run queue. Parked, it waits on
    /// the workers' own condition; the enqueue that ends the park broadcasts.
    private func parkWatchdog() {
        runQueue.lock()
        if idleWorkers == workers.count && queue.isEmpty && !stopping {
            watchdogParked = true
            watchdogParkings.add(1, ordering: .relaxed)
            while watchdogParked && !stopping { runQueue.wait() }
        }
        runQueue.unlock()
    }

    /// Stops the workers after the agents they are running finish their batch.
    func stop() {
        halted.store(true, ordering: .relaxed)
        runQueue.withLock { stopping = true; runQueue.broadcast() }
        for t in threads { t.join() }
        watchdog?.join()
        threads.removeAll()
        watchdog = nil
    }

    /// Makes an agent with fresh mail runnable.
    func schedule(_ agent: Agent) {
        if let raw = plexus_tls_worker() {   // a C thread-local (plexus_tls.h)
            // The worker outlives its thread's loop: borrowed, not retained.
            let queued = Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { w in
                guard w.slotTurns < Self.slotBudget || waiting.load(ordering: .relaxed) == 0 else { return false }
                if let displaced = w.put(agent) { enqueue(displaced) }
                return true
            }
            if queued { return }
        }
        enqueue(agent)
    }

    func enqueue(_ agent: Agent) {
        runQueue.lock()
        queue.append(agent)
        waiting.store(queue.count, ordering: .relaxed)
        let wake = idleWorkers > 0
        let unpark = watchdogParked   // all were idle: this ends the watchdog's sleep too
        watchdogParked = false
        runQueue.unlock()
        // After unlocking: woken under the lock, a waiter would block on it.
        if unpark { runQueue.broadcast() } else if wake { runQueue.signal() }
    }

    private func workerLoop(_ w: Worker) {
        plexus_tls_set_worker(Unmanaged.passUnretained(w).toOpaque())
        let deliver = self.deliver   // once: no load and retain of the closure per batch
        while true {
            let agent: Agent
            if let n = w.takeNext() {
                w.slotTurns += 1
                agent = n
            } else {
                w.slotTurns = 0
                plexus_tls_set_tick(0)   // it may wait: the next handler reads its own start
                runQueue.lock()
                while queue.isEmpty && !stopping {
                    idleWorkers += 1
                    runQueue.wait()
                    idleWorkers -= 1
                }
                if queue.isEmpty && stopping { runQueue.unlock(); break }
                agent = queue.removeFirst()
                waiting.store(queue.count, ordering: .relaxed)
                runQueue.unlock()
            }
            w.bumpBatches()
            w.held.batching = true
            deliver(self, agent)
            w.held.batching = false
            w.held.release()
            w.bumpBatches()
        }
        if let n = w.takeNext() { enqueue(n) }
        plexus_tls_set_worker(nil)
    }

    /// The batch loop a worker runs for one agent; returns with the agent
    /// either idle (flag cleared) or handed back to the queue.
    /// When `gate` says no (a worker's window is full, or it is restarting),
    /// the agent stays marked scheduled and whoever opens the gate requeues it.
    static func runBatch(_ agent: Agent, dispatcher: Dispatcher, gate: () -> Bool = { true },
                         handle: (Message) -> Void) {
        // Unretained: the worker (this thread's) holds it for the whole batch.
        let held = plexus_tls_worker().map { Unmanaged.passUnretained(Unmanaged<Worker>.fromOpaque($0).takeUnretainedValue().held) }
        for _ in 0..<batch {
            guard gate(), !dispatcher.halted.load(ordering: .relaxed) else { return }
            // Suspended by an operator: park, still scheduled; resume requeues it.
            if agent.hold.isOn, agent.hold.park() { return }
            guard let m = agent.next() else { return }
            handle(m)
            Message.recycle(consume m)   // the handler is done with it: its buffer serves the next message made here
            agent.finishedWork()
            held?._withUnsafeGuaranteedRef { $0.releaseIfOld() }
        }
        dispatcher.enqueue(agent)  // still scheduled: more mail may be waiting
    }
}

// MARK: catching a wake-up on a thread that is not a worker

extension Dispatcher {
    /// A slot for a thread that is not one of the workers (the socket
    /// server's event loop): while it routes a client's frame, the agent
    /// that frame wakes lands here instead of waking a worker thread, and
    /// the thread then runs it itself (`run`) or hands it on (`enqueue`).
    final class Catcher: @unchecked Sendable {
        fileprivate let worker = Worker()
    }

    /// Runs `body` with wake-ups caught in `c`; returns the agent it woke
    /// (still scheduled: the caller must `run` or `enqueue` it), if any.
    /// A second agent woken by the same body goes to the workers as usual.
    func catching(_ c: Catcher, _ body: () -> Void) -> Agent? {
        plexus_tls_set_worker(Unmanaged.passUnretained(c.worker).toOpaque())
        body()
        plexus_tls_set_worker(nil)
        return c.worker.takeNext()
    }

    /// Runs a caught agent's batch on the calling thread, as a worker would;
    /// what it wakes meanwhile goes to the workers.
    func run(_ agent: Agent) { deliver(self, agent) }
}
