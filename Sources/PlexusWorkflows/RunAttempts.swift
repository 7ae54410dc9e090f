import PlexusCore
import PlexusStore

/// How hard each step of a run was tried: its task's attempts and last
/// failure ("attempts": 2, "last_error": "UNAVAILABLE: the source is busy"),
/// so a retry that ended well still shows in `workflow status` and the
/// progress view. A for_each step counts the attempts of all its items.
enum RunAttempts {
    struct Tally: Equatable {
        var attempts = 0
        var lastError: String?
        /// A task of the step's newest generation was dead-lettered or cancelled.
        var failed = false
        /// ... and it was cancelled (`plexus tasks cancel`, `workflow cancel`).
        var cancelled = false
    }

    /// Per step, from the run's tasks (in submission order): only the newest
    /// generation of each step counts, since a resumed run tries it afresh.
    static func tally(_ tasks: [(key: String, attempts: Int, state: String, error: String?)]) -> [String: Tally] {
        var generation: [String: Int] = [:]
        var out: [String: Tally] = [:]
        for t in tasks {
            guard let k = RunState.parseKey(t.key) else { continue }
            if let g = generation[k.node], g > k.generation { continue }
            if generation[k.node] != k.generation { out[k.node] = Tally(); generation[k.node] = k.generation }
            out[k.node]!.attempts += t.attempts
            if let e = t.error, !e.isEmpty { out[k.node]!.lastError = e }
            if t.state == "dead" || t.state == "cancelled" { out[k.node]!.failed = true }
            if t.state == "cancelled" { out[k.node]!.cancelled = true }
        }
        return out
    }

    /// The status with each tried step's attempts and last failure added.
    static func annotate(_ status: JSONValue, _ tallies: [String: Tally]) -> JSONValue {
        guard !tallies.isEmpty, case .object(var run) = status, case .array(let steps)? = run["steps"] else { return status }
        run["steps"] = .array(steps.map { step in
            guard case .object(var o) = step, case .string(let name)? = o["name"], let t = tallies[name] else { return step }
            o["attempts"] = .int(Int64(t.attempts))
            o["last_error"] = t.lastError.map(JSONValue.string) ?? .null
            // A finished run's status is rebuilt from its checkpoints, and a
            // failed step has none: its tasks say it failed, and why.
            if t.failed, o["state"] == .string("pending") {
                o["state"] = .string(t.cancelled ? "cancelled" : "failed")
                if o["error"] == nil || o["error"] == .null { o["error"] = t.lastError.map(JSONValue.string) ?? .null }
            }
            return .object(o)
        })
        return .object(run)
    }
}
