import ArgumentParser
import FoundationEssentials
import Glibc
import PlexusConfig
import PlexusCore
import PlexusSocket
import PlexusWorkflows

/// `plexus workflow`: run YAML workflows on the running host and follow them.
struct WorkflowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflow", abstract: "Run, follow, resume, approve, signal, cancel and draw workflows declared in YAML.",
        subcommands: [Run.self, Status.self, Resume.self, Approve.self, Signal.self, Cancel.self, List.self, Graph.self, Check.self])

    /// What run, status and resume share: follow the run, then save its outputs.
    struct Follow: ParsableArguments {
        @Flag(help: "Show each step's progress until the run ends (exit 1 if it fails).") var follow = false
        @Option(help: "Once the run completes, write its outputs into this directory (implies --follow).") var out: String?
        @Flag(help: "Print JSON instead of the table.") var json = false
        /// Asked to watch the run (either flag).
        var watching: Bool { follow || out != nil }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a workflow file and start a run of it on the running host; prints the run id.",
            discussion: """
                The run is on disk before its id is printed. If the host stops, it resumes the run when it starts again. \
                The files its workflow: steps name (relative to FILE) are read and checked here and sent with it: the host reads none of them.
                """)
        @Argument(help: "The workflow file (YAML).") var file: String
        @Option(help: "The run's input: a JSON object, over the file's input defaults. A relative path in it that names a file in the current directory is sent as an absolute path.") var input: String?
        @OptionGroup var follow: Follow
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            let w = try loadWorkflow(file)
            var args: [String: JSONValue] = ["source": .string(w.source), "file": .string(file)]
            // The files its workflow: steps run go with it: the host reads none itself.
            let included = w.includedSources
            if !included.isEmpty { args["includes"] = .object(included.mapValues(JSONValue.string)) }
            if let input {
                guard let v = try? JSONValue.parse(Array(input.utf8)), case .object = v else {
                    throw ValidationError("--input must be a JSON object, such as '{\"path\": \"data.csv\"}'")
                }
                // A relative path the user typed names a file in this directory,
                // not the host's: made absolute when it exists here (InputPaths).
                if let cwd = InputPaths.currentDirectory() {
                    let (resolved, changed) = InputPaths.absolutize(v, cwd: cwd)
                    for c in changed { FileHandleErr.note("plexus workflow: \(c.field) is the file \(c.path)") }
                    args["input"] = resolved
                } else {
                    args["input"] = v
                }
            }
            let c = try options.hostForState()
            let reply = try ask(c, "plexus.workflows.run", .object(args))
            let id = str(reply["id"])
            guard follow.watching else { print(id); return }
            FileHandleErr.note("plexus workflow: run \(id) of \(w.name) started")
            try WorkflowProgress.follow(c, id: id, options: follow)
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Where a run is: each step's state, fan-out progress and errors.")
        @Argument(help: "The run id.") var runID: String
        @OptionGroup var follow: Follow
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            let c = try options.hostForState()
            if follow.watching { try WorkflowProgress.follow(c, id: runID, options: follow); return }
            let s = try ask(c, "plexus.workflows.status", .object(["id": .string(runID)]))
            print(follow.json ? try prettyJSON(s) : WorkflowProgress.render(s, color: false).joined(separator: "\n"))
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Continue a failed run from its checkpoints: finished steps are not run again.",
            discussion: "A run that was running when its host died needs no resume: the host resumes it when it starts.")
        @Argument(help: "The run id.") var runID: String
        @OptionGroup var follow: Follow
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            let c = try options.hostForState()
            let r = try ask(c, "plexus.workflows.resume", .object(["id": .string(runID)]))
            FileHandleErr.note("plexus workflow: run \(runID) resumed (generation \(r["generation"]?.text ?? "?"))")
            if follow.watching { try WorkflowProgress.follow(c, id: runID, options: follow) }
        }
    }

    struct Approve: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a step that awaits approval run.")
        @Argument(help: "The run id.") var runID: String
        @Argument(help: "The step.") var step: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            _ = try ask(try options.hostForState(), "plexus.workflows.approve", .object(["id": .string(runID), "step": .string(step)]))
            print("approved \(step) of run \(runID)")
        }
    }

    struct Signal: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a running run a signal: a wait_for step of that name takes its JSON as its output.",
            discussion: "A signal that comes before a step waits for it is kept with the run until one does. A run that is not running refuses it (exit 1).")
        @Argument(help: "The run id.") var runID: String
        @Argument(help: "The signal's name, as a wait_for: step names it.") var name: String
        @Argument(help: "Its JSON (default null), such as '{\"approved\": true}'.") var json: String?
        @OptionGroup var options: ConnectionOptions

        /// Checked before anything is asked, so the usage shown is this command's.
        func validate() throws {
            if let json, (try? JSONValue.parse(Array(json.utf8))) == nil {
                throw ValidationError("the signal's JSON does not parse: \(json) (a string needs quotes: '\"text\"')")
            }
        }

        func run() throws {
            bootstrapLogging(default: .error)
            let payload = try json.map { try JSONValue.parse(Array($0.utf8)) } ?? .null
            _ = try ask(try options.hostForState(), "plexus.workflows.signal",
                        .object(["id": .string(runID), "name": .string(name), "payload": payload]))
            print("signal \(name) sent to run \(runID)")
        }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a running run: its started steps, their tasks and its sub-workflow runs.",
            discussion: "The run and each step it had started show as cancelled. A run that is not running is refused (exit 1).")
        @Argument(help: "The run id.") var runID: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            _ = try ask(try options.hostForState(), "plexus.workflows.cancel", .object(["id": .string(runID)]))
            print("cancelled run \(runID)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Runs, newest first.")
        @Option(parsing: .unconditional, help: "At most this many.") var limit = 20
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            let reply = try ask(try options.hostForState(), "plexus.workflows.list", .object(["limit": .int(Int64(limit))]))
            if json { print(try prettyJSON(reply)); return }
            guard case .array(let runs) = reply else { return }
            printColumns([["RUN", "WORKFLOW", "STATE", "STARTED", "ERROR"]] + runs.map { r in
                // A sub-workflow's run names the run it is part of.
                [str(r["id"]), str(r["workflow"]) + (r["parent_run"].flatMap { $0 == .null ? nil : " (in \(str($0)))" } ?? ""), str(r["state"]), WorkflowProgress.clock(Int64(str(r["created_unix_ns"])) ?? 0),
                 String(str(r["error"]).prefix(70))]
            })
        }
    }

    struct Graph: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Draw a workflow file's graph as Mermaid or DOT (Graphviz).")
        @Argument(help: "The workflow file (YAML).") var file: String
        @Option(help: "mermaid or dot.") var format = "mermaid"

        func run() throws {
            let w = try loadWorkflow(file)
            switch format {
            case "mermaid": print(WorkflowGraph.mermaid(w), terminator: "")
            case "dot": print(WorkflowGraph.dot(w), terminator: "")
            default: throw ValidationError("--format must be mermaid or dot, not \(format)")
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a workflow file without running it.",
            discussion: """
                With a host running, also warns about each step whose capability no agent of that \
                host provides, with the closest name it does provide. Without one, only the file is checked.
                """)
        @Argument(help: "The workflow file (YAML).") var file: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            let w = try loadWorkflow(file)
            let tasks = w.nodes.filter { $0.capability != nil }.count
            let included = w.includedSources.count
            print("\(file): workflow \(w.name) is valid: \(w.steps.count) steps, \(tasks) of them calling agents"
                  + (included > 0 ? "; with the \(included) workflow file(s) its workflow: steps run, checked too" : ""))
            guard let c = try options.runningHost() else {
                FileHandleErr.note("plexus workflow: no host is running at \(options.socketPath): capabilities not checked against its agents")
                return
            }
            var provided = try providedCapabilities(c)
            // In a cluster, a step's task runs wherever its capability is (durable tasks on JetStream).
            let peers = (try? ClusterReport.ask(options))?.0.nodes.filter { $0.state == "up" } ?? []
            for n in peers { for a in n.agents where a.state == "active" { provided.formUnion(a.capabilities) } }
            let whose = peers.isEmpty ? "the running host" : "the running host or the hosts of its cluster"
            // Its sub-workflows' steps too: they run on the same host.
            func everyStep(_ w: Workflow) -> [Step] { w.nodes + w.subworkflows.keys.sorted().flatMap { everyStep(w.subworkflows[$0]!) } }
            for s in everyStep(w) {
                guard let cap = s.capability, !provided.contains(cap) else { continue }
                let hint = Suggestion.closest(to: cap, among: provided.sorted()).map { " (did you mean \($0)?)" } ?? ""
                print("\(file): warning: step \(s.name) calls \(cap), which no agent of \(whose) provides\(hint); "
                      + "its task waits up to its timeout_ms per attempt for one to appear")
            }
        }

        /// Every capability the running host's agents provide now.
        private func providedCapabilities(_ c: SocketClient) throws -> Set<String> {
            guard case .array(let agents) = try ask(c, "plexus.agents", .object([:])) else { return [] }
            var out = Set<String>()
            for a in agents {
                guard case .array(let caps)? = a["capabilities"] else { continue }
                for case .string(let n) in caps { out.insert(n) }
            }
            return out
        }
    }
}

/// Reads and checks a workflow file; a mistake says file:line:column.
func loadWorkflow(_ file: String) throws -> Workflow {
    do throws(ConfigError) { return try WorkflowFile.load(path: file) } catch { throw CLIError(error.description) }
}
