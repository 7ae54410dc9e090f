import CPlexus
import FoundationEssentials
import Glibc
import PlexusCore
import PlexusThreads
import Synchronization

/// What one operator action did: the answer of plexus.agents.ACTION.
public struct ControlOutcome: Sendable, Codable, Equatable {
    public var agent: String
    public var action: String
    /// The agent's state afterwards, as `plexus agents` shows it.
    public var state: String
    /// Who asked: the sender identity ("client:4242", "client:ops").
    public var by: String
    /// What happened, in a sentence.
    public var detail: String
    /// Messages that waited or ran and were handed back (dead-lettered,
    /// their callers answered SHUTTING_DOWN) instead of handled.
    public var handed_back: Int = 0
    /// The new worker (start, restart of a sandboxed agent).
    public var pid: Int32?
}

/// One operator action as `plexus audit` lists it, done or refused.
public struct ControlRecord: Sendable, Codable, Equatable {
    public var by: String
    public var action: String
    public var agent: String
    /// "done: ..." with what happened, or "refused: STATUS: why".
    public var outcome: String
    public var at_unix_ns: Int64
}

/// The host's bookkeeping of operator actions: which agent an action is
/// under way for (one at a time per agent), each agent's last action and
/// operator restarts, the audit list, and the pool the actions run on (a
/// stop or a drain waits for work to finish: never on a dispatcher thread).
final class AgentControl: Sendable {
    struct Entry {
        var busy: OperatorAction?
        var last: String?
        var restarts = 0
        /// The agent object the history belongs to (its unique shard
        /// number): a new agent under the name (a child spawned again, a new
        /// version after an upgrade) starts with a clean history.
        var incarnation = -1
    }
    struct State {
        var entries: [String: Entry] = [:]
        /// The host is shutting down: no new action starts.
        var closing = false
    }
    let state = Mutex(State())
    let log = Recent<ControlRecord>(capacity: 1024)
    let pool = WorkPool(name: "plexus-control", threads: 2, queueLimit: 64)

    /// Claims the agent for an action; the reason it cannot be, or nil.
    func begin(_ action: OperatorAction, _ agent: String) -> String? {
        state.withLock { s in
            if s.closing { return "the host is shutting down" }
            if let busy = s.entries[agent]?.busy {
                return "agent '\(agent)' is busy with an operator's \(busy.rawValue); try again when it is done"
            }
            s.entries[agent, default: Entry()].busy = action
            return nil
        }
    }

    func end(_ agent: Agent, last: String?, restarted: Bool) {
        state.withLock { s in
            guard var e = s.entries[agent.name] else { return }
            e.busy = nil
            if e.incarnation != agent.shard, last != nil || restarted { e = Entry(incarnation: agent.shard) }
            if let last { e.last = last }
            if restarted { e.restarts += 1 }
            s.entries[agent.name] = e
        }
    }

    /// The last action and operator restarts of this agent object (not of
    /// an earlier agent that had its name).
    func report(_ agent: Agent) -> (last: String?, restarts: Int) {
        state.withLock { s in
            guard let e = s.entries[agent.name], e.incarnation == agent.shard else { return (nil, 0) }
            return (e.last, e.restarts)
        }
    }

    /// At shutdown: refuses new actions and waits for those under way, up
    /// to the deadline (an in-process handler that never returns would
    /// hold a stop for ever; the shutdown goes on without it).
    func quiesce(untilMonotonic deadline: Int64) {
        state.withLock { $0.closing = true }
        while state.withLock({ s in s.entries.values.contains { $0.busy != nil } }) && Clock.monotonicNanos() < deadline {
            var ts = timespec(tv_sec: 0, tv_nsec: 2_000_000)
            nanosleep(&ts, nil)
        }
    }
}

extension Host {
    /// The host's agent that serves the six operator actions.
    static let controlAgent = "plexus.control"

    /// Serves plexus.agents.restart|stop|start|suspend|resume|drain
    /// ({"agent": NAME}, drain also {"timeout_ms": N}). Each is a call
    /// grant like any other: the host's own user has them unless
    /// `clients.owner.grants` narrows it; another client needs
    /// `call: [plexus.agents.stop, ...]` or `plexus.agents.*` in plexus.yaml.
    func installControl() {
        let descriptions: [OperatorAction: String] = [
            .restart: "stop an agent, then start it again (counted in its restarts): {agent}",
            .stop: "stop an agent: no new mail, queued mail handed back, running work finishes, its worker exits: {agent}",
            .start: "start a stopped or terminated agent again: a new worker, or init again: {agent}",
            .suspend: "keep an agent's mail queued (up to its mailbox's bound) without handing it any: {agent}",
            .resume: "deliver what queued while the agent was suspended, in order: {agent}",
            .drain: "stop taking new mail, finish everything queued and running, then stop: {agent, timeout_ms?}",
        ]
        let caps = OperatorAction.allCases.map { ($0.capability, descriptions[$0]!) }
        try! provide(name: Self.controlAgent, capabilities: caps) { [unowned(unsafe) self] env, answer in
            let job: @Sendable () -> Void = { answer(Result { () throws(PlexusError) in try self.serveControl(env) }) }
            do throws(WorkPool.Refusal) { try control.pool.submit(job) } catch {
                answer(.failure(PlexusError(.MAILBOX_FULL, "operator actions are busy: \(error); try again")))
            }
        }
    }

