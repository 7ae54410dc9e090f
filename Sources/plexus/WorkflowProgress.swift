import ArgumentParser
import FoundationEssentials
import Glibc
import PlexusCore
import PlexusSocket
import PlexusThreads

/// The terminal view of a run: one line per step with its state, time and
/// fan-out progress, redrawn in place on a terminal and printed as changes
/// (one line each) when the output is a file or a pipe.
enum WorkflowProgress {
    static func follow(_ c: SocketClient, id: String, options: WorkflowCommand.Follow) throws {
        let tty = isatty(1) == 1 && !options.json
        var drawn = 0
        var lastLines: [String: String] = [:]
        var hinted = Set<String>()
        var status: JSONValue = .null
        while true {
            do { status = try ask(c, "plexus.workflows.status", .object(["id": .string(id)])) } catch {
                FileHandleErr.note("plexus workflow: lost the host (\(error)); the run goes on when the host starts again: plexus workflow status \(id) --follow")
                throw ExitCode(ExitStatus.noHost)
            }
            let lines = render(status, color: tty)
            if tty {
                if drawn > 0 { print("\u{1B}[\(drawn)A\u{1B}[J", terminator: "") }
                print(lines.joined(separator: "\n"))
                drawn = lines.count
            } else if !options.json {
                if lastLines.isEmpty || str(status["state"]) != "running" { print(lines[0]) }   // its clock changes every time
                for (i, l) in lines.enumerated().dropFirst() {
                    let name = stepName(status, i - 1)
                    if lastLines[name] != l { print(l); lastLines[name] = l }
                }
            }
            fflush(nil)
            if case .array(let steps)? = status["steps"] {
                for s in steps where str(s["state"]) == "awaiting_approval" && hinted.insert(str(s["name"])).inserted {
                    FileHandleErr.note("plexus workflow: step \(str(s["name"])) awaits approval (\(str(s["approval"]))): plexus workflow approve \(id) \(str(s["name"]))")
                }
            }
            if str(status["state"]) != "running" { break }
            usleep(tty ? 100_000 : 200_000)
        }
        if options.json { print(try prettyJSON(status)) }
        guard str(status["state"]) == "completed" else {
            FileHandleErr.note("plexus workflow: run \(id) \(str(status["state"])): \(str(status["error"]))")
            if str(status["state"]) == "failed" {
                FileHandleErr.note("plexus workflow: after fixing the cause, `plexus workflow resume \(id)` reruns only what did not finish")
            }
            throw ExitCode(ExitStatus.failed)
        }
        if let dir = options.out { try save(try ask(c, "plexus.workflows.outputs", .object(["id": .string(id)])), into: dir) }
    }

    /// Writes each output into dir; strings as they are, other values as JSON.
    static func save(_ outputs: JSONValue, into dir: String) throws {
        guard case .object(let files) = outputs else { return }
        if mkdir(dir, 0o755) != 0 && errno != EEXIST { throw CLIError("--out \(dir): cannot create it: \(String(cString: strerror(errno)))") }
        for name in files.keys.sorted() {
            let text: String
            if case .string(let s) = files[name]! { text = s } else { text = files[name]!.text }
            let path = "\(dir)/\(name)"
            guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else { throw CLIError("cannot write \(path)") }
            print("wrote \(path) (\(text.utf8.count) bytes)")
        }
    }

    static func stepName(_ status: JSONValue, _ i: Int) -> String {
        guard case .array(let steps)? = status["steps"], steps.indices.contains(i) else { return "\(i)" }
        return str(steps[i]["name"])
    }

    static let marks: [String: String] = [
        "pending": "·", "running": "▶", "done": "✓", "skipped": "↷", "failed": "✗", "awaiting_approval": "⏸", "approved": "▶", "waiting": "⏸", "cancelled": "⊘",
    ]

