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
/// passes its bucket (a load and a compare each).
///
/// No lock on the message path (PendingShard): a request's slot is claimed
/// and answered with atomic operations. The table is split into shards,
/// chosen by the requesting agent, so agents on different cores do not
/// share the words they update.
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
    func add(_ e: consuming Entry) throws(PlexusError) -> plexus_id {
        let k: Int
        if case .agent(let a) = e.requester { k = a.shard } else { k = rotation.add(1, ordering: .relaxed).newValue }
        let due = PendingShard.dueMs(e.deadlineMono)
        let id = try shards[k & (Self.shardCount - 1)].add(consume e, kick: kick)   // moved in: no copy of its references
        // After the add (its queue's sequentially consistent store) and before the timer's second look (see timerLoop).
        if due < plannedWakeMs.load(ordering: .sequentiallyConsistent) { kick() }
        return id
    }

    /// Wakes the timer now.
    private func kick() { lock.withLock { kicked = true; lock.signal() } }

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

/// One shard of the pending table, without a lock.
///
/// Each slot has a state word: its generation and a phase (free, live, or
/// busy while one thread reads or changes its entry). Taking a request is
/// one compare-and-swap from live to busy for the id's generation (a stale
/// or forged id fails it), a move of the entry out, and a store of the next
/// generation's free state; so only the thread that won the swap touches
/// the entry, and two answers to one request cannot both take it. Free slots
/// are a lock-free stack (its head carries a counter against ABA); slots live
/// in segments of 1,024 allocated on first use and kept until the shard
/// goes, so a slot's address never changes while another thread reads it.
///
/// Deadlines: `add` pushes the key and its due millisecond to a bounded
/// queue that only the timer thread empties into its own wheel (no lock on
/// either side); a full queue spills into a locked list, which only then
/// costs a lock.
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
    private static let genShift = indexBits + shardBits
    private static let genMask: UInt64 = (1 << (63 - genShift)) - 1
    /// At most this many requests wait at once in one shard (1 million).
    static let maxInFlight = Int(indexMask) + 1

    static func shard(of lo: UInt64) -> Int { Int((lo >> indexBits) & ((1 << shardBits) - 1)) }
    private static let buckets = 64

    // Slot phases (the state word's low two bits; the generation is above them).
    private static let free: UInt64 = 0, live: UInt64 = 1, busy: UInt64 = 2

    private struct Slot: ~Copyable {
        let state = Atomic<UInt64>(0)
        /// The free stack's link: the next free index + 1, 0 for none.
        let next = Atomic<UInt64>(0)
        /// Written by `add` before the slot is published, then read and
        /// changed only by the thread holding it busy.
        var deadlineMono: Int64 = 0
        var entry: Entry? = nil
    }

    private static let segmentBits = 10
    private static let segmentSize = 1 << segmentBits
    private static let segmentCount = maxInFlight >> segmentBits

    private let node: UInt64
    private let shardBitsInKey: UInt64
    private let segments: UnsafeMutablePointer<Atomic<UnsafeMutablePointer<Slot>?>>
    /// Indexes handed out so far (it may pass maxInFlight: each add refused counts).
    private let highWater = Atomic<Int>(0)
    /// The free stack's head: a counter (upper 32 bits) and the top index + 1.
    private let freeHead = Atomic<UInt64>(0)
    private let live = Atomic<Int>(0)
    /// 96 KiB, made by the shard's first request: the timer drains it every
    /// millisecond while requests flow, so it holds over 2 ms of the
    /// fastest a shard is fed (about 1.2 million requests a second here)
    /// before a push asks the timer to come early.
    private let queue = DueQueue(capacity: 4096)
    /// Where keys go when the queue is full (then only: one lock).
    private let overflow = Mutex<[(key: UInt64, dueMs: Int64)]>([])
    private let overflowed = Atomic<Bool>(false)

    // The timer thread's alone: the wheel of 1 ms buckets of keys.
    private var wheel: [[UInt64]] = Array(repeating: [], count: PendingShard.buckets)
    private var lastTickMs: Int64 = Clock.monotonicNanos() / 1_000_000
    private var scratch: [UInt64] = []

    init(node: UInt64, shard: UInt64) {
        self.node = node
        self.shardBitsInKey = shard << Self.indexBits
        segments = .allocate(capacity: Self.segmentCount)
        for i in 0..<Self.segmentCount { (segments + i).initialize(to: Atomic(nil)) }
    }

    deinit {
        for i in 0..<Self.segmentCount {
            if let seg = segments[i].load(ordering: .acquiring) {
                seg.deinitialize(count: Self.segmentSize)
                seg.deallocate()
            }
        }
        segments.deinitialize(count: Self.segmentCount)
        segments.deallocate()
    }

    var count: Int { live.load(ordering: .relaxed) }

    /// Records e and returns the id the request must carry. `kick` is
    /// called when the timer should look at the queue now (it is filling).
    func add(_ e: consuming Entry, kick: () -> Void) throws(PlexusError) -> plexus_id {
        guard let i = popFree() ?? claimNew() else {
            throw PlexusError(.NO_MEMORY, "\(Self.maxInFlight) requests from agents like this one are already waiting for replies")
        }
        let s = slot(i).unsafelyUnwrapped
        let gen = ((s.pointee.state.load(ordering: .relaxed) >> 2) &+ 1) & Self.genMask
        let due = Self.dueMs(e.deadlineMono)
        s.pointee.deadlineMono = e.deadlineMono
        s.pointee.entry = consume e
        live.wrappingAdd(1, ordering: .relaxed)   // before it is live: a count of 0 means no live slot (nextDueMs)
        s.pointee.state.store(gen << 2 | Self.live, ordering: .releasing)
        let key = makeKey(generation: gen, index: i)
        switch queue.push(key, dueMs: due) {
        case .pushed(let half): if half { kick() }
        case .full:
            overflow.withLock { $0.append((key, due)) }
            overflowed.store(true, ordering: .sequentiallyConsistent)
            kick()
        }
        return plexus_id(hi: node, lo: key)
    }

    /// Removes and returns the entry if `responder` may answer it.
    func take(_ id: plexus_id, responderID: UnsafeMutableRawPointer?) -> Entry? {
        guard let s = acquire(id) else { return nil }
        if let r = s.pointee.entry?.responder, Unmanaged.passUnretained(r).toOpaque() != responderID {
            release(s, id.lo)
            return nil
        }
        return remove(s, id.lo)
    }

    func withOpen<R>(_ id: plexus_id, responderID: UnsafeMutableRawPointer?, _ body: (borrowing Entry) -> R) -> R? {
        guard let s = acquire(id) else { return nil }
        defer { release(s, id.lo) }
        if let r = s.pointee.entry?.responder, Unmanaged.passUnretained(r).toOpaque() != responderID { return nil }
        s.pointee.entry?.streamed = true
        guard let e = s.pointee.entry else { return nil }
        return body(e)
    }

    func take(_ id: plexus_id, requesterID: UnsafeMutableRawPointer?) -> Entry? {
        guard let s = acquire(id) else { return nil }
        let mine: Bool
        switch s.pointee.entry?.requester {
        case .agent(let a)?: mine = Unmanaged.passUnretained(a).toOpaque() == requesterID
        case .callback?, .stream?: mine = requesterID == nil
        case nil: mine = false
        }
        guard mine else { release(s, id.lo); return nil }
        return remove(s, id.lo)
    }

    /// See PendingRequests.transfer; only an entry `old` may answer changes.
    func transfer(_ id: plexus_id, from old: Agent, to new: Agent) {
        guard let s = acquire(id) else { return }
        if s.pointee.entry?.responder === old { s.pointee.entry?.responder = new }
        release(s, id.lo)
    }

    func isOpen(_ id: plexus_id, responder: Agent) -> Bool {
        guard let s = acquire(id) else { return false }
        defer { release(s, id.lo) }
        return s.pointee.entry?.responder === responder
    }

    /// A scan of every slot, for a stop or a drain (never on the message path).
    func open(answeredBy responder: Agent) -> [plexus_id] {
        var ids: [plexus_id] = []
        forEachLive { s, key in
            if s.pointee.entry?.responder === responder { ids.append(plexus_id(hi: node, lo: key)) }
            release(s, key)
        }
        return ids
    }

    /// Removes every entry (at shutdown) and returns them.
    func takeAll() -> [(plexus_id, Entry)] {
        var all: [(plexus_id, Entry)] = []
        forEachLive { s, key in
            if let e = remove(s, key) { all.append((plexus_id(hi: node, lo: key), e)) }
        }
        return all
    }

    private func makeKey(generation: UInt64, index: Int) -> UInt64 {
        Self.tag | (generation << Self.genShift) & ~Self.tag | shardBitsInKey | UInt64(index)
    }

    // MARK: slots

    /// Slot i, if its segment exists (an index from a forged id may not).
    @inline(__always)
    private func slot(_ i: Int) -> UnsafeMutablePointer<Slot>? {
        guard i < Self.maxInFlight, let seg = segments[i >> Self.segmentBits].load(ordering: .acquiring) else { return nil }
        return seg + (i & (Self.segmentSize - 1))
    }

    /// Makes the slot `key` names busy, if it is live in that generation;
    /// waits out another thread's brief hold of it.
    @inline(__always)
    private func acquire(_ id: plexus_id) -> UnsafeMutablePointer<Slot>? {
        guard id.hi == node, id.lo & Self.tag != 0, Self.shard(of: id.lo) == Int(shardBitsInKey >> Self.indexBits),
              let s = slot(Int(id.lo & Self.indexMask)) else { return nil }
        return acquire(s, id.lo) ? s : nil
    }

    private func acquire(_ s: UnsafeMutablePointer<Slot>, _ key: UInt64) -> Bool {
        let gen = (key >> Self.genShift) & Self.genMask
        let open = gen << 2 | Self.live
        var spins = 0
        while true {
            let (won, now) = s.pointee.state.compareExchange(expected: open, desired: gen << 2 | Self.busy,
                                                             ordering: .acquiringAndReleasing)
            if won { return true }
            guard now == gen << 2 | Self.busy else { return false }   // answered, reused, or never this generation
            spins += 1
            if spins > 64 { sched_yield() }   // its holder was preempted
        }
    }

    private func release(_ s: UnsafeMutablePointer<Slot>, _ key: UInt64) {
        s.pointee.state.store(((key >> Self.genShift) & Self.genMask) << 2 | Self.live, ordering: .releasing)
    }

    /// Empties a slot held busy and returns what it held (moved, not copied).
    private func remove(_ s: UnsafeMutablePointer<Slot>, _ key: UInt64) -> Entry? {
        let e = s.pointee.entry.take()
        s.pointee.state.store(((key >> Self.genShift) & Self.genMask) << 2 | Self.free, ordering: .releasing)
        live.wrappingSubtract(1, ordering: .relaxed)
        pushFree(Int(key & Self.indexMask), s)
        return e
    }

    /// Runs body on every live slot, held busy (body releases or removes it).
    private func forEachLive(_ body: (UnsafeMutablePointer<Slot>, UInt64) -> Void) {
        let n = min(highWater.load(ordering: .acquiring), Self.maxInFlight)
        for i in 0..<n {
            guard let s = slot(i) else { continue }
            let st = s.pointee.state.load(ordering: .acquiring)
            guard st & 3 != Self.free else { continue }
            let key = makeKey(generation: st >> 2, index: i)
            if acquire(s, key) { body(s, key) }
        }
    }

    private func popFree() -> Int? {
        var h = freeHead.load(ordering: .acquiring)
        while true {
            let top = h & 0xffff_ffff
            guard top != 0, let s = slot(Int(top - 1)) else { return nil }
            let next = s.pointee.next.load(ordering: .relaxed)
            let (won, now) = freeHead.compareExchange(expected: h, desired: ((h >> 32) &+ 1) << 32 | next,
                                                      ordering: .acquiringAndReleasing)
            if won { return Int(top - 1) }
            h = now
        }
    }

    private func pushFree(_ i: Int, _ s: UnsafeMutablePointer<Slot>) {
        var h = freeHead.load(ordering: .relaxed)
        while true {
            s.pointee.next.store(h & 0xffff_ffff, ordering: .relaxed)
            let (won, now) = freeHead.compareExchange(expected: h, desired: ((h >> 32) &+ 1) << 32 | UInt64(i + 1),
                                                      ordering: .acquiringAndReleasing)
            if won { return }
            h = now
        }
    }

    /// A never-used index, its segment made; nil when the shard is full.
    private func claimNew() -> Int? {
        let i = highWater.wrappingAdd(1, ordering: .acquiringAndReleasing).oldValue
        guard i < Self.maxInFlight else { return nil }
        let k = i >> Self.segmentBits
        if segments[k].load(ordering: .acquiring) == nil {
            let seg = UnsafeMutablePointer<Slot>.allocate(capacity: Self.segmentSize)
            for j in 0..<Self.segmentSize { (seg + j).initialize(to: Slot()) }
            let (won, _) = segments[k].compareExchange(expected: nil, desired: seg, ordering: .acquiringAndReleasing)
            if !won { seg.deinitialize(count: Self.segmentSize); seg.deallocate() }
        }
        return i
    }

    // MARK: deadlines (the timer thread only)

    /// The millisecond a deadline is due in, rounded up: a request never
    /// times out before its deadline, so a worker that checks the same
    /// deadline (plexus-worker's open requests) never sees it still open
    /// after the caller heard TIMEOUT.
    static func dueMs(_ deadlineMono: Int64) -> Int64 { (deadlineMono + 999_999) / 1_000_000 }

    /// Moves the queued keys into the wheel; one due in a bucket already
    /// passed goes in the next one to be swept.
    private func drain() {
        while let (key, due) = queue.pop() { file(key, dueMs: due) }
        if overflowed.load(ordering: .sequentiallyConsistent) {
            overflowed.store(false, ordering: .sequentiallyConsistent)
            let spilled: [(key: UInt64, dueMs: Int64)] = overflow.withLock { o in
                let all = o
                o.removeAll()
                return all
            }
            for k in spilled { file(k.key, dueMs: k.dueMs) }
        }
    }

    private func file(_ key: UInt64, dueMs: Int64) {
        wheel[Int(max(dueMs, lastTickMs + 1) % Int64(Self.buckets))].append(key)
    }

    /// The first millisecond after nowMs whose bucket holds a key; Int64.max
    /// when the shard holds no request (its stale keys are dropped then).
    func nextDueMs(after nowMs: Int64) -> Int64 {
        drain()
        if live.load(ordering: .sequentiallyConsistent) == 0 {
            // Every key filed so far is an answered request's (add counts before it queues).
            for b in 0..<Self.buckets where !wheel[b].isEmpty { wheel[b].removeAll(keepingCapacity: true) }
            return .max
        }
        for d in 1...Int64(Self.buckets) where !wheel[Int((nowMs + d) % Int64(Self.buckets))].isEmpty {
            return nowMs + d
        }
        return .max
    }

    /// Visits every wheel bucket passed since the last tick.
    func tick(nowMs: Int64, into expired: inout [(plexus_id, Entry)]) {
        drain()
        var ms = lastTickMs + 1
        // After a long stall every bucket has been passed once: visit each at most once.
        if nowMs - lastTickMs > Int64(Self.buckets) { ms = nowMs - Int64(Self.buckets) + 1 }
        while ms <= nowMs {
            sweep(bucket: Int(ms % Int64(Self.buckets)), nowMs: nowMs, into: &expired)
            ms += 1
        }
        lastTickMs = nowMs
    }

    /// Drops answered keys from one bucket, ends the due requests, and moves
    /// the others (deadlines a lap or more away) to their bucket again.
    private func sweep(bucket b: Int, nowMs: Int64, into expired: inout [(plexus_id, Entry)]) {
        var keys: [UInt64] = []
        swap(&keys, &scratch)
        swap(&keys, &wheel[b])   // the bucket keeps the old scratch's capacity
        defer { keys.removeAll(keepingCapacity: true); scratch = keys }
        for key in keys {
            guard let s = slot(Int(key & Self.indexMask)), acquire(s, key) else { continue }  // already answered
            let deadline = s.pointee.deadlineMono
            if Self.dueMs(deadline) <= nowMs {
                if let e = remove(s, key) { expired.append((plexus_id(hi: node, lo: key), e)) }
            } else {
                release(s, key)
                wheel[Self.bucket(deadline)].append(key)
            }
        }
    }

    private static func bucket(_ deadlineMono: Int64) -> Int {
        Int(dueMs(deadlineMono) % Int64(buckets))
    }
}

