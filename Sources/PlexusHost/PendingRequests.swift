import PlexusThreads
import PlexusMetrics
import Glibc
import PlexusCore
import Synchronization

/// Who is waiting for a reply.
enum Requester: @unchecked Sendable {
    case agent(Agent)
    /// An external caller (CLI, socket client, Swift API). Called once, on
    /// whichever thread resolves the request: it must not block.
    case callback(@Sendable (Envelope) -> Void)
    /// An external caller that reads a stream (ABI 1.2): called for each
    /// partial answer (Envelope.isPartial), in order, then once for the
    /// final one. It must not block.
    case stream(@Sendable (Envelope) -> Void)
}

/// Requests waiting for their reply, and the timer that ends those whose
/// deadline passes.
///
/// A request's id names its own slot: `lo` is a tag bit, the slot's
/// generation and the slot index, `hi` the host's node. Finding a request is
/// an array index and a generation compare, with no hashing; a reused slot
/// has a new generation, so an old id never matches it.
///
/// Deadlines sit in a wheel of 1 ms buckets: a request costs one append, and
/// an answered request leaves a stale key behind that the timer drops when it
/// passes its bucket (a compare, under the lock for a few nanoseconds each).
///
/// The table is split into shards, each with its own lock, chosen by the
/// requesting agent, so agents on different cores do not contend.
final class PendingRequests: @unchecked Sendable {
    private let shards: [PendingShard]
    private let rotation = Atomic<Int>(0)
    private let lock = ConditionLock()   // guards stopping and kicked; the timer sleeps on it
    private var stopping = false
    private var kicked = false
    /// When the sleeping timer wakes next (monotonic ms): 0 while it is
    /// awake, Int64.max while the table is empty. A request due sooner
    /// rings it (add); the message path pays one atomic load for this.
    private let plannedWakeMs = Atomic<Int64>(0)
    /// Times the timer went to sleep with nothing to wait for (tests).
    let parkings = Atomic<Int>(0)
    private var timer: OwnedThread?
    static let shardCount = 16

    typealias Entry = PendingShard.Entry

    /// Called (outside any lock) for each request whose deadline passed.
    var onTimeout: ((plexus_id, Entry) -> Void)?

    /// node is the `hi` half of every id this table hands out.
    init(node: UInt64) {
        shards = (0..<Self.shardCount).map { PendingShard(node: node, shard: UInt64($0)) }
    }

    var count: Int { shards.reduce(0) { $0 + $1.count } }

    func start() throws(ThreadStartError) {
        timer = try startThread(name: "plexus-timer") { [self] in self.timerLoop() }
    }

    func stop() {
        lock.withLock { stopping = true; lock.signal() }
        timer?.join()
        timer = nil
    }

    /// Records e and returns the id the request must carry.
    func add(_ e: __owned Entry) throws(PlexusError) -> plexus_id {
        let k: Int
        if case .agent(let a) = e.requester { k = a.shard } else { k = rotation.add(1, ordering: .relaxed).newValue }
        let due = PendingShard.dueMs(e.deadlineMono)
        let id = try shards[k & (Self.shardCount - 1)].add(e)
        // After the add (its shard's lock) and before the timer's second look (see timerLoop).
        if due < plannedWakeMs.load(ordering: .sequentiallyConsistent) { lock.withLock { kicked = true; lock.signal() } }
        return id
    }

    /// Removes and returns the entry if `responder` may answer it.
    func take(_ id: plexus_id, responder: Agent?) -> Entry? {
        take(id, responderID: responder.map { Unmanaged.passUnretained($0).toOpaque() })
    }

    /// The same with the responder's identity (Unmanaged.toOpaque), which
    /// the router has without holding a reference.
    func take(_ id: plexus_id, responderID: UnsafeMutableRawPointer?) -> Entry? {
        shards[PendingShard.shard(of: id.lo)].take(id, responderID: responderID)
    }

    /// Removes every entry (at shutdown) and returns them.
    func takeAll() -> [(plexus_id, Entry)] { shards.flatMap { $0.takeAll() } }

