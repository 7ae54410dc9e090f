import DequeModule
import PlexusCore
import PlexusSandbox
import PlexusThreads
import Synchronization

/// plexus.yaml `reload:`: how a running host takes in plugin files that
/// are added, changed or removed (Host+Reload.swift).
public struct ReloadSettings: Sendable, Equatable {
    /// Whether `plexus run` watches the plugins directory (inotify).
    public var watch = true
    /// A new version that crashes before it has finished this many
    /// messages is rolled back: the old one, kept running until then, serves
    /// again. 0: a new version is final once its init succeeded.
    public var probationMessages = 10
    /// How long a replaced version may take to finish what it had accepted;
    /// what it still holds then goes to its successor.
    public var drainTimeoutMs: Int64 = 30_000
    /// Quiet time after the last close or rename of a file before it is read.
    public var debounceMs: Int64 = 50
    public init() {}
}

/// Something the reload subsystem watches a worker for: a new version's
/// finished deliveries count towards its probation, and a crash of either
/// version hands its mail to the other instead of a restart.
protocol ReloadHook: AnyObject, Sendable {
    func finished(_ n: Int, on link: WorkerLink)
    /// True when the hook took the unfinished messages over (no restart).
    func workerDied(_ link: WorkerLink, agent: Agent, exit: WorkerExit, unfinished: [Message]) -> Bool
}

/// One rolling upgrade of a plugin file: the old agents, drained and kept
/// running, and the new ones serving on probation.
final class Upgrade: ReloadHook, @unchecked Sendable {
    enum Phase { case probation, committed, failed }
    let file: String
    let plugin: String
    let from: String
    let to: String
    /// Old and new instance of one agent name.
    let pairs: [(old: Agent, new: Agent)]
    let probation: Int
    unowned(unsafe) let reloads: Reloads
    /// What served before, to serve again after a rollback.
    let previous: Reloads.Served
    let previousReport: PluginReport?
    private struct State {
        var phase = Phase.probation
        var done = 0
        var commitAsked = false
    }
    private let state = Mutex(State())

    init(previous: Reloads.Served, report: PluginReport?, to: String, pairs: [(old: Agent, new: Agent)], probation: Int, reloads: Reloads) {
        self.file = previous.file; self.plugin = previous.plugin; self.from = previous.version; self.to = to
        self.previous = previous; self.previousReport = report
        self.pairs = pairs; self.probation = probation; self.reloads = reloads
    }

    var phase: Phase { state.withLock { $0.phase } }

    func finished(_ n: Int, on link: WorkerLink) {
        let ask: Bool = state.withLock { s in
            guard s.phase == .probation else { return false }
            s.done += n
            guard s.done >= probation, !s.commitAsked else { return false }
            s.commitAsked = true
            return true
        }
        if ask { reloads.submit(.commit(self)) }
    }

    func workerDied(_ link: WorkerLink, agent: Agent, exit: WorkerExit, unfinished: [Message]) -> Bool {
        let before: Phase = state.withLock { s in
            defer { if s.phase == .probation { s.phase = .failed } }
            return s.phase
        }
        if before == .committed { return false }   // its supervisor restarts it
        if before == .failed {   // another instance died first: this one's mail goes back too
            guard let pair = pairs.first(where: { $0.new === agent }) else { return false }
            return reloads.submit(.handover(agent, pair.old, exit, unfinished))
        }
        if reloads.submit(.rollback(self, link, exit, unfinished)) { return true }
        state.withLock { $0.phase = .committed }   // the host is stopping: the usual path hands the mail back
        return false
    }

    /// Runs `body` and ends the probation, unless a crash ended it first.
    /// Under the lock, so a crash during `body` waits and then finds the
    /// new version committed (and supervised: body hands it over).
    func commit(_ body: () -> Void) -> Bool {
        state.withLock { s in
            guard s.phase == .probation else { return false }
            body()
            s.phase = .committed
            return true
        }
    }

    /// Ends the probation without a rollback (the file was replaced or
    /// removed again before it ended).
    func abandon() { state.withLock { if $0.phase == .probation { $0.phase = .committed } } }

    var messagesDone: Int { state.withLock { $0.done } }
}

/// A version on its way out that crashes hands what it held to `to`.
final class Handover: ReloadHook, @unchecked Sendable {
    let to: Agent
    unowned(unsafe) let reloads: Reloads
    init(to: Agent, reloads: Reloads) { self.to = to; self.reloads = reloads }
    func finished(_ n: Int, on link: WorkerLink) {}
    func workerDied(_ link: WorkerLink, agent: Agent, exit: WorkerExit, unfinished: [Message]) -> Bool {
        reloads.submit(.handover(agent, to, exit, unfinished))
    }
}

/// The reload subsystem's state and its one thread, which carries out
/// every change in order: file events, commands, probation outcomes and
/// the end of drains. The logic is Host+Reload.swift's.
final class Reloads: @unchecked Sendable {
    typealias Reply = @Sendable (Result<JSONValue, PlexusError>) -> Void
    enum Job {
        /// A plugin name or file (a command), or a path (the watcher).
        case file(String, Reply?)
        case unload(String, Reply?)
        case commit(Upgrade)
        case rollback(Upgrade, WorkerLink, WorkerExit, [Message])
        case handover(Agent, Agent, WorkerExit, [Message])
        /// A periodic look at leaving agents (no job came for a few ms).
        case tick
    }

    /// One plugin file as it serves now.
    struct Served {
        var file: String
        var plugin: String
        var version: String
        var sha256: String
        var agents: [Agent]
    }

    /// An agent leaving: it finishes what it accepted, then its worker stops.
    struct Leaving {
        let agent: Agent
        /// Who takes what it still holds at the deadline (nil: unloaded).
        let successor: Agent?
        let deadline: Int64
    }

