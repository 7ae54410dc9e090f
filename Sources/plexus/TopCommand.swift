import ArgumentParser
import FoundationEssentials
import Glibc
import PlexusCore
import PlexusHost
import PlexusSocket

extension TopTable.SortKey: ExpressibleByArgument {}

/// `plexus top`: the running host's agents as a live table, like htop, over
/// its socket. On a terminal it takes the whole screen and single keys; into
/// a pipe or file it prints one plain table per interval.
struct TopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "The running host's agents, live: state, mailbox, handled/s, failed/s, handle time, CPU and memory per worker.",
        discussion: """
            Rates are the differences between two snapshots of `plexus agents` over the time between them. \
            On a terminal: full screen, refreshed every --interval; keys q (or Ctrl-C) quit, s or > sorts by \
            the next column (rate, name, mailbox, cpu, memory), < by the previous, p pauses. When stdout is not \
            a terminal: one plain table per interval, the first after one interval (rates need two snapshots), \
            until --iterations tables (--once: one) or until interrupted.
            """)

    @Option(help: "Seconds between refreshes (0.1 to 3600).") var interval: Double = 1
    @Option(help: "Stop after this many tables (on a terminal: screens, the first shown at once).") var iterations: Int?
    @Flag(help: "Print one plain table (on a terminal too), then exit.") var once = false
    @Option(help: "The column to sort by: rate, name, mailbox, cpu or memory.") var sort: TopTable.SortKey = .rate
    @OptionGroup var options: ConnectionOptions

    func validate() throws {
        guard interval.isFinite, interval >= 0.1, interval <= 3600 else {
            throw ValidationError("--interval must be between 0.1 and 3600 seconds, not \(interval)")
        }
        if let n = iterations, n < 1 { throw ValidationError("--iterations must be 1 or more, not \(n)") }
        if once, let n = iterations, n != 1 { throw ValidationError("--once means one table; it cannot go with --iterations \(n)") }
    }

    private var limit: Int? { once ? 1 : iterations }

    func run() throws {
        bootstrapLogging(default: .error)
        // A host that goes away must be an error reply, not a SIGPIPE; output
        // into a closed pipe is noticed by `Output.write` instead.
        signal(SIGPIPE, SIG_IGN)
        let source = try AgentSource(options)
        // --once on a terminal too prints a plain table: a screen drawn and left at
        // once would show nothing.
        if TerminalScreen.stdoutIsTerminal && !once { try live(source) } else { try plain(source) }
    }

    // MARK: not a terminal

    private func plain(_ source: AgentSource) throws {
        var previous = try source.snapshot()
        var shown = 0
        while limit.map({ shown < $0 }) ?? true {
            sleepUntil(previous.at + interval)
            let current = try source.snapshot()
            let table = TopTable(current, after: previous, sortedBy: sort)
            let text = ([summary(table, current)] + table.lines).joined(separator: "\n") + "\n\n"
            guard Output.write(text) else { return }   // the reader went away: done
            previous = current
            shown += 1
        }
    }

    // MARK: a terminal

    private func live(_ source: AgentSource) throws {
        let screen = try TerminalScreen()
        defer { screen.restore() }
        var sortKey = sort
        var paused = false
        var previous: TopTable.Snapshot?
        var current = try source.snapshot()
        var shown = 1
        var due = current.at + interval
        func draw() { screen.draw(frame(TopTable(current, after: previous, sortedBy: sortKey), current, sortKey, paused, screen.size)) }
        draw()
        while limit.map({ shown < $0 }) ?? true {
            let wait = Int32(min(max(due - Self.now(), 0), 3600) * 1000)
            switch screen.wait(milliseconds: wait) {
            case .timeout:
                guard Self.now() >= due else { continue }
                due = max(due + interval, Self.now())
                if paused { continue }
                previous = current
                current = try source.snapshot()
                shown += 1
            case .resized:
                break
            case .stop(let sig):
                screen.restore()
                raise(sig)   // die of it, as the shell expects, with the terminal already back
                return
            case .keys(let keys):
                for k in keys {
                    switch k {
                    case UInt8(ascii: "q"), UInt8(ascii: "Q"), 3: return
                    case UInt8(ascii: "s"), UInt8(ascii: ">"): sortKey = sortKey.moved(by: 1)
                    case UInt8(ascii: "<"): sortKey = sortKey.moved(by: -1)
                    case UInt8(ascii: "p"), UInt8(ascii: " "): paused.toggle()
                    default: break
                    }
                }
            }
            draw()
        }
    }

    /// The screen: a summary line, a key line, the table (header in reverse
    /// video, the sort column's name marked), cut to the terminal's size.
    private func frame(_ table: TopTable, _ snap: TopTable.Snapshot, _ key: TopTable.SortKey, _ paused: Bool,
                       _ size: (columns: Int, rows: Int)) -> [String] {
        let keys = "sort: \(key.rawValue)   s/< > sort   p \(paused ? "resume" : "pause")   q quit" + (paused ? "   PAUSED" : "")
        var body = table.lines
        let header = body.removeFirst()
        let room = max(size.rows - 3, 0)
        if body.count > room, room > 0 {
            body = Array(body.prefix(room - 1)) + ["... \(body.count - room + 1) more agent(s): enlarge the terminal or change the sort"]
        }
        func cut(_ s: String) -> String { s.count > size.columns ? String(s.prefix(size.columns)) : s }
        let marked = Self.mark(TopTable.headers[TopTable.column(of: key)], in: cut(header))
        return [cut(summary(table, snap)), cut(keys), "\u{1B}[7m" + marked + String(repeating: " ", count: max(size.columns - cut(header).count, 0)) + "\u{1B}[0m"]
            + body.map(cut)
    }

    /// The sort column's header, underlined within the reverse-video line.
    private static func mark(_ name: String, in header: String) -> String {
        guard let r = header.range(of: name) else { return header }
        return header[..<r.lowerBound] + "\u{1B}[4m" + name + "\u{1B}[24m" + header[r.upperBound...]
    }

    /// plexus top  12:04:05  9 agents (8 active)  41.0 handled/s  0.0 failed/s  socket /run/user/0/plexus.sock
    private func summary(_ table: TopTable, _ snap: TopTable.Snapshot) -> String {
        let active = snap.agents.filter { $0.state == "active" }.count
        let rate = table.totalHandledPerSecond.map(TopTable.rate) ?? "-"
        let failed = table.totalFailedPerSecond.map(TopTable.rate) ?? "-"
        return "plexus top  \(Self.clock())  \(snap.agents.count) agents (\(active) active)  \(rate) handled/s  \(failed) failed/s  socket \(options.socketPath)"
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private func sleepUntil(_ t: Double) {
        while case let left = t - Self.now(), left > 0 { usleep(UInt32(min(left, 1) * 1e6)) }
    }

    /// The local time of day, HH:MM:SS.
    private static func clock() -> String {
        var t = time(nil)
        var parts = tm()
        localtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }
}