    /// Runs body on the entry, left in place, if `responderID` may answer
    /// it (a partial answer); nil when no such request is open. Under the
    /// shard's lock: body must only read and enqueue, never call back here.
    func withOpen<R>(_ id: plexus_id, responderID: UnsafeMutableRawPointer?, _ body: (borrowing Entry) -> R) -> R? {
        shards[PendingShard.shard(of: id.lo)].withOpen(id, responderID: responderID, body)
    }

    /// Removes and returns the entry if its requester is `requesterID`
    /// (an agent's identity), or, for nil, if it is not an agent (a caller
    /// of the Swift API, a socket client, the task service): a cancel.
    func take(_ id: plexus_id, requesterID: UnsafeMutableRawPointer?) -> Entry? {
        shards[PendingShard.shard(of: id.lo)].take(id, requesterID: requesterID)
    }

    /// A reload moved the request from one version of an agent to the next
    /// (or back): the new one is who may now answer it.
    func transfer(_ id: plexus_id, from old: Agent, to new: Agent) {
        shards[PendingShard.shard(of: id.lo)].transfer(id, from: old, to: new)
    }

    /// Whether the request is open and `responder` is who may answer it.
    func isOpen(_ id: plexus_id, responder: Agent) -> Bool {
        shards[PendingShard.shard(of: id.lo)].isOpen(id, responder: responder)
    }

    /// The open requests only `responder` may answer: a scan of every
    /// shard, for a stop or a drain (never on the message path).
    func open(answeredBy responder: Agent) -> [plexus_id] {
        shards.flatMap { $0.open(answeredBy: responder) }
    }

    /// Ends the requests whose deadline passed, then sleeps until the first
    /// wheel bucket that holds a key (a request due then, or one to move on
    /// a lap), not a tick at a time: with nothing waiting it sleeps until a
    /// request comes (an idle host makes no wake-ups), and with requests of
    /// seconds it wakes once a lap (64 ms) instead of every millisecond.
    private func timerLoop() {
        var expired: [(plexus_id, Entry)] = []
        while true {
            plannedWakeMs.store(0, ordering: .sequentiallyConsistent)   // awake: no add rings
            let nowMs = Clock.monotonicNanos() / 1_000_000
            for s in shards { s.tick(nowMs: nowMs, into: &expired) }
            for (id, e) in expired { onTimeout?(id, e) }
            let idle = expired.isEmpty
            expired.removeAll(keepingCapacity: true)
            lock.lock()
            if stopping { lock.unlock(); return }
            if idle {
                // The plan is published, then the shards are looked at again:
                // an add that the first look missed is seen now, or it comes
                // after this store and rings (add reads the plan after its shard's lock).
                var next = nextDue(after: nowMs)
                plannedWakeMs.store(next, ordering: .sequentiallyConsistent)
                next = min(next, nextDue(after: nowMs))
                if next == .max { parkings.add(1, ordering: .relaxed) }
                if !kicked { lock.wait(untilMonotonic: next == .max ? nil : next * 1_000_000) }
                kicked = false
            }
            lock.unlock()
        }
    }

    private func nextDue(after nowMs: Int64) -> Int64 {
        shards.reduce(Int64.max) { min($0, $1.nextDueMs(after: nowMs)) }
    }
}

/// One shard of the pending table.
final class PendingShard: @unchecked Sendable {
    struct Entry {
        let requester: Requester
        var responder: Agent?      // who may reply; nil when any agent may (topics); a reload may hand it on
        let deadlineMono: Int64
        let target: String         // for the timeout message
        let timeoutMs: Int64
        /// plexus_request_seconds: the histogram and the start in meter-clock ticks (metrics on).
        /// Unretained: it belongs to the responder (held above), a capability
        /// or HostMetrics, which all outlive the request.
        var timer: Unmanaged<AtomicHistogram>? = nil
        var startTicks: Int64 = 0
        /// Whether the requester records the request's time itself, when it
        /// starts handling the answer: an in-process agent with meters
        /// (Router.invoke reads the clock there anyway).
        var requesterTimesItself: Bool {
            if case .agent(let a) = requester { return a.link == nil && a.metersRef != nil }
            return false
        }
        /// The request's trace: its reply continues it, whoever sends the
        /// reply and whenever (a worker may answer after its handler returned).
        var trace: plexus_id = .none
        /// Whether the request was traced (tracing.rate admitted it): its
        /// reply is recorded exactly when it was.
        var traced = false
        /// Whether a partial answer reached it (ABI 1.2): a deadline that
        /// passes then cuts a stream short (EXPIRED), not a silence (TIMEOUT).
        var streamed = false
    }

