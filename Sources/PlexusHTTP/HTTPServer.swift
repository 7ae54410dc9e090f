import Dispatch
import Glibc
import Hummingbird
import Logging
import NIOCore
import PlexusCore
import ServiceLifecycle
import Synchronization

/// `plexus run`'s HTTP server: /healthz and whatever the caller routes
/// (metrics, the dashboard). Hummingbird runs it on its own event loops;
/// init returns once the socket is bound (or throws why it could not be),
/// stop() once it has closed. Both block their thread while Hummingbird's
/// tasks run on Swift's shared pool: call them from a thread of your own
/// (plexus run's main thread), never from async code, or a pool whose
/// threads all wait so could never start the server.
public final class HTTPServer: Sendable {
    public typealias Routes = Router<BasicRequestContext>

    /// The address actually bound (the port filled in when 0 was asked for).
    public let address: HTTPSettings.Address
    private let group: ServiceGroup
    private let finished = DispatchSemaphore(value: 0)

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Binds settings.listen and serves `routes` (plus /healthz) behind the
    /// token check. `healthy` answers /healthz: 200 while it returns true.
    public init(_ settings: HTTPSettings, healthy: @escaping @Sendable () -> Bool,
                routes: (Routes) -> Void) throws {
        guard let listen = settings.listen else { throw StartError(description: "no HTTP address given") }
        let router = Routes()
        router.add(middleware: BearerToken(token: settings.token))
        if settings.token == nil { router.add(middleware: LoopbackHost()) }   // no token: loopback names only
        let health: @Sendable (Request, BasicRequestContext) -> Response = { _, _ in
            healthy() ? .text("ok\n") : .text("shutting down\n", status: .serviceUnavailable)
        }
        router.get("healthz", use: health)
        router.head("healthz", use: health)
        routes(router)
        let bound = Mutex<Result<Int, StartError>?>(nil)
        let ready = DispatchSemaphore(value: 0)
        var logger = Logger(label: "plexus.http")
        logger.logLevel = .warning
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "plexus"),
            onServerRunning: { channel in
                bound.withLock { $0 = .success(channel.localAddress?.port ?? listen.port) }
                ready.signal()
            },
            logger: logger)
        group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let group = self.group, finished = self.finished
        Task.detached {
            do { try await group.run() } catch {
                bound.withLock { if $0 == nil { $0 = .failure(StartError(description: "cannot listen on \(listen): \(Self.reason(error))")) } }
            }
            ready.signal()
            finished.signal()
        }
        ready.wait()
        switch bound.withLock({ $0 }) {
        case .success(let port)?: address = HTTPSettings.Address(host: listen.host, port: port)
        case .failure(let e)?:
            finished.wait()
            throw e
        case nil:
            finished.wait()
            throw StartError(description: "the HTTP server on \(listen) stopped before it was up")
        }
    }

    /// Stops accepting, lets requests in progress end, and returns when closed.
    public func stop() {
        let group = self.group
        Task.detached { await group.triggerGracefulShutdown() }
        finished.wait()
    }

    /// "address already in use" rather than NIO's type dump.
    static func reason(_ error: any Error) -> String {
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)).lowercased() }
        return "\(error)"
    }
}

extension Response {
    static func text(_ body: String, status: HTTPResponse.Status = .ok, type: String = "text/plain; charset=utf-8") -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
