import CPlexus
import CPlexusInternal
import DequeModule
import Glibc
import Logging
import PlexusCore
import PlexusSandbox
import PlexusThreads
import Synchronization

/// How a sandboxed agent is restarted when its worker dies.
public struct RestartPolicy: Sendable {
    /// More restarts than this within `periodSeconds` and the agent is
    /// given up: it is terminated and its mail dead-lettered.
    public var intensity = 5
    public var periodSeconds = 10.0
    /// Backoff before restart n (from 0): base * 2^n, capped.
    public var backoffBaseMs = 10.0
    public var backoffMaxMs = 2_000.0
    /// Deliveries of one message before it is dead-lettered as poison.
    public var maxAttempts = 3
    /// Crashes in a row that open an agent's circuit: callers are then
    /// refused at once (AGENT_CRASHED) until a probe after the cooldown,
    /// which doubles each time the probe fails.
    public var breakerThreshold = 5
    public var breakerCooldownMs = 1_000.0
    /// How long a worker may take to load the plugin and say HELLO, then to run init.
    public var loadTimeoutMs: Int64 = 5_000
    /// A PING goes to every ready worker this often; one unanswered for
    /// heartbeatTimeoutMs (or a request held that long past its deadline)
    /// means the worker is hung: SIGTERM, then SIGKILL after graceMs.
    public var heartbeatIntervalMs: Int64 = 1_000
    public var heartbeatTimeoutMs: Int64 = 5_000
    public var graceMs: Int64 = 1_000
    public init() {}
}

/// A plugin running in a worker process, as the host sees it: the
/// handshake, deliveries under a window, the agent's host calls arriving as
/// frames, and restarts that redeliver what the dead worker had not finished.
final class WorkerLink: WorkerEvents, @unchecked Sendable {
    /// The sealed plugin file its workers load. A spawned child's changes
    /// when an upgrade of its plugin commits (moveToImage): every later
    /// worker, a crash's restart or an operator's, loads the new version.
    var image: PluginImage { currentImage.withLock { $0 } }
    private let currentImage: Mutex<PluginImage>
    let policy: WorkerPolicy
    let restart: RestartPolicy
    unowned(unsafe) let router: Router
    let logger: Logger
    /// Set once the agent is registered. Weak: the worker's I/O thread may
    /// report an exit after a refused agent is gone.
    weak var agent: Agent?

    private enum Phase { case spawning, hello(PluginDescriptor), ready, refused(PlexusError), down(WorkerExit), stopped }

    private let lock = ConditionLock()
    private var process: WorkerProcess?
    private var phase = Phase.spawning
    private var config = "{}"
    /// The image of the worker being started, and the last image whose
    /// HELLO was accepted: a restart of that same image sends START with
    /// the image instead of waiting for HELLO (the plugin and its
    /// descriptor are the ones already accepted), a round trip less.
    private var launchedImage: PluginImage?
    private var helloedImage: PluginImage?
    /// A restart runs on the thread that saw the death (restart(after: 0)).
    private var respawningInPlace = false
    /// Stops asked so far (beginStop): a restart that sees it move while its
    /// worker starts does not keep that worker.
    private var stops = 0
    /// Deliveries the worker has not finished, in the order they were sent.
    private var inflight = Unfinished()
    /// Traced deliveries in flight: when each was handed to the worker
    /// (monotonic ns); their handle span ends at the worker's DONE.
    private var tracedStarts: [plexus_id: Int64] = [:]
    /// inflight.count, readable without the lock (mailbox admission).
    let inflightCount = Atomic<Int>(0)
    private var outgoing: [UInt8] = []
    private var blocked = false
    private var history: [plexus_id: [String]] = [:]
    private var restartTimes: [Int64] = []
    private(set) var restarts = 0
    private(set) var lastExit: String?
    /// Why the supervisor gave the agent up (under lock); nil while it has not.
    private var gaveUp: String?
    /// What a caller of a terminated agent is told.
    var givenUpReason: String? { lock.withLock { gaveUp } }
    private(set) var denied = 0
    /// How the current worker is confined, as its HELLO said.
    private var confinement: String?
    private var restartingForSupervisor = false
    /// Why the worker was asked to stop, for callers of what it left unfinished; nil: the host shut down.
    private var stopCause: String?
    /// The stopped worker whose unfinished work exited() has handed back.
    /// A worker that ended before spawn() recorded it as `process` (a warm
    /// worker can die that fast): spawn() then reports its exit.
    private var earlyExit: (exit: WorkerExit, worker: WorkerProcess)?
    private var handedBack: WorkerProcess?
    /// The host's supervisor; it decides what an exit leads to.
    weak var supervisor: Supervisor?
    /// Whether this agent's circuit is open or half-open (kept by the
    /// supervisor under its lock): while it is closed, routing a message
    /// here asks the supervisor nothing, which saved a weak load, a lock
    /// and a dictionary lookup per sandboxed message.
    let circuitNotClosed = Atomic<Bool>(false)
    /// The name in the plugin's descriptor (an instance's agent may be NAME.2).
    var pluginName: String?
    private var pingSentAt: Int64 = 0       // monotonic ns of the unanswered PING, 0 if none
    private var pingSeq: UInt64 = 0
    private var lastPingAt: Int64 = 0
    private var terminatedAt: Int64 = 0     // when SIGTERM went to a hung worker

    /// A reload watching this worker (Host+Reload.swift): a new version's
    /// finished deliveries count towards its probation, and a crash of
    /// either version hands its mail to the other instead of a restart.
    let reloadHook = Mutex<(any ReloadHook)?>(nil)

