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
public final class SocketServer: @unchecked Sendable {
    public let path: String
    private let host: Host
    private let listenFD: Int32
    private let logger = Logger(label: "plexus.socket")
    private let connections = Mutex<[Int32: pthread_t]>([:])
    private let serials = Atomic<Int>(0)
    private var acceptThread: pthread_t?

    /// Binds path (mode 0600, or 0666 when plexus.yaml lists clients of
    /// other users). Refuses when another host answers there;
    /// a stale socket file left by a dead host is replaced.
    public init(host: Host, path: String) throws(PlexusError) {
        self.host = host
        self.path = path
        guard var addr = SocketPath.address(path) else {
            throw PlexusError(.INVALID_ARGUMENT, "socket path is longer than 107 bytes: \(path)")
        }
        if (try? SocketClient(path: path)) != nil {
            throw PlexusError(.INVALID_ARGUMENT, "a host is already running at \(path)")
        }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw PlexusError(.INTERNAL, "socket: \(String(cString: strerror(errno)))") }
        // 0600 (only this user) unless plexus.yaml admits other users:
        // then 0666, and each connection's peer uid and hello decide.
        let mode: mode_t = host.configuration.clients.values.contains { $0.uid != getuid() } ? 0o666 : 0o600
        let old = umask(0o177)   // created 0600; widened below only when clients need it
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(old)
        guard rc == 0, chmod(path, mode) == 0, listen(fd, 128) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw PlexusError(.INVALID_ARGUMENT, "cannot listen on \(path): \(why)")
        }
        self.listenFD = fd
    }

    public func start() {
        acceptThread = startThread(name: "plexus-accept") { [self] in acceptLoop() }
    }

    /// Stops accepting, closes every connection and removes the socket file.
    public func stop() {
        shutdown(listenFD, Int32(SHUT_RDWR))
        if let t = acceptThread { pthread_join(t, nil) }
        acceptThread = nil
        close(listenFD)
        let open = connections.withLock { c in c }
        for fd in open.keys { shutdown(fd, Int32(SHUT_RDWR)) }
        for t in open.values { pthread_join(t, nil) }
        unlink(path)
    }

    private func acceptLoop() {
        while true {
            let fd = plexus_posix_accept_cloexec(listenFD)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // the listening socket was shut down
            }
            let t = startThread(name: "plexus-client") { [self] in serve(fd) }
            connections.withLock { $0[fd] = t }
        }
    }

    /// Reads the client's frames until it leaves; a second thread writes
    /// what goes back (Outbox). A peer no client entry admits, any malformed
    /// frame and a refused hello get one ERROR frame and end the
    /// connection; its agents leave the host.
    private func serve(_ fd: Int32) {
        let io = FrameIO(fd: fd, maxPayload: host.configuration.maxPayload)
        let outbox = Outbox(io, limit: host.configuration.mailboxCapacity)
        let writer = startThread(name: "plexus-client-out") { outbox.run() }
        var session: Session?
        defer {
            if let session { session.close() } else { outbox.close() }
            pthread_join(writer, nil)
            connections.withLock { $0[fd] = nil }
            close(fd)
        }
        do throws(PlexusError) { session = try admit(fd, outbox) } catch {
            if let frame = try? Session.errorEnvelope(error).encode() { _ = outbox.post(frame, force: true) }
            return
        }
        // Back-pressure: while the client leaves its answers unread, stop
        // reading its frames, so the socket pushes back on it and the host
        // holds a bounded number of answers for it.
        while let session, outbox.awaitRoom() {
            let env: Envelope
            do throws(PlexusError) {
                guard case .frame(let f) = try io.read() else { return }
                env = try Envelope(frame: f, maxPayload: host.configuration.maxPayload)
            } catch {
                logger.warning("dropping client", metadata: ["client": "\(session.name)", "error": "\(error)"])
                if let frame = try? Session.errorEnvelope(error).encode() { _ = outbox.post(frame, force: true) }
                return
            }
            guard session.handle(env) else { return }
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
            return Session(identity: identity, uid: uid, serial: serials.add(1, ordering: .relaxed).newValue, host: host, outbox: outbox)
        } catch {
            host.audit(holder: "uid \(uid)", sender: "pid \(pid)", action: "connect", name: path, reason: error.detail)
            throw error
        }
    }
}