/// A bounded queue of (key, due ms) from any number of adding threads to
/// the timer thread (Vyukov's bounded queue: a sequence number per cell,
/// one compare-and-swap per push, none per pop).
final class DueQueue: @unchecked Sendable {
    private struct Cell: ~Copyable {
        let sequence: Atomic<UInt64>
        var key: UInt64 = 0
        var dueMs: Int64 = 0
    }
    enum Push { case pushed(half: Bool), full }

    /// Made on the first push (a host has 16 shards; most never see a request).
    private let storage = Atomic<UnsafeMutablePointer<Cell>?>(nil)
    private let capacity: Int
    private let mask: UInt64
    private let tail = Atomic<UInt64>(0)
    private var head: UInt64 = 0   // the timer's alone

    init(capacity: Int) {
        precondition(capacity > 1 && capacity & (capacity - 1) == 0)
        self.capacity = capacity
        mask = UInt64(capacity - 1)
    }

    deinit {
        guard let cells = storage.load(ordering: .acquiring) else { return }
        cells.deinitialize(count: capacity)
        cells.deallocate()
    }

    private var cells: UnsafeMutablePointer<Cell> {
        if let c = storage.load(ordering: .acquiring) { return c }
        let c = UnsafeMutablePointer<Cell>.allocate(capacity: capacity)
        for i in 0..<capacity { (c + i).initialize(to: Cell(sequence: Atomic(UInt64(i)))) }
        let (won, theirs) = storage.compareExchange(expected: nil, desired: c, ordering: .acquiringAndReleasing)
        if won { return c }
        c.deinitialize(count: capacity)
        c.deallocate()
        return theirs.unsafelyUnwrapped
    }

