import Synchronization

/// Which agents the socket's event loop may run on its own thread when a
/// client's frame wakes them (InlineRunner). Running inline saves a thread
/// wake-up per call, but while an agent runs there, every other client of
/// the loop waits. So an agent runs inline only once it has shown itself
/// quick, and stops at once when it is not:
///
/// - on probation first: its answers to clients, dispatched the usual way,
///   are timed (frame routed to answer posted, so a worker's wake-up is in
///   it too); after `promoteAfter` answers in a row within `quickAnswerNanos`
///   it may run inline; a slower answer restarts the count;
/// - an inline run longer than `quickRunNanos` sends it back to probation
///   and keeps it off the loop for `penaltyNanos`.
///
/// The hard bound is LoopLeadership's: a run longer than a tick has the
/// standby serve the other clients. This policy keeps agents that are known
/// to be slow from costing that hand-over again and again. The numbers are
/// fixed (not plexus.yaml settings): they only decide on which thread a
/// handler runs, never what it does.
final class InlinePolicy: Sendable {
    struct Settings {
        var quickAnswerNanos: Int64 = 1_000_000
        var quickRunNanos: Int64 = 200_000
        var promoteAfter = 32
        var penaltyNanos: Int64 = 10_000_000_000
        /// Agents remembered at most (names come and go with clients'
        /// agents): past this the record starts over.
        var remembered = 4_096
    }

    private struct Record {
        var quick = 0
        var offUntil: Int64 = 0
    }
    let settings: Settings
    private let records = Mutex<[String: Record]>([:])

    init(_ settings: Settings = Settings()) { self.settings = settings }

    /// Whether `agent` may run on the loop now.
    func mayRunInline(_ agent: String, now: Int64) -> Bool {
        records.withLock { r in
            guard let x = r[agent] else { return false }
            return x.quick >= settings.promoteAfter && now >= x.offUntil
        }
    }

    /// A dispatched answer from `agent` took `nanos` from routing to posting.
    func answered(_ agent: String, nanos: Int64) {
        update(agent) { x in
            if nanos > settings.quickAnswerNanos { x.quick = 0 } else if x.quick < settings.promoteAfter { x.quick += 1 }
        }
    }

    /// An inline run of `agent` took `nanos`, ending at `now`.
    func ranInline(_ agent: String, nanos: Int64, now: Int64) {
        guard nanos > settings.quickRunNanos else { return }
        update(agent) { x in
            x.quick = 0
            x.offUntil = now + settings.penaltyNanos
        }
    }

    private func update(_ agent: String, _ change: (inout Record) -> Void) {
        records.withLock { r in
            if r[agent] == nil && r.count >= settings.remembered { r.removeAll(keepingCapacity: true) }
            change(&r[agent, default: Record()])
        }
    }
}
