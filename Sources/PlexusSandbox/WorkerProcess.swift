import CPlexus
import CPlexusPOSIX
import Glibc
import PlexusCore
import PlexusThreads
import Synchronization

/// How a worker process ended, as the supervisor reports it.
public struct WorkerExit: Sendable, CustomStringConvertible {
    public let pid: Int32
    /// Exit code, or the signal number when `signaled`.
    public let code: Int32
    public let signaled: Bool
    /// Why the host ended it, when it did (malformed frame, silence, stop).
    public let hostReason: String?

    public init(pid: Int32, code: Int32, signaled: Bool, hostReason: String?) {
        self.pid = pid
        self.code = code
        self.signaled = signaled
        self.hostReason = hostReason
    }

    /// Every exit the host did not ask for is a failure, exit(0) included
    /// (FAULTS.md 3: a plugin that exits without goodbye has crashed).
    public var abnormal: Bool { signaled || code != 0 || hostReason != nil }

    /// "SIGSEGV", "exit 3", "SIGKILL (the worker sent a malformed frame: ...)".
    public var description: String {
        let base = signaled ? Self.signalName(code) : "exit \(code)"
        return hostReason.map { "\(base) (\($0))" } ?? base
    }

    static func signalName(_ s: Int32) -> String {
        let names: [Int32: String] = [SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGKILL: "SIGKILL", SIGTERM: "SIGTERM",
                                      SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGILL: "SIGILL", SIGXCPU: "SIGXCPU",
                                      SIGXFSZ: "SIGXFSZ", SIGSYS: "SIGSYS", SIGPIPE: "SIGPIPE", SIGTRAP: "SIGTRAP",
                                      SIGINT: "SIGINT", SIGHUP: "SIGHUP", SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2"]
        return names[s] ?? "signal \(s)"
    }
}

/// A started worker and the host's ends of its descriptors, before any I/O
/// thread reads them (a warm worker waits like this). imageSocket is the
/// host's end of the socket a warm worker receives its image on; -1 cold.
struct Launched: Sendable {
    let pid: Int32
    let channel: Int32, out: Int32, err: Int32
    let wake: (r: Int32, w: Int32)
    let imageSocket: Int32
    /// The shared-memory ring pair, already sent to the worker.
    let ring: WorkerRing

    /// Kills and reaps a worker that will never run, and closes its descriptors.
    func discard() {
        if imageSocket >= 0 { close(imageSocket) }
        Glibc.kill(-pid, SIGKILL)
        Glibc.kill(pid, SIGKILL)
        var code: Int32 = 0, signaled: Int32 = 0, core: Int32 = 0
        _ = plexus_posix_wait(pid, 1, &code, &signaled, &core)
        for fd in [channel, out, err, wake.r, wake.w] { close(fd) }
    }
}

/// What a worker's channel reports. Frames come one at a time, in the order
/// sent: on its I/O thread, or (a call's own answer and DONE frames) on a
/// thread that waits for that answer and reads the ring itself
/// (`readWhileWaiting`). Output and the exit come on the I/O thread, and
/// output may come while such a thread reports a frame.
public protocol WorkerEvents: AnyObject, Sendable {
    /// A whole, validated frame from the worker. Both pointers are borrowed
    /// for the call.
    func received(_ frame: UnsafeRawBufferPointer, _ envelope: UnsafePointer<plexus_envelope>, from w: WorkerProcess)
    /// A line the plugin wrote to stdout or stderr.
    func output(_ line: String, stderr: Bool, from w: WorkerProcess)
    /// The process is gone and reaped; nothing more will be reported.
    func exited(_ exit: WorkerExit, from w: WorkerProcess)
}

/// One worker process and its channel. Frames travel on a shared-memory
/// ring (`WorkerRing`); the socket carried the ring at start and stays open
/// so that the worker's death is an end of file here at once. Frames go out
/// from any thread (`write`), without blocking: what the ring does not take
/// waits in an outbox the I/O thread drains. The I/O thread reads frames and
/// output, enforces the partial-frame deadline, and reaps the process.
public final class WorkerProcess: @unchecked Sendable {
    public let pid: Int32
    public let label: String
    private let channel: Int32
    private let out: Int32, err: Int32
    private let wake: (r: Int32, w: Int32)
    /// Strong, and let go once the exit is reported: a weak reference gave
    /// the link a side table, and every retain of it on the message path
    /// then took the slow road (a tenth of the host's samples sending
    /// one-way to a worker). Read and cleared on the I/O thread only.
    private var events: (any WorkerEvents)?
    /// Frames from the ring, and whatever arrives on the socket (which must
    /// carry none: anything but its end of file is a protocol error).
    private let reader: FrameReader
    private let socketReader: FrameReader
    private let ring: WorkerRing
    /// Whose turn it is to read the ring: nobody (`free`), the I/O thread
    /// or a waiting caller (`held`), or nobody ever again (`closed`, once
    /// the I/O thread finishes). The reader, the ring's read side and
    /// `events` belong to whoever holds it.
    private let turn = Atomic<Int>(Turn.free)
    private enum Turn { static let free = 0, held = 1, closed = 2 }
    /// Callers asleep on the ring's bell, counted here where the worker
    /// cannot touch it (the shared word is only the worker's hint).
    private let sleepingCallers = Atomic<Int>(0)
    private let started = Atomic<Bool>(false)

