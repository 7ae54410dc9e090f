import PlexusThreads
import CPlexusPOSIX
import Glibc
import Logging
import PlexusCore
import PlexusHost
import Synchronization

/// The host's Unix socket: clients send envelope frames and get one answer
/// frame per frame they send (see SocketClient). The sender's identity comes
/// from the connection (its peer credentials), never from the frame. Any
/// malformed frame gets one ERROR frame and the connection is closed.
///
/// One event-loop thread (epoll) serves every connection, however many:
/// it accepts, reads, and hands frames to the session. The agent a frame
/// wakes runs on the loop thread itself when InlinePolicy has seen it be
/// quick (InlineRunner), so a call costs no third thread's wake-up; others
/// go to the dispatcher's workers. Answers are written by whoever produces
/// them (Outbox), those of one batch of a client's frames in one send, and,
/// when a socket is full, by the loop once it has room. A hand-written loop over the existing frame codec was
/// chosen over SwiftNIO: it keeps the write-through path (a reply goes out
/// on the thread that produced it, no hop), adds no dependency to build, and
/// the session code stays synchronous because nothing in it blocks
/// (requests answer through callbacks).
public final class SocketServer: @unchecked Sendable {
    public struct Options: Sendable {
        /// A client that sends part of a frame and then nothing for this long is closed.
        public var partialFrameTimeoutMs: Int64 = 2_000
        public init() {}
    }

    public let path: String
    private let host: Host
    private let options: Options
    private let listenFD: Int32
    private let epoll: Int32
    private let wake: Int32
    private let logger = Logger(label: "plexus.socket")
    private let serials = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// False once stopAccepting() ran (any thread; read by the loop).
    private let accepting = Atomic<Bool>(true)
    private let loopThread = Mutex<OwnedThread?>(nil)
    /// Runs a woken agent on the loop thread (loop-thread use only).
    private let runner: InlineRunner
    /// Which agents may run there.
    private let policy = InlinePolicy()
    /// Which thread serves the loop; bounds how long an inline run holds it.
    private let leadership = LoopLeadership()
    /// Loop state: false while the standby serves (it runs nothing inline).
    private var inlineAllowed = true
    /// Loop-thread state: the open connections by descriptor.
    private var connections: [Int32: Connection] = [:]
    /// connections.count, readable from any thread (plexus_socket_clients).
    public let clientCount = Atomic<Int>(0)
    /// Loop-thread state: connections with a deadline (half a frame waits, or closing).
    private var watched = Set<Int32>()
    /// A descriptor kept open to be given up when accept fails for want of
    /// descriptors (EMFILE): closing it lets the waiting peer be accepted
    /// and closed at once, instead of the loop waking for it forever.
    private var reserveFD: Int32 = -1
    private var refusedForDescriptors = 0
    private var lastRefusalLog: Int64 = 0
    private var acceptPausedUntil: Int64 = 0

    static let listenToken = UInt64.max
    static let wakeToken = UInt64.max - 1
    /// How long a closing connection may take to take its last frames.
    static let closeGraceNanos: Int64 = 2_000_000_000
    /// The loop looks at deadlines this often while any is pending.
    static let tickMs: Int32 = 100