    /// Deliveries a worker may have unfinished at once.
    static let window = 1024
    /// Messages unfinished when a worker died with more of them than it
    /// runs at once (the ones it started are among them, unknown which):
    /// until each is done they go out as many at a time as the worker runs
    /// handlers, so the one that kills it next is known (redeliver).
    private var suspects = Set<plexus_id>()
    /// The deliveries allowed out at once now (lock held).
    private var windowNow: Int { suspects.isEmpty ? Self.window : max(1, policy.concurrency) }

    /// Requests the worker finished without answering yet (it replies later).
    let promised = PromisedAnswers()

    /// Where restarts and new instances find a worker already started (nil: always cold).
    let pool: WarmPool?

    init(image: PluginImage, policy: WorkerPolicy, restart: RestartPolicy, router: Router, pool: WarmPool? = nil) {
        self.currentImage = Mutex(image)
        self.pool = pool
        self.policy = policy
        self.restart = restart
        self.router = router
        self.logger = Logger(label: "plexus.worker")
    }

    var pid: Int32? { lock.withLock { process?.pid } }

    /// What `plexus agents` shows, read together under the lock.
    var status: (pid: Int32?, restarts: Int, lastExit: String?, denied: Int) {
        lock.withLock { (process?.pid, restarts, lastExit, denied) }
    }

    /// How the running worker is confined ("mount-namespace+landlock", ...).
    var confinementMechanism: String? { lock.withLock { confinement } }

    // MARK: start-up

    /// Spawns the worker and waits for its descriptor.
    func load() throws(PlexusError) -> PluginDescriptor {
        try spawn()
        let p = wait(timeoutMs: restart.loadTimeoutMs, what: "load the plugin and send HELLO") { if case .spawning = $0 { return false }; return true }
        switch p {
        case .hello(let d): return d
        case .refused(let e): throw e
        case .down(let x): throw PlexusError(.AGENT_CRASHED, "the worker died while loading the plugin: \(x)")
        default: throw PlexusError(.INTERNAL, "unexpected worker state during load")
        }
    }

    /// Sends START with the agent's configuration and waits for init.
    func activate(config: String) throws(PlexusError) {
        let w = lock.withLock { () -> WorkerProcess? in self.config = config; return process }
        if let w { sendStart(config, to: w) }
        let p = wait(timeoutMs: restart.loadTimeoutMs, what: "run init") { if case .hello = $0 { return false }; return true }
        switch p {
        case .ready: return
        case .refused(let e): throw e
        case .down(let x): throw PlexusError(.AGENT_CRASHED, "the worker died in init: \(x)")
        default: throw PlexusError(.INTERNAL, "unexpected worker state during init")
        }
    }

    /// START carries the host's payload limit (plexus_channel.h), so the
    /// worker's host functions refuse what the host would: the same status
    /// sandboxed as in process.
    private var payloadLimit: plexus_id { plexus_id(hi: 0, lo: router.limits.maxPayload) }

    /// START with the agent's configuration, once per worker: from its
    /// HELLO, from activate, or sooner on a restart (claimStart decides).
    private func sendStart(_ config: String, to w: WorkerProcess) {
        if w.claimStart() { sendControl(PLEXUS_CONTROL_START, correlation: payloadLimit, payload: Array(config.utf8), to: w) }
    }

    /// Starts a worker. A restart (`restarting`) does not start one for a
    /// link being stopped (the host shutting down, an operator's stop):
    /// nor, when the stop came while the worker started, does it keep it.
    /// Returns whether the link has its new worker.
    @discardableResult
    private func spawn(restarting: Bool = false) throws(PlexusError) -> Bool {
        // The channel carries frames up to the ABI's limit; the router then
        // holds each message to the host's own (smaller) payload limit.
        // The phase is set before the worker exists: a warm worker can say
        // HELLO (and READY) before the initializer below returns, and a
        // phase set afterwards would overwrite its READY with .spawning.
        let img = image
        let start = lock.withLock { () -> (early: String?, stops: Int)? in
            if restarting, case .stopped = phase { return nil }
            phase = .spawning; pingSentAt = 0; terminatedAt = 0; lastPingAt = Clock.monotonicNanos()
            launchedImage = img
            return (agent != nil && helloedImage === img ? config : nil, stops)
        }
        guard let (early, stopsBefore) = start else { return false }
        let w = try WorkerProcess(pool: pool, image: img, policy: policy, maxPayload: UInt64(PLEXUS_MAX_PAYLOAD_LEN),
                                  label: agent?.name ?? img.path, events: self)
        // Behind the image in the worker's ring: read once it has loaded and said HELLO.
        if let early { sendStart(early, to: w) }
        let (died, stoppedMeanwhile): (WorkerExit?, Bool) = lock.withLock {
            process = w
            lock.broadcast()
            defer { earlyExit = nil }
            return (earlyExit?.worker === w ? earlyExit?.exit : nil, restarting && stops != stopsBefore)
        }
        if stoppedMeanwhile {
            w.askedToExit(reason: "asked to stop while it started")
            w.kill(reason: "the agent was stopped while its new worker started")
            return false
        }
        if let died { exited(died, from: w); return true }
        if lock.withLock({ if case .ready = phase { return true }; return false }) { reopen() }
        return true
    }