    // lo = tag(1) | generation | shard(4) | index(20)
    private static let indexBits: UInt64 = 20
    private static let shardBits: UInt64 = 4
    private static let indexMask: UInt64 = (1 << indexBits) - 1
    private static let tag: UInt64 = 1 << 63
    /// At most this many requests wait at once in one shard (1 million).
    static let maxInFlight = Int(indexMask) + 1

    static func shard(of lo: UInt64) -> Int { Int((lo >> indexBits) & ((1 << shardBits) - 1)) }
    private static let buckets = 64

    /// What the id check and the timer read, kept apart from the entries:
    /// plain values, so checking a slot never copies (or retains) an entry.
    private struct Meta {
        var generation: UInt64 = 0
        var live = false
        var deadlineMono: Int64 = 0
    }

    /// Everything the lock guards, behind one pointer: the hot path then
    /// pays for the mutex only, not for Swift's dynamic exclusivity checks.
    /// The slots are raw buffers (grown by doubling), so a slot is reached
    /// by its address, never through a copy-on-write array.
    private struct State {
        var meta: UnsafeMutablePointer<Meta> = .allocate(capacity: 0)
        var entries: UnsafeMutablePointer<Entry?> = .allocate(capacity: 0)
        var slotCount = 0
        var slotCapacity = 0
        var free: [Int] = []
        var count = 0
        var wheel: [[UInt64]] = Array(repeating: [], count: PendingShard.buckets)
        var lastTickMs: Int64 = Clock.monotonicNanos() / 1_000_000
        var scratch: [UInt64] = []

        /// Appends an empty slot, doubling the buffers when full.
        mutating func appendSlot() {
            if slotCount == slotCapacity {
                let cap = max(16, slotCapacity * 2)
                let m = UnsafeMutablePointer<Meta>.allocate(capacity: cap)
                let e = UnsafeMutablePointer<Entry?>.allocate(capacity: cap)
                m.moveInitialize(from: meta, count: slotCount)
                e.moveInitialize(from: entries, count: slotCount)
                meta.deallocate(); entries.deallocate()
                meta = m; entries = e; slotCapacity = cap
            }
            (meta + slotCount).initialize(to: Meta())
            (entries + slotCount).initialize(to: nil)
            slotCount += 1
        }

        func release() {
            meta.deinitialize(count: slotCount); meta.deallocate()
            entries.deinitialize(count: slotCount); entries.deallocate()
        }
    }

    private let node: UInt64
    private let shardBitsInKey: UInt64
    private let lock = ConditionLock()
    private let state = UnsafeMutablePointer<State>.allocate(capacity: 1)

    init(node: UInt64, shard: UInt64) {
        self.node = node
        self.shardBitsInKey = shard << Self.indexBits
        state.initialize(to: State())
    }

    deinit { state.pointee.release(); state.deinitialize(count: 1); state.deallocate() }

    var count: Int { lock.withLock { state.pointee.count } }