    private func serveControl(_ env: Envelope) throws(PlexusError) -> JSONValue {
        let cap = env.target.name
        guard let action = OperatorAction.allCases.first(where: { $0.capability == cap }) else {
            throw PlexusError(.UNSUPPORTED, "\(cap) is not an operator action")
        }
        guard case .object(let args)? = try? JSONValue.parse(env.payload), case .string(let name)? = args["agent"] else {
            throw PlexusError(.INVALID_ARGUMENT, "\(cap): the payload must be a JSON object with \"agent\": the agent's name")
        }
        var timeout: Int64?
        if let t = args["timeout_ms"] {
            guard case .int(let ms) = t, ms >= 0 else {
                throw PlexusError(.INVALID_ARGUMENT, "\(cap): \"timeout_ms\" must be a whole number of milliseconds, 0 or more")
            }
            timeout = ms
        }
        let out = try control(action, name, by: env.sender, drainTimeoutMs: timeout)
        let data = try? JSONEncoder().encode(out)
        return data.flatMap { try? JSONValue.parse(Array($0)) } ?? .null
    }

    /// Carries out one operator action on the agent named `name` and
    /// returns what it did; refuses (and lists in the audit) an unknown
    /// agent, one of the host's own, or an action its state does not allow.
    /// Blocks until the action is done: call it off the dispatcher threads.
    public func control(_ action: OperatorAction, _ name: String, by: String = "client:api",
                        drainTimeoutMs: Int64? = nil) throws(PlexusError) -> ControlOutcome {
        do throws(PlexusError) {
            let out = try perform(action, name, by: by, drainTimeoutMs: drainTimeoutMs)
            control.log.add(ControlRecord(by: by, action: action.rawValue, agent: name, outcome: "done: \(out.detail)", at_unix_ns: Clock.unixNanos()))
            return out
        } catch {
            control.log.add(ControlRecord(by: by, action: action.rawValue, agent: name,
                                          outcome: "refused: \(error.name): \(error.detail)", at_unix_ns: Clock.unixNanos()))
            logger.notice("operator action refused", metadata: ["action": "\(action.rawValue)", "agent": "\(name)", "by": "\(by)", "reason": "\(error.detail)"])
            throw error
        }
    }

    /// Operator actions, oldest first (done and refused), for `plexus audit`.
    public var controlRecords: [ControlRecord] { control.log.snapshot() }

    private func perform(_ action: OperatorAction, _ name: String, by: String, drainTimeoutMs: Int64?) throws(PlexusError) -> ControlOutcome {
        let a = try controllable(name)
        if let busy = control.begin(action, name) { throw PlexusError(.UNAVAILABLE, busy) }
        var last: String?
        var restarted = false
        defer { control.end(a, last: last, restarted: restarted) }
        if let why = OperatorRules.refusal(action, agent: name, state: controlledState(a)) { throw PlexusError(.UNSUPPORTED, why) }
        var out = ControlOutcome(agent: name, action: action.rawValue, state: "", by: by, detail: "")
        var data: [String: JSONValue] = ["by": .string(by)]
        let kind: String
        switch action {
        case .stop:
            out.handed_back = stopAgent(a, cause: "agent '\(name)' was stopped by an operator")
            out.detail = "stopped by operator" + (out.handed_back > 0 ? "; \(out.handed_back) message(s) handed back" : "")
            data["reason"] = .string("stopped by operator")
            kind = "agent.stopped"
            childEnded(a, reason: "stopped by operator")
        case .drain:
            let timeout = drainTimeoutMs ?? configuration.defaultTimeoutMs
            let r = drainAgent(a, timeoutMs: timeout)
            out.handed_back = r.handedBack
            out.detail = r.finished ? "drained: everything queued and running finished, then it stopped"
                : "not drained within \(timeout) ms: stopped, \(r.handedBack) message(s) handed back"
            data["reason"] = .string(r.finished ? "drained by operator" : "drain timed out after \(timeout) ms")
            kind = "agent.drained"
            childEnded(a, reason: "drained by operator")
        case .start:
            try startAgent(a)
            out.detail = "started by operator"
            kind = "agent.started"
        case .restart:
            if a.state != .stopped && a.state != .terminated {
                out.handed_back = stopAgent(a, cause: "agent '\(name)' was restarted by an operator")
            }
            try startAgent(a)
            restarted = true
            out.detail = "restarted by operator" + (out.handed_back > 0 ? "; \(out.handed_back) message(s) handed back" : "")
            kind = "agent.restarted"
        case .suspend:
            _ = a.hold.engage()
            out.detail = "suspended by operator: mail queues until resume (up to \(a.capacity) messages)"
            kind = "agent.suspended"
        case .resume:
            let waiting = a.queued
            resumeAgent(a)
            out.detail = "resumed by operator: \(waiting) queued message(s) delivered in order"
            kind = "agent.resumed"
        }
        out.pid = a.link?.pid
        out.state = reportedState(a)
        if out.handed_back > 0 { data["handed_back"] = .int(Int64(out.handed_back)) }
        if let pid = out.pid, action == .start || action == .restart { data["pid"] = .int(Int64(pid)) }
        if a.link == nil, action == .start || action == .restart { data["in_process"] = .bool(true) }
        router.lifecycle(kind, name, data)
        logger.notice("operator action", metadata: ["action": "\(action.rawValue)", "agent": "\(name)", "by": "\(by)", "detail": "\(out.detail)"])
        last = "\(action.rawValue) by \(by)"
        return out
    }

