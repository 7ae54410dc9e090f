import PlexusConfig
import PlexusCore
import PlexusStore

/// Where a `workflow: FILE` step's file comes from. Checking a file on disk
/// (`plexus workflow check`, `run`) reads each one from disk; the host reads
/// them from the texts the run was started with (or stored with), so a run
/// never depends on the files after it starts. Paths are resolved against
/// the directory of the file that names them, and the chain of files being
/// read is kept, so a file that includes itself (directly or not) is refused.
struct WorkflowIncludes {
    /// The text of a file by resolved path; a problem as a sentence.
    let read: (String) -> Result<String, ConfigError>
    /// The files being read, outermost first (resolved paths).
    var chain: [String]

    static func disk() -> WorkflowIncludes {
        WorkflowIncludes(read: { p in
            do throws(ConfigError) { return .success(try ConfigFile.readText(p)) } catch { return .failure(error) }
        }, chain: [])
    }

    static func texts(_ sources: [String: String]) -> WorkflowIncludes {
        WorkflowIncludes(read: { p in
            if let t = sources[p] { return .success(t) }
            let known = sources.keys.sorted()
            return .failure(ConfigError(file: p, line: 0, column: 0, field: "",
                                        problem: "cannot read \(p): the run was not given its text"
                                            + (known.isEmpty ? " (it was given none)" : "; it was given \(known.joined(separator: ", "))")))
        }, chain: [])
    }

    /// `child` as named in `parent`: relative to parent's directory, with
    /// "." and ".." folded ("wf/main.yaml" + "../lib/x.yaml" -> "lib/x.yaml").
    static func resolve(_ child: String, from parent: String) -> String {
        if child.hasPrefix("/") { return normalize(child) }
        let dir = parent.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return normalize(dir.isEmpty ? child : dir + "/" + child)
    }

    static func normalize(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts: [String] = []
        for p in path.split(separator: "/") {
            switch p {
            case ".": continue
            case "..": if let last = parts.last, last != ".." { parts.removeLast() } else if !absolute { parts.append("..") }
            default: parts.append(String(p))
            }
        }
        return (absolute ? "/" : "") + parts.joined(separator: "/")
    }
}

extension WorkflowFile {
    /// A stored run's workflow, from the texts it was started with (its
    /// sub-workflows' too): never from disk.
    public static func parse(run r: RunRecord) throws(ConfigError) -> Workflow {
        var included: [String: String] = [:]
        if let i = r.includes, case .object(let o)? = try? JSONValue.parse(Array(i.utf8)) {
            for (path, v) in o { if case .string(let text) = v { included[path] = text } }
        }
        return try parse(r.source, file: r.file, includes: included)
    }
}