    /// Records e and returns the id the request must carry.
    func add(_ e: __owned Entry) throws(PlexusError) -> plexus_id {
        lock.lock()
        defer { lock.unlock() }
        let s = state
        let index: Int
        if let i = s.pointee.free.popLast() {
            index = i
        } else {
            guard s.pointee.slotCount < Self.maxInFlight else {
                throw PlexusError(.NO_MEMORY, "\(Self.maxInFlight) requests from agents like this one are already waiting for replies")
            }
            index = s.pointee.slotCount
            s.pointee.appendSlot()
        }
        let m = s.pointee.meta + index
        m.pointee.generation &+= 1
        m.pointee.live = true
        m.pointee.deadlineMono = e.deadlineMono
        (s.pointee.entries + index).pointee = e
        s.pointee.count += 1
        let key = makeKey(generation: m.pointee.generation, index: index)
        s.pointee.wheel[Self.bucket(e.deadlineMono)].append(key)
        return plexus_id(hi: node, lo: key)
    }

    /// Removes and returns the entry if `responder` may answer it.
    func take(_ id: plexus_id, responderID: UnsafeMutableRawPointer?) -> Entry? {
        guard id.hi == node, id.lo & Self.tag != 0 else { return nil }
        lock.lock()
        defer { lock.unlock() }
        let i = Int(id.lo & Self.indexMask)
        guard isLive(id.lo) else { return nil }
        // Checked in place and moved out: no copy of the entry's references.
        if let r = (state.pointee.entries + i).pointee?.responder,
           Unmanaged.passUnretained(r).toOpaque() != responderID { return nil }
        return remove(i)
    }

    func withOpen<R>(_ id: plexus_id, responderID: UnsafeMutableRawPointer?, _ body: (borrowing Entry) -> R) -> R? {
        guard id.hi == node, id.lo & Self.tag != 0 else { return nil }
        lock.lock()
        defer { lock.unlock() }
        let i = Int(id.lo & Self.indexMask)
        guard isLive(id.lo), let e = (state.pointee.entries + i).pointee else { return nil }
        if let r = e.responder, Unmanaged.passUnretained(r).toOpaque() != responderID { return nil }
        (state.pointee.entries + i).pointee?.streamed = true
        return body(e)
    }

    func take(_ id: plexus_id, requesterID: UnsafeMutableRawPointer?) -> Entry? {
        guard id.hi == node, id.lo & Self.tag != 0 else { return nil }
        lock.lock()
        defer { lock.unlock() }
        let i = Int(id.lo & Self.indexMask)
        guard isLive(id.lo) else { return nil }
        switch (state.pointee.entries + i).pointee?.requester {
        case .agent(let a)?: guard Unmanaged.passUnretained(a).toOpaque() == requesterID else { return nil }
        case .callback?, .stream?: guard requesterID == nil else { return nil }
        case nil: return nil
        }
        return remove(i)
    }

    /// See PendingRequests.transfer; only an entry `old` may answer changes.
    func transfer(_ id: plexus_id, from old: Agent, to new: Agent) {
        guard id.hi == node, id.lo & Self.tag != 0 else { return }
        lock.lock()
        defer { lock.unlock() }
        let i = Int(id.lo & Self.indexMask)
        guard isLive(id.lo), (state.pointee.entries + i).pointee?.responder === old else { return }
        (state.pointee.entries + i).pointee?.responder = new
    }

    func isOpen(_ id: plexus_id, responder: Agent) -> Bool {
        guard id.hi == node, id.lo & Self.tag != 0 else { return false }
        return lock.withLock {
            isLive(id.lo) && (state.pointee.entries + Int(id.lo & Self.indexMask)).pointee?.responder === responder
        }
    }

    func open(answeredBy responder: Agent) -> [plexus_id] {
        lock.withLock {
            var ids: [plexus_id] = []
            for i in 0..<state.pointee.slotCount where state.pointee.meta[i].live {
                guard (state.pointee.entries + i).pointee?.responder === responder else { continue }
                ids.append(plexus_id(hi: node, lo: makeKey(generation: state.pointee.meta[i].generation, index: i)))
            }
            return ids
        }
    }

    /// Removes every entry (at shutdown) and returns them.
    func takeAll() -> [(plexus_id, Entry)] {
        lock.withLock {
            var all: [(plexus_id, Entry)] = []
            for i in 0..<state.pointee.slotCount {
                let key = makeKey(generation: state.pointee.meta[i].generation, index: i)
                guard isLive(key), let e = remove(i) else { continue }
                all.append((plexus_id(hi: node, lo: key), e))
            }
            return all
        }
    }