    private func wait(timeoutMs: Int64, what: String, until done: (Phase) -> Bool) -> Phase {
        let deadline = Clock.monotonicNanos() + timeoutMs * 1_000_000
        lock.lock()
        while !done(phase) && Clock.monotonicNanos() < deadline { lock.wait(untilMonotonic: deadline) }
        let p = phase
        let late = !done(p)
        let w = process
        lock.unlock()
        if late {
            w?.kill(reason: "it did not \(what) within \(timeoutMs) ms")
            return .refused(PlexusError(.TIMEOUT, "the worker did not \(what) within \(timeoutMs) ms (a plugin constructor or init that hangs?)"))
        }
        return p
    }

    // MARK: delivery (dispatcher threads)

    /// Whether another delivery may go out now; if not, the agent is
    /// requeued when a DONE or a restart opens the window again.
    func hasRoom() -> Bool {
        lock.withLock {
            if case .ready = phase, process != nil, inflight.count < windowNow { return true }
            blocked = true
            return false
        }
    }

    /// Queues m for the worker (sent by flush, at the end of the batch).
    /// `agent` is this link's, handed in by the router that holds it: no
    /// load of the weak reference per message.
    func deliver(_ m: Message, of agent: Agent) {
        lock.lock()
        defer { lock.unlock() }
        guard case .ready = phase else {
            agent.requeueFront([m])
            blocked = true
            return
        }
        inflight.append(m, sent: agent.metersRef == nil ? 0 : Clock.monotonicNanos())
        inflightCount.store(inflight.count, ordering: .relaxed)
        agent.load.add(1, ordering: .relaxed)   // busy until the worker says DONE
        if m.header.tRoute != 0 { tracedStarts[m.id] = Tracer.now() }
        m.withFrame { outgoing.append(contentsOf: $0) }
    }

    /// Writes the frames queued by deliver, in one go. Under the lock, so two
    /// dispatcher threads flushing one after the other keep their order.
    func flush() {
        lock.lock()
        defer { lock.unlock() }
        guard !outgoing.isEmpty, let w = process else { return }
        BlockingCall.note(w)   // a blocking call routed on this thread reads w's answer itself
        outgoing.withUnsafeBytes { _ = w.write($0) }
        outgoing.removeAll(keepingCapacity: outgoing.capacity <= 1 << 20)
    }

    private func sendControl(_ topic: String, correlation: plexus_id = .none, id: plexus_id = .none,
                             status: plexus_status = 0, payload: [UInt8] = [], to worker: WorkerProcess? = nil) {
        // START names the agent (sender): its agent_name() is NAME.2 or a child's SPAWNER/INSTANCE, not only the descriptor's.
        let sender = topic == PLEXUS_CONTROL_START ? agent?.name ?? "" : ""
        let env = Envelope(kind: .event, target: .topic(topic), payload: payload, sender: sender, id: id, correlationID: correlation, status: status)
        guard let frame = try? env.encode(maxPayload: UInt64(PLEXUS_MAX_PAYLOAD_LEN)) else { return }
        // The worker that asked (its HELLO may come before `process` is set), else the current one.
        let w = worker ?? lock.withLock { process }
        frame.withUnsafeBytes { _ = w?.write($0) }
    }

    /// Asks the worker to shut down; kills it after graceMs.
    func stop(graceMs: Int64 = 2_000, cause: String? = nil) {
        beginStop(cause: cause)
        awaitStop(untilMonotonic: Clock.monotonicNanos() + graceMs * 1_000_000)
    }

    /// Asks the worker to finish what it holds and exit (SHUTDOWN). `cause`
    /// says why to callers whose work it could not finish (default: the host
    /// shut down).
    func beginStop(cause: String? = nil) {
        let asked: WorkerProcess? = lock.withLock {
            stops += 1   // a restart starting a worker now lets it go (spawn)
            if case .stopped = phase { return nil }
            phase = .stopped
            stopCause = cause
            return process
        }
        guard let asked else { return }
        asked.askedToExit(reason: "asked to stop: \(cause ?? "the host shut down")")
        sendControl(PLEXUS_CONTROL_SHUTDOWN)
    }

    /// Waits for the worker to exit by the deadline, then kills it. What it
    /// had not finished is handed back (see exited).
    func awaitStop(untilMonotonic deadline: Int64) {
        guard let w = lock.withLock({ process }) else { return }
        if !awaitHandedBack(w, until: deadline) {
            w.kill(reason: "it did not finish its work and exit within the shutdown grace period")
            _ = awaitHandedBack(w, until: Clock.monotonicNanos() + 1_000_000_000)
        }
    }

    /// Waits until exited() has handed back what w left unfinished.
    private func awaitHandedBack(_ w: WorkerProcess, until deadline: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while handedBack !== w && Clock.monotonicNanos() < deadline { lock.wait(untilMonotonic: deadline) }
        return handedBack === w
    }

    // MARK: health (the host's health thread)

