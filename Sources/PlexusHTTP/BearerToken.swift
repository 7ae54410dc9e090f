import Hummingbird
import NIOCore
import Synchronization

/// With a token configured, every request but /healthz must carry it:
/// `Authorization: Bearer TOKEN` (scripts, Prometheus), or the session
/// cookie a browser gets from the login form (POST /login), since a browser
/// cannot add the header to the dashboard's own requests. The cookie is a
/// random session id, never the token: a cookie read off a browser's disk
/// opens this host until it restarts, and never leaks the token itself.
/// The token is compared in constant time, so the time a wrong guess takes
/// says nothing about how much of it was right.
struct BearerToken<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]?
    let sessions = Sessions()
    static var cookie: String { "plexus_session" }

    init(token: String?) { self.token = token.map { Array($0.utf8) } }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token, request.uri.path != "/healthz" else { return try await next(request, context) }
        if request.uri.path == "/login" && request.method == .post { return try await login(request, token) }
        guard allowed(request, token) else { return Self.refusal(request, wrong: false) }
        return try await next(request, context)
    }

    private func allowed(_ request: Request, _ token: [UInt8]) -> Bool {
        if let h = request.headers[.authorization] { return h.hasPrefix("Bearer ") && Self.same(Array(h.utf8.dropFirst(7)), token) }
        return Self.sessionCookie(request).map(sessions.contains) ?? false
    }

    /// The form's token, checked: a session cookie for the browser
    /// (HttpOnly, this site only) and back to the dashboard, or the form
    /// again saying the token was wrong (whatever the request accepts: it
    /// came from the form).
    private func login(_ request: Request, _ token: [UInt8]) async throws -> Response {
        let body = try await request.body.collect(upTo: 4096)
        let field = Self.formField("token", in: String(buffer: body))
        guard let field, Self.same(Array(field.utf8), token) else {
            var r = Response.text(Self.loginPage(wrong: field != nil), status: .unauthorized, type: "text/html; charset=utf-8")
            r.headers[.wwwAuthenticate] = "Bearer realm=\"plexus\""
            return r
        }
        var r = Response(status: .seeOther)
        r.headers[.location] = "/"
        r.headers[.setCookie] = "\(Self.cookie)=\(sessions.open()); Path=/; HttpOnly; SameSite=Strict"
        return r
    }

    static func sessionCookie(_ request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: " ") }
                if kv.count == 2 && kv[0] == cookie { return String(kv[1]) }
            }
        }
        return nil
    }

    /// 401: a login form for a browser, a sentence for anything else.
    static func refusal(_ request: Request, wrong: Bool) -> Response {
        let browser = request.headers[.accept]?.contains("text/html") == true
        var r = browser
            ? Response.text(loginPage(wrong: wrong), status: .unauthorized, type: "text/html; charset=utf-8")
            : Response.text("this host's HTTP server needs Authorization: Bearer TOKEN (http.token or http.token_env in plexus.yaml)\n", status: .unauthorized)
        r.headers[.wwwAuthenticate] = "Bearer realm=\"plexus\""
        return r
    }

    static func loginPage(wrong: Bool) -> String {
        """
        <!doctype html><html><head><meta charset="utf-8"><title>Plexus: token</title>
        <style>body{font:15px system-ui,sans-serif;display:grid;place-items:center;height:90vh;margin:0}
        @media(prefers-color-scheme:dark){body{background:#111418;color:#e6e6e6}}
        form{display:grid;gap:.6em;min-width:22em}input{font:inherit;padding:.4em}</style></head>
        <body><form method="post" action="/login"><b>This Plexus host asks for its token</b>
        <span>http.token (or the variable http.token_env names) in its plexus.yaml</span>
        \(wrong ? "<span style=\"color:#c33\">That is not the token.</span>" : "")
        <input type="password" name="token" autofocus autocomplete="current-password"><button>Open the dashboard</button></form></body></html>
        """
    }

    /// One field of an application/x-www-form-urlencoded body.
    static func formField(_ name: String, in body: String) -> String? {
        for pair in body.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 && kv[0] == name { return percentDecoded(kv[1]) }
        }
        return nil
    }

    static func percentDecoded(_ s: Substring) -> String? {
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "+") { out.append(UInt8(ascii: " ")); continue }
            guard b == UInt8(ascii: "%") else { out.append(b); continue }
            guard bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) else { return nil }
            out.append(v)
            bytes = bytes.dropFirst(2)
        }
        return String(validating: out, as: UTF8.self)
    }

    /// Equal length and bytes, reading every byte of the expected token whatever the input.
    static func same(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<b.count { diff |= (i < a.count ? a[i] : 0) ^ b[i] }
        return diff == 0
    }
}

/// The browser sessions the login form opened, in memory: a restart of
/// the host closes them all. The oldest goes when there are too many.
final class Sessions: Sendable {
    private let ids = Mutex<[String]>([])
    private static let most = 256

    /// A new session: 256 random bits, in hex.
    func open() -> String {
        var g = SystemRandomNumberGenerator()
        let id = (0..<4).map { _ in String(g.next() as UInt64, radix: 16).leftPadded(to: 16) }.joined()
        ids.withLock { s in
            s.append(id)
            if s.count > Self.most { s.removeFirst(s.count - Self.most) }
        }
        return id
    }

    func contains(_ id: String) -> Bool { ids.withLock { $0.contains(id) } }
}

extension String {
    fileprivate func leftPadded(to n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}

extension Substring {
    fileprivate func trimmingCharacters(in c: Character) -> Substring {
        var s = self
        while s.first == c { s = s.dropFirst() }
        while s.last == c { s = s.dropLast() }
        return s
    }
}