    private static let genShift = indexBits + shardBits

    private func makeKey(generation: UInt64, index: Int) -> UInt64 {
        Self.tag | (generation << Self.genShift) & ~Self.tag | shardBitsInKey | UInt64(index)
    }

    // MARK: lock held

    /// Whether key names a slot that holds its request still.
    private func isLive(_ key: UInt64) -> Bool {
        let i = Int(key & Self.indexMask)
        guard i < state.pointee.slotCount else { return false }
        let m = state.pointee.meta + i
        return m.pointee.live && makeKey(generation: m.pointee.generation, index: i) == key
    }

    /// Empties slot i and returns what it held (moved, not copied).
    @discardableResult
    private func remove(_ i: Int) -> Entry? {
        state.pointee.meta[i].live = false
        let e = (state.pointee.entries + i).move()
        (state.pointee.entries + i).initialize(to: nil)
        state.pointee.free.append(i)
        state.pointee.count -= 1
        return e
    }

    /// The millisecond a deadline is due in, rounded up: a request never
    /// times out before its deadline, so a worker that checks the same
    /// deadline (plexus-worker's open requests) never sees it still open
    /// after the caller heard TIMEOUT.
    static func dueMs(_ deadlineMono: Int64) -> Int64 { (deadlineMono + 999_999) / 1_000_000 }

    private static func bucket(_ deadlineMono: Int64) -> Int {
        Int(dueMs(deadlineMono) % Int64(buckets))
    }

    /// The first millisecond after nowMs whose bucket holds a key; Int64.max
    /// when the shard holds no request (its stale keys are dropped then).
    func nextDueMs(after nowMs: Int64) -> Int64 {
        lock.lock()
        defer { lock.unlock() }
        if state.pointee.count == 0 {
            for b in 0..<Self.buckets where !state.pointee.wheel[b].isEmpty { state.pointee.wheel[b].removeAll(keepingCapacity: true) }
            return .max
        }
        for d in 1...Int64(Self.buckets) where !state.pointee.wheel[Int((nowMs + d) % Int64(Self.buckets))].isEmpty {
            return nowMs + d
        }
        return .max
    }

    /// Visits every wheel bucket passed since the last tick.
    func tick(nowMs: Int64, into expired: inout [(plexus_id, Entry)]) {
        lock.lock()
        defer { lock.unlock() }
        var ms = state.pointee.lastTickMs + 1
        // After a long stall every bucket has been passed once: visit each at most once.
        if nowMs - state.pointee.lastTickMs > Int64(Self.buckets) { ms = nowMs - Int64(Self.buckets) + 1 }
        while ms <= nowMs {
            sweep(bucket: Int(ms % Int64(Self.buckets)), nowMs: nowMs, into: &expired)
            ms += 1
        }
        state.pointee.lastTickMs = nowMs
    }

    /// Drops answered keys from one bucket, ends the due requests, and moves
    /// the others (deadlines a lap or more away) to their bucket again.
    private func sweep(bucket b: Int, nowMs: Int64, into expired: inout [(plexus_id, Entry)]) {
        var keys: [UInt64] = []
        swap(&keys, &state.pointee.scratch)
        swap(&keys, &state.pointee.wheel[b])   // the bucket keeps the old scratch's capacity
        defer { keys.removeAll(keepingCapacity: true); state.pointee.scratch = keys }
        for key in keys {
            guard isLive(key) else { continue }  // already answered
            let deadline = state.pointee.meta[Int(key & Self.indexMask)].deadlineMono
            if Self.dueMs(deadline) <= nowMs {
                if let e = remove(Int(key & Self.indexMask)) { expired.append((plexus_id(hi: node, lo: key), e)) }
            } else {
                state.pointee.wheel[Self.bucket(deadline)].append(key)
            }
        }
    }
}
