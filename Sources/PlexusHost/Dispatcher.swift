import Glibc
import DequeModule

/// Runs agents that have mail on a fixed pool of OS threads. An agent is in
/// the run queue at most once, so it runs on one thread at a time.
///
/// Each worker has a one-agent "next" slot: when a handler running on a worker
/// wakes an idle agent, that agent runs next on the same worker, with no lock
/// hand-off and no thread wake-up (request/reply ping-pong stays on one core).
/// A worker that keeps using its slot hands it to the shared queue after
/// `slotBudget` turns so others are not starved.
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

    private final class Worker {
        var next: Agent?
        var slotTurns = 0
    }

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
        for i in 0..<threadCount {
            threads.append(startThread(name: "plexus-w\(i)") { [self] in self.workerLoop() })
        }
    }

    /// Stops the workers after the agents they are running finish their batch.
    func stop() {
        runQueue.withLock { stopping = true; runQueue.broadcast() }
        for t in threads { pthread_join(t, nil) }
        threads.removeAll()
    }

    /// Makes an agent with fresh mail runnable.
    func schedule(_ agent: Agent) {
        if let raw = pthread_getspecific(Self.workerKey) {
            let w = Unmanaged<Worker>.fromOpaque(raw).takeUnretainedValue()
            if w.slotTurns < Self.slotBudget {
                let displaced = w.next
                w.next = agent
                if let displaced { enqueue(displaced) }
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

    private func workerLoop() {
        let w = Worker()
        pthread_setspecific(Self.workerKey, Unmanaged.passUnretained(w).toOpaque())
        while true {
            let agent: Agent
            if let n = w.next {
                w.next = nil
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
            deliver(agent)
        }
        if let n = w.next { w.next = nil; enqueue(n) }
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