    struct State {
        var seeded = false
        var served: [String: Served] = [:]
        /// Per file: what `plexus plugins list` shows instead of the start's report.
        var reports: [String: PluginReport] = [:]
        /// What the last reload of each file came to (shown with the report).
        var notes: [String: String] = [:]
        var upgrades: [Upgrade] = []
        var leaving: [Leaving] = []
        /// Agents started by reloads, in order, until reloads stop them.
        var added: [Agent] = []
        /// Agents of the start whose workers reloads stopped. Only those:
        /// the registry keeps them for good, so an identifier is never reused.
        var gone = Set<ObjectIdentifier>()
        /// Stopped agents whose successor link is dropped after a while,
        /// so a chain of versions does not keep every old image alive.
        var fading: [(agent: Agent, since: Int64)] = []
        /// Meters by agent name, kept for a plugin that comes back.
        var meters: [String: AgentMeters] = [:]
        /// Messages handled by versions that stopped, by agent name: with
        /// the serving and leaving versions' own counts, the name's
        /// plexus_agent_messages_handled_total, which a reload must never
        /// lower (the histogram of the same name never is).
        var retiredHandled: [String: Int] = [:]
    }
    let state = Mutex(State())

    private let queue = ConditionLock()
    private var jobs = Deque<Job>()        // under queue
    private var stopping = false            // under queue
    private var thread: OwnedThread?        // under queue
    private var watcher: PluginWatcher?     // under queue
    /// Runs one job on the reload thread; set by the host before the first submit.
    var run: (@Sendable (Job) -> Void)?

    /// Queues a job, starting the thread on first use. False when the
    /// host is stopping (the job is not run; a command is answered so).
    @discardableResult
    func submit(_ job: Job) -> Bool {
        let ok: Bool = queue.withLock {
            guard !stopping else { return false }
            if thread == nil {
                do throws(ThreadStartError) {
                    thread = try startThread(name: "plexus-reload") { [self] in loop() }
                } catch {
                    return false
                }
            }
            jobs.append(job)
            queue.broadcast()
            return true
        }
        if !ok { Self.refuse(job) }
        return ok
    }

    private static func refuse(_ job: Job) {
        switch job {
        case .file(_, let r?), .unload(_, let r?):
            r(.failure(PlexusError(.SHUTTING_DOWN, "the host is shutting down; nothing is reloaded")))
        default: break
        }
    }

    /// Waits for a job; while agents are leaving, wakes every few ms so
    /// the host can see them finish (no job: a tick).
    private func loop() {
        while true {
            let (job, stop): (Job?, Bool) = queue.withLock {
                // Leaving agents are looked at every 5 ms, fading ones every second.
                let (noneLeaving, noneFading) = state.withLock { ($0.leaving.isEmpty, $0.fading.isEmpty) }
                let tick = Clock.monotonicNanos() + (noneLeaving ? 1_000_000_000 : 5_000_000)
                while jobs.isEmpty && !stopping {
                    if noneLeaving && noneFading { queue.wait() } else {
                        queue.wait(untilMonotonic: tick)
                        if Clock.monotonicNanos() >= tick { break }
                    }
                }
                if stopping { return (nil, true) }
                return (jobs.popFirst(), false)
            }
            if stop { break }
            run?(job ?? .tick)
        }
        for j in queue.withLock({ () -> [Job] in defer { jobs.removeAll() }; return Array(jobs) }) { Self.refuse(j) }
    }

    func watch(_ w: PluginWatcher) { queue.withLock { watcher = w } }

    /// Stops the watcher and the thread (the job under way finishes);
    /// what is still queued is answered SHUTTING_DOWN.
    func stop() {
        let (t, w): (OwnedThread?, PluginWatcher?) = queue.withLock {
            stopping = true
            queue.broadcast()
            defer { thread = nil; watcher = nil }
            return (thread, watcher)
        }
        w?.stop()
        t?.join()
    }

    /// The agents a host stops and watches: those it started, less those
    /// reloads stopped, plus those reloads started.
    func current(_ started: [Agent]) -> [Agent] {
        state.withLock { s in
            started.filter { !s.gone.contains(ObjectIdentifier($0)) } + s.added
        }
    }

    /// Agents replaced or unloaded that still finish their work: not
    /// found by name any more, but shown by `plexus agents`.
    var outgoing: [Agent] {
        state.withLock { s in
            s.upgrades.flatMap { $0.pairs.map(\.old) } + s.leaving.map(\.agent)
        }
    }
}

extension Reloads.State {
    /// A reload stopped `a`'s worker: it is no longer one of the host's agents.
    mutating func stopped(_ a: Agent, at now: Int64) {
        retiredHandled[a.name, default: 0] += a.handled.load(ordering: .relaxed)
        if let i = added.firstIndex(where: { $0 === a }) { added.remove(at: i) } else { gone.insert(ObjectIdentifier(a)) }
        fading.append((a, now))
    }
}

extension Reloads {
    /// Per agent name, what versions no longer serving handled: those that
    /// stopped, those draining and those a new version on probation
    /// replaced (none of them among the registry's agents).
    func handledElsewhere() -> [String: Int] {
        state.withLock { s in
            var out = s.retiredHandled
            for l in s.leaving { out[l.agent.name, default: 0] += l.agent.handled.load(ordering: .relaxed) }
            // On probation, the old version still serves what it holds, out of the registry.
            for u in s.upgrades {
                for p in u.pairs where p.old.isRetired { out[p.old.name, default: 0] += p.old.handled.load(ordering: .relaxed) }
            }
            return out
        }
    }
}
