import Foundation
import PlexusCore
import PlexusSocket
import PlexusTestSupport
import Testing

/// A new user's first hour against a real `plexus run` and the real
/// collector: a relative path typed in another directory, a path that is
/// not there, the weather crew's flaky first read, a typo in plexus.yaml,
/// and a workflow file that does not exist.
@Suite("First hour (CLI)", .serialized)
struct FirstHourCLITests {
    let exe = PlexusCommand.path

    func plexus(_ args: [String], in dir: String) throws -> PlexusCommand.Outcome { try PlexusCommand.run(args, in: dir) }

    @Test func pathsRetriesAndTyposAreExplainedWhereTheUserLooks() throws {
        let dir = Fixtures.dir + "/firsthour-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let hostDir = dir + "/host", userDir = dir + "/elsewhere"
        try FileManager.default.createDirectory(atPath: hostDir + "/Plugins", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: userDir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.root + "/Plugins/collector.so", toPath: hostDir + "/Plugins/collector.so")
        try "date,precipitation\n2012-01-01,0.0\n2012-01-02,10.9\n2012-02-01,0.5\n".write(toFile: userDir + "/mine.csv", atomically: true, encoding: .utf8)
        try """
            plugins:
              colector: { instances: 1 }
            supervision:
              children:
                - agent: nobody
            defaults:
              filesystem: { read: ["\(userDir)"] }   # the sandboxed collector may read the user's files
            """.write(toFile: hostDir + "/plexus.yaml", atomically: true, encoding: .utf8)
        let wf = userDir + "/collect.yaml"
        try """
            workflow: collect
            input: { flaky: false }
            steps:
              collect:
                call: data.collect
                input: { path: "${input.path}", flaky: "${input.flaky}" }
                retry: { attempts: 3, backoff_ms: 100 }
            """.write(toFile: wf, atomically: true, encoding: .utf8)

        let sock = dir + "/h.sock"
        let host = Process()
        host.executableURL = URL(fileURLWithPath: exe)
        host.arguments = ["run", "--socket", sock, "--store", dir + "/plexus.db"]
        host.currentDirectoryURL = URL(fileURLWithPath: hostDir)
        let hostErr = Pipe()
        host.standardError = hostErr
        try host.run()
        defer { if host.isRunning { host.interrupt(); host.waitUntilExit() } }
        var up = false
        for _ in 0..<400 where !up && host.isRunning {
            up = (try? SocketClient(path: sock)).flatMap { try? $0.call(Envelope(kind: .query, target: .capability("plexus.agents")), timeoutMs: 2000) } != nil
            if !up { Thread.sleep(forTimeInterval: 0.05) }
        }
        try #require(up, "the host did not come up")

        // mine.csv is in the user's directory, not the host's: the CLI sends it absolute.
        // The collector's first read fails (flaky): the retry shows in the view and in status.
        let flaky = try plexus(["workflow", "run", wf, "--input", #"{"path": "mine.csv", "flaky": true}"#, "--follow", "--socket", sock], in: userDir)
        #expect(flaky.status == 0, "\(flaky.err)")
        #expect(flaky.err.contains("input.path is the file \(userDir)/mine.csv"), "\(flaky.err)")
        #expect(flaky.out.contains("2 attempts, last failure: UNAVAILABLE: the source is busy"), "\(flaky.out)")
        let id = try #require(flaky.err.firstMatch(of: /run ([0-9a-f]{32}) of collect/)?.1).description
        let status = try JSONValue.parse(Array(try plexus(["workflow", "status", id, "--json", "--socket", sock], in: userDir).out.utf8))
        guard case .array(let steps)? = status["steps"], let collect = steps.first else { Issue.record("no steps: \(status.text)"); return }
        #expect(collect["attempts"] == .int(2))
        #expect(collect["last_error"]?.text.contains("UNAVAILABLE") == true)

        // A path that is nowhere: the error names the file tried and the host's directory, once.
        let gone = try plexus(["workflow", "run", wf, "--input", #"{"path": "gone.csv"}"#, "--follow", "--socket", sock], in: userDir)
        #expect(gone.status == 1)
        // The sandboxed collector reads relative paths from its own root, /, and says what it may see.
        #expect(gone.err.contains("cannot open /gone.csv: No such file or directory (a relative path is read from the agent's working directory, /; give an absolute path; a sandboxed agent sees only the paths plexus.yaml's filesystem.read grants it)"), "\(gone.err)")
        #expect(gone.err.contains("after 1 attempt(s)") && gone.err.contains("not retried: INVALID_ARGUMENT cannot succeed on retry"), "\(gone.err)")

        // The configured plugin with no file is listed, with the closest name.
        let listed = try plexus(["plugins", "list", "--socket", sock], in: userDir)
        #expect(listed.out.contains("missing  Plugins/colector.so"), "\(listed.out)")
        #expect(listed.out.contains("(did you mean collector?)"), "\(listed.out)")

        // retry_on from the command line: a task that names INVALID_ARGUMENT is retried on it; a misspelt status is a usage error.
        let typo = try plexus(["tasks", "submit", "data.collect", "--retry-on", "INVALID_ARGUMNT", "--socket", sock], in: userDir)
        #expect(typo.status == 2 && typo.err.contains("did you mean INVALID_ARGUMENT?"), "\(typo.status) \(typo.err)")
        let retried = try plexus(["tasks", "submit", "data.collect", "--json", #"{"path": "/nowhere.csv"}"#, "--attempts", "2", "--backoff-ms", "1",
                                  "--retry-on", "INVALID_ARGUMENT", "--wait", "--socket", sock], in: userDir)
        #expect(retried.status == 1 && retried.err.contains("2 attempt(s) failed; last error INVALID_ARGUMENT: cannot open /nowhere.csv"), "\(retried.err)")

        // A workflow file that is not there: no 0:0.
        let missing = try plexus(["workflow", "run", "/nonexistent.yaml", "--socket", sock], in: userDir)
        #expect(missing.status != 0)
        #expect(missing.err.contains("cannot read /nonexistent.yaml: no such file or directory") && !missing.err.contains(":0:0"), "\(missing.err)")

        host.interrupt()
        host.waitUntilExit()
        let said = String(decoding: hostErr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(said.contains("plexus: warning: plexus.yaml:2:3: plugins.colector: no plugin file colector.so in Plugins (did you mean collector?)"), "\(said)")
        #expect(said.contains("plexus: warning: plexus.yaml:5:14: supervision.children[0].agent: no agent is named 'nobody'"), "\(said)")
    }
}
