import Foundation
import PlexusTestSupport
import Testing

/// `plexus top` as an operator meets it: in a real terminal (tmux) against a
/// real host running the example plugins, it lists every agent, shows a
/// handled count and rate that move with traffic, changes its sort on a key,
/// quits on q, and leaves the terminal as it found it (also when killed);
/// into a pipe it prints plain tables.
@Suite("plexus top", .serialized)
struct TopTests {
    /// A private directory with the example plugins (built by Plugins/build.sh):
    /// every one, or only those named; removed by the caller.
    func workspace(_ prefix: String = "top", only: [String]? = nil) throws -> String {
        let dir = TestDirectory.make(prefix)
        try FileManager.default.createDirectory(atPath: dir + "/Plugins", withIntermediateDirectories: true)
        let plugins = CLITests.root + "/Plugins"
        for f in try FileManager.default.contentsOfDirectory(atPath: plugins) where f.hasSuffix(".so") && only.map({ $0.contains(f) }) ?? true {
            try FileManager.default.copyItem(atPath: plugins + "/" + f, toPath: dir + "/Plugins/" + f)
        }
        return dir
    }

    /// `plexus run` on its own socket in a fresh workspace; stop() ends it and removes the workspace.
    struct RunningHost {
        let dir: String
        let sock: String
        let process: Process

        init(_ prefix: String = "top", only: [String]? = nil) throws {
            dir = try TopTests().workspace(prefix, only: only)
            sock = dir + "/h.sock"
            do { process = try PlexusCommand.startHost(in: dir, socket: sock) } catch {
                try? FileManager.default.removeItem(atPath: dir)
                throw error
            }
        }

        func stop() {
            if process.isRunning { process.interrupt() }
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// The names `plexus agents --json` lists.
    func agentNames(_ sock: String, in dir: String) throws -> [String] {
        let r = try PlexusCommand.run(["agents", "--json", "--socket", sock], in: dir)
        let list = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]] ?? []
        return list.compactMap { $0["name"] as? String }
    }

    /// A tmux server of the test's own (its socket in dir) with one 160x40 session.
    struct Tmux {
        let socket: String

        @discardableResult
        func callAsFunction(_ args: String...) throws -> String {
            try PlexusCommand.run(["tmux", "-S", socket] + args, unset: ["TMUX"], executable: "/usr/bin/env").out
        }

        /// Starts the server with its first session. The server lives on after
        /// this client, so the client is spawned with /dev/null for output (a pipe
        /// of the test's would stay open in the server) and waited for directly
        /// (Foundation's Process did not see it end here).
        func start(_ args: String...) throws {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            // Through Python's subprocess, which closes every other descriptor in
            // tmux: the server would otherwise keep the test runner's pipes open.
            let wrapper = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:], stdin=subprocess.DEVNULL, "
                + "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))"
            let argv = (["python3", "-c", wrapper, "tmux", "-S", socket, "-f", "/dev/null"] + args).map { strdup($0) } + [nil]
            let envp = ProcessInfo.processInfo.environment.filter { $0.key != "TMUX" }.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { (argv + envp).forEach { free($0) } }
            // No signal blocked or ignored: the runner's threads block some, and a
            // tmux server that inherits that mask never dies of kill-server's hangups.
            var attr = posix_spawnattr_t()
            posix_spawnattr_init(&attr)
            defer { posix_spawnattr_destroy(&attr) }
            var none = sigset_t(), all = sigset_t()
            sigemptyset(&none)
            sigfillset(&all)
            posix_spawnattr_setsigmask(&attr, &none)
            posix_spawnattr_setsigdefault(&attr, &all)
            posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
            var pid: pid_t = 0
            let rc = posix_spawnp(&pid, "python3", &actions, &attr, argv, envp)
            try #require(rc == 0, "tmux could not be started: \(String(cString: strerror(rc)))")
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            #expect(status == 0, "tmux new-session failed: wait status \(status)")
        }

