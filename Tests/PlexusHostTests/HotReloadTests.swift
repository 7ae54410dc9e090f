import Foundation
import Glibc
import PlexusCore
import PlexusSocket
import PlexusTestSupport
import Synchronization
import Testing

/// Issue 17 item 1: plugin files added, changed and removed while a real
/// `plexus run` serves. Versions of one fixture (versioned.c, -DVERSION).
@Suite("Hot reload", .serialized)
struct HotReloadTests {
    static func version(_ v: String, _ flags: [String] = []) throws -> String {
        try Fixtures.build("versioned.c", ["-DVERSION=\"\(v)\""] + flags, name: "versioned-\(v)")
    }

    /// `cp FILE DIR/NAME`, as an operator would: the file is written in place.
    static func cp(_ file: String, _ dest: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/cp")
        p.arguments = [file, dest]
        try? p.run()
        p.waitUntilExit()
    }

    static func answer(_ c: SocketClient, _ capability: String, _ payload: String = "") throws(PlexusError) -> JSONValue {
        let r = try c.call(Envelope(kind: .query, target: .capability(capability), payload: Array(payload.utf8)), timeoutMs: 20_000)
        return try JSONValue.parse(r.payload)
    }

    static func versionOf(_ v: JSONValue) -> String {
        if case .string(let s)? = v["version"] { return s }
        return "?"
    }

    static func plexus(_ host: HostProcess, _ args: [String]) throws -> PlexusCommand.Outcome {
        try PlexusCommand.run(args + ["--socket", host.socket])
    }

    /// `plexus plugins list --json`, the entry for versioned's file.
    static func report(_ host: HostProcess, file: String = "versioned.so") -> JSONValue? {
        guard let o = try? plexus(host, ["plugins", "list", "--json"]), case .array(let rs)? = try? JSONValue.parse(Array(o.out.utf8)) else { return nil }
        return rs.first { if case .string(let f)? = $0["file"] { return f.hasSuffix("/" + file) }; return false }
    }

    static func note(_ host: HostProcess) -> String {
        if case .string(let s)? = report(host)?["reload"] { return s }
        return ""
    }

    /// Versions `plexus agents --json` shows for agent versioned, in its order.
    static func agentVersions(_ host: HostProcess) -> [String] {
        guard let o = try? plexus(host, ["agents", "--json"]), case .array(let rs)? = try? JSONValue.parse(Array(o.out.utf8)) else { return [] }
        return rs.filter { if case .string("versioned")? = $0["name"] { return true }; return false }.map(versionOf)
    }

