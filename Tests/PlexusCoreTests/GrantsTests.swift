import PlexusCore
import Testing

/// Grant patterns: what they allow, what a subscription they cover, and the
/// refusal a sender reads.
@Suite("Grants")
struct GrantsTests {
    func grants(_ p: [Grants.Action: [String]]) throws -> Grants {
        try Grants(p, holder: "client 'reporter'", source: "clients.reporter.grants")
    }

    @Test func patternsMatchNamesTokenByToken() throws {
        let g = try grants([.call: ["echo", "report.*", "text.>"], .publish: ["docs.summarized"]])
        for name in ["echo", "report.summarize", "text.stats", "text.a.b.c"] { #expect(g.allows(.call, name), "\(name)") }
        for name in ["echo.more", "report", "report.a.b", "text", "texts.x", "ech", "plexus.agents"] { #expect(!g.allows(.call, name), "\(name)") }
        #expect(g.allows(.publish, "docs.summarized") && !g.allows(.publish, "docs.other"))
        #expect(!g.allows(.subscribe, "docs.summarized") && !g.allows(.register, "echo"))   // an action not listed: nothing
        #expect(Grants.all(holder: "h", source: "s").allows(.register, "any.name:at/all"))
    }

    @Test func aSubscriptionIsCoveredOnlyWhenEverySubjectItMatchesIs() throws {
        let g = try grants([.subscribe: ["docs.>", "metrics.*.cpu"]])
        for p in ["docs.summarized", "docs.*", "docs.>", "docs.a.*.c", "metrics.host1.cpu", "metrics.*.cpu"] {
            #expect(g.covers(.subscribe, pattern: p), "\(p)")
        }
        for p in [">", "*", "docs", "*.summarized", "metrics.*.*", "metrics.>", "metrics.h.cpu.x"] {
            #expect(!g.covers(.subscribe, pattern: p), "\(p)")
        }
    }

    @Test func theRefusalNamesTheMissingGrantAndWhereToAddIt() throws {
        let g = try grants([.call: ["echo"]])
        #expect(throws: PlexusError.self) { try g.check(.call, "report.summarize") }
        let e = g.denial(.call, "report.summarize")
        #expect(e.status == PLEXUS_PERMISSION_DENIED.status)
        #expect(e.detail == "client 'reporter' is not granted \"call report.summarize\" (it may call echo); grant it in clients.reporter.grants.call of plexus.yaml")
        #expect(g.denial(.publish, "x").detail.contains("(it may publish nothing)"))
    }

    @Test func aMalformedPatternIsRefusedWithWhereItCameFrom() {
        do {
            _ = try grants([.publish: ["docs.>.x"]])
            Issue.record("accepted a malformed pattern")
        } catch {
            #expect((error as? PlexusError)?.detail == "clients.reporter.grants.publish: pattern 'docs.>.x': '>' may only be the last token")
        }
    }
}

/// The host's names are reached only by a grant that names them.
@Suite("Grants and the host's names")
struct HostNameGrantTests {
    @Test func aWildcardNeverReachesTheHostsCapabilities() throws {
        let g = try Grants([.call: [">"], .subscribe: [">"]], holder: "agent 'thief'", source: "plugins.thief.grants")
        #expect(g.allows(.call, "text.stats"))
        #expect(!g.allows(.call, "plexus.kv.get"))
        #expect(!g.allows(.call, "plexus.tasks.submit"))
        #expect(!g.allows(.call, "_plexus.kv"))
        #expect(g.allows(.call, "plexusx.kv"))            // only the token plexus is the host's
        #expect(!g.permits(.subscribe, "plexus.audit.denied"))
        let star = try Grants([.call: ["*.get", "*.*.get"]], holder: "agent 'thief'", source: "plugins.thief.grants")
        #expect(!star.allows(.call, "plexus.kv.get"))
    }

    @Test func aGrantThatNamesThemDoes() throws {
        let g = try Grants([.call: ["plexus.tasks.>"], .subscribe: ["plexus.audit.denied"]], holder: "client 'ops'", source: "clients.ops.grants")
        #expect(g.allows(.call, "plexus.tasks.submit"))
        #expect(!g.allows(.call, "plexus.kv.get"))
        #expect(g.permits(.subscribe, "plexus.audit.denied"))
        #expect(Grants.all(holder: "host", source: "-").allows(.call, "plexus.kv.get"))   // the host's own user
    }
}
