import Hummingbird
import NIOCore
import PlexusMetrics

extension HTTPServer {
    /// GET /metrics: the Prometheus text `text` returns (read from atomics
    /// and snapshots: it never waits on the host's work), or 404 when
    /// metrics are off.
    public static func metricsRoute(_ text: @escaping @Sendable () -> String?) -> (Routes) -> Void {
        { router in
            router.get("metrics") { _, _ -> Response in
                guard let body = text() else {
                    return .text("metrics are off: set metrics.enabled in plexus.yaml\n", status: .notFound)
                }
                return .text(body, type: Exposition.contentType)
            }
        }
    }
}
