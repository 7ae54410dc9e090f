import Glibc
import DequeModule
import Synchronization

/// Runs agents that have mail on a fixed pool of OS threads. An agent is in
/// the run queue at most once, so it runs on one thread at a time.
///
/// Each worker has a one-agent "next" slot: when a handler running on a worker
/// wakes an idle agent, that agent runs next on the same worker, with no lock
/// hand-off and no thread wake-up (request/reply ping-pong stays on one core).
/// A worker that keeps using its slot hands it to the shared queue after
/// `slotBudget` turns so others are not starved, and a watchdog moves a slot's
/// agent to the shared queue when the worker's current handler runs longer
/// than `stallNanos`, so an idle worker picks it up instead of it waiting.
final class Dispatcher: @unchecked Sendable {
    private let runQueue = ConditionLock()
    private var queue = Deque<Agent>()
    private var idleWorkers = 0
    private var stopping = false
    private var threads: [pthread_t] = []
    private let deliver: (Agent) -> Void
    let threadCount: Int

    /// How many messages an agent handles before yielding its worker.
    static let batch = 64
    static let slotBudget = 256

    static let stallNanos: Int64 = 1_000_000

    private final class Worker: Sendable {
        /// The next agent, as retained Unmanaged bits (0 = empty); the
        /// watchdog may take it from another thread.
        let next = Atomic<UInt>(0)
        /// When the running batch started (monotonic ns), 0 while idle.
        let busySince = Atomic<Int64>(0)
        nonisolated(unsafe) var slotTurns = 0

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
    private var watchdog: pthread_t?

    nonisolated(unsafe) private static var workerKey: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    init(threads: Int, deliver: @escaping (Agent) -> Void) {
        self.threadCount = max(1, threads)
        self.deliver = deliver
    }

    func start() {
        workers = (0..<threadCount).map { _ in Worker() }
        for w in workers {
            threads.append(startThread(name: "plexus-worker") { [self] in self.workerLoop(w) })
        }
        watchdog = startThread(name: "plexus-watchdog") { [self] in self.watchdogLoop() }
    }

    /// Every millisecond: a worker stuck in one handler gives up its next slot.
    private func watchdogLoop() {
        while !runQueue.withLock({ stopping }) {
            var ts = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            nanosleep(&ts, nil)
            let now = Clock.monotonicNanos()
            for w in workers {
                let since = w.busySince.load(ordering: .relaxed)
                if since != 0 && now - since > Self.stallNanos, let a = w.takeNext() { enqueue(a) }
            }
        }
    }

    /// Stops the workers after the agents they are running finish their batch.
    func stop() {
        runQueue.withLock { stopping = true; runQueue.broadcast() }
        for t in threads { pthread_join(t, nil) }
        if let w = watchdog { pthread_join(w, nil) }
        threads.removeAll()
        watchdog = nil
    }

    /// Makes an agent with fresh mail runnable.
    func schedule(_ agent: Agent) {
        if let raw = pthread_getspecific(Self.workerKey) {
            let w = Unmanaged<Worker>.fromOpaque(raw).takeUnretainedValue()
            if w.slotTurns < Self.slotBudget {
                if let displaced = w.put(agent) { enqueue(displaced) }
                return
            }
        }
        enqueue(agent)
    }

    private func enqueue(_ agent: Agent) {
        runQueue.lock()
        queue.append(agent)
        if idleWorkers > 0 { runQueue.signal() }
        runQueue.unlock()
    }

    private func workerLoop(_ w: Worker) {
        pthread_setspecific(Self.workerKey, Unmanaged.passUnretained(w).toOpaque())
        while true {
            let agent: Agent
            if let n = w.takeNext() {
                w.slotTurns += 1
                agent = n
            } else {
                w.slotTurns = 0
                runQueue.lock()
                while queue.isEmpty && !stopping {
                    idleWorkers += 1
                    runQueue.wait()
                    idleWorkers -= 1
                }
                if queue.isEmpty && stopping { runQueue.unlock(); break }
                agent = queue.removeFirst()
                runQueue.unlock()
            }
            w.busySince.store(Clock.monotonicNanos(), ordering: .relaxed)
            deliver(agent)
            w.busySince.store(0, ordering: .relaxed)
        }
        if let n = w.takeNext() { enqueue(n) }
        pthread_setspecific(Self.workerKey, nil)
    }

    /// The batch loop a worker runs for one agent; returns with the agent
    /// either idle (flag cleared) or handed back to the queue.
    static func runBatch(_ agent: Agent, dispatcher: Dispatcher, handle: (Message) -> Void) {
        for _ in 0..<batch {
            guard let m = agent.next() else { return }
            handle(m)
            agent.load.subtract(1, ordering: .relaxed)
        }
        dispatcher.enqueue(agent)  // still scheduled: more mail may be waiting
    }
}