    /// True the first time only: the host's START goes to a worker once,
    /// whether its HELLO asks for it or a restart sends it sooner.
    public func claimStart() -> Bool { !started.exchange(true, ordering: .acquiringAndReleasing) }

    private let lock = ConditionLock()
    private var outbox: [UInt8] = []
    private var outboxStart = 0
    private var killReason: String?
    /// The worker's end of the channel closed (I/O thread only).
    private var closedWhileRunning = false
    private var termReason: String?
    private var asked: String?
    private var ended = false

    /// How long half a frame may sit unfinished before the worker is killed.
    let partialFrameTimeoutNanos: Int64
    /// Output beyond this many bytes per second is dropped (and counted).
    public static let outputBytesPerSecond = 64 * 1024
    /// A logged line is cut after this many bytes.
    public static let maxLogLine = 512

    /// Where the helper executable is: $PLEXUS_WORKER, else beside the
    /// running executable (the plexus CLI or the test bundle).
    public static var helperPath: String {
        if let p = getenv("PLEXUS_WORKER") { return String(cString: p) }
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "."
        return exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/") + "/plexus-worker"
    }

    /// Spawns a worker for image under policy and starts its I/O thread.
    public convenience init(image: PluginImage, policy: WorkerPolicy, maxPayload: UInt64, label: String,
                            events: any WorkerEvents) throws(PlexusError) {
        let launched = try Self.launch(policy: policy, maxPayload: maxPayload, image: image.fd)
        try self.init(launched: launched, policy: policy, maxPayload: maxPayload, label: label, events: events)
    }

    /// Starts the helper for policy: with the image on descriptor 4 (cold),
    /// or, when image is nil, warm (`--warm`): confined as far as it can be
    /// without its plugin, waiting on a socket on descriptor 4 for the image
    /// (WarmPool hands it over). No I/O thread reads it yet.
    static func launch(policy: WorkerPolicy, maxPayload: UInt64, image: Int32?) throws(PlexusError) -> Launched {
        let helper = Self.helperPath
        guard access(helper, X_OK) == 0 else {
            throw PlexusError(.INTERNAL, "the worker helper \(helper) is missing: `swift build --product plexus` builds it beside plexus (or set PLEXUS_WORKER)")
        }
        let filter = try SyscallFilters.shared.descriptor(for: policy)
        let ring = try WorkerRing()
        var ch: [Int32] = [0, 0], o: [Int32] = [0, 0], e: [Int32] = [0, 0], wk: [Int32] = [0, 0], im: [Int32] = [-1, -1]
        guard plexus_posix_channel(&ch) == 0 else { throw PlexusError(.INTERNAL, "socketpair: \(String(cString: strerror(errno)))") }
        guard plexus_posix_pipe(&o, 1) == 0, plexus_posix_pipe(&e, 1) == 0, plexus_posix_pipe(&wk, 1) == 0 else {
            for fd in ch + o + e + wk where fd > 0 { close(fd) }
            throw PlexusError(.INTERNAL, "pipe2: \(String(cString: strerror(errno)))")
        }
        if image == nil && plexus_posix_channel(&im) != 0 {
            for fd in ch + o + e + wk { close(fd) }
            throw PlexusError(.INTERNAL, "socketpair: \(String(cString: strerror(errno)))")
        }
        var argv = ["plexus-worker"] + policy.arguments(parent: getpid(), maxPayload: maxPayload)
        if image == nil { argv += ["--warm", "\(PluginImage.maxBytes)"] }
        let netns = SharedNetwork.descriptor(for: policy)
        if netns >= 0 { argv += ["--netns", "6"] }
        let pid: Int32
        do {
            pid = try Spawner.shared.spawn(exe: helper, argv: argv, channel: ch[1], plugin: image ?? im[1], filter: filter,
                                           netns: netns, out: o[1], err: e[1])
        } catch {
            for fd in ch + o + e + wk + im where fd >= 0 { close(fd) }
            throw error
        }
        close(ch[1]); close(o[1]); close(e[1])
        if im[1] >= 0 { close(im[1]) }
        // The ring goes first, warm or cold: the worker maps it before it
        // confines itself. If this fails the worker already died (its exit
        // is reported as usual) or waits without a ring: the load deadline
        // (or the warm pool's readiness) then ends it.
        _ = try? ring.send(over: ch[0])
        return Launched(pid: pid, channel: ch[0], out: o[0], err: e[0], wake: (wk[0], wk[1]), imageSocket: im[0], ring: ring)
    }