    /// Sends the heartbeat and judges the answer. A worker that leaves a PING
    /// or a request unanswered too long gets SIGTERM, then SIGKILL.
    func checkHealth(now: Int64) {
        enum Verdict { case fine, ping(UInt64), hung(String), kill }
        let timeout = restart.heartbeatTimeoutMs * 1_000_000
        let (verdict, w): (Verdict, WorkerProcess?) = lock.withLock {
            guard let w = process, case .ready = phase else { return (.fine, nil) }
            if terminatedAt > 0 { return (now - terminatedAt > restart.graceMs * 1_000_000 ? .kill : .fine, w) }
            if pingSentAt > 0 && now - pingSentAt > timeout {
                return (.hung("no answer to a heartbeat within \(restart.heartbeatTimeoutMs) ms"), w)
            }
            let unix = Clock.unixNanos()
            if let late = inflight.first(where: { $0.message.isQuery && $0.message.header.deadlineUnixNs > 0
                                                          && unix - $0.message.header.deadlineUnixNs > timeout }) {
                return (.hung("request \(late.message.id.hex) still unanswered \(restart.heartbeatTimeoutMs) ms after its deadline"), w)
            }
            if pingSentAt == 0 && now - lastPingAt > restart.heartbeatIntervalMs * 1_000_000 {
                pingSeq += 1
                pingSentAt = now
                lastPingAt = now
                return (.ping(pingSeq), w)
            }
            return (.fine, w)
        }
        switch verdict {
        case .fine: return
        case .ping(let n): sendControl(PLEXUS_CONTROL_PING, correlation: plexus_id(hi: 0, lo: n))
        case .hung(let why):
            lock.withLock { terminatedAt = now }
            logger.warning("worker hung: SIGTERM", metadata: ["agent": "\(agent?.name ?? "?")", "pid": "\(w?.pid ?? 0)", "reason": "\(why)"])
            w?.terminate(reason: "hung: \(why)")
        case .kill:
            w?.kill(reason: "hung, and still alive \(restart.graceMs) ms after SIGTERM")
        }
    }

    // MARK: WorkerEvents (the worker's I/O thread)

    func received(_ frame: UnsafeRawBufferPointer, _ e: UnsafePointer<plexus_envelope>, from w: WorkerProcess) {
        let env = e.pointee
        if env.target_kind == UInt8(PLEXUS_TARGET_TOPIC.rawValue), let t = env.target,
           strncmp(t, PLEXUS_CONTROL_PREFIX, strlen(PLEXUS_CONTROL_PREFIX)) == 0 {
            control(String(cString: t), e, from: w)
            return
        }
        guard let agent else { w.kill(reason: "it sent a message before it was registered"); return }
        var origin = Router.Origin(cName: agent.cName, agent: agent, trace: env.trace_id, grants: agent.grants)
        if router.tracer.enabled, !env.trace_id.isNone { origin.parentSpan = handlingSpan(trace: env.trace_id) }
        // A reply with no trace of its own continues its request's: the router
        // knows it from the pending request (the delivery may be DONE already).
        if env.target_kind == UInt8(PLEXUS_TARGET_REPLY.rawValue) {
            if let ct = env.content_type, strcmp(ct, WorkerExports.ffiResult) == 0 {
                exportResult(e, from: origin, worker: w)
                return
            }
            do {
                if env.flags & UInt8(PLEXUS_FLAG_MORE) != 0 { try router.replyPartial(e, from: origin) }
                else { try router.reply(e, from: origin) }
            } catch {
                agent.logger.debug("reply refused", metadata: ["reason": "\(error.detail)"])
            }
            return
        }
        let call = env.id
        var c = env
        c.id = .none
        let result: Result<plexus_id, PlexusError> = withUnsafePointer(to: &c) { p in
            do throws(PlexusError) {
                let isQuery = env.kind == MessageKind.query.rawValue
                return .success(try router.route(p, from: origin, request: isQuery ? (.agent(agent), timeoutMs: 0) : nil))
            } catch { return .failure(error) }
        }
        switch result {
        case .success(let id): sendControl(PLEXUS_CONTROL_ACK, correlation: call, id: id)
        case .failure(let err): sendControl(PLEXUS_CONTROL_ACK, correlation: call, status: err.status, payload: Array(err.detail.utf8))
        }
    }

    /// A typed export's binary result becomes the usual {"result": value}.
    private func exportResult(_ e: UnsafePointer<plexus_envelope>, from origin: Router.Origin, worker w: WorkerProcess) {
        let bytes = e.pointee.payload_len > 0 ? Array(UnsafeBufferPointer(start: e.pointee.payload, count: Int(e.pointee.payload_len))) : []
        let value: JSONValue
        do throws(PlexusError) { value = try WorkerExports.decodeResult(bytes) } catch {
            w.kill(reason: "it sent a malformed typed-export result: \(error.detail)")
            return
        }
        let reply = Envelope(kind: .response, target: .reply, payload: Array(JSONValue.object(["result": value]).text.utf8),
                             contentType: "application/json", correlationID: e.pointee.correlation_id)
        reply.withCEnvelope { r in _ = try? router.reply(r, from: origin) }
    }

