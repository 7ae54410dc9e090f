import ArgumentParser
import FoundationEssentials
import Glibc
import PlexusCore
import PlexusTasks
import PlexusSocket

/// `plexus tasks`: durable tasks of the running host.
struct TasksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks", abstract: "Submit, list, show, retry and cancel the running host's durable tasks.",
        subcommands: [Submit.self, List.self, Show.self, Retry.self, Cancel.self])

    struct Submit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store a task and schedule it; prints its id once it is on disk.",
            discussion: "A task with the --key of an earlier one is that earlier task (idempotent submission).")
        @Argument(help: "The capability that runs it.") var capability: String
        @Option(help: "The payload, as JSON text.") var json: String?
        @Option(help: "Read the payload (text) from this file.") var file: String?
        @Option(help: "low, normal, high or critical.") var priority = "normal"
        @Option(help: "Idempotency key: submitting the same key again returns the first task.") var key: String?
        @Option(name: .customLong("after"), help: "A task id that must complete first (repeatable).") var after: [String] = []
        @Option(parsing: .unconditional, help: "Attempts before it is dead-lettered.") var attempts = 3
        @Option(parsing: .unconditional, help: "Backoff before the second attempt (doubles each time, ±50% jitter).") var backoffMs = 200
        @Option(parsing: .unconditional, help: "How long one attempt may take.") var timeoutMs = 30_000
        @Option(parsing: .unconditional, help: "Dead-letter it if not completed within this many seconds.") var deadlineS: Int?
        @Option(name: .customLong("retry-on"), help: "Retry only failures with this status (repeatable; default: all but those no retry can fix, such as INVALID_ARGUMENT).") var retryOn: [String] = []
        @Flag(help: "Wait until it finishes; print its result (exit 1 if it was dead-lettered).") var wait = false
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            var t: [String: JSONValue] = ["capability": .string(capability), "priority": .string(priority),
                                          "attempts": .int(Int64(attempts)), "backoff_ms": .int(Int64(backoffMs)),
                                          "timeout_ms": .int(Int64(timeoutMs))]
            if let json {
                guard let v = try? JSONValue.parse(Array(json.utf8)) else { throw ValidationError("--json is not valid JSON: \(json.prefix(80))") }
                t["payload"] = v
            } else if let file {
                guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("--file \(file): cannot read it") }
                t["payload"] = .string(String(decoding: data, as: UTF8.self))
            }
            if let key { t["key"] = .string(key) }
            if !after.isEmpty { t["after"] = .array(after.map(JSONValue.string)) }
            if let deadlineS { t["deadline_s"] = .int(Int64(deadlineS)) }
            if !retryOn.isEmpty {
                if let problem = TaskPolicy.checkRetryOn(retryOn) { throw ValidationError("--retry-on: \(problem)") }
                t["retry_on"] = .array(retryOn.map(JSONValue.string))
            }
            let c = try options.hostForState()
            let reply = try ask(c, "plexus.tasks.submit", .object(t))
            guard case .array(let list) = reply, let task = list.first, case .string(let id)? = task["id"] else {
                throw CLIError("the host answered the submission with \(reply.text)")
            }
            if case .string(let note)? = task["note"] {
                FileHandleErr.note("plexus tasks: \(note)")
                if wait {
                    // The task lives on the node that took the key first: this host cannot follow it.
                    print(id)
                    FileHandleErr.note("plexus tasks: --wait follows this host's own tasks only; wait on the node named above")
                    throw ExitCode(ExitStatus.failed)
                }
            }
            guard wait else { print(id); return }
            while true {
                let shown = try ask(c, "plexus.tasks.show", .object(["id": .string(id)]))
                switch shown["state"] {
                case .string("completed")?:
                    print(shown["result"].map { if case .string(let s) = $0 { s } else { $0.text } } ?? "")
                    return
                case .string(let s)? where s == "dead" || s == "cancelled":
                    FileHandleErr.note("plexus tasks: \(id) \(s): \(shown["error"].map { if case .string(let e) = $0 { e } else { $0.text } } ?? "")")
                    throw ExitCode(ExitStatus.failed)
                case nil: throw CLIError("the host no longer knows task \(id): \(shown.text.prefix(200))")
                default: usleep(50_000)
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Tasks, newest first.")
        @Option(help: "Only tasks in this state: waiting, queued, running, completed, dead, cancelled.") var state: String?
        @Option(parsing: .unconditional, help: "At most this many.") var limit = 50
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            var args: [String: JSONValue] = ["limit": .int(Int64(limit))]
            if let state { args["state"] = .string(state) }
            let reply = try ask(try options.hostForState(), "plexus.tasks.list", .object(args))
            if json { print(try prettyJSON(reply)); return }
            guard case .array(let tasks) = reply else { return }
            let rows = [["ID", "STATE", "CAPABILITY", "PRIORITY", "ATTEMPTS", "AGENT", "ERROR"]] + tasks.map { t in
                [str(t["id"]), str(t["state"]), str(t["capability"]), str(t["priority"]),
                 "\(str(t["attempts"]))/\(str(t["max_attempts"]))", str(t["agent"]), String(str(t["error"]).prefix(60))]
            }
            printColumns(rows)
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One task: its payload, result or error, and every attempt.")
        @Argument(help: "The task id.") var id: String
        @Flag(help: "Print payloads and results whole (otherwise a field longer than \(Show.shortField) characters is cut).")
        var full = false
        @OptionGroup var options: ConnectionOptions
        func run() throws {
            bootstrapLogging(default: .error)
            let task = try ask(try options.hostForState(), "plexus.tasks.show", .object(["id": .string(id)]))
            print(try prettyJSON(full ? task : Show.shortened(task)))
        }

        static let shortField = 1_000

        /// The task with each long top-level field (a payload, a result, an
        /// error) cut to its first characters and a note of its whole size.
        static func shortened(_ task: JSONValue) -> JSONValue {
            guard case .object(var fields) = task else { return task }
            for (k, v) in fields {
                let text: String = if case .string(let s) = v { s } else { v.text }
                guard text.utf8.count > shortField else { continue }
                fields[k] = .string("\(text.prefix(200))… (\(text.utf8.count) bytes in all; --full prints everything)")
            }
            return .object(fields)
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a dead-lettered or cancelled task again, with fresh attempts.")
        @Argument(help: "The task id.") var id: String
        @OptionGroup var options: ConnectionOptions
        func run() throws { try change(id, "plexus.tasks.retry", options) }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a task: one not started yet, or a running one (its agent is sent CANCEL); its dependents are dead-lettered.")
        @Argument(help: "The task id.") var id: String
        @OptionGroup var options: ConnectionOptions
        func run() throws { try change(id, "plexus.tasks.cancel", options) }
    }
}

/// Retries or cancels a task; prints its new state.
private func change(_ id: String, _ capability: String, _ options: ConnectionOptions) throws {
    bootstrapLogging(default: .error)
    let t = try ask(try options.hostForState(), capability, .object(["id": .string(id)]))
    print("\(id) \(str(t["state"]))")
}

/// Calls one of the host's capabilities with a JSON argument; its JSON answer.
func ask(_ c: SocketClient, _ capability: String, _ args: JSONValue) throws -> JSONValue {
    let reply: Envelope
    do throws(PlexusError) {
        reply = try c.call(Envelope(kind: .query, target: .capability(capability), payload: Array(args.text.utf8)), timeoutMs: 30_000)
    } catch {
        // A host that is stopping, or whose connection ended, went away during the command.
        throw CLIError("\(error.name): \(error.detail)", code: error.status == PLEXUS_SHUTTING_DOWN.status ? ExitStatus.noHost : ExitStatus.failed)
    }
    return (try? JSONValue.parse(reply.payload)) ?? .string(reply.payloadString)
}

func str(_ v: JSONValue?) -> String {
    switch v {
    case .string(let s)?: s
    case .null?, nil: "-"
    case let v?: v.text
    }
}

/// Rows as columns, two spaces apart, without trailing blanks.
func printColumns(_ rows: [[String]]) {
    let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
    for r in rows {
        var line = r.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        while line.last == " " { line.removeLast() }
        print(line)
    }
}