    /// The agent named `name` if an operator may act on it: a plugin's,
    /// sandboxed or in process (not the host's own, not a client's).
    private func controllable(_ name: String) throws(PlexusError) -> Agent {
        guard let a = registry.agent(named: name) else {
            let names = registry.everyAgent.map(\.name)
            let hint = Suggestion.closest(to: name, among: names).map { " (did you mean \($0)?)" } ?? ""
            throw PlexusError(.NO_SUCH_AGENT, "no agent is named '\(name)'\(hint); `plexus agents` lists them")
        }
        switch a.behavior {
        case .plugin, .worker: return a
        case .builtin(let b):
            let whose = b is ExternalBehavior ? "a socket client's (it leaves when its client disconnects)" : "the host's own"
            throw PlexusError(.UNSUPPORTED, "agent '\(name)' is \(whose): only a plugin's agents can be restarted, stopped, started, suspended, resumed or drained")
        }
    }

    /// The state the operator rules judge.
    func controlledState(_ a: Agent) -> ControlledState {
        switch a.state {
        case .stopped: return .stopped
        case .terminated: return .terminated
        case .draining: return .draining
        case .registering, .active, .suspended: return a.hold.isOn ? .suspended : .running
        }
    }

    /// What `plexus agents` shows: an operator's suspension as "suspended".
    func reportedState(_ a: Agent) -> String {
        a.hold.isOn && (a.state == .active || a.state == .suspended) ? "suspended" : a.state.rawValue
    }

    // MARK: primitives (also for hot reload: drain and stop a plugin's agents)
    //
    // These act at once and block until done; they do not claim the agent
    // in `control` (perform does), so a caller other than perform keeps two
    // of them off one agent itself, and never runs them on a dispatcher thread.

    /// Stops the agent: it takes no new mail, what waits in its mailbox is
    /// handed back (dead-lettered, its callers answered SHUTTING_DOWN with
    /// `cause`), what runs finishes within shutdownGraceMs (a worker is then
    /// killed and its unfinished work handed back), its worker exits or its
    /// shutdown() runs. The supervisor leaves it stopped. Returns how many
    /// messages were handed back from the mailbox.
    @discardableResult
    func stopAgent(_ a: Agent, cause: String) -> Int {
        stopChildren(of: a, because: "its spawner '\(a.name)' stopped")   // linked: they go down first
        let deadline = Clock.monotonicNanos() + configuration.shutdownGraceMs * 1_000_000
        a.state = .draining   // replies it asked for still come in
        var handedBack = handBack(a, cause)
        resumeAgent(a)        // parked runners find nothing and let go
        if let link = a.link {
            supervisor.retire(a.name)
            link.beginStop(cause: cause)
            link.awaitStop(untilMonotonic: deadline)
            a.state = .stopped
            handedBack += handBack(a, cause)   // replies that came meanwhile
            return handedBack
        }
        // In process: a running handler cannot be interrupted, so its
        // shutdown() waits for it even past the grace (logged).
        waitIdle(a, untilMonotonic: deadline)
        a.state = .stopped
        handedBack += handBack(a, cause)
        if a.load.load(ordering: .relaxed) > 0 {
            logger.warning("agent still handling a message after the shutdown grace; its shutdown waits for it",
                           metadata: ["agent": "\(a.name)", "grace_ms": "\(configuration.shutdownGraceMs)"])
            waitIdle(a, untilMonotonic: .max)
        }
        if case .plugin(let p) = a.behavior {
            if let sd = p.shutdownFn { sd(a.pluginState) }
            a.pluginState = nil
        }
        // Its shutdown() has run: nothing it left open can be answered now.
        router.failOrphans(router.pending.open(answeredBy: a), of: a, status: PLEXUS_SHUTTING_DOWN.status,
                           detail: "\(cause) before '\(a.name)' answered (it had finished handling the request and meant to reply later)")
        return handedBack
    }