    private func control(_ topic: String, _ e: UnsafePointer<plexus_envelope>, from w: WorkerProcess) {
        let payload = e.pointee.payload_len > 0
            ? Array(UnsafeBufferPointer(start: e.pointee.payload, count: Int(e.pointee.payload_len))) : []
        switch topic {
        case PLEXUS_CONTROL_HELLO:
            let d: Result<PluginDescriptor, PlexusError> = { () -> Result<PluginDescriptor, PlexusError> in
                do throws(PlexusError) { return .success(try DescriptorReader.read(json: payload)) } catch { return .failure(error) }
            }()
            switch d {
            case .success(let d) where pluginName == nil || pluginName == d.name:
                if agent != nil { sendStart(lock.withLock { config }, to: w) }
                lock.withLock { confinement = d.confinement; helloedImage = launchedImage }
                logger.info("worker started", metadata: ["plugin": "\(d.name)", "pid": "\(w.pid)",
                                                          "confinement": "\(d.confinement ?? "unknown")"])
                setPhase(.hello(d))
            case .success(let d):
                setPhase(.refused(PlexusError(.BAD_DESCRIPTOR, "the plugin now calls itself '\(d.name)', not '\(pluginName ?? "")'")))
                w.kill(reason: "its agent name changed")
            case .failure(let err):
                setPhase(.refused(err))
                w.kill(reason: "its descriptor was refused")
            }
        case PLEXUS_CONTROL_READY:
            setPhase(.ready)
            if let agent, agent.state == .suspended { agent.state = .active }
            reopen()   // what waited for the worker goes out first
            // Refill the warm pool now, not while this worker was starting.
            pool?.prime(policy: policy, maxPayload: UInt64(PLEXUS_MAX_PAYLOAD_LEN))
        case PLEXUS_CONTROL_REFUSED:
            setPhase(.refused(PlexusError(status: e.pointee.status, String(decoding: payload, as: UTF8.self))))
        case PLEXUS_CONTROL_DONE:
            finished(Self.ids(payload))
        case PLEXUS_CONTROL_EXPIRED:
            for id in Self.ids(payload) { expiredInWorker(id) }
        case PLEXUS_CONTROL_SUBSCRIBE, PLEXUS_CONTROL_UNSUBSCRIBE:
            let pattern = String(decoding: payload, as: UTF8.self)
            var status: plexus_status = 0
            var detail: [UInt8] = []
            if let agent {
                if topic == PLEXUS_CONTROL_SUBSCRIBE {
                    do throws(PlexusError) { try router.subscribe(agent, pattern) } catch { status = error.status; detail = Array(error.detail.utf8) }
                } else if !router.registry.unsubscribe(agent, pattern) {
                    status = PLEXUS_INVALID_ARGUMENT.status
                }
            }
            sendControl(PLEXUS_CONTROL_ACK, correlation: e.pointee.id, status: status, payload: detail)
        case PLEXUS_CONTROL_KV:
            keyValue(payload, call: e.pointee.id)
        case PLEXUS_CONTROL_CANCEL:
            // The plugin's cancel(): the request id in the payload, answered by an ACK.
            var status: plexus_status = PLEXUS_INVALID_ARGUMENT.status
            var detail: [UInt8] = Array("a cancel names one request id (16 bytes)".utf8)
            if let agent, payload.count == 16, let rid = Self.ids(payload).first {
                do throws(PlexusError) {
                    try router.cancel(rid, requesterID: Unmanaged.passUnretained(agent).toOpaque(), by: "agent '\(agent.name)'")
                    status = 0; detail = []
                } catch { status = error.status; detail = Array(error.detail.utf8) }
            }
            sendControl(PLEXUS_CONTROL_ACK, correlation: e.pointee.id, status: status, payload: detail)
        case PLEXUS_CONTROL_SPAWN, PLEXUS_CONTROL_STOP:
            spawnCall(topic, payload, call: e.pointee.id)
        case PLEXUS_CONTROL_LOG:
            let level: Logger.Level = [.trace, .debug, .info, .warning, .error][Int(max(0, min(4, e.pointee.status)))]
            (agent?.logger ?? logger).log(level: level, "\(String(decoding: payload, as: UTF8.self))")
        case PLEXUS_CONTROL_DENIED:
            // One report may name several refused calls ("openat,socket"): each counts.
            let calls = payload.split(separator: UInt8(ascii: ",")).count
            lock.withLock { denied += max(1, calls) }
            logger.warning("system call denied by the sandbox", metadata: [
                "agent": "\(agent?.name ?? image.path)", "pid": "\(w.pid)", "syscalls": "\(String(decoding: payload, as: UTF8.self))"])
        case PLEXUS_CONTROL_PONG:
            lock.withLock { if e.pointee.correlation_id.lo == pingSeq { pingSentAt = 0 } }
        default:
            break   // future control frames
        }
    }

    /// A kv_* call from the worker (layout in plexus_channel.h). Writes are
    /// answered from the store's writer thread once on disk, so this I/O
    /// thread never waits for an fsync.
    private func keyValue(_ p: [UInt8], call: plexus_id) {
        let ack: @Sendable (Result<(Int64, [UInt8]), PlexusError>) -> Void = { [self] r in
            switch r {
            case .success(let (version, value)):
                self.sendControl(PLEXUS_CONTROL_ACK, correlation: call, payload: LittleEndian.bytes(UInt64(version), 8) + value)
            case .failure(let e):
                self.sendControl(PLEXUS_CONTROL_ACK, correlation: call, status: e.status, payload: Array(e.detail.utf8))
            }
        }
        do throws(PlexusError) {
            guard let agent else { throw PlexusError(.UNSUPPORTED, "the agent is not registered yet") }
            guard p.count >= 13 else { throw PlexusError(.MALFORMED_FRAME, "a key-value call of \(p.count) bytes") }
            let expected = try KeyValueCalls.expected(checking: Int64(bitPattern: LittleEndian.read(p, 1, 8)))
            let keyEnd = 13 + Int(LittleEndian.read(p, 9, 4))
            guard keyEnd <= p.count else { throw PlexusError(.MALFORMED_FRAME, "a key-value call's key runs past its end") }
            let key = try KeyValueCalls.key(Array(p[13..<keyEnd]))
            let limit = plexus_contract_kv_max_value(router.limits.maxPayload)
            guard UInt64(p.count - keyEnd) <= limit else { throw PlexusError(.TOO_LARGE, "a value of \(p.count - keyEnd) bytes is over the \(limit)-byte limit") }
            let (kv, ns) = try KeyValueCalls.backend(agent)
            switch p[0] {
            case UInt8(ascii: "g"): ack(.success(try kv.get(ns, key).map { ($0.version, $0.value) } ?? (0, [])))
            case UInt8(ascii: "p"): kv.put(ns, key, Array(p[keyEnd...]), expected: expected) { r in ack(r.map { ($0, []) }) }
            case UInt8(ascii: "d"): kv.delete(ns, key, expected: expected) { r in ack(r.map { (0, []) }) }
            default: throw PlexusError(.MALFORMED_FRAME, "unknown key-value operation \(p[0])")
            }
        } catch { ack(.failure(error)) }
    }

