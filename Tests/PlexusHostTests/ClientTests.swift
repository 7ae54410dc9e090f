import Foundation
import PlexusCore
import PlexusHost
import PlexusTestSupport
import PlexusSocket
import Testing

/// SDK/c/plexus_client: a C program outside the host calls its agents over
/// the socket, as a user's program would (built with cc, run as a process).
@Suite("C client library", .serialized)
struct ClientTests {
    static let program = Fixtures.clientProgram("plexus_call")

    /// Runs the C example; returns (exit code, stdout, stderr).
    func run(_ args: [String]) throws -> (Int32, String, String) {
        let r = try PlexusCommand.run(args, executable: Self.program)
        return (r.status, r.out, r.err)
    }

    func withRunningHost(_ body: (String) throws -> Void) throws {
        try ExternalAgentTests().withRunningHost { _, sock in try body(sock) }
    }

    @Test func aCProgramCallsARustAgentAndGetsItsReply() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.program), "the C example did not build")
        try withRunningHost { sock in
            let (code, out, err) = try run(["--socket", sock, "text.keywords", "\"the host routes every message; the host restarts agents\""])
            #expect(code == 0, "\(err)")
            let reply = try JSONValue.parse(Array(out.utf8))
            guard case .array(let kws)? = reply["keywords"] else { Issue.record("no keywords in \(out)"); return }
            #expect(kws.first?["term"] == .string("host"))
        }
    }

    @Test func refusalsAndErrorsAreNamed() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.program), "the C example did not build")
        try withRunningHost { sock in
            let missing = try run(["--socket", sock, "no.such.thing", "{}"])
            #expect(missing.0 == 1)
            #expect(missing.2.hasPrefix("NO_SUCH_CAPABILITY: "), "\(missing.2)")
            #expect(missing.2.contains("no.such.thing"))
            let published = try run(["--socket", sock, "topic:docs.summarized", "{\"title\":\"from C\"}"])
            #expect(published.0 == 0, "\(published.2)")
        }
        let none = try run(["--socket", Fixtures.dir + "/nobody.sock", "echo", "x"])
        #expect(none.0 == 1)
        #expect(none.2.contains("no Plexus host answers at") && none.2.contains("plexus run"), "\(none.2)")
    }
}