    /// Starts the I/O thread of a launched worker (its image on its way).
    init(launched l: Launched, policy: WorkerPolicy, maxPayload: UInt64, label: String,
         events: any WorkerEvents) throws(PlexusError) {
        let pid = l.pid
        self.ring = l.ring
        self.pid = pid
        self.label = label
        self.channel = l.channel
        self.out = l.out
        self.err = l.err
        self.wake = l.wake
        self.events = events
        self.reader = FrameReader(fd: l.channel, maxPayload: maxPayload)
        self.socketReader = FrameReader(fd: l.channel, maxPayload: maxPayload)
        self.partialFrameTimeoutNanos = policy.partialFrameTimeoutMs * 1_000_000
        // Detached: the loop ends with the worker (finish() reaps it), and
        // nothing waits for the thread itself.
        do { try startDetachedThread(name: "plexus-io") { [self] in ioLoop() } } catch {
            Glibc.kill(-pid, SIGKILL)
            Glibc.kill(pid, SIGKILL)
            var code: Int32 = 0, signaled: Int32 = 0, core: Int32 = 0
            _ = plexus_posix_wait(pid, 1, &code, &signaled, &core)
            throw PlexusError(.INTERNAL, "worker \(label) (pid \(pid)) killed: \(error)")
        }
    }

    deinit {
        close(channel); close(out); close(err); close(wake.r); close(wake.w)
    }

    // MARK: writing (any thread)