    private func setPhase(_ p: Phase) {
        lock.withLock {
            if case .stopped = phase { return }
            phase = p
            lock.broadcast()
        }
    }

    static func ids(_ payload: [UInt8]) -> [plexus_id] {
        stride(from: 0, to: payload.count - 15, by: 16).map { o in plexus_id(hi: LittleEndian.read(payload, o, 8), lo: LittleEndian.read(payload, o + 8, 8)) }
    }

    /// Deliveries the worker finished leave the window, which reopens.
    private func finished(_ ids: [plexus_id]) {
        var traced: [(Message, Int64)] = []
        let meters = agent?.metersRef
        let finishedAt = meters == nil ? 0 : Clock.monotonicNanos()
        var queries: [plexus_id] = []
        let n: Int = lock.withLock {
            var n = 0
            for id in ids {
                guard let d = inflight.remove(id) else { continue }
                if !suspects.isEmpty { suspects.remove(id) }
                if let meters { meters._withUnsafeGuaranteedRef { $0.handle.observe(finishedAt - d.sent) } }
                n += 1
                if d.message.isQuery { queries.append(id) }
                if !history.isEmpty { history[id] = nil }
                if !tracedStarts.isEmpty, let t = tracedStarts.removeValue(forKey: id) { traced.append((d.message, t)) }
                let m = d.message
                _ = consume d
                Message.recycle(consume m)   // the worker is done with it (unless it is traced or fanned out)
            }
            inflightCount.store(inflight.count, ordering: .relaxed)
            return n
        }
        if let agent, !traced.isEmpty {
            let now = Tracer.now()
            for (m, t) in traced { router.handled(m, by: agent, start: t, end: now, status: 0) }
        }
        if let agent {
            for id in queries where router.pending.isOpen(id, responder: agent) {
                promised.note(id, pending: router.pending, responder: agent)
            }
        }
        if n > 0 { agent?.finishedWork(n) }
        if n > 0, let hook = reloadHook.withLock({ $0 }) { hook.finished(n, on: self) }
        if n > 0, let name = agent?.name { supervisor?.succeeded(name) }
        reopen()
    }

    /// A delivery that waited in the worker past its deadline: never handled.
    private func expiredInWorker(_ id: plexus_id) {
        guard let m = lock.withLock({ () -> Message? in
            defer { inflightCount.store(inflight.count, ordering: .relaxed) }
            tracedStarts[id] = nil
            suspects.remove(id)
            return inflight.remove(id)?.message
        }), let agent else { return }
        agent.finishedWork()
        router.expired(m, at: agent)
        reopen()
    }

    /// Requeues the agent if it stopped for lack of room and there is room now.
    private func reopen() {
        let wake: Bool = lock.withLock {
            guard blocked, case .ready = phase, inflight.count < windowNow else { return false }
            blocked = false
            return true
        }
        if wake, let agent { router.dispatcher.enqueue(agent) }
    }

    func output(_ line: String, stderr: Bool, from w: WorkerProcess) {
        (agent?.logger ?? logger).info("\(line)", metadata: ["pid": "\(w.pid)", "stream": stderr ? "stderr" : "stdout"])
    }

    func exited(_ x: WorkerExit, from w: WorkerProcess) {
        let (unfinished, stopping): ([Message], Bool) = lock.withLock {
            guard process === w else {
                if process == nil, case .spawning = phase { earlyExit = (x, w) }
                return ([], true)
            }
            process = nil
            lastExit = x.description
            let stopping: Bool
            switch phase {
            case .stopped: stopping = true
            case .refused: stopping = false   // keep the reason the worker gave
            default: stopping = false; phase = .down(x)
            }
            let ms = inflight.removeAll()
            tracedStarts.removeAll()
            inflightCount.store(0, ordering: .relaxed)
            outgoing.removeAll()
            lock.broadcast()
            return (ms, stopping)
        }
        if stopping {   // shutting down: hand back what it did not finish
            if let agent {
                let cause = lock.withLock { stopCause } ?? "the host shut down"
                router.failOrphans(promised.takeAll(), of: agent, status: PLEXUS_SHUTTING_DOWN.status,
                                   detail: "\(cause) before '\(agent.name)' answered (it had finished handling the request and meant to reply later)")
                for m in unfinished {
                    router.abandon(m, at: agent, reason: "\(cause) before '\(agent.name)' finished it (\(x))",
                                   status: PLEXUS_SHUTTING_DOWN.status)
                }
            }
            lock.withLock { handedBack = w; lock.broadcast() }
            return
        }
        guard let agent else { return }
        if agent.state == .active { agent.state = .suspended }
        agent.load.subtract(unfinished.count, ordering: .relaxed)   // requeued ones count again below
        let withSiblings = lock.withLock { restartingForSupervisor }
        router.failOrphans(promised.takeAll(), of: agent,
                           status: withSiblings ? PLEXUS_UNAVAILABLE.status : PLEXUS_AGENT_CRASHED.status,
                           detail: "the worker of agent '\(agent.name)' \(withSiblings ? "was restarted with its siblings" : "ended (\(x))") after it handled the request and before it replied")
        if let hook = reloadHook.withLock({ $0 }), hook.workerDied(self, agent: agent, exit: x, unfinished: unfinished) { return }
        let bySupervisor = lock.withLock { () -> Bool in defer { restartingForSupervisor = false }; return restartingForSupervisor }
        if bySupervisor {   // stopped to restart with a sibling: nothing failed
            logger.notice("worker restarted (with its siblings, or onto a new version)", metadata: ["agent": "\(agent.name)", "pid": "\(x.pid)"])
            if agent.requeueFront(unfinished) { router.dispatcher.enqueue(agent) }
            restart(after: 0)
            return
        }
        logger.error("worker died", metadata: ["agent": "\(agent.name)", "pid": "\(x.pid)", "exit": "\(x)",
                                                "unfinished": "\(unfinished.count)"])
        router.lifecycle("agent.crashed", agent.name, ["pid": .int(Int64(x.pid)), "exit": .string(x.description),
                                                       "unfinished": .int(Int64(unfinished.count))])
        router.spawns?.workerDied(agent, exit: x.description)   // its children were linked to this process
        supervisor?.recordFailure(agent, exit: x)
        redeliver(unfinished, after: x, agent: agent)
        supervisor?.exited(self, agent: agent, exit: x)
    }

