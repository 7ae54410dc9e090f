/// Where the host keeps its durable state and how long finished things
/// stay there (plexus.yaml `store:`). Retention runs on a timer in the host,
/// so the store does not grow without bound; what is still open (waiting,
/// queued or running tasks, running workflow runs) is never removed, and
/// the agents' key-value data is theirs: retention does not touch it.
public struct StoreSettings: Sendable, Equatable {
    /// The SQLite file; nil: --store, else $PLEXUS_STORE, else ./plexus.db.
    public var path: String?
    public var retention = Retention()
    public init() {}

    public struct Retention: Sendable, Equatable {
        /// The newest events kept in the event log.
        public var events = 100_000
        /// Completed, dead-lettered and cancelled tasks (with their attempts)
        /// are removed this long after they finished.
        public var finishedTasksSeconds: Int64 = 7 * 86_400
        /// Completed and failed workflow runs (with their checkpoints) are
        /// removed this long after they finished.
        public var finishedRunsSeconds: Int64 = 30 * 86_400
        /// How often retention runs.
        public var intervalSeconds = 60.0
        public init() {}
    }
}