    @Test func rollingUpgradeUnderSteadyLoadLosesNoCallAnswersNoneTwiceAndSwitchesOnce() throws {
        let v1 = try Self.version("1.0.0"), v2 = try Self.version("2.0.0")
        let host = try HostProcess("reload-load", plugins: ["versioned.so": v1])
        // Each call adds one to a counter in the plugin's key-value
        // namespace and returns it: a call handled twice or lost leaves a
        // gap or a repeat in the counts, and the count goes on across the
        // upgrade only if the namespace survives it.
        struct Seen { var answers: [(version: String, hits: Int64)] = []; var failures: [String] = [] }
        let seen = Mutex(Seen())
        let stop = Atomic<Bool>(false)
        let socket = host.socket
        let caller = Thread {
            let client: SocketClient
            do { client = try SocketClient(path: socket) } catch { seen.withLock { $0.failures.append("\(error)") }; return }
            while !stop.load(ordering: .relaxed) {
                do {
                    let v = try Self.answer(client, "versioned.hits")
                    guard case .int(let n)? = v["hits"] else { seen.withLock { $0.failures.append("no count in \(v.text)") }; continue }
                    seen.withLock { $0.answers.append((Self.versionOf(v), n)) }
                } catch {
                    seen.withLock { $0.failures.append("\(error)") }
                }
            }
        }
        caller.start()
        #expect(waitFor(seconds: 60) { seen.withLock { $0.answers.count } >= 30 })
        Self.cp(v2, host.dir + "/plugins/versioned.so")
        // Well past the switch and the probation (10 messages): the old version stops.
        #expect(waitFor(seconds: 60) { seen.withLock { s in s.answers.filter { $0.version == "2.0.0" }.count } >= 60 })
        #expect(waitFor(seconds: 60) { Self.agentVersions(host) == ["2.0.0"] }, "\(Self.agentVersions(host))")
        stop.store(true, ordering: .relaxed)
        #expect(waitFor(seconds: 60) { caller.isFinished })
        let s = seen.withLock { $0 }
        #expect(s.failures.isEmpty, "\(s.failures.prefix(5))")
        #expect(s.answers.map(\.hits) == Array(1...Int64(s.answers.count)), "the counts skip or repeat: \(s.answers.map(\.hits))")
        let versions = s.answers.map(\.version)
        let switchAt = versions.firstIndex(of: "2.0.0") ?? versions.count
        #expect(switchAt > 0 && switchAt < versions.count)
        #expect(versions[..<switchAt].allSatisfy { $0 == "1.0.0" } && versions[switchAt...].allSatisfy { $0 == "2.0.0" },
                "answers switch back and forth: \(versions)")
        #expect(Self.note(host).contains("passed its probation"), "\(Self.note(host))")
        let events = try Self.plexus(host, ["events", "--json"]).out
        #expect(events.contains("plugin.upgraded"), "\(events)")
        print("rolling upgrade: \(switchAt) calls answered by 1.0.0, \(versions.count - switchAt) by 2.0.0, none failed")
    }

    @Test func anUpgradeUnderFourConcurrentCallersFailsNoneAndAnswersEachOnceToItsOwnCall() throws {
        let v1 = try Self.version("1.0.0"), v2 = try Self.version("2.0.0")
        let host = try HostProcess("reload-many", plugins: ["versioned.so": v1])
        struct Seen { var answered = 0; var byVersion: [String: Int] = [:]; var failures: [String] = [] }
        let seen = Mutex(Seen())
        let stop = Atomic<Bool>(false)
        let socket = host.socket
        let callers = (0..<4).map { t in
            Thread {
                let client: SocketClient
                do { client = try SocketClient(path: socket) } catch { seen.withLock { $0.failures.append("\(error)") }; return }
                var i = 0
                while !stop.load(ordering: .relaxed) {
                    i += 1
                    let mine = "c\(t)-\(i)"
                    do throws(PlexusError) {
                        let v = try Self.answer(client, "versioned.version", mine)
                        guard case .string(mine)? = v["echo"] else { seen.withLock { $0.failures.append("\(mine) answered with \(v.text)") }; continue }
                        seen.withLock { $0.answered += 1; $0.byVersion[Self.versionOf(v), default: 0] += 1 }
                    } catch {
                        seen.withLock { $0.failures.append("\(mine): \(error)") }
                    }
                }
            }
        }
        for c in callers { c.start() }
        #expect(waitFor(seconds: 60) { seen.withLock { $0.answered } >= 200 })
        Self.cp(v2, host.dir + "/plugins/versioned.so")
        #expect(waitFor(seconds: 60) { seen.withLock { $0.byVersion["2.0.0", default: 0] } >= 400 })
        #expect(waitFor(seconds: 60) { Self.agentVersions(host) == ["2.0.0"] }, "\(Self.agentVersions(host))")
        stop.store(true, ordering: .relaxed)
        #expect(waitFor(seconds: 60) { callers.allSatisfy(\.isFinished) })
        let s = seen.withLock { $0 }
        #expect(s.failures.isEmpty, "\(s.failures.count) failed: \(s.failures.prefix(5))")
        print("upgrade under 4 callers: \(s.byVersion), none failed")
    }

    /// A request the old version took and answers later, from a thread of
    /// its own, is answered by it: the old version stops only after that.
    @Test func theOldVersionAnswersWhatItPromisedBeforeItStops() throws {
        let v1 = try Self.version("1.0.0"), v2 = try Self.version("2.0.0")
        let config = Fixtures.dir + "/promise-\(UUID().uuidString.prefix(6)).yaml"
        FileManager.default.createFile(atPath: config, contents: Data("reload: { probation_messages: 1 }\n".utf8))
        let host = try HostProcess("reload-promise", plugins: ["versioned.so": v1], arguments: ["--config", config])
        let client = try SocketClient(path: host.socket)
        let answer = Mutex<String?>(nil)
        let socket = host.socket
        Thread {
            let r = Result { () throws(PlexusError) in try Self.answer(try SocketClient(path: socket), "versioned.later", "3000") }
            answer.withLock { $0 = (try? r.get().text) ?? "\(r)" }
        }.start()
        // v1's handler returned (its worker said DONE): the request is a promise now.
        #expect(waitFor(seconds: 60) {
            guard let o = try? Self.plexus(host, ["agents", "--json"]), case .array(let rs)? = try? JSONValue.parse(Array(o.out.utf8)),
                  let v = rs.first(where: { $0["name"] == .string("versioned") }) else { return false }
            return v["handled"] == .int(1) && v["in_flight"] == .int(0)
        })
        Self.cp(v2, host.dir + "/plugins/versioned.so")
        #expect(waitFor(seconds: 60) { (try? Self.versionOf(Self.answer(client, "versioned.version"))) == "2.0.0" })
        #expect(waitFor(seconds: 60) { Self.note(host).contains("passed its probation") }, "\(Self.note(host))")
        #expect(waitFor(seconds: 60) { answer.withLock { $0 } != nil })
        let got = answer.withLock { $0 } ?? ""
        #expect(got.contains("\"version\":\"1.0.0\"") && got.contains("\"later\":true"), "\(got)")
        #expect(waitFor(seconds: 60) { Self.agentVersions(host) == ["2.0.0"] }, "\(Self.agentVersions(host))")
    }

    /// plexus_agent_messages_handled_total of an agent name counts every
    /// message its versions handled: an upgrade never lowers it (a
    /// Prometheus counter that drops reads as a reset).
    @Test func theHandledCountOfAnAgentGoesOnAcrossAnUpgrade() throws {
        let v1 = try Self.version("1.0.0"), v2 = try Self.version("2.0.0")
        let config = Fixtures.dir + "/counted-\(UUID().uuidString.prefix(6)).yaml"
        FileManager.default.createFile(atPath: config, contents: Data("reload: { probation_messages: 2 }\n".utf8))
        let host = try HostProcess("reload-counted", plugins: ["versioned.so": v1], arguments: ["--config", config, "--http", "127.0.0.1:0"])
        let port = try HTTPServerTests.port(of: host)
        let client = try SocketClient(path: host.socket)
        var calls = 0, seen: [Int] = []
        func call() -> String { calls += 1; return (try? Self.versionOf(Self.answer(client, "versioned.version"))) ?? "?" }
        func handled() -> Int {
            let text = (try? HTTPGet.get(port: port, "/metrics").body) ?? ""
            let line = text.split(separator: "\n").first { $0.hasPrefix("plexus_agent_messages_handled_total{agent=\"versioned\"}") }
            let n = line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? -1
            seen.append(n)
            return n
        }
        for _ in 0..<5 { #expect(call() == "1.0.0") }
        #expect(handled() == 5)
        Self.cp(v2, host.dir + "/plugins/versioned.so")
        #expect(waitFor(seconds: 60) { call() == "2.0.0" })
        _ = handled()   // on probation: the old version's count is still in
        #expect(waitFor(seconds: 60) { _ = call(); return Self.note(host).contains("passed its probation") }, "\(Self.note(host))")
        #expect(waitFor(seconds: 60) { Self.agentVersions(host) == ["2.0.0"] }, "\(Self.agentVersions(host))")
        for _ in 0..<3 { #expect(call() == "2.0.0") }
        #expect(handled() == calls, "every call counted once: \(calls) calls, scraped \(seen)")
        #expect(seen == seen.sorted(), "never lower: \(seen)")
    }

    /// `plexus agents --json`'s row of the serving version of agent versioned.
    static func servingRow(_ host: HostProcess) -> JSONValue? {
        guard let o = try? plexus(host, ["agents", "--json"]), case .array(let rs)? = try? JSONValue.parse(Array(o.out.utf8)) else { return nil }
        return rs.first { $0["name"] == .string("versioned") && $0["state"] != .string("draining") }
    }

    /// An upgrade keeps an operator's suspension: the new version holds the
    /// mail the old one held, and `resume` delivers it; none is lost.
    @Test func anUpgradeOfASuspendedAgentKeepsItSuspendedAndLosesNoQueuedCall() throws {
        let v1 = try Self.version("1.0.0"), v2 = try Self.version("2.0.0")
        let host = try HostProcess("reload-suspended", plugins: ["versioned.so": v1])
        #expect(try Self.plexus(host, ["agents", "suspend", "versioned"]).status == 0)
        let answers = Mutex<[String]>([])
        let socket = host.socket
        for i in 0..<2 {
            Thread {
                let r = Result { () throws(PlexusError) in try Self.answer(try SocketClient(path: socket), "versioned.version", "q\(i)") }
                answers.withLock { $0.append((try? Self.versionOf(r.get())) ?? "\(r)") }
            }.start()
        }
        #expect(waitFor(seconds: 60) { Self.servingRow(host)?["queued"] == .int(2) })
        Self.cp(v2, host.dir + "/plugins/versioned.so")
        #expect(waitFor(seconds: 60) {
            let r = Self.servingRow(host)
            return r.map(Self.versionOf) == "2.0.0" && r?["state"] == .string("suspended") && r?["queued"] == .int(2)
        }, "\(String(describing: Self.servingRow(host)))")
        #expect(answers.withLock { $0 }.isEmpty, "nothing is delivered while suspended")
        let r = try Self.plexus(host, ["agents", "resume", "versioned"])
        #expect(r.status == 0, "\(r.err)")
        #expect(waitFor(seconds: 60) { answers.withLock { $0 }.count == 2 })
        #expect(answers.withLock { $0 } == ["2.0.0", "2.0.0"], "\(answers.withLock { $0 })")
    }

    /// An upgrade of an agent an operator stopped leaves it stopped: the new
    /// version starts serving only at `plexus agents start`.
    @Test func anUpgradeOfAStoppedAgentLeavesItStoppedUntilStarted() throws {
        let v1 = try Self.version("1.0.0"), v2 = try Self.version("2.0.0")
        let host = try HostProcess("reload-stopped", plugins: ["versioned.so": v1])
        let client = try SocketClient(path: host.socket)
        #expect(try Self.plexus(host, ["agents", "stop", "versioned"]).status == 0)
        Self.cp(v2, host.dir + "/plugins/versioned.so")
        #expect(waitFor(seconds: 60) {
            let r = Self.servingRow(host)
            return r.map(Self.versionOf) == "2.0.0" && r?["state"] == .string("stopped")
        }, "\(String(describing: Self.servingRow(host)))")
        let refused = expectError(.SHUTTING_DOWN) { _ = try Self.answer(client, "versioned.version") }
        #expect(refused?.detail.contains("was stopped by an operator") == true, "\(String(describing: refused))")
        #expect(try Self.plexus(host, ["agents", "start", "versioned"]).status == 0)
        #expect(Self.versionOf(try Self.answer(client, "versioned.version")) == "2.0.0")
    }

    @Test func aNewVersionWhoseInitFailsIsRolledBackWhileTheOldOneAnswers() throws {
        let v1 = try Self.version("1.0.0"), broken = try Self.version("2.0.0", ["-DFAIL_INIT"])
        let host = try HostProcess("reload-init", plugins: ["versioned.so": v1])
        let client = try SocketClient(path: host.socket)
        #expect(Self.versionOf(try Self.answer(client, "versioned.version")) == "1.0.0")
        Self.cp(broken, host.dir + "/plugins/versioned.so")
        #expect(waitFor(seconds: 60) { Self.note(host).contains("rolled back") }, "\(Self.note(host))")
        #expect(Self.note(host).contains("init returned INVALID_ARGUMENT"), "\(Self.note(host))")
        for i in 0..<5 { #expect(Self.versionOf(try Self.answer(client, "versioned.version", "\(i)")) == "1.0.0") }
        #expect(Self.agentVersions(host) == ["1.0.0"])
        let events = try Self.plexus(host, ["events", "--json"]).out
        #expect(events.contains("plugin.rolled_back"), "\(events)")
        #expect(host.logText.contains("plugin upgrade rolled back"))
    }

    @Test func aNewVersionThatCrashesOnItsFirstMessageIsRolledBackAndTheOldOneAnswersThatMessage() throws {
        let v1 = try Self.version("1.0.0"), broken = try Self.version("2.0.0", ["-DCRASH_FIRST"])
        let host = try HostProcess("reload-crash", plugins: ["versioned.so": v1])
        let client = try SocketClient(path: host.socket)
        #expect(Self.versionOf(try Self.answer(client, "versioned.version")) == "1.0.0")
        Self.cp(broken, host.dir + "/plugins/versioned.so")
        // Serving (on probation) once its init succeeded.
        #expect(waitFor(seconds: 60) { Self.agentVersions(host).first == "2.0.0" }, "\(Self.agentVersions(host))")
        // Its first message kills its worker; the old version answers it.
        let first = try Self.answer(client, "versioned.version", "first")
        #expect(Self.versionOf(first) == "1.0.0", "\(first.text)")
        #expect(waitFor(seconds: 60) { Self.note(host).contains("rolled back 2.0.0") }, "\(Self.note(host))")
        #expect(Self.note(host).contains("SIGSEGV"), "\(Self.note(host))")
        for i in 0..<5 { #expect(Self.versionOf(try Self.answer(client, "versioned.version", "\(i)")) == "1.0.0") }
        #expect(waitFor(seconds: 60) { Self.agentVersions(host) == ["1.0.0"] }, "\(Self.agentVersions(host))")
        if case .string(let v)? = Self.report(host)?["version"] { #expect(v == "1.0.0") } else { Issue.record("no report") }
    }

    /// Two instances, and versions that replace versions: the second
    /// upgrade and the rollback replace agents that joined a running host.
    @Test func twoInstancesGoThroughTwoUpgradesAndARollbackOfTheThird() throws {
        let v1 = try Self.version("1.0.0"), v2 = try Self.version("2.0.0"), v3 = try Self.version("3.0.0")
        let broken = try Self.version("4.0.0", ["-DCRASH_FIRST"])
        let config = Fixtures.dir + "/instances-\(UUID().uuidString.prefix(6)).yaml"
        FileManager.default.createFile(atPath: config, contents: Data("plugins:\n  versioned: { instances: 2 }\nreload: { probation_messages: 4 }\n".utf8))
        let host = try HostProcess("reload-twice", plugins: ["versioned.so": v1], arguments: ["--config", config])
        let client = try SocketClient(path: host.socket)
        func versions() -> Set<String> { Set((0..<8).compactMap { try? Self.versionOf(Self.answer(client, "versioned.version", "\($0)")) }) }
        #expect(versions() == ["1.0.0"])
        for (file, v) in [(v2, "2.0.0"), (v3, "3.0.0")] {
            Self.cp(file, host.dir + "/plugins/versioned.so")
            #expect(waitFor(seconds: 60) { versions() == [v] }, "\(versions())")
            #expect(waitFor(seconds: 60) { Self.note(host).contains("passed its probation") }, "\(Self.note(host))")
            #expect(waitFor(seconds: 60) { Self.agentNames(host) == ["versioned": v, "versioned.2": v] }, "\(Self.agentNames(host))")
        }
        Self.cp(broken, host.dir + "/plugins/versioned.so")
        #expect(waitFor(seconds: 60) { Self.agentVersions(host).contains("4.0.0") })
        // Calls go on and are answered, by 3.0.0, while 4.0.0's workers die.
        for i in 0..<10 {
            let v = try Self.answer(client, "versioned.version", "r\(i)")
            #expect(Self.versionOf(v) == "3.0.0", "\(v.text)")
        }
        #expect(waitFor(seconds: 60) { Self.note(host).contains("rolled back 4.0.0") }, "\(Self.note(host))")
        #expect(waitFor(seconds: 60) { Self.agentNames(host) == ["versioned": "3.0.0", "versioned.2": "3.0.0"] }, "\(Self.agentNames(host))")
        #expect(versions() == ["3.0.0"])
    }

    /// Agent name to version, for versioned's instances, from `plexus agents --json`.
    static func agentNames(_ host: HostProcess) -> [String: String] {
        guard let o = try? plexus(host, ["agents", "--json"]), case .array(let rs)? = try? JSONValue.parse(Array(o.out.utf8)) else { return [:] }
        var out: [String: String] = [:]
        for r in rs {
            guard case .string(let n)? = r["name"], n.hasPrefix("versioned") else { continue }
            if out[n] != nil { out[n] = "two versions" } else { out[n] = versionOf(r) }
        }
        return out
    }

    @Test func theWatcherLoadsADroppedInPluginAndUnloadsARemovedOne() throws {
        let v1 = try Self.version("1.0.0")
        let host = try HostProcess("reload-dropin")
        let client = try SocketClient(path: host.socket)
        #expect(throws: PlexusError.self) { _ = try Self.answer(client, "versioned.version") }
        Self.cp(v1, host.dir + "/plugins/versioned.so")
        #expect(waitFor(seconds: 60) { (try? Self.answer(client, "versioned.version")).map(Self.versionOf) == "1.0.0" })
        #expect(Self.agentVersions(host) == ["1.0.0"])
        unlink(host.dir + "/plugins/versioned.so")
        #expect(waitFor(seconds: 60) {
            do throws(PlexusError) { _ = try Self.answer(client, "versioned.version"); return false } catch { return error.status == PLEXUS_NO_SUCH_CAPABILITY.status }
        })
        #expect(waitFor(seconds: 60) { Self.agentVersions(host).isEmpty })
        if case .string(let s)? = Self.report(host)?["status"] { #expect(s == "unloaded") } else { Issue.record("no report") }
        // A file renamed in (mv) is whole at once: loaded too.
        try FileManager.default.copyItem(atPath: v1, toPath: host.dir + "/staged.tmp")
        rename(host.dir + "/staged.tmp", host.dir + "/plugins/versioned.so")
        #expect(waitFor(seconds: 60) { (try? Self.answer(client, "versioned.version")).map(Self.versionOf) == "1.0.0" })
    }

    @Test func aFileStillBeingWrittenIsNotReadUntilItsWriterClosesIt() throws {
        let v1 = try Self.version("1.0.0"), v2 = try Self.version("2.0.0")
        let other = try Fixtures.build("reverser.c", name: "reverser")
        let host = try HostProcess("reload-partial", plugins: ["versioned.so": v1])
        let client = try SocketClient(path: host.socket)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: v2)))
        let fd = open(host.dir + "/plugins/versioned.so", O_WRONLY | O_TRUNC)
        try #require(fd >= 0)
        let half = bytes.count / 2
        #expect(bytes[..<half].withUnsafeBytes { write(fd, $0.baseAddress, half) } == half)
        // Another file arriving, and being taken in, shows the watcher has
        // seen the half-written one by then.
        Self.cp(other, host.dir + "/plugins/reverser.so")
        #expect(waitFor(seconds: 60) { Self.report(host, file: "reverser.so")?["status"] == .string("loaded") })
        #expect(Self.versionOf(try Self.answer(client, "versioned.version")) == "1.0.0")
        #expect(Self.note(host).isEmpty, "the half-written file was read: \(Self.note(host))")
        #expect(bytes[half...].withUnsafeBytes { write(fd, $0.baseAddress, bytes.count - half) } == bytes.count - half)
        close(fd)
        #expect(waitFor(seconds: 60) { (try? Self.answer(client, "versioned.version")).map(Self.versionOf) == "2.0.0" })
    }

    @Test func pluginsReloadAndUnloadByCommand() throws {
        let v1 = try Self.version("1.0.0"), v2 = try Self.version("2.0.0")
        let host = try HostProcess("reload-command", plugins: ["versioned.so": v1], arguments: ["--config", Self.noWatch()])
        let client = try SocketClient(path: host.socket)
        Self.cp(v2, host.dir + "/plugins/versioned.so")
        // Not watching: nothing changes until the command.
        #expect(Self.versionOf(try Self.answer(client, "versioned.version")) == "1.0.0")
        let r = try Self.plexus(host, ["plugins", "reload", "versioned"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("1.0.0 -> 2.0.0"), "\(r.out)")
        #expect(Self.versionOf(try Self.answer(client, "versioned.version")) == "2.0.0")
        let again = try Self.plexus(host, ["plugins", "reload", "versioned.so"])
        #expect(again.out.contains("unchanged"), "\(again.out)")

        let u = try Self.plexus(host, ["plugins", "unload", "versioned"])
        #expect(u.status == 0, "\(u.err)")
        #expect(throws: PlexusError.self) { _ = try Self.answer(client, "versioned.version") }
        #expect(waitFor(seconds: 60) { Self.agentVersions(host).isEmpty })
        let back = try Self.plexus(host, ["plugins", "reload", host.dir + "/plugins/versioned.so"])
        #expect(back.status == 0 && back.out.contains("loaded"), "\(back.out) \(back.err)")
        #expect(Self.versionOf(try Self.answer(client, "versioned.version")) == "2.0.0")

        let none = try Self.plexus(host, ["plugins", "reload", "nosuch"])
        #expect(none.status == 1 && none.err.contains("no plugin named 'nosuch'"), "\(none.err)")
        let outside = try Self.plexus(host, ["plugins", "reload", "/tmp/elsewhere.so"])
        #expect(outside.status == 1 && outside.err.contains("not in the plugins directory"), "\(outside.err)")
        let broken = try Self.version("3.0.0", ["-DFAIL_INIT"])
        Self.cp(broken, host.dir + "/plugins/versioned.so")
        let refused = try Self.plexus(host, ["plugins", "reload", "versioned"])
        #expect(refused.status == 1 && refused.err.contains("INVALID_ARGUMENT"), "\(refused.err)")
        #expect(Self.versionOf(try Self.answer(client, "versioned.version")) == "2.0.0")
        let gone = try PlexusCommand.run(["plugins", "reload", "versioned", "--socket", host.dir + "/nobody.sock"])
        #expect(gone.status == 3, "\(gone.err)")
    }

    @Test func aClientWithoutTheGrantCannotReload() throws {
        let v1 = try Self.version("1.0.0")
        let config = Fixtures.dir + "/owner-\(UUID().uuidString.prefix(6)).yaml"
        FileManager.default.createFile(atPath: config, contents: Data("clients:\n  owner: { grants: { call: [versioned.version, plexus.agents] } }\n".utf8))
        let host = try HostProcess("reload-grants", plugins: ["versioned.so": v1], arguments: ["--config", config])
        let r = try Self.plexus(host, ["plugins", "unload", "versioned"])
        #expect(r.status == 1 && r.err.contains("PERMISSION_DENIED"), "\(r.status) \(r.err)")
        #expect(Self.agentVersions(host) == ["1.0.0"])
    }

    static func noWatch() -> String {
        let path = Fixtures.dir + "/nowatch-\(UUID().uuidString.prefix(6)).yaml"
        FileManager.default.createFile(atPath: path, contents: Data("reload:\n  watch: false\n  probation_messages: 3\n".utf8))
        return path
    }
}