    /// `half`: another half of the queue's capacity has been pushed since
    /// the last such push (the timer should drain it before it fills).
    func push(_ key: UInt64, dueMs: Int64) -> Push {
        let cells = self.cells
        var pos = tail.load(ordering: .relaxed)
        while true {
            let c = cells + Int(pos & mask)
            let seq = c.pointee.sequence.load(ordering: .acquiring)
            if seq == pos {
                let (won, now) = tail.compareExchange(expected: pos, desired: pos &+ 1, ordering: .relaxed)
                if won {
                    c.pointee.key = key
                    c.pointee.dueMs = dueMs
                    // Sequentially consistent: the adder reads the timer's plan after this (PendingRequests.add).
                    c.pointee.sequence.store(pos &+ 1, ordering: .sequentiallyConsistent)
                    return .pushed(half: pos & (mask >> 1) == mask >> 1)
                }
                pos = now
            } else if seq < pos {
                return .full
            } else {
                pos = tail.load(ordering: .relaxed)
            }
        }
    }

    func pop() -> (UInt64, Int64)? {
        guard let cells = storage.load(ordering: .sequentiallyConsistent) else { return nil }   // see push
        let c = cells + Int(head & mask)
        guard c.pointee.sequence.load(ordering: .sequentiallyConsistent) == head &+ 1 else { return nil }
        let out = (c.pointee.key, c.pointee.dueMs)
        c.pointee.sequence.store(head &+ mask &+ 1, ordering: .releasing)
        head &+= 1
        return out
    }
}
