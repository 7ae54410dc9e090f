import Foundation
import Glibc
import PlexusTestSupport
import Testing

/// The `plexus` executable as a user meets it: one table of exit statuses
/// for every command (0 done, 1 failed, 2 usage, 3 no host), and "did you
/// mean" wherever a name is mistyped.
@Suite("The plexus command line", .serialized)
struct CLITests {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    func plexus(_ args: [String], in dir: String, env: [String: String] = [:]) throws -> PlexusCommand.Outcome {
        try PlexusCommand.run(args, in: dir, env: env)
    }

    /// A private directory with Plugins/textkit.so (built by Plugins/build.sh); removed by the caller.
    func workspace() throws -> String {
        let dir = TestDirectory.make("cli")
        try FileManager.default.createDirectory(atPath: dir + "/Plugins", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: CLITests.root + "/Plugins/textkit.so", toPath: dir + "/Plugins/textkit.so")
        return dir
    }

    /// A count of nothing or less, or two flags that each pick the lines
    /// to run, is refused before anything starts (it used to hang, print
    /// zeros, or run for minutes before failing).
    @Test func benchRefusesCountsBelowOneAndTwoChoicesOfLines() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (args, said) in [(["--round-trips", "0"], "--round-trips takes 1 or more, not 0"),
                             (["--round-trips=-3"], "--round-trips takes 1 or more, not -3"),
                             (["--messages=-1"], "--messages takes 1 or more, not -1"),
                             (["--window", "0"], "--window takes 1 or more, not 0"),
                             (["--tasks", "0"], "--tasks takes 1 or more, not 0"),
                             (["--inproc-only", "--client-only"], "--inproc-only and --client-only each choose which lines run: give one")] {
            let r = try plexus(["bench"] + args, in: dir)
            #expect(r.status == 2 && r.err.contains(said), "\(args): \(r.status) \(r.err)")
            #expect(r.out.isEmpty, "\(args) ran something: \(r.out)")
        }
    }

    @Test func usageErrorsExit2AndSuggestTheCommand() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let typo = try plexus(["agent"], in: dir)
        #expect(typo.status == 2)
        #expect(typo.err.contains("Did you mean 'plexus agents'?"), "\(typo.err)")
        let nested = try plexus(["tasks", "sumbit", "echo"], in: dir)
        #expect(nested.status == 2)
        #expect(nested.err.contains("Did you mean 'plexus tasks submit'?"), "\(nested.err)")
        let badJSON = try plexus(["call", "echo", "--json", "{hello: world}"], in: dir)
        #expect(badJSON.status == 2)
        #expect(badJSON.err.contains("--json is not valid JSON"), "\(badJSON.err)")
        let badSignal = try plexus(["workflow", "signal", "run-1", "go", "{bad"], in: dir)
        #expect(badSignal.status == 2 && badSignal.err.contains("the signal's JSON does not parse"), "\(badSignal.err)")
        #expect(badSignal.err.contains("Usage: plexus workflow signal"), "the usage shown is the command's: \(badSignal.err)")
        let unknownOption = try plexus(["agents", "--jsn"], in: dir)
        #expect(unknownOption.status == 2)
        // A running host's commands take no --plugins, --sandbox or --config: they would do nothing.
        for args in [["tasks", "list", "--plugins", dir], ["top", "--once", "--config", dir + "/plexus.yaml"], ["events", "--sandbox", "process"]] {
            let r = try plexus(args, in: dir)
            #expect(r.status == 2 && r.err.contains("Unknown option"), "\(args): \(r.err)")
        }
        let missingFile = try plexus(["call", "echo", "--file", dir + "/no-such-payload.txt"], in: dir)
        #expect(missingFile.status == 2)
        #expect(missingFile.err.contains("--file \(dir)/no-such-payload.txt: No such file or directory"), "\(missingFile.err)")
        let submitMissing = try plexus(["tasks", "submit", "echo", "--file", dir + "/no-such-payload.txt"], in: dir)
        #expect(submitMissing.status == 2)
    }

    /// A run that fails right after opening its store exits 1 with the
    /// reason, every time: the store's writer thread, still finishing while
    /// the store went away, used to abort the process about one run in ten.
    @Test func aRunRefusedAfterItsStoreOpenedExits1EveryTime() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for i in 0..<30 {
            let r = try plexus(["run", "--plugins", dir + "/no-such-dir", "--socket", dir + "/r\(i).sock", "--store", dir + "/r\(i).db"], in: dir)
            #expect(r.status == 1 && r.err.contains("no-such-dir") && !r.err.contains("Fatal error"), "run \(i): \(r.status) \(r.err.prefix(300))")
        }
    }

    @Test func noHostExits3AndSaysWhere() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for args in [["agents"], ["tasks", "list"], ["kv", "list", "textkit"], ["events"]] {
            let r = try plexus(args + ["--socket", dir + "/none.sock"], in: dir)
            #expect(r.status == 3, "\(args): \(r.status) \(r.err)")
            #expect(r.err.contains("no host is running at \(dir)/none.sock"), "\(args): \(r.err)")
        }
    }

    @Test func aCallExits0OrFailsWith1AndADidYouMean() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ok = try plexus(["call", "echo", "--embedded", "--json", "\"hi\""], in: dir)
        #expect(ok.status == 0, "\(ok.err)")
        #expect(ok.out == "\"hi\"")
        let typo = try plexus(["call", "text.statz", "--embedded", "--json", "\"some text\""], in: dir)
        #expect(typo.status == 1)
        #expect(typo.err.contains("NO_SUCH_CAPABILITY"), "\(typo.err)")
        #expect(typo.err.contains("did you mean text.stats?"), "\(typo.err)")
        let agent = try plexus(["call", "agent:textkti", "--embedded"], in: dir)
        #expect(agent.status == 1)
        #expect(agent.err.contains("did you mean agent:textkit?"), "\(agent.err)")
    }

    /// Without a running host, call and plugins list run on an embedded one,
    /// and say so where the user looks: on stderr, and in the listing itself.
    @Test func anEmbeddedHostIsNeverSilent() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let list = try plexus(["plugins", "list", "--socket", dir + "/none.sock"], in: dir)
        #expect(list.status == 0, "\(list.err)")
        #expect(list.out.hasPrefix("# plugins of an embedded host (none is running at \(dir)/none.sock)"), "\(list.out)")
        let call = try plexus(["call", "echo", "--json", "1", "--socket", dir + "/none.sock"], in: dir)
        #expect(call.status == 0 && call.out == "1", "\(call.err)")
        #expect(call.err.contains("this command runs on an embedded host of its own"), "\(call.err)")
        let meant = try plexus(["call", "echo", "--json", "1", "--embedded"], in: dir)
        #expect(!meant.err.contains("embedded host of its own"), "\(meant.err)")
    }

    @Test func runHelpOffersOnlyWhatTheHostUses() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let help = try plexus(["run", "--help"], in: dir)
        #expect(help.status == 0)
        for clientOnly in ["--client <", "--token", "--embedded"] { #expect(!help.out.contains(clientOnly), "\(clientOnly) in: \(help.out)") }
        #expect(help.out.contains("finish for up to --shutdown-grace-ms"), "\(help.out)")
        let top = try plexus(["--help"], in: dir)
        #expect(top.out.contains("2 a usage error"), "\(top.out)")
    }

    /// Against a running host: an empty namespace that no agent has is a
    /// mistake (exit 1, with the close name); a long task field is cut
    /// unless --full.
    @Test func aRunningHostsCommandsExplainThemselves() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sock = dir + "/h.sock"
        let host = try PlexusCommand.startHost(in: dir, socket: sock)
        defer { host.interrupt(); host.waitUntilExit() }

        let kv = try plexus(["kv", "list", "textkti", "--socket", sock], in: dir)
        #expect(kv.status == 1)
        #expect(kv.err.contains("no agent of that name runs; did you mean 'textkit'?"), "\(kv.err)")
        #expect(try plexus(["kv", "list", "textkit", "--socket", sock], in: dir).status == 0)
        // Removing a key that is there says nothing; one that is not is exit 1, said.
        #expect(try plexus(["kv", "put", "textkit", "k", "v", "--socket", sock], in: dir).status == 0)
        #expect(try plexus(["kv", "delete", "textkit", "k", "--socket", sock], in: dir).status == 0)
        let again = try plexus(["kv", "delete", "textkit", "k", "--socket", sock], in: dir)
        #expect(again.status == 1 && again.err.contains("textkit has no key 'k': nothing removed"), "\(again.err)")

        let long = "\"" + String(repeating: "a", count: 3_000) + "\""
        let submitted = try plexus(["tasks", "submit", "echo", "--json", long, "--wait", "--socket", sock], in: dir)
        #expect(submitted.status == 0, "\(submitted.err)")
        let list = try plexus(["tasks", "list", "--json", "--socket", sock], in: dir)
        let id = try #require(try JSONSerialization.jsonObject(with: Data(list.out.utf8)) as? [[String: Any]]).first?["id"] as? String
        let short = try plexus(["tasks", "show", try #require(id), "--socket", sock], in: dir)
        #expect(short.out.contains("(3000 bytes in all; --full prints everything)"), "\(short.out.prefix(400))")
        #expect(short.out.utf8.count < 2_500)
        let full = try plexus(["tasks", "show", id!, "--full", "--socket", sock], in: dir)
        #expect(full.out.contains(String(repeating: "a", count: 3_000)))

        // --follow --last 0 prints what happens from now on, nothing older.
        let follow = Process()
        follow.executableURL = URL(fileURLWithPath: PlexusCommand.path)
        follow.arguments = ["events", "--follow", "--last", "0", "--json", "--socket", sock]
        let out = Pipe()
        follow.standardOutput = out
        try follow.run()
        // SIGKILL: the suites block SIGTERM in their threads, and a child inherits the mask.
        defer { kill(follow.processIdentifier, SIGKILL); follow.waitUntilExit() }
        let seen = Lines(out.fileHandleForReading)
        // Until the follower has looked once, a new task could land before its cursor: submit until one shows.
        var newer: String?
        for _ in 0..<100 where newer == nil {
            let t = try plexus(["tasks", "submit", "echo", "--json", "1", "--wait", "--socket", sock], in: dir)
            #expect(t.status == 0, "\(t.err)")
            if seen.wait(seconds: 0.2, for: "task.") { newer = seen.text }
        }
        let text = try #require(newer, "events --follow --last 0 printed nothing new")
        #expect(!text.contains(id!), "an event from before the follow began was printed: \(text.prefix(300))")
    }
}

/// What a child process has written so far, read on a thread of its own.
final class Lines: @unchecked Sendable {
    private let lock = NSCondition()
    private var data = Data()

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                lock.lock(); data += chunk; lock.broadcast(); lock.unlock()
                if chunk.isEmpty { return }
            }
        }
    }

    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }

    /// Whether the output contains s within the time given (an event's bound, not a timing check).
    func wait(seconds: Double, for s: String) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        lock.lock(); defer { lock.unlock() }
        while !String(decoding: data, as: UTF8.self).contains(s) {
            if !lock.wait(until: end) { return String(decoding: data, as: UTF8.self).contains(s) }
        }
        return true
    }
}