    /// Drains the agent: no new mail; everything queued and running
    /// finishes (a suspended agent is resumed for it); then it stops. Past
    /// timeoutMs it is stopped as stopAgent does. `finished` says whether
    /// the drain completed; handedBack counts what a late stop handed back.
    func drainAgent(_ a: Agent, timeoutMs: Int64) -> (finished: Bool, handedBack: Int) {
        a.state = .draining
        resumeAgent(a)
        let deadline = Clock.monotonicNanos() + timeoutMs * 1_000_000
        let finished = waitIdle(a, untilMonotonic: deadline) && waitAnswered(a, untilMonotonic: deadline)
        let n = stopAgent(a, cause: "agent '\(a.name)' was not drained within \(timeoutMs) ms and was stopped by an operator")
        return (finished, n)
    }

    /// Starts a stopped or terminated agent again: a new worker for a
    /// sandboxed one (its supervisor watches it again, its circuit closed),
    /// init again for one in process. On failure it stays as it was and
    /// the reason is thrown.
    func startAgent(_ a: Agent) throws(PlexusError) {
        // Nothing waits or runs (stopped, or given up): counts left over by
        // messages handed back at the stop start from zero.
        a.load.store(0, ordering: .relaxed)
        if let link = a.link {
            try link.relaunch()
            supervisor.revive(a.name)
            a.state = .active
            return
        }
        guard case .plugin(let p) = a.behavior else { throw PlexusError(.UNSUPPORTED, "agent '\(a.name)' is not a plugin's") }
        var state: UnsafeMutableRawPointer?
        let config = lineage.child(a.name)?.config ?? configuration.settings(for: p.path).config   // a spawned agent: its spawner's config
        let s = p.initFn(HostTable.pointer, a.ctx, config, &state)
        if s != 0 {
            throw PlexusError(status: s, "init of agent '\(a.name)' returned \(statusName(s)); it stays \(a.state.rawValue)")
        }
        a.pluginState = state
        a.state = .active
    }

    /// Suspends the agent's deliveries (its mailbox keeps taking mail);
    /// false when it was suspended already.
    @discardableResult
    func suspendAgent(_ a: Agent) -> Bool { a.hold.engage() }

    /// Ends a suspension: every runner parked by it goes back to the
    /// dispatcher, and what queued is delivered in order.
    func resumeAgent(_ a: Agent) {
        guard let parked = a.hold.release() else { return }
        for _ in 0..<parked { router.dispatcher.enqueue(a) }
    }

    /// Hands back what waits in the agent's mailbox; how many.
    private func handBack(_ a: Agent, _ cause: String) -> Int {
        let ms = a.drainMailbox()
        for m in ms {
            router.abandon(m, at: a, reason: "\(cause) before it handled this", status: PLEXUS_SHUTTING_DOWN.status)
        }
        if !ms.isEmpty { a.finishedWork(ms.count) }
        return ms.count
    }

    /// Waits until nothing waits or runs at the agent; false at the deadline.
    @discardableResult
    private func waitIdle(_ a: Agent, untilMonotonic deadline: Int64) -> Bool {
        while a.load.load(ordering: .relaxed) > 0 {
            if Clock.monotonicNanos() >= deadline { return false }
            var ts = timespec(tv_sec: 0, tv_nsec: 2_000_000)
            nanosleep(&ts, nil)
        }
        return true
    }

    /// Requests the agent took and means to answer later (its handler
    /// returned without replying): a drain lets them be answered first.
    func promisedAnswers(_ a: Agent) -> [plexus_id] {
        if let link = a.link { return link.promised.open(in: router.pending, responder: a) }
        return router.pending.open(answeredBy: a)
    }

    /// Waits until the agent has answered what it promised; false at the deadline.
    @discardableResult
    func waitAnswered(_ a: Agent, untilMonotonic deadline: Int64) -> Bool {
        while !promisedAnswers(a).isEmpty {
            if Clock.monotonicNanos() >= deadline { return false }
            var ts = timespec(tv_sec: 0, tv_nsec: 2_000_000)
            nanosleep(&ts, nil)
        }
        return true
    }

    /// At shutdown, before agents drain: no operator action runs any more,
    /// and suspended agents get their queued mail (handled within the grace
    /// like any other).
    func endOperatorControl(_ agents: [Agent]) {
        control.quiesce(untilMonotonic: Clock.monotonicNanos() + configuration.shutdownGraceMs * 1_000_000)
        for a in agents { resumeAgent(a) }
    }
}
