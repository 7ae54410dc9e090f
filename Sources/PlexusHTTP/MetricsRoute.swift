import Hummingbird
import NIOCore
import PlexusMetrics

extension HTTPServer {
    /// GET /metrics: the Prometheus text `text` returns (read from atomics
    /// and snapshots: it never waits on the host's work), or 404 when
    /// metrics are off.
    public static func metricsRoute(_ text: @escaping @Sendable () -> String?) -> (Routes) -> Void {
        { router in
            let metrics: @Sendable (Request, BasicRequestContext) -> Response = { _, _ in
                guard let body = text() else {
                    return .text("metrics are off: set metrics.enabled in plexus.yaml\n", status: .notFound)
                }
                return .text(body, type: Exposition.contentType)
            }
            router.get("metrics", use: metrics)
            router.head("metrics", use: metrics)   // a probe asking whether it is there (the server sends no body)
        }
    }
}
