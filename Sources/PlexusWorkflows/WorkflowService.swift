import PlexusConfig
import PlexusCore
import PlexusHost
import PlexusTasks
import PlexusThreads

/// Workflows as capabilities of the host's agent "plexus.workflows": what
/// `plexus workflow` calls over the socket.
public enum WorkflowService {
    public static let capabilities: [(name: String, description: String)] = [
        ("plexus.workflows.run", "start a run: {source: YAML text, file?: its path, input?: object, includes?: {path: YAML text} of the files its workflow: steps run}"),
        ("plexus.workflows.status", "a run and each of its steps: {id}"),
        ("plexus.workflows.list", "runs, newest first: {limit?}"),
        ("plexus.workflows.resume", "continue a failed run from its checkpoints: {id}"),
        ("plexus.workflows.approve", "let a step that awaits approval run: {id, step}"),
        ("plexus.workflows.outputs", "the files a completed run produced: {id}"),
        ("plexus.workflows.cancel", "cancel a running run, its started steps' tasks and its sub-workflow runs: {id}"),
        ("plexus.workflows.signal", "send a running run a signal its wait_for steps take: {id, name, payload?: JSON}"),
    ]

    public static func install(on host: Host, engine: WorkflowEngine) throws(PlexusError) {
        // Runs and approvals wait for the disk: off the dispatcher thread, on a bounded pool.
        let pool = ServicePool(name: "plexus-workflow-call", threads: 2, queueLimit: 256)
        try host.provide(name: "plexus.workflows", capabilities: capabilities) { env, answer in
            pool.run("plexus.workflows", answer: answer) { () throws(PlexusError) in try handle(env, engine) }
        }
    }

    static func handle(_ env: Envelope, _ engine: WorkflowEngine) throws(PlexusError) -> JSONValue {
        let args: JSONValue = env.payload.isEmpty ? .object([:]) : try ServiceArguments.parse(env.payload)
        switch env.target.name {
        case "plexus.workflows.run":
            let source = try ServiceArguments.string(args, "source")
            var file = "workflow.yaml"
            if case .string(let f)? = args["file"] { file = f }
            // The files its workflow: steps name come with it: the host never reads them itself.
            var includes: [String: String] = [:]
            switch args["includes"] {
            case nil, .null?: break
            case .object(let o)?:
                for (path, v) in o {
                    guard case .string(let text) = v else { throw PlexusError(.INVALID_ARGUMENT, "includes.\(path) must be the file's YAML text, got \(v.typeName)") }
                    includes[path] = text
                }
            case let v?: throw PlexusError(.INVALID_ARGUMENT, "includes must be an object of path -> YAML text, got \(v.typeName)")
            }
            let w: Workflow
            do throws(ConfigError) { w = try WorkflowFile.parse(source, file: file, includes: includes) } catch {
                throw PlexusError(.INVALID_ARGUMENT, error.description)
            }
            let r = try engine.run(w, input: args["input"])
            return .object(["id": .string(r.id), "workflow": .string(r.workflow), "state": .string(r.state)])
        case "plexus.workflows.status": return try engine.status(try ServiceArguments.string(args, "id"))
        case "plexus.workflows.list": return .array(try engine.list(limit: try ServiceArguments.int(args, "limit", default: 50, in: 1...10_000)))
        case "plexus.workflows.resume":
            let r = try engine.resume(try ServiceArguments.string(args, "id"))
            return .object(["id": .string(r.id), "workflow": .string(r.workflow), "state": .string(r.state), "generation": .int(Int64(r.generation))])
        case "plexus.workflows.approve":
            let id = try ServiceArguments.string(args, "id"), step = try ServiceArguments.string(args, "step")
            try engine.approve(run: id, step: step)
            return .object(["id": .string(id), "step": .string(step), "state": .string("approved")])
        case "plexus.workflows.cancel":
            let id = try ServiceArguments.string(args, "id")
            try engine.cancel(run: id)
            return .object(["id": .string(id), "state": .string("cancelled")])
        case "plexus.workflows.signal":
            let id = try ServiceArguments.string(args, "id"), name = try ServiceArguments.string(args, "name")
            try engine.signal(run: id, name: name, payload: args["payload"] ?? .null)
            return .object(["id": .string(id), "signal": .string(name), "state": .string("kept")])
        default: return try engine.outputs(try ServiceArguments.string(args, "id"))
        }
    }
}