    /// Binds path (mode 0600, or 0666 when plexus.yaml lists clients of
    /// other users). Refuses when another host answers there;
    /// a stale socket file left by a dead host is replaced.
    public init(host: Host, path: String, options: Options = Options()) throws(PlexusError) {
        self.host = host
        self.path = path
        self.options = options
        self.runner = host.inlineRunner()
        guard options.partialFrameTimeoutMs > 0 else {
            throw PlexusError(.INVALID_ARGUMENT, "the client frame timeout must be at least 1 ms, not \(options.partialFrameTimeoutMs)")
        }
        guard var addr = SocketPath.address(path) else {
            throw PlexusError(.INVALID_ARGUMENT, "socket path is longer than 107 bytes: \(path)")
        }
        let othersMayConnect = host.configuration.clients.values.contains { $0.uid != getuid() }
        try SocketPath.prepareDirectory(of: path, othersMayConnect: othersMayConnect)
        if (try? SocketClient(path: path)) != nil {
            throw PlexusError(.INVALID_ARGUMENT, "a host is already running at \(path)")
        }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw PlexusError(.INTERNAL, "socket: \(String(cString: strerror(errno)))") }
        // 0600 (only this user) unless plexus.yaml admits other users:
        // then 0666, and each connection's peer uid and hello decide.
        let mode: mode_t = othersMayConnect ? 0o666 : 0o600
        let old = umask(0o177)   // created 0600; widened below only when clients need it
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(old)
        // SOMAXCONN: a burst of clients waits in the queue instead of being refused.
        guard rc == 0, chmod(path, mode) == 0, listen(fd, SOMAXCONN) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw PlexusError(.INVALID_ARGUMENT, "cannot listen on \(path): \(why)")
        }
        let ep = plexus_loop_create(), wk = plexus_loop_eventfd()
        guard ep >= 0, wk >= 0,
              plexus_loop_ctl(ep, 0, fd, PLEXUS_LOOP_IN, Self.listenToken) == 0,
              plexus_loop_ctl(ep, 0, wk, PLEXUS_LOOP_IN, Self.wakeToken) == 0 else {
            let why = String(cString: strerror(errno))
            for d in [fd, ep, wk] where d >= 0 { close(d) }
            unlink(path)
            throw PlexusError(.INTERNAL, "cannot set up the socket's event loop: \(why)")
        }
        listenFD = fd
        epoll = ep
        wake = wk
        reserveFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    deinit {
        for d in [listenFD, epoll, wake, reserveFD] where d >= 0 { close(d) }
    }

    /// Starts the event loop; throws when its thread cannot start.
    public func start() throws(PlexusError) {
        do throws(ThreadStartError) {
            try leadership.start(wakeLoop: { [wake] in var one: UInt64 = 1; _ = Glibc.write(wake, &one, 8) },
                                 serve: { [self] stillStuck in serveAside(while: stillStuck) })
            let t = try startThread(name: "plexus-socket") { [self] in loop() }
            loopThread.withLock { $0 = t }
        } catch {
            leadership.stop()
            throw PlexusError(.INTERNAL, "the socket server cannot start: \(error)")
        }
    }

    /// How the loop has served: agents run on its own thread (`inlineRuns`),
    /// and the times one of them ran over a tick and the standby thread
    /// served the other clients meanwhile (`standbyTurns`).
    public var counters: (inlineRuns: UInt64, standbyTurns: UInt64) { (leadership.inlineRuns, leadership.served) }

    /// Takes no new connections (the socket file goes, so a new client is
    /// told no host runs there) while the connected ones are still served:
    /// at shutdown their requests in flight get their answers, or
    /// SHUTTING_DOWN, before stop() closes them.
    public func stopAccepting() {
        guard accepting.exchange(false, ordering: .relaxed) else { return }
        _ = plexus_loop_ctl(epoll, 2, listenFD, 0, Self.listenToken)
        unlink(path)
    }

    /// Stops accepting, closes every connection and removes the socket file.
    public func stop() {
        stopAccepting()
        stopping.store(true, ordering: .relaxed)
        var one: UInt64 = 1
        _ = Glibc.write(wake, &one, 8)
        loopThread.withLock { $0.take() }?.join()
        leadership.stop()
        shutdown(listenFD, Int32(SHUT_RDWR))   // the file went in stopAccepting(), once
    }

    // MARK: the loop (its own thread; the standby's while an inline run takes long)

    /// Per-thread buffers of a thread serving the loop.
    private struct LoopBuffers {
        var tokens = [UInt64](repeating: 0, count: 256)
        var events = [UInt32](repeating: 0, count: 256)
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
    }

    private func loop() {
        var b = LoopBuffers()
        leadership.lead()
        while !stopping.load(ordering: .relaxed) {
            if !iterate(&b, timeout: watched.isEmpty && acceptPausedUntil == 0 ? -1 : Self.tickMs) { break }
        }
        for c in Array(connections.values) { finish(c) }
        leadership.resign()
    }

    /// The standby's turn (token held): serves every client, running no
    /// agent inline, until the loop thread's long inline run ends.
    private func serveAside(while stillStuck: () -> Bool) {
        var b = LoopBuffers()
        inlineAllowed = false
        defer { inlineAllowed = true }
        while stillStuck() && !stopping.load(ordering: .relaxed) {
            if !iterate(&b, timeout: 1) { return }
        }
    }

    /// One wait for events and their handling; false when the loop must end.
    private func iterate(_ b: inout LoopBuffers, timeout: Int32) -> Bool {
        let n = plexus_loop_wait(epoll, &b.tokens, &b.events, 256, timeout)
        if n < 0 && errno != EINTR { logger.critical("epoll_wait failed", metadata: ["error": "\(String(cString: strerror(errno)))"]); return false }
        let served = leadership.served
        for i in 0..<max(0, Int(n)) {
            switch b.tokens[i] {
            case Self.listenToken: acceptAll()
            case Self.wakeToken: var v: UInt64 = 0; _ = Glibc.read(wake, &v, 8)
            default:
                guard let c = connections[Int32(truncatingIfNeeded: b.tokens[i])] else { continue }
                serve(c, b.events[i], &b.scratch)
                watch(c)
            }
            // The standby served while an agent ran here: the rest of these
            // events may be stale (level-triggered, they come again).
            if leadership.served != served { break }
        }
        checkDeadlines()
        return true
    }

    /// Keeps `watched` to the connections with a deadline to check.
    private func watch(_ c: Connection) {
        if connections[c.fd] === c && (c.partialSince != 0 || c.closing) { watched.insert(c.fd) } else { watched.remove(c.fd) }
    }

    /// Accepts every waiting client. Out of descriptors, the reserve is
    /// given up so the peer can be accepted and closed (it sees the end at
    /// once), and a warning is logged at most every 5 s.
    private func acceptAll() {
        if acceptPausedUntil != 0 || !accepting.load(ordering: .relaxed) { return }
        for _ in 0..<256 {
            let fd = plexus_loop_accept(listenFD)
            if fd >= 0 { adopt(fd); continue }
            switch errno {
            case EINTR, ECONNABORTED: continue
            case EMFILE, ENFILE:
                refusedForDescriptors += 1
                if reserveFD >= 0 {
                    close(reserveFD)
                    let x = plexus_loop_accept(listenFD)
                    if x >= 0 { close(x) }
                    reserveFD = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
                } else {
                    // No reserve either: stop listening for a tick instead of spinning.
                    acceptPausedUntil = Clock.monotonicNanos() + Int64(Self.tickMs) * 1_000_000
                    _ = plexus_loop_ctl(epoll, 1, listenFD, 0, Self.listenToken)
                }
                let now = Clock.monotonicNanos()
                if now - lastRefusalLog > 5_000_000_000 {
                    lastRefusalLog = now
                    logger.error("out of file descriptors: closing new clients at once", metadata: [
                        "errno": "\(errno == EMFILE ? "EMFILE" : "ENFILE")", "open_connections": "\(connections.count)",
                        "refused_so_far": "\(refusedForDescriptors)"])
                }
                return
            default: return   // EAGAIN: nobody else waits
            }
        }
    }

    /// A new connection: admitted from its peer credentials, or answered one
    /// ERROR frame and closed.
    private func adopt(_ fd: Int32) {
        guard plexus_loop_ctl(epoll, 0, fd, PLEXUS_LOOP_IN, UInt64(UInt32(bitPattern: fd))) == 0 else {
            logger.error("cannot watch a new client", metadata: ["error": "\(String(cString: strerror(errno)))"])
            close(fd)
            return
        }
        let c = Connection(outbox: Outbox(fd: fd, epoll: epoll, limit: host.configuration.mailboxCapacity))
        connections[fd] = c
        clientCount.store(connections.count, ordering: .relaxed)
        do throws(PlexusError) { c.session = try admit(fd, c.outbox) } catch { refuse(c, error) }
        watch(c)
    }

    private func serve(_ c: Connection, _ ev: UInt32, _ scratch: inout [UInt8]) {
        if ev & PLEXUS_LOOP_OUT != 0 {
            c.outbox.flush()
            if c.paused && c.outbox.backlog < c.outbox.limit { c.paused = false; c.outbox.setReading(true); handleFrames(c) }
        }
        if c.closing {
            if c.outbox.drained || ev & PLEXUS_LOOP_HUP != 0 { finish(c) }
            return
        }
        if ev & PLEXUS_LOOP_IN != 0 && !c.paused {
            let n = scratch.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                scratch.withUnsafeBytes { c.received(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                handleFrames(c)
            } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                if let e = c.cutShort { refuse(c, e) } else { finish(c) }
                return
            }
        } else if ev & PLEXUS_LOOP_HUP != 0 {
            finish(c)   // gone while paused: nobody is left to read the answers
        }
    }

    /// Handles the whole frames read so far, until the client's answers
    /// pile up: then reading pauses (back-pressure) and the socket pushes
    /// back on the client, so the host holds a bounded number of answers.
    private func handleFrames(_ c: Connection) {
        c.outbox.cork()
        defer { c.outbox.uncork() }
        while !c.closing, let session = c.session {
            // Answers held by the cork count only once the socket refuses them.
            if c.outbox.backlog >= c.outbox.limit { c.outbox.flush() }
            if c.outbox.backlog >= c.outbox.limit {
                c.paused = true
                c.outbox.setReading(false)
                return
            }
            switch c.next(maxPayload: host.configuration.maxPayload) {
            case .none: return
            case .bad(let e):
                logger.warning("dropping client", metadata: ["client": "\(session.name)", "error": "\(e)"])
                refuse(c, e)
                return
            case .frame(let env):
                var keep = true
                if let woken = runner.routing({ keep = session.handle(env) }) {
                    let t0 = Clock.monotonicNanos()
                    if inlineAllowed && policy.mayRunInline(woken.name, now: t0) {
                        leadership.runAside { woken.run() }
                        let now = Clock.monotonicNanos()
                        policy.ranInline(woken.name, nanos: now - t0, now: now)
                    } else {
                        woken.handOff()
                    }
                }
                if !keep { end(c) }
            }
        }
    }

    /// Answers one ERROR frame, then closes.
    private func refuse(_ c: Connection, _ e: PlexusError) {
        if let frame = try? Session.errorEnvelope(e).encode() { _ = c.outbox.post(frame, force: true) }
        end(c)
    }

    /// Ends the session (its agents leave the host) and lets the last
    /// frames go out before the descriptor closes.
    private func end(_ c: Connection) {
        guard !c.closing else { return }
        if let s = c.session { s.close() } else { c.outbox.close() }
        c.session = nil
        c.closingDeadline = Clock.monotonicNanos() + Self.closeGraceNanos
        if c.outbox.drained { finish(c) }
    }

    private func finish(_ c: Connection) {
        if let s = c.session { s.close(); c.session = nil }
        c.outbox.release()
        connections[c.fd] = nil
        clientCount.store(connections.count, ordering: .relaxed)
        watched.remove(c.fd)
    }

    /// Half a frame, then silence: closed after the timeout. A closing
    /// connection whose client takes nothing is dropped after its grace.
    private func checkDeadlines() {
        let now = Clock.monotonicNanos()
        if acceptPausedUntil != 0 && now >= acceptPausedUntil {
            acceptPausedUntil = 0
            _ = plexus_loop_ctl(epoll, 1, listenFD, PLEXUS_LOOP_IN, Self.listenToken)
        }
        let limit = options.partialFrameTimeoutMs * 1_000_000
        for fd in Array(watched) {
            guard let c = connections[fd] else { watched.remove(fd); continue }
            defer { watch(c) }
            if c.closing {
                if now >= c.closingDeadline || c.outbox.drained { finish(c) }
            } else if !c.paused && c.partialSince != 0 && now - c.partialSince > limit {
                let who = c.session?.name ?? "?"
                logger.warning("closing client: half a frame, then silence", metadata: ["client": "\(who)", "timeout_ms": "\(options.partialFrameTimeoutMs)"])
                refuse(c, PlexusError(.MALFORMED_FRAME, "half a frame, then silence for \(options.partialFrameTimeoutMs) ms: the connection is closed"))
            }
        }
    }

    /// The session of a new connection, from its peer credentials; a peer
    /// plexus.yaml does not admit is refused (and audited).
    private func admit(_ fd: Int32, _ outbox: Outbox) throws(PlexusError) -> Session {
        var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        do throws(PlexusError) {
            guard plexus_posix_peer_credentials(fd, &pid, &uid, &gid) == 0 else {
                throw PlexusError(.PERMISSION_DENIED, "the connection's peer credentials cannot be read")
            }
            let identity = try Identity.atConnect(pid: pid, uid: uid, host.configuration)
            return Session(identity: identity, uid: uid, serial: serials.add(1, ordering: .relaxed).newValue, host: host, outbox: outbox,
                           policy: policy)
        } catch {
            host.audit(holder: "uid \(uid)", sender: "pid \(pid)", action: "connect", name: path, reason: error.detail)
            throw error
        }
    }
}
