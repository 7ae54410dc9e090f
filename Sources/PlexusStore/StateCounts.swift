import GRDB

extension Store {
    /// The states tasks and workflow runs can be in (Schema.swift).
    public static let taskStates = ["waiting", "queued", "running", "completed", "dead", "cancelled"]
    public static let runStates = ["running", "completed", "failed", "cancelled"]

    /// How many tasks are in each state (every state listed, 0 when none);
    /// a read (WAL: never waits for the writer). Empty when the store cannot be read.
    public func taskCounts() -> [(String, Int)] { counts("tasks", Store.taskStates) }
    /// How many workflow runs are in each state.
    public func runCounts() -> [(String, Int)] { counts("workflow_runs", Store.runStates) }

    private func counts(_ table: String, _ states: [String]) -> [(String, Int)] {
        guard let rows = try? read({ db in
            try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM \(table) GROUP BY state")
        }) else { return [] }
        var found: [String: Int] = [:]
        for r in rows { found[r["state"] as String] = r["n"] as Int }
        return states.map { ($0, found[$0] ?? 0) } + found.keys.filter { !states.contains($0) }.sorted().map { ($0, found[$0]!) }
    }
}
