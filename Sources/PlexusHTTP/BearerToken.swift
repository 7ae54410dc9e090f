import Hummingbird

/// With a token configured, every request but /healthz must carry
/// `Authorization: Bearer TOKEN`; compared in constant time, so the time
/// a wrong guess takes says nothing about how much of it was right.
struct BearerToken<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]?

    init(token: String?) { self.token = token.map { Array($0.utf8) } }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token, request.uri.path != "/healthz" else { return try await next(request, context) }
        let given = request.headers[.authorization].flatMap { h in
            h.hasPrefix("Bearer ") ? Array(h.utf8.dropFirst(7)) : nil
        }
        guard let given, Self.same(given, token) else {
            var r = Response.text("this host's HTTP server needs Authorization: Bearer TOKEN (http.token or http.token_env in plexus.yaml)\n", status: .unauthorized)
            r.headers[.wwwAuthenticate] = "Bearer realm=\"plexus\""
            return r
        }
        return try await next(request, context)
    }

    /// Equal length and bytes, reading every byte of the expected token whatever the input.
    static func same(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<b.count { diff |= (i < a.count ? a[i] : 0) ^ b[i] }
        return diff == 0
    }
}