    /// Puts unfinished deliveries back in order; a message that has now
    /// died with its worker maxAttempts times is dead-lettered as poison.
    ///
    /// A death counts against a message only when the worker cannot have
    /// been running anything else: when no more were unfinished than it runs
    /// handlers at once, or while earlier suspects go out that few at a time.
    /// A worker that dies with more unfinished (a poison message among many
    /// queued in its ring, some finished but not yet reported DONE) marks
    /// them all suspects instead, and none is charged: each is then charged
    /// only for a death it alone could have caused, so a poison message does
    /// not take the messages around it down with it.
    private func redeliver(_ ms: [Message], after x: WorkerExit, agent: Agent) {
        let alone = max(1, policy.concurrency)
        let charge: Bool = lock.withLock {
            if !suspects.isEmpty || ms.count <= alone { return true }
            suspects = Set(ms.map(\.id))
            return false
        }
        var again: [Message] = []
        for m in ms {
            guard charge else { again.append(m); continue }
            let tries: [String] = lock.withLock {
                history[m.id, default: []].append(x.description)
                return history[m.id]!
            }
            if tries.count < restart.maxAttempts { again.append(m); continue }
            lock.withLock { history[m.id] = nil; suspects.remove(m.id) }
            let why = "agent '\(agent.name)' died \(tries.count) times while handling it (\(tries.joined(separator: ", ")))"
            router.abandon(m, at: agent, reason: why, status: PLEXUS_AGENT_CRASHED.status)
        }
        if agent.requeueFront(again) { router.dispatcher.enqueue(agent) }
    }

    /// Backoff before the next restart: base * 2^(exits in the period - 1), capped.
    func backoffMs() -> Double {
        let now = Clock.monotonicNanos()
        let period = Int64(restart.periodSeconds * 1e9)
        let count: Int = lock.withLock {
            restartTimes = restartTimes.filter { now - $0 < period } + [now]
            return restartTimes.count
        }
        return min(restart.backoffMaxMs, restart.backoffBaseMs * pow(2, Double(count - 1)))
    }

    /// Spawns a new worker after delayMs, on a thread of its own (at once
    /// on the calling thread when there is no delay).
    /// The thread is detached: it ends after one attempt. When it cannot
    /// start, the restart fails like a failed spawn (the supervisor decides).
    func restart(after delayMs: Double) {
        // Without a backoff, on the caller's thread (the dead worker's I/O
        // thread, which has nothing left to do): no thread to start first.
        // Not within another in-place restart of this link: a worker that
        // dies while it starts would otherwise recurse on one stack.
        let inPlace = delayMs <= 0 && lock.withLock { () -> Bool in
            guard !respawningInPlace else { return false }
            respawningInPlace = true
            return true
        }
        if inPlace {
            defer { lock.withLock { respawningInPlace = false } }
            return respawn(after: 0)
        }
        do throws(ThreadStartError) {
            try startDetachedThread(name: "plexus-restart") { [self] in respawn(after: delayMs) }
        } catch {
            restartFailed("\(error)")
        }
    }

    private func respawn(after delayMs: Double) {
        if delayMs > 0 {
            var ts = timespec(tv_sec: Int(delayMs / 1000), tv_nsec: Int(delayMs.truncatingRemainder(dividingBy: 1000) * 1_000_000))
            nanosleep(&ts, nil)
        }
        if lock.withLock({ process != nil }) { return }   // started meanwhile (spawn refuses a stopped link)
        do throws(PlexusError) {
            guard try spawn(restarting: true) else { return }
            lock.withLock { restarts += 1 }
            logger.notice("worker restarted", metadata: ["agent": "\(agent?.name ?? "?")", "pid": "\(pid ?? 0)"])
            if let agent { router.lifecycle("agent.restarted", agent.name, ["pid": .int(Int64(pid ?? 0))]) }
            // As at load: a new worker (warm or cold) that does not say
            // HELLO and READY in time (hung, or stopped with SIGSTOP) is
            // killed, and its exit goes to the supervisor like any other;
            // the agent does not stay suspended behind it.
            _ = wait(timeoutMs: restart.loadTimeoutMs * 2, what: "load the plugin, send HELLO and run init") {
                switch $0 { case .spawning, .hello: return false; default: return true }
            }
        } catch {
            restartFailed(error.detail)
        }
    }

    private func restartFailed(_ detail: String) {
        logger.error("worker restart failed", metadata: ["agent": "\(agent?.name ?? "?")", "error": "\(detail)"])
        if let agent {
            let x = WorkerExit(pid: 0, code: 0, signaled: false, hostReason: "restart failed: \(detail)")
            supervisor?.recordFailure(agent, exit: x)
            supervisor?.exited(self, agent: agent, exit: x)
        }
    }

