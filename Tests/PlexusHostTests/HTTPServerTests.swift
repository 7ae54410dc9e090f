import Foundation
import Glibc
import PlexusCore
import PlexusTestSupport
import Testing

/// `plexus run`'s HTTP server, as a user meets it: /healthz, the token,
/// the address it prints, and the errors a wrong address gets. Real host
/// processes: the server's tasks need Swift's shared thread pool, which
/// the suites around these keep busy with synchronous waits.
@Suite("HTTP server")
struct HTTPServerTests {
    /// The port from "plexus: serving HTTP at http://127.0.0.1:PORT/".
    static func port(of host: HostProcess) throws -> Int {
        waitFor(seconds: 20) { host.logText.contains("serving HTTP at") }
        let line = try #require(host.logText.split(separator: "\n").first { $0.contains("serving HTTP at http://127.0.0.1:") })
        return try #require(Int(line.split(separator: ":").last!.split(separator: "/").first!))
    }

    @Test func healthzAnswersAtTheAddressItPrints() throws {
        let host = try HostProcess("http-run", arguments: ["--http", "127.0.0.1:0"])
        defer { host.process.interrupt(); host.process.waitUntilExit() }
        let port = try Self.port(of: host)
        let ok = try HTTPGet.get(port: port, "/healthz")
        #expect(ok.status == 200 && ok.body == "ok\n")
        #expect(try HTTPGet.get(port: port, "/nothing-here").status == 404)
        // Open without a token, it answers to loopback names only: a page
        // whose DNS name was rebound to 127.0.0.1 names its own domain.
        let rebound = try HTTPGet.get(port: port, "/metrics", authority: "evil.example:\(port)")
        #expect(rebound.status == 421 && rebound.body.contains("loopback names only"), "\(rebound.status) \(rebound.body)")
        #expect(try HTTPGet.get(port: port, "/healthz", authority: "localhost:\(port)").status == 200)
        #expect(try HTTPGet.get(port: port, "/healthz", authority: "127.0.0.1").status == 200)
        #expect(try HTTPGet.get(port: port, "/healthz", authority: "127.0.0.1.evil.example").status == 421)
        // HEAD answers where GET does (a probe asking whether /metrics is there).
        #expect(try HTTPGet.request("HEAD", port: port, "/metrics").status == 200)
    }

    @Test func aTokenIsDemandedEverywhereButHealthz() throws {
        let token = "s3cret-token-of-20chars"
        let dir = TestDirectory.make("http-token")
        try "http: { listen: \"127.0.0.1:0\", token_env: PLEXUS_TEST_HTTP_TOKEN }\n".write(toFile: dir + "/plexus.yaml", atomically: true, encoding: .utf8)
        setenv("PLEXUS_TEST_HTTP_TOKEN", token, 1)
        let host = try HostProcess("http-token", arguments: ["--config", dir + "/plexus.yaml"])
        defer { host.process.interrupt(); host.process.waitUntilExit() }
        let port = try Self.port(of: host)
        let none = try HTTPGet.get(port: port, "/nothing-here")
        #expect(none.status == 401 && none.body.contains("Authorization: Bearer") && none.headers["www-authenticate"] == "Bearer realm=\"plexus\"")
        #expect(try HTTPGet.get(port: port, "/x", headers: ["Authorization": "Bearer \(token.dropLast())"]).status == 401)
        #expect(try HTTPGet.get(port: port, "/x", headers: ["Authorization": "Bearer \(token)x"]).status == 401)
        #expect(try HTTPGet.get(port: port, "/x", headers: ["Authorization": token]).status == 401)
        // The right token gets past the check (to a route that is not there).
        #expect(try HTTPGet.get(port: port, "/x", headers: ["Authorization": "Bearer \(token)"]).status == 404)
        #expect(try HTTPGet.get(port: port, "/healthz").status == 200)
        // A browser, which cannot add the header, gets a form; the right token in it gives a cookie that opens the rest.
        let page = try HTTPGet.get(port: port, "/", headers: ["Accept": "text/html"])
        #expect(page.status == 401 && page.body.contains("<form method=\"post\" action=\"/login\">"))
        let wrong = try HTTPGet.post(port: port, "/login", form: "token=guess")
        #expect(wrong.status == 401 && wrong.headers["set-cookie"] == nil)
        #expect(wrong.body.contains("That is not the token."), "the form says why: \(wrong.body)")
        let right = try HTTPGet.post(port: port, "/login", form: "token=\(token)")
        #expect(right.status == 303 && right.headers["location"] == "/")
        let cookie = try #require(right.headers["set-cookie"])
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
        let pair = String(cookie.split(separator: ";")[0])
        #expect(pair.hasPrefix("plexus_session=") && !pair.contains(token), "a session id, never the token: \(pair)")
        #expect(try HTTPGet.get(port: port, "/x", headers: ["Cookie": "plexus_session=\(token)"]).status == 401, "the token is no session")
        #expect(try HTTPGet.get(port: port, "/x", headers: ["Cookie": pair]).status == 404)
        #expect(try HTTPGet.get(port: port, "/x", headers: ["Cookie": pair + "x"]).status == 401)
    }

    @Test func aTakenPortIsAClearErrorAndNothingStarts() throws {
        let first = try HostProcess("http-first", arguments: ["--http", "127.0.0.1:0"])
        defer { first.process.interrupt(); first.process.waitUntilExit() }
        let port = try Self.port(of: first)
        let dir = TestDirectory.make("http-second")
        let second = try PlexusCommand.run(["run", "--http", "127.0.0.1:\(port)", "--socket", dir + "/s.sock", "--store", dir + "/p.db",
                                            "--plugins", dir], in: dir)
        #expect(second.status != 0)
        #expect(second.err.contains("cannot listen on 127.0.0.1:\(port): ") && second.err.contains("in use"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/s.sock"))
    }

    @Test func plexusRunRefusesAnOpenAddressWithoutAToken() throws {
        let open = try PlexusCommand.run(["run", "--http", "0.0.0.0:0", "--socket", "/nonexistent/x.sock"])
        #expect(open.status == 2)
        #expect(open.err.contains("--http: 0.0.0.0:0 is reachable from other machines: set http.token_env (or http.token) in plexus.yaml first"))
        let bad = try PlexusCommand.run(["run", "--http", "7400", "--socket", "/nonexistent/x.sock"])
        #expect(bad.status == 2 && bad.err.contains("--http: expected HOST:PORT such as 127.0.0.1:7400, found \"7400\""))
    }
}
