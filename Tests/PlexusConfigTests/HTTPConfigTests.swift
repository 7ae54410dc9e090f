import PlexusConfig
import PlexusCore
import PlexusHost
import Testing

/// plexus.yaml's `http:`: where the HTTP server listens and the token it
/// demands; an address other machines can reach is refused without one.
@Suite("plexus.yaml http")
struct HTTPConfigTests: ConfigParsing {

    @Test func addressAndTokenAreRead() throws {
        #expect(try parse("store: { path: x.db }\n").http.listen == nil)
        let c = try parse("http: { listen: \"localhost:7400\" }\n")
        #expect(c.http.listen == HTTPSettings.Address(host: "127.0.0.1", port: 7400) && c.http.token == nil)
        let v6 = try parse("http: { listen: \"[::1]:0\" }\n")
        #expect(v6.http.listen?.isLoopback == true && v6.http.listen?.description == "[::1]:0")
        let open = try parse("http: { listen: 0.0.0.0:7400, token: 0123456789abcdef0 }\n")
        #expect(open.http.listen?.isLoopback == false && open.http.token == "0123456789abcdef0")
    }

    @Test func mistakesNameFileLineAndField() {
        #expect(error("http: { listen: 0.0.0.0:7400 }\n")
                == "plexus.yaml:1:17: http.listen: 0.0.0.0:7400 is reachable from other machines: give a token (or token_env) too")
        #expect(error("http: { listen: 7400 }\n")
                == "plexus.yaml:1:17: http.listen: expected HOST:PORT such as 127.0.0.1:7400, found \"7400\"")
        #expect(error("http: { listen: \"127.0.0.1:99999\" }\n")
                == "plexus.yaml:1:17: http.listen: \"127.0.0.1:99999\": the port must be a number from 0 to 65535, found \"99999\"")
        #expect(error("http: { listen: \"example.com:80\" }\n")
                == "plexus.yaml:1:17: http.listen: \"example.com:80\": the host must be an IP address or localhost, found \"example.com\"")
        #expect(error("http: { token: short }\n") == "plexus.yaml:1:16: http.token: a token needs at least 16 characters (it is the client's only secret)")
        #expect(error("http: { token_env: PLEXUS_TEST_SURELY_UNSET_VARIABLE }\n")
                == "plexus.yaml:1:20: http.token_env: the environment variable PLEXUS_TEST_SURELY_UNSET_VARIABLE is not set")
        #expect(error("http: { port: 1 }\n").hasPrefix("plexus.yaml:1:9: http.port: "))
        // Found by a stranger's review: accepted silently before.
        #expect(error("http: {}\n").hasPrefix("plexus.yaml:1:7: http: is empty: give listen"), "\(error("http: {}\n"))")
        #expect(error("http: { token_env: \"\" }\n") == "plexus.yaml:1:20: http.token_env: names the environment variable that holds the token; it is empty")
        #expect(error("http: { token: \"                \" }\n").hasPrefix("plexus.yaml:1:16: http.token: a token is printable ASCII without spaces"))
    }
}
