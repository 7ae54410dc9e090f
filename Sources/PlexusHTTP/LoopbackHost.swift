import Hummingbird

/// A server open without a token is bound to loopback, but that alone does
/// not keep other web sites out: a page whose DNS name is rebound to
/// 127.0.0.1 is, to the browser, its own origin, and may read every answer.
/// What gives it away is the Host header, which names the page's domain. So
/// without a token, only loopback names are served (localhost, 127.x.y.z,
/// [::1]); with one, the token already keeps such a page out.
struct LoopbackHost<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let authority = request.head.authority, !Self.isLoopback(authority) else { return try await next(request, context) }
        var r = Response(status: .misdirectedRequest,
                         body: .init(byteBuffer: ByteBuffer(string: """
                             this server answers to loopback names only (localhost, 127.0.0.1, [::1]), not '\(authority)': \
                             open it as http://127.0.0.1:PORT/, or set http.token in plexus.yaml to serve it under another name

                             """)))
        r.headers[.contentType] = "text/plain; charset=utf-8"
        return r
    }

    /// "localhost", "127.0.0.1:7400", "[::1]:7400": a loopback name with an optional port.
    static func isLoopback(_ authority: String) -> Bool {
        var host = Substring(authority.lowercased())
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            return host[host.index(after: host.startIndex)..<close] == "::1"
        }
        if let colon = host.lastIndex(of: ":") { host = host[..<colon] }
        if host == "localhost" || host.hasSuffix(".localhost") { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { p in UInt8(p) != nil }
    }
}