    /// The header line, then a line per step.
    static func render(_ s: JSONValue, color: Bool) -> [String] {
        let created = Int64(str(s["created_unix_ns"])) ?? 0
        let finished = Int64(str(s["finished_unix_ns"])) ?? 0
        let elapsed = Double((finished > 0 ? finished : Clock.unixNanos()) - created) / 1e9
        var lines = ["\(str(s["workflow"]))  run \(str(s["id"]))  \(paint(str(s["state"]), str(s["state"]), color))  \(String(format: "%.1f s", elapsed))"
                     + (s["trace"].map { "  trace \(str($0))" } ?? "")
                     + (s["parent_run"].flatMap { $0 == .null ? nil : "  part of run \(str($0)) (step \(str(s["parent_step"])))" } ?? "")]
        guard case .array(let steps)? = s["steps"] else { return lines }
        func indent(_ name: String) -> String { name.contains(".") ? "    " : "  " }
        let width = steps.map { indent(str($0["name"])).count + str($0["name"]).count }.max() ?? 8
        for st in steps {
            let state = str(st["state"])
            let name = str(st["name"])
            let pad = String(repeating: " ", count: width + 2 - indent(name).count - name.count)
            var line = "\(indent(name))\(paint(marks[state] ?? "?", state, color)) \(name)\(pad)"
            let kind = str(st["kind"])
            switch kind {
            case "workflow": line += "workflow \(str(st["workflow_file"]))" + (st["run"].map { "  run \(str($0))" } ?? "")
            case "wait_for": line += "wait_for \(str(st["signal"]))"
            default: line += str(st["capability"]) == "-" ? (kind == "parallel" ? "parallel" : "merge") : str(st["capability"])
            }
            if kind == "repeat" { line += "  ran \(str(st["iterations"]))/\(str(st["max"])) until \(str(st["until"]))" }
            if let total = Int(str(st["items_total"])) {
                let done = Int(str(st["items_done"])) ?? 0
                line += "  " + bar(done, total) + " \(done)/\(total)"
                if state == "running", let r = Int(str(st["items_running"])), r > 0 { line += " (\(r) running)" }
            }
            let started = Int64(str(st["started_unix_ns"])) ?? 0, ended = Int64(str(st["finished_unix_ns"])) ?? 0
            if state == "done" || state == "failed", started > 0, ended >= started { line += String(format: "  %.2f s", Double(ended - started) / 1e9) }
            if state == "skipped" { line += "  skipped: its condition was false" }
            if state == "awaiting_approval" { line += "  awaits approval: \(str(st["approval"]))" }
            if state == "failed" || state == "cancelled" { line += "  " + String(str(st["error"]).prefix(120)) }
            if state == "waiting" { line += "  waits for signal \(str(st["signal"])): plexus workflow signal \(str(s["id"])) \(str(st["signal"])) JSON" }
            if state == "running", case .string(let why)? = st["waiting"] { line += "  waiting: \(why)" }
            line += tries(st, state)
            lines.append(line)
        }
        return lines
    }

    /// A step tried more than once says so, with its last failure: a retry
    /// that ended well is still seen ("2 attempts, last failure: UNAVAILABLE: ...").
    static func tries(_ st: JSONValue, _ state: String) -> String {
        guard let n = Int(str(st["attempts"])) else { return "" }
        let last: String? = if case .string(let e)? = st["last_error"], !e.isEmpty { e } else { nil }
        // A for_each: more attempts than items; a loop: more than its runs.
        let retried = Int(str(st["items_total"])).map { n > $0 } ?? Int(str(st["iterations"])).map { n > $0 } ?? (n > 1)
        guard retried || (last != nil && state != "failed") else { return "" }
        let over = ["for_each": " over its items", "repeat": " over its runs"][str(st["kind"])] ?? ""
        let counted = "\(n) attempts\(over)" + (state == "running" ? " so far" : "")
        let shown = state == "failed" ? nil : last   // a failed step's line ends with its error already
        return "  " + counted + (shown.map { ", last failure: " + String($0.prefix(100)) } ?? "")
    }

    static func bar(_ done: Int, _ total: Int) -> String {
        let width = 20
        let full = total == 0 ? width : done * width / total
        return "[" + String(repeating: "█", count: full) + String(repeating: "░", count: width - full) + "]"
    }

    static func paint(_ text: String, _ state: String, _ color: Bool) -> String {
        guard color else { return text }
        let code = ["done": "32", "completed": "32", "running": "36", "failed": "31", "skipped": "33", "awaiting_approval": "35",
                    "waiting": "35", "cancelled": "31"][state] ?? "0"
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }

    /// "2026-11-21 10:03:12Z".
    static func clock(_ unixNs: Int64) -> String {
        var t = time_t(unixNs / 1_000_000_000)
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
    }
}