    /// Queues whole frames for the worker. Never blocks. Returns false once
    /// the worker is gone.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        lock.lock()
        if ended || killReason != nil { lock.unlock(); return false }
        var off = 0
        var wake = false
        if outbox.count == outboxStart {
            switch ring.write(bytes) {
            case .done(let n, let w): off = n; wake = w
            case .corrupt(let why): brokenRing(why); lock.unlock(); return false
            }
        }
        if off < bytes.count {
            outbox.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[off...]))
            wake = flushOutboxLocked() || wake
        }
        lock.unlock()
        if wake { ring.wakeWorker() }   // a futex wake, only when the worker sleeps
        return true
    }

    /// Lock held: the worker broke the ring's indices; it is killed for it.
    private func brokenRing(_ why: String) {
        if killReason == nil { killReason = "the worker broke its shared-memory ring: \(why)" }
        Glibc.kill(-pid, SIGKILL)
        Glibc.kill(pid, SIGKILL)
        poke()
    }

    /// Kills the process group now; the I/O thread reports the exit.
    public func kill(reason: String) {
        lock.withLock { if killReason == nil { killReason = reason } }
        Glibc.kill(-pid, SIGKILL)
        Glibc.kill(pid, SIGKILL)
        poke()
    }

    /// The host asked the worker to finish and exit (its SHUTDOWN frame):
    /// an exit 0 then is that, not a crash, and is reported as `reason`.
    public func askedToExit(reason: String) {
        lock.withLock { asked = reason }
    }

    /// Sends SIGTERM to the group (a polite stop) and records why; callers
    /// follow with kill after a grace period.
    public func terminate(reason: String) {
        lock.withLock { if termReason == nil { termReason = reason } }
        Glibc.kill(-pid, SIGTERM)
        Glibc.kill(pid, SIGTERM)
    }

    private func poke() {
        var one: UInt8 = 1
        _ = Glibc.write(wake.w, &one, 1)
    }

    // MARK: reading the ring: one thread at a time

    private func takeTurn() -> Bool {
        turn.compareExchange(expected: Turn.free, desired: Turn.held, ordering: .acquiring).exchanged
    }

    private func giveTurn() { turn.store(Turn.free, ordering: .releasing) }

    /// The I/O thread, finishing: waits out a caller's read in progress (its
    /// own answer and DONE frames only: short), and wakes callers asleep so
    /// they wait the usual way from now on.
    private func closeTurn() {
        var tries = 0
        while true {
            let (done, now) = turn.compareExchange(expected: Turn.free, desired: Turn.closed, ordering: .acquiring)
            if done || now == Turn.closed { break }
            tries += 1
            if tries < 64 { sched_yield() } else { usleep(200) }   // no spinning for a caller held up
        }
        ring.kickCallers()
    }

    /// Counts a caller that is about to send this worker a query and wait
    /// for the answer with `readWhileWaiting`. Counted before it sends, the
    /// worker rings it and not the I/O thread even when it answers before
    /// the caller sleeps (on a shared core it runs the moment it is woken).
    /// Each count ends in `readWhileWaiting` or `forgetCaller`.
    public func expectCaller() {
        sleepingCallers.add(1, ordering: .sequentiallyConsistent)
        ring.setCallerWaiting(true)
    }

    /// Ends a count `expectCaller` made, for a caller that will not wait.
    public func forgetCaller() {
        ring.setCallerWaiting(false)
        sleepingCallers.subtract(1, ordering: .sequentiallyConsistent)
        leaveRing()
    }

    /// Waits on the calling thread, counted by `expectCaller`, until `done`
    /// holds, reading the worker's frames itself and sleeping on the ring's
    /// bell in between: the worker then wakes this thread directly, two
    /// switches per round trip on a shared core where waking the I/O thread
    /// to wake this one took four. The thread reports only frames `accept`
    /// takes (its own answer, the worker's bookkeeping): anything else (a
    /// log line, another request's answer, a message the worker sends) would
    /// run someone else's code on a thread that may hold its caller's locks,
    /// so at the first such frame it stops, rings the I/O thread, which
    /// takes that frame and the rest in order, and returns. Whatever makes
    /// `done` true on another thread must call `wakeWaitingCallers()`.
    /// Returns when done holds, when it stopped early, or when the channel
    /// is closing: the caller then waits as it otherwise would.
    public func readWhileWaiting(until done: () -> Bool, accepting accept: (UnsafePointer<plexus_envelope>) -> Bool) {
        defer { forgetCaller() }
        while true {
            let seen = ring.incomingBell   // before reading: a publish after this moves it
            var mine = false
            if takeTurn() {
                mine = true
                let outcome = drainRing(accept: accept)
                giveTurn()
                switch outcome {
                case .failed: poke()   // the worker is being killed: the I/O thread ends it
                case .stopped: ring.ringIOThread(); return
                case .empty: break
                }
            } else if turn.load(ordering: .acquiring) == Turn.closed {
                return
            }
            if done() { return }
            // Bytes left (a read cut short by the buffer) are taken at once; a
            // worker may clear the shared count, hence the bound on a sleep.
            if !(mine && ring.readable) { ring.waitBell(seen: seen, timeoutMs: 100) }
        }
    }

    /// Wakes callers asleep in `readWhileWaiting` (an answer came through
    /// another thread: the I/O thread, a timeout, another worker).
    public func wakeWaitingCallers() {
        if sleepingCallers.load(ordering: .sequentiallyConsistent) > 0 { ring.kickCallers() }
    }

    /// A caller done reading: bytes it left (published while it stopped
    /// watching) are the I/O thread's, which may be asleep without knowing.
    private func leaveRing() {
        if turn.load(ordering: .relaxed) == Turn.free && ring.readable { ring.ringIOThread() }
    }

    // MARK: the I/O thread

    private func ioLoop() {
        var outBudget = OutputBudget()
        var lines = (out: [UInt8](), err: [UInt8]())
        var open = true
        var partialSince: Int64 = 0
        while open {
            // A caller reading its answer holds the turn: the ring is left to
            // it, and it rings this thread for what it leaves behind.
            let mine = takeTurn()
            if mine {
                let ok = drainRing()
                partialSince = reader.partialSince
                giveTurn()
                guard ok else { break }
            }
            if lock.withLock({ outbox.count > outboxStart }) { flushOutbox() }
            if mine && ring.spin() { continue }   // the worker is answering on another core: no sleep
            ring.setSleeping(true)                // then one last look: a publish after it rings the bell
            // Taken only when no caller reads now: one that does looks again
            // itself as it leaves, and rings this thread for what it left.
            if turn.load(ordering: .acquiring) == Turn.free && ring.readable { ring.setSleeping(false); continue }
            var fds = [pollfd(fd: channel, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: out, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: err, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wake.r, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: ring.bell, events: Int16(POLLIN), revents: 0)]
            let partial = partialSince > 0 || socketReader.partialSince > 0
            let timeout: Int32 = partial ? 100 : 1000
            let rc = poll(&fds, 5, timeout)
            ring.setSleeping(false)
            if rc < 0 && errno != EINTR { break }
            if fds[4].revents != 0 { ring.clearBell() }
            if fds[3].revents != 0 { var b = [UInt8](repeating: 0, count: 64); _ = read(wake.r, &b, 64) }
            if lock.withLock({ killReason != nil }) { break }
            if fds[1].revents != 0 { drainOutput(out, &lines.out, stderr: false, &outBudget) }
            if fds[2].revents != 0 { drainOutput(err, &lines.err, stderr: true, &outBudget) }
            if fds[0].revents & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0 {
                do {
                    // Frames travel on the ring: a whole one on the socket is refused like garbage.
                    let r = try socketReader.drain { _, _ in
                        lock.withLock { if killReason == nil { killReason = "the worker sent a frame over its socket (frames travel on its shared-memory ring)" } }
                    }
                    if lock.withLock({ killReason != nil }) { break }
                    if case .closed = r {
                        open = false
                        // What the worker published before it went is still handled.
                        closeTurn()
                        guard drainRing() else { break }
                        // Usually the worker died and this is the consequence: finish() says so
                        // only if it is still running.
                        closedWhileRunning = true
                    }
                } catch {
                    lock.withLock { if killReason == nil { killReason = "the worker sent a malformed frame: \(error.detail)" } }
                    break
                }
            }
            // A caller reading now may finish the frame: the deadline is looked at on a later turn.
            if takeTurn() { partialSince = reader.partialSince; giveTurn() } else { partialSince = 0 }
            let since: Int64 = [partialSince, socketReader.partialSince].filter({ $0 > 0 }).min() ?? 0
            if since > 0 && Clock.monotonicNanos() - since > partialFrameTimeoutNanos {
                lock.withLock { if killReason == nil { killReason = "half a frame, then silence for \(partialFrameTimeoutNanos / 1_000_000) ms" } }
                break
            }
        }
        finish(&lines, &outBudget)
    }

    private enum Drained { case empty, stopped, failed }

    /// Hands every whole frame on the ring to events; false when the worker
    /// sent a malformed frame or broke the ring (it is then being killed).
    private func drainRing() -> Bool { drainRing(accept: { _ in true }) != .failed }

    /// The same, stopping before the first frame accept refuses.
    private func drainRing(accept: (UnsafePointer<plexus_envelope>) -> Bool) -> Drained {
        do {
            switch try reader.drain(ring: ring, accept: accept, { frame, env in events?.received(frame, env, from: self) }) {
            case .empty: return .empty
            case .stopped: return .stopped
            case .broken(let why):
                lock.withLock { if killReason == nil { killReason = "the worker broke its shared-memory ring: \(why)" } }
                return .failed
            }
        } catch {
            lock.withLock { if killReason == nil { killReason = "the worker sent a malformed frame: \(error.detail)" } }
            return .failed
        }
    }

    /// Lock held: moves what the outbox holds into the ring. While some is
    /// left the host says it waits for room (the worker rings the bell when
    /// it takes bytes), and looks once more after saying so. Returns whether
    /// the worker must be woken.
    private func flushOutboxLocked() -> Bool {
        var wake = false
        var announced = false
        while outboxStart < outbox.count {
            let r = outbox.withUnsafeBytes { b in ring.write(UnsafeRawBufferPointer(rebasing: b[outboxStart...])) }
            switch r {
            case .corrupt(let why): brokenRing(why); return false
            case .done(let n, let w):
                wake = wake || w
                outboxStart += n
                if n == 0 {
                    if announced { return wake }
                    ring.setBlocked(true)
                    announced = true
                }
            }
        }
        outbox.removeAll(keepingCapacity: outbox.capacity <= 1 << 20)
        outboxStart = 0
        ring.setBlocked(false)
        return wake
    }

    private func flushOutbox() {
        let wake = lock.withLock { outbox.count > outboxStart && flushOutboxLocked() }
        if wake { ring.wakeWorker() }
    }

    /// Kills what is left of the process group, reaps the worker and reports.
    private func finish(_ lines: inout (out: [UInt8], err: [UInt8]), _ budget: inout OutputBudget) {
        closeTurn()   // events is this thread's alone from here
        var code: Int32 = 0, signaled: Int32 = 0, core: Int32 = 0
        var reaped = false
        if closedWhileRunning {
            // Its end of file comes just before its exit status: give that 100 ms
            // to arrive, so a crash is reported as the crash it is. Waited for
            // on a pidfd: looking every millisecond cost each crash's restart
            // about a millisecond before anything else could start.
            reaped = plexus_posix_wait_within(pid, 100, &code, &signaled, &core) == pid
            // A signal or an error code speaks for itself; exit 0 unasked is a crash
            // too (FAULTS.md 3), and is said to be one.
            let cleanExit = reaped && signaled == 0 && code == 0
            let why: String? = !reaped ? "the worker closed its channel" : cleanExit ? (lock.withLock { asked } ?? "it exited on its own") : nil
            if let why { lock.withLock { if killReason == nil && termReason == nil { killReason = why } } }
        }
        Glibc.kill(-pid, SIGKILL)
        if !reaped {
            Glibc.kill(pid, SIGKILL)
            _ = plexus_posix_wait(pid, 1, &code, &signaled, &core)
        }
        drainOutput(out, &lines.out, stderr: false, &budget)
        drainOutput(err, &lines.err, stderr: true, &budget)
        for (rest, isErr) in [(lines.out, false), (lines.err, true)] where !rest.isEmpty {
            emit(rest[...], stderr: isErr)
        }
        if budget.dropped > 0 { events?.output("[\(budget.dropped) bytes of output dropped: over \(Self.outputBytesPerSecond) bytes/s]", stderr: true, from: self) }
        let reason = lock.withLock { () -> String? in
            ended = true
            let why = [termReason, killReason].compactMap { $0 }
            return why.isEmpty ? nil : why.joined(separator: "; ")
        }
        events?.exited(WorkerExit(pid: pid, code: code, signaled: signaled != 0, hostReason: reason), from: self)
        events = nil
    }

    private struct OutputBudget {
        var second: Int64 = 0
        var used = 0
        var dropped = 0
        mutating func allow(_ n: Int) -> Bool {
            let now = Clock.monotonicNanos() / 1_000_000_000
            if now != second { second = now; used = 0 }
            guard used + n <= WorkerProcess.outputBytesPerSecond else { dropped += n; return false }
            used += n
            return true
        }
    }

    /// Reads what the plugin printed; whole lines go to the log, within budget.
    private func drainOutput(_ fd: Int32, _ pending: inout [UInt8], stderr: Bool, _ budget: inout OutputBudget) {
        var chunk = [UInt8](repeating: 0, count: 16384)
        for _ in 0..<64 {   // bounded: a flooding plugin cannot starve the channel
            let n = read(fd, &chunk, chunk.count)
            guard n > 0 else { return }
            guard budget.allow(n) else { continue }
            pending.append(contentsOf: chunk[0..<n])
            while let nl = pending.firstIndex(of: 10) {
                emit(pending[..<nl], stderr: stderr)
                pending.removeSubrange(...nl)
            }
            if pending.count > 4096 {   // a line without end: log it in pieces
                emit(pending[...], stderr: stderr)
                pending.removeAll()
            }
        }
    }

    /// One line to the log, cut at `maxLogLine` bytes so a plugin cannot
    /// flood a terminal or a log file with a single line.
    private func emit(_ line: ArraySlice<UInt8>, stderr: Bool) {
        guard line.count > Self.maxLogLine else {
            events?.output(String(decoding: line, as: UTF8.self), stderr: stderr, from: self)
            return
        }
        let head = String(decoding: line.prefix(Self.maxLogLine), as: UTF8.self)
        events?.output("\(head)… [\(line.count - Self.maxLogLine) more bytes cut]", stderr: stderr, from: self)
    }
}