/// The running host's `plexus.agents`, asked over one connection.
private struct AgentSource {
    let client: SocketClient
    let path: String

    init(_ options: ConnectionOptions) throws {
        client = try options.hostForState()
        path = options.socketPath
    }

    func snapshot() throws -> TopTable.Snapshot {
        let reply: Envelope
        do throws(PlexusError) {
            reply = try client.call(Envelope(kind: .query, target: .capability("plexus.agents")), timeoutMs: 10_000)
        } catch {
            // The host is stopping, or the connection broke and none answers any
            // more: it went away (exit 3), like any command whose host goes.
            if error.status == PLEXUS_SHUTTING_DOWN.status || (try? SocketClient(path: path)) == nil {
                throw CLIError.noHost(path, "the host went away (\(error.name): \(error.detail))")
            }
            throw CLIError("\(error.name): \(error.detail)")
        }
        let at = TopCommand.now()
        do {
            return TopTable.Snapshot(agents: try JSONDecoder().decode([AgentReport].self, from: Data(reply.payload)), at: at)
        } catch { throw CLIError("plexus.agents answered something that is not a list of agents: \(error)") }
    }
}

/// stdout without Swift's buffering, so each table reaches a pipe whole and
/// at once; false once the reader has gone (EPIPE).
private enum Output {
    static func write(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            off += n
        }
        return true
    }
}