    /// Starts a new worker at once after an operator's stop or after the
    /// supervisor gave the agent up (`plexus agents start`), and waits until
    /// it has run init. On failure the link is stopped again and the reason thrown.
    func relaunch() throws(PlexusError) {
        lock.withLock { gaveUp = nil; stopCause = nil; restartTimes.removeAll(); history.removeAll(); suspects.removeAll() }
        do throws(PlexusError) {
            try spawn()
            let p = wait(timeoutMs: restart.loadTimeoutMs * 2, what: "load the plugin, send HELLO and run init") {
                switch $0 { case .spawning, .hello: return false; default: return true }
            }
            switch p {
            case .ready: break
            case .refused(let e): throw e
            case .down(let x): throw PlexusError(.AGENT_CRASHED, "the new worker died while starting: \(x)")
            default: throw PlexusError(.INTERNAL, "unexpected worker state while starting")
            }
        } catch {
            stop(graceMs: 0)
            throw error
        }
        logger.notice("worker started by an operator", metadata: ["agent": "\(agent?.name ?? "?")", "pid": "\(pid ?? 0)"])
    }

    /// Stops the worker so that it restarts with a sibling (one-for-all,
    /// rest-for-one); its unfinished mail goes back to the mailbox as is.
    func restartForSupervisor(reason: String) {
        let w: WorkerProcess? = lock.withLock {
            guard let p = process else { return nil }
            restartingForSupervisor = true
            return p
        }
        w?.kill(reason: reason)
    }

    /// A spawned child moves to another version of its plugin (an upgrade
    /// committed): later workers load `new`, and a running worker is
    /// restarted onto it the way a sibling restart does it: what it had
    /// not finished goes back to the mailbox, in order, and nothing fails.
    func moveToImage(_ new: PluginImage, reason: String) {
        currentImage.withLock { $0 = new }
        restartForSupervisor(reason: reason)
    }

    /// The supervisor gave the agent up: no more workers; its mail is
    /// dead-lettered and its callers told why.
    func giveUp(reason: String) {
        guard let agent else { return }
        lock.withLock { gaveUp = reason }
        logger.error("agent given up", metadata: ["agent": "\(agent.name)", "reason": "\(reason)"])
        var data: [String: JSONValue] = ["reason": .string(reason)]
        if let p = router.spawns?.parent(of: agent.name) { data["parent"] = .string(p) }   // a spawned agent's spawner
        router.lifecycle("agent.terminated", agent.name, data)
        agent.state = .terminated
        let w: WorkerProcess? = lock.withLock { phase = .stopped; return process }
        w?.kill(reason: reason)
        for m in agent.drainMailbox() { router.abandon(m, at: agent, reason: reason, status: PLEXUS_AGENT_CRASHED.status) }
        router.spawns?.terminated(agent, reason: reason)
    }

    /// spawn()/stop() of a sandboxed agent (layouts in plexus_channel.h).
    /// They wait for a worker to start or stop, so they run on a thread of
    /// their own and are ACKed from there; the worker waits for the ACK.
    private func spawnCall(_ topic: String, _ p: [UInt8], call: plexus_id) {
        let ack: @Sendable (Result<String, PlexusError>) -> Void = { [self] r in
            switch r {
            case .success(let name): self.sendControl(PLEXUS_CONTROL_ACK, correlation: call, payload: Array(name.utf8))
            case .failure(let e): self.sendControl(PLEXUS_CONTROL_ACK, correlation: call, status: e.status, payload: Array(e.detail.utf8))
            }
        }
        guard let agent, let spawns = router.spawns else {
            ack(.failure(PlexusError(.UNSUPPORTED, "the agent is not registered yet")))
            return
        }
        let work: @Sendable () -> Void = {
            ack(Result { () throws(PlexusError) -> String in
                if topic == PLEXUS_CONTROL_STOP {
                    try spawns.stop(by: agent, child: String(decoding: p, as: UTF8.self))
                    return ""
                }
                func field(_ at: Int) throws(PlexusError) -> (String, Int) {
                    guard p.count >= at + 4 else { throw PlexusError(.MALFORMED_FRAME, "a spawn call of \(p.count) bytes") }
                    let end = at + 4 + Int(LittleEndian.read(p, at, 4))
                    guard end <= p.count else { throw PlexusError(.MALFORMED_FRAME, "a spawn call's name runs past its end") }
                    return (String(decoding: p[(at + 4)..<end], as: UTF8.self), end)
                }
                let (plugin, i) = try field(0)
                let (instance, j) = try field(i)
                return try spawns.spawn(by: agent, plugin: plugin, instance: instance.isEmpty ? nil : instance,
                                        config: String(decoding: p[j...], as: UTF8.self))
            })
        }
        do throws(ThreadStartError) { try startDetachedThread(name: "plexus-spawn", work) } catch {
            ack(.failure(PlexusError(.INTERNAL, "no thread for the spawn call: \(error)")))
        }
    }
}

extension WorkerLink {
    /// The handle span of the delivery in this worker that a message it
    /// sends with `trace` belongs under: the oldest one in flight of that
    /// trace (the worker does not say which handler sent it). 0: none.
    fileprivate func handlingSpan(trace: plexus_id) -> UInt64 {
        lock.withLock {
            let d = inflight.first { $0.message.header.traceID == trace }
            return d.map { Tracer.handleSpan(of: $0.message.id) } ?? 0
        }
    }
}