        /// Ends the server and everything in its panes.
        func stop() {
            let r = try? PlexusCommand.run(["tmux", "-S", socket, "kill-server"], unset: ["TMUX"], executable: "/usr/bin/env")
            #expect(r?.status == 0, "tmux kill-server: \(r?.err ?? "did not run")")
        }

        /// The visible pane, as text.
        func screen() throws -> String { try self("capture-pane", "-p", "-t", "top") }

        /// Polls the pane until `done` holds (up to 60 s); the last screen.
        @discardableResult
        func wait(_ what: String, _ done: (String) throws -> Bool) throws -> String {
            let deadline = Date().addingTimeInterval(60)
            var last = ""
            while Date() < deadline {
                last = try screen()
                if try done(last) { return last }
                usleep(50_000)
            }
            Issue.record("timed out waiting for \(what); the screen:\n\(last)")
            return last
        }

        /// "alternate screen, cursor visible" flags of the pane: ("1", "0") while top runs.
        func modes() throws -> (alternate: String, cursor: String) {
            let f = try self("display-message", "-p", "-t", "top", "#{alternate_on} #{cursor_flag}")
                .split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            return (f.first ?? "?", f.count > 1 ? f[1] : "?")
        }
    }

    /// Starts `sh script` in a fresh session: stty's settings before, plexus top,
    /// its exit status, whether stty's settings are the same after; then waits.
    func startTop(_ dir: String, _ sock: String, _ options: String = "") throws -> Tmux {
        let script = """
            stty -g > '\(dir)/tty-before'
            '\(PlexusCommand.path)' top --socket '\(sock)' \(options)
            echo "top exited $?"
            stty -g > '\(dir)/tty-after'
            cmp -s '\(dir)/tty-before' '\(dir)/tty-after' && echo "terminal modes restored"
            exec sleep 600
            """
        try script.write(toFile: dir + "/top.sh", atomically: true, encoding: .utf8)
        let tmux = Tmux(socket: dir + "/tmux.sock")
        try tmux.start("new-session", "-d", "-s", "top", "-x", "160", "-y", "40", "sh '\(dir)/top.sh'")
        return tmux
    }

    /// The table on a screen: its header's words, and each row's (every cell
    /// but the last column, LAST EXIT, is one word), up to the first blank line.
    func table(_ screen: String) -> (header: [String], rows: [[String]])? {
        let lines = screen.components(separatedBy: "\n")
        guard let h = lines.firstIndex(where: { $0.hasPrefix("NAME ") }) else { return nil }
        let words = { (l: String) in l.split(separator: " ").map(String.init) }
        return (words(lines[h]), lines[(h + 1)...].prefix { !$0.isEmpty }.map(words))
    }

    /// The agents in the order the table lists them.
    func order(_ screen: String) -> [String] { table(screen)?.rows.compactMap(\.first) ?? [] }

    /// The cells of the agent's row, by column name.
    func row(_ agent: String, in screen: String) -> [String: String]? {
        guard let t = table(screen), let cells = t.rows.first(where: { $0.first == agent }) else { return nil }
        return Dictionary(zip(t.header, cells).map { ($0, $1) }, uniquingKeysWith: { a, _ in a })
    }

    @Test func inATerminalItShowsTheAgentsFollowsTrafficAndQuitsOnQ() throws {
        let host = try RunningHost()
        defer { host.stop() }
        let dir = host.dir, sock = host.sock
        let names = try agentNames(sock, in: dir)
        #expect(names.contains("textkit") && names.count >= 8, "\(names)")

        let tmux = try startTop(dir, sock)
        defer { tmux.stop() }
        var screen = try tmux.wait("every agent of the example plugins") { s in
            Set(order(s)).isSuperset(of: names)
        }
        #expect(screen.contains("plexus top") && screen.contains("socket \(sock)"), "\(screen)")
        #expect(try tmux.modes() == ("1", "0"), "top draws on the alternate screen with the cursor hidden")
        let before = Int(row("textkit", in: screen)?["HANDLED"] ?? "") ?? -1
        #expect(before >= 0, "\(screen)")

        // Traffic until a refresh shows textkit's count higher and its rate above zero.
        let deadline = Date().addingTimeInterval(60)
        var moved = false
        while !moved && Date() < deadline {
            let call = try PlexusCommand.run(["call", "echo", "--json", "{\"n\":1}", "--socket", sock], in: dir)
            #expect(call.status == 0, "\(call.err)")
            screen = try tmux.screen()
            if let r = row("textkit", in: screen), let handled = Int(r["HANDLED"] ?? ""), let rate = Double(r["HANDLED/S"] ?? "") {
                moved = handled > before && rate > 0
            }
        }
        #expect(moved, "textkit's HANDLED and HANDLED/S never moved; the screen:\n\(screen)")

        // s sorts by the next column: name.
        try tmux("send-keys", "-t", "top", "s")
        screen = try tmux.wait("the sort to change to name") { $0.contains("sort: name") }
        #expect(order(screen) == names.sorted(), "\(screen)")

        // p pauses (and says so), p again resumes.
        try tmux("send-keys", "-t", "top", "p")
        try tmux.wait("PAUSED") { $0.contains("PAUSED") }
        try tmux("send-keys", "-t", "top", "p")
        try tmux.wait("the pause to end") { !$0.contains("PAUSED") }

        // A smaller terminal (SIGWINCH): redrawn to fit, saying how many rows it left out.
        try tmux("resize-window", "-t", "top", "-x", "120", "-y", "10")
        screen = try tmux.wait("a redraw for 10 rows") { $0.contains("more agent(s)") }
        let rows = Int(try tmux("display-message", "-p", "-t", "top", "#{pane_height}").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        let listed = order(screen).filter(names.contains)
        #expect(rows > 4 && listed.count == rows - 4, "\(rows) rows: summary, keys, header, \(rows - 4) agents and the 'more' line\n\(screen)")
        #expect(screen.contains("... \(names.count - listed.count) more agent(s)"), "\(screen)")

        try tmux("send-keys", "-t", "top", "q")
        screen = try tmux.wait("top to exit") { $0.contains("top exited") && $0.contains("terminal modes") }
        #expect(screen.contains("top exited 0"), "\(screen)")
        #expect(screen.contains("terminal modes restored"), "\(screen)")
        #expect(!screen.contains("HANDLED/S"), "the table stays on the alternate screen; the shell's screen is back:\n\(screen)")
        #expect(try tmux.modes() == ("0", "1"), "the alternate screen is left and the cursor shown again")
    }

    @Test func sigtermRestoresTheTerminalToo() throws {
        let host = try RunningHost()
        defer { host.stop() }
        let dir = host.dir, sock = host.sock
        let tmux = try startTop(dir, sock)
        defer { tmux.stop() }
        try tmux.wait("the table") { $0.contains("textkit ") }
        // top is the only child of the pane's shell.
        let shell = try tmux("display-message", "-p", "-t", "top", "#{pane_pid}").trimmingCharacters(in: .whitespacesAndNewlines)
        let children = try String(contentsOfFile: "/proc/\(shell)/task/\(shell)/children", encoding: .utf8)
        let top = try #require(Int32(children.split(separator: " ").first ?? ""), "no child of the pane's shell: '\(children)'")
        #expect(kill(top, SIGTERM) == 0)
        let screen = try tmux.wait("top to exit") { $0.contains("top exited") && $0.contains("terminal modes") }
        #expect(screen.contains("top exited 143"), "dies of SIGTERM once the terminal is restored:\n\(screen)")
        #expect(screen.contains("terminal modes restored"), "\(screen)")
        #expect(try tmux.modes() == ("0", "1"))
    }

    @Test func onceOnATerminalLeavesOnePlainTable() throws {
        let host = try RunningHost("top-once", only: ["textkit.so"])
        defer { host.stop() }
        let dir = host.dir, sock = host.sock
        let tmux = try startTop(dir, sock, "--once --interval 0.2")
        defer { tmux.stop() }
        let screen = try tmux.wait("top --once to exit") { $0.contains("terminal modes") }
        #expect(screen.contains("top exited 0"), "\(screen)")
        #expect(row("textkit", in: screen).flatMap { Double($0["HANDLED/S"] ?? "") } != nil, "the table stays, with rates:\n\(screen)")
        #expect(try tmux.modes() == ("0", "1"))
    }

    @Test func intoAPipeItPrintsPlainTablesWithRates() throws {
        let host = try RunningHost()
        defer { host.stop() }
        let dir = host.dir, sock = host.sock
        let names = try agentNames(sock, in: dir)

        let r = try PlexusCommand.run(["top", "--socket", sock, "--iterations", "2", "--interval", "0.2"], in: dir)
        #expect(r.status == 0, "\(r.err)")
        #expect(!r.out.contains("\u{1B}"), "no escape sequences into a pipe")
        let tables = r.out.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        #expect(tables.count == 2, "\(r.out)")
        for t in tables {
            #expect(t.hasPrefix("plexus top ") && t.contains("\(names.count) agents"), "\(t)")
            #expect(Set(order(t)) == Set(names), "\(t)")
            // Two snapshots an interval apart: every agent has a rate.
            #expect(row("textkit", in: t).flatMap { Double($0["HANDLED/S"] ?? "") } != nil, "\(t)")
        }
        let once = try PlexusCommand.run(["top", "--socket", sock, "--once", "--interval", "0.1", "--sort", "name"], in: dir)
        #expect(once.status == 0, "\(once.err)")
        #expect(once.out.components(separatedBy: "\n\n").filter { !$0.isEmpty }.count == 1, "\(once.out)")
        #expect(order(once.out) == names.sorted(), "\(once.out)")
    }

    @Test func aHostThatGoesAwayEndsItWithStatus3() throws {
        let running = try RunningHost("top-gone", only: ["textkit.so"])
        defer { running.stop() }
        let host = running.process, sock = running.sock
        let top = Process()
        top.executableURL = URL(fileURLWithPath: PlexusCommand.path)
        top.arguments = ["top", "--socket", sock, "--interval", "0.1"]
        let out = Pipe(), err = Pipe()
        top.standardOutput = out
        top.standardError = err
        top.standardInput = FileHandle.nullDevice
        try top.run()
        // Once its first table is out, the host stops under it.
        var first = Data()
        while !String(decoding: first, as: UTF8.self).contains("\n\n") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            first += chunk
        }
        #expect(String(decoding: first, as: UTF8.self).contains("textkit"))
        host.interrupt()
        host.waitUntilExit()
        _ = out.fileHandleForReading.readDataToEndOfFile()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        top.waitUntilExit()
        #expect(top.terminationStatus == 3, "\(e)")
        #expect(e.contains("no host is running at \(sock): the host went away"), "\(e)")
    }

    @Test func badOptionsExit2AndNoHostExits3() throws {
        let dir = TestDirectory.make("top-usage")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sock = dir + "/none.sock"
        let zero = try PlexusCommand.run(["top", "--interval", "0", "--socket", sock], in: dir)
        #expect(zero.status == 2)
        #expect(zero.err.contains("--interval must be between 0.1 and 3600 seconds, not 0.0"), "\(zero.err)")
        let word = try PlexusCommand.run(["top", "--interval", "soon", "--socket", sock], in: dir)
        #expect(word.status == 2, "\(word.err)")
        let none = try PlexusCommand.run(["top", "--iterations", "0", "--socket", sock], in: dir)
        #expect(none.status == 2)
        #expect(none.err.contains("--iterations must be 1 or more, not 0"), "\(none.err)")
        let sort = try PlexusCommand.run(["top", "--sort", "speed", "--socket", sock], in: dir)
        #expect(sort.status == 2, "\(sort.err)")
        let noHost = try PlexusCommand.run(["top", "--socket", sock], in: dir)
        #expect(noHost.status == 3)
        #expect(noHost.err.contains("no host is running at \(sock)"), "\(noHost.err)")
    }
}
