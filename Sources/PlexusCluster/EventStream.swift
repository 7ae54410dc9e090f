import CNats
import Glibc
import Logging
import PlexusCore
import PlexusThreads
import Synchronization

/// One entry of the host's event log, as its store holds it.
public struct LoggedEvent: Sendable {
    public var seq: Int64
    public var atUnixNs: Int64
    public var kind: String
    public var subject: String
    /// The event's data, JSON text.
    public var data: String
    public init(seq: Int64, atUnixNs: Int64, kind: String, subject: String, data: String) {
        self.seq = seq; self.atUnixNs = atUnixNs; self.kind = kind; self.subject = subject; self.data = data
    }
}

/// Where the publisher reads the host's event log (the store, in `plexus run`):
/// committed events only, so what reaches the stream is what the store kept.
public struct EventLog: Sendable {
    /// The newest event's seq (0: none).
    public let newest: @Sendable () throws -> Int64
    /// Up to `limit` events after `seq`, oldest first.
    public let after: @Sendable (_ seq: Int64, _ limit: Int) throws -> [LoggedEvent]
    public init(newest: @escaping @Sendable () throws -> Int64, after: @escaping @Sendable (Int64, Int) throws -> [LoggedEvent]) {
        self.newest = newest; self.after = after
    }
}

/// The cluster's event log on JetStream: one stream per cluster,
/// PLEXUS_<cluster>_EVENTS, on subjects `plexus.<cluster>.from.<node>.event`
/// (under the node's own prefix, like everything it sends), limits
/// retention (age, bytes, count: nats.events), file storage.
///
/// Each host publishes its own events from a thread of its own that reads
/// the store after it committed them, so the store's writer never waits
/// for NATS. Publishes are synchronous and in seq order (one at a time),
/// so the stream holds each host's events in that host's order. The
/// message id is node:seq:time, so a republish (an acknowledgement lost
/// to an outage) is dropped by the stream's duplicate window, and a host
/// whose store was replaced (its seqs start again) is not mistaken for one.
/// While NATS is away the events wait in the store; when it is back the
/// host publishes the newest `nats.events.catch_up` of those it missed and
/// counts (and logs) the rest as lost. A publisher that is merely behind a
/// busy host (about 1,000-2,000 events/s here, one round trip each) lags
/// and catches up; it skips nothing.
final class EventStream: @unchecked Sendable {   // @unchecked: the jsCtx is thread-safe (libnats locks inside); the rest is in `state`
    let name: String
    /// This node's subject, and every node's.
    let subject: String
    let subjects: String
    private let node: String
    private let conn: NatsConnection
    private let settings: EventStreamSettings
    private let jetStream: JetStream
    private var js: OpaquePointer { jetStream.js }
    private let logger = Logger(label: "plexus.cluster.events")
    /// At most this many stream messages read for one answer to a reader.
    static let scanLimit = 10_000
    static let batch = 256

    private struct State {
        var log: EventLog?
        /// The stream was found or made, and the publisher knows where it left off.
        var ready = false
        /// Why the stream cannot be used now (shown by `plexus nodes`, said once in the log).
        var problem: String?
        /// The seq of this host's last event the stream acknowledged.
        var cursor: Int64 = 0
        /// A publish failed: the cursor is checked against the stream before the next.
        var resync = false
        /// NATS was away (or a publish failed) since the last batch: the next one applies
        /// the catch_up bound. A publisher merely behind a busy host is never made to skip.
        var wasAway = false
        var published = 0
        var lost = 0
        var stopping = false
    }
    private let state = Mutex(State())
    private let wake = ConditionLock()
    private let thread = Mutex<OwnedThread?>(nil)

    init(conn: NatsConnection, cluster: String, node: String, settings: EventStreamSettings, replicas: Int = 1) throws(PlexusError) {
        self.conn = conn
        self.node = node
        self.settings = settings
        name = "PLEXUS_\(cluster)_EVENTS"
        subjects = "plexus.\(cluster).from.*.event"
        subject = "plexus.\(cluster).from.\(node).event"
        jetStream = try JetStream(conn, replicas: replicas)
    }


    // MARK: publishing

    /// Starts publishing the host's events from `log`.
    func start(_ log: EventLog) throws(PlexusError) {
        state.withLock { $0.log = log }
        do {
            let t = try startThread(name: "plexus-events-js") { [unowned self] in self.run() }
            thread.withLock { $0 = t }
        } catch { throw PlexusError(.INTERNAL, "\(error)") }
    }

    func stop() {
        wake.withLock {
            state.withLock { $0.stopping = true }
            wake.signal()
        }
        thread.withLock { t in t?.join(); t = nil }
    }

    private func run() {
        while true {
            let pauseMs = step()
            let stop = wake.withLock { () -> Bool in
                if state.withLock({ $0.stopping }) { return true }
                if pauseMs > 0 { wake.wait(untilMonotonic: Clock.monotonicNanos() + pauseMs * 1_000_000) }
                return state.withLock { $0.stopping }
            }
            if stop { return }
        }
    }

    /// One round: set up, catch up, publish a batch. How long to wait before the next (ms).
    private func step() -> Int64 {
        guard let log = state.withLock({ $0.log }) else { return 200 }
        guard conn.isConnected else { state.withLock { $0.wasAway = true }; return 250 }
        do throws(PlexusError) {
            if !state.withLock({ $0.ready }) {
                try ensureStream()
                try resume(log)
                let problem = state.withLock { s -> String? in defer { s.problem = nil; s.ready = true }; return s.problem }
                if problem != nil { logger.notice("the cluster's event stream is usable again", metadata: ["stream": "\(name)"]) }
            }
            if state.withLock({ $0.resync }) { try resync() }
            return try publishBatch(log)
        } catch {
            let first = state.withLock { s -> Bool in defer { s.problem = error.detail }; return s.problem != error.detail }
            if first {
                logger.warning("events not published to the cluster's stream; they wait in the store", metadata: ["stream": "\(name)", "error": "\(error.detail)"])
            }
            return 1_000
        }
    }

    /// Finds the stream, or makes it with this host's limits.
    private func ensureStream() throws(PlexusError) {
        var si: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(0)
        var s = js_GetStreamInfo(&si, js, name, nil, &code)
        if s == NATS_OK { jsStreamInfo_Destroy(si); return }
        guard s == NATS_NOT_FOUND else { throw failure(s, "cannot look up the stream \(name)") }
        var cfg = jsStreamConfig()
        jsStreamConfig_Init(&cfg)
        s = name.withCString { n in
            subjects.withCString { sub in
                var list: [UnsafePointer<CChar>?] = [sub]
                return list.withUnsafeMutableBufferPointer { b in
                    cfg.Name = n
                    cfg.Description = nil
                    cfg.Subjects = b.baseAddress
                    cfg.SubjectsLen = 1
                    cfg.Retention = js_LimitsPolicy
                    cfg.Storage = js_FileStorage
                    cfg.Discard = js_DiscardOld
                    cfg.MaxAge = settings.maxAgeSeconds * 1_000_000_000
                    cfg.MaxBytes = settings.maxBytes
                    cfg.MaxMsgs = settings.maxMessages
                    cfg.Replicas = Int64(jetStream.replicas)   // nats.replicas; a stream that exists keeps its own
                    // The duplicate window: a republish within it is dropped (never longer than the age limit).
                    cfg.Duplicates = min(120, settings.maxAgeSeconds) * 1_000_000_000
                    return js_AddStream(&si, js, &cfg, nil, &code)
                }
            }
        }
        if s == NATS_OK { jsStreamInfo_Destroy(si); logger.info("made the cluster's event stream", metadata: ["stream": "\(name)"]); return }
        // Another host made it at the same moment.
        if js_GetStreamInfo(&si, js, name, nil, &code) == NATS_OK { jsStreamInfo_Destroy(si); return }
        throw failure(s, "cannot make the stream \(name)")
    }

    /// Where to start: after this node's last event in the stream when the
    /// store still holds that event (same seq, same time); else (first
    /// join, or a new store) at the newest `catch_up` events of the store.
    private func resume(_ log: EventLog) throws(PlexusError) {
        let newest = try read { try log.newest() }
        var cursor: Int64
        if let last = try lastPublished(), let here = try read({ try log.after(last.seq - 1, 1) }).first,
           here.seq == last.seq, here.atUnixNs == last.at {
            cursor = last.seq
        } else {
            cursor = max(0, newest - Int64(settings.catchUp))
            if let oldest = try read({ try log.after(0, 1) }).first { cursor = max(cursor, oldest.seq - 1) }
            if cursor > 0 {
                logger.info("joining the cluster's event stream with the newest events only", metadata: [
                    "stream": "\(name)", "from_seq": "\(cursor + 1)", "catch_up": "\(settings.catchUp)"])
            }
        }
        state.withLock { $0.cursor = cursor }
    }

    /// After a failed publish: the stream may have taken it (its
    /// acknowledgement lost), so the cursor follows the stream's last.
    private func resync() throws(PlexusError) {
        let last = try lastPublished()
        state.withLock { s in
            if let last, last.seq > s.cursor { s.cursor = last.seq }
            s.resync = false
        }
    }

    /// This node's newest event in the stream: its seq and time.
    private func lastPublished() throws(PlexusError) -> (seq: Int64, at: Int64)? {
        var m: OpaquePointer?
        var code = jsErrCode(0)
        let s = js_GetLastMsg(&m, js, name, subject, nil, &code)
        if s == NATS_NOT_FOUND { return nil }
        guard s == NATS_OK, let m else { throw failure(s, "cannot read this host's last event in \(name)") }
        defer { natsMsg_Destroy(m) }
        guard let v = EventStream.payload(m), case .int(let seq)? = v["seq"], case .int(let at)? = v["at_unix_ns"] else { return nil }
        return (seq, at)
    }

    private func publishBatch(_ log: EventLog) throws(PlexusError) -> Int64 {
        var cursor = state.withLock { $0.cursor }
        let newest = try read { try log.newest() }
        let wasAway = state.withLock { s -> Bool in defer { s.wasAway = false }; return s.wasAway }
        if wasAway && newest - cursor > Int64(settings.catchUp) {
            let skip = newest - Int64(settings.catchUp) - cursor
            logger.error("events lost to the cluster's stream: NATS was away too long", metadata: [
                "stream": "\(name)", "lost": "\(skip)", "seqs": "\(cursor + 1)...\(cursor + skip)", "catch_up": "\(settings.catchUp)"])
            cursor += skip
            state.withLock { $0.cursor = cursor; $0.lost += Int(skip) }
        }
        let events = try read { try log.after(cursor, EventStream.batch) }
        if let first = events.first, first.seq > cursor + 1 {
            let gap = first.seq - cursor - 1
            logger.error("events lost to the cluster's stream: the store's retention removed them before they were published",
                         metadata: ["stream": "\(name)", "lost": "\(gap)", "seqs": "\(cursor + 1)...\(first.seq - 1)"])
            state.withLock { $0.lost += Int(gap) }
        }
        for e in events {
            // A connection that dropped, or a host stopping, ends the batch at once: a publish now would wait out its 5 s.
            guard conn.isConnected, !state.withLock({ $0.stopping }) else { return 250 }
            do throws(PlexusError) { try publish(e) } catch {
                state.withLock { $0.resync = true; $0.wasAway = true }
                throw error
            }
            state.withLock { $0.cursor = e.seq; $0.published += 1 }
        }
        return events.count == EventStream.batch ? 0 : 200
    }

    private func publish(_ e: LoggedEvent) throws(PlexusError) {
        let data: JSONValue = (try? JSONValue.parse(Array(e.data.utf8))) ?? .string(e.data)
        let body = Array(JSONValue.object(["node": .string(node), "seq": .int(e.seq), "at_unix_ns": .int(e.atUnixNs), "kind": .string(e.kind),
                                           "subject": .string(e.subject), "data": data]).text.utf8)
        let id = "\(node):\(e.seq):\(e.atUnixNs)"
        var ack: UnsafeMutablePointer<jsPubAck>?
        var code = jsErrCode(0)
        let s = id.withCString { idp in
            name.withCString { np in
                var po = jsPubOptions()
                jsPubOptions_Init(&po)
                po.MsgId = idp
                po.ExpectStream = np
                po.MaxWait = 5_000
                return body.withUnsafeBytes { b in js_Publish(&ack, js, subject, b.baseAddress, Int32(b.count), &po, &code) }
            }
        }
        if let ack { jsPubAck_Destroy(ack) }
        guard s == NATS_OK else { throw failure(s, "event \(e.seq) not taken by \(name)") }
    }

    private func read<T>(_ body: () throws -> T) throws(PlexusError) -> T {
        do { return try body() } catch { throw PlexusError(.INTERNAL, "cannot read the event log: \(error)") }
    }

    // MARK: reading (plexus events --cluster)

    /// The stream's first and last sequence, and how many events each node has in it.
    private func info() throws(PlexusError) -> (first: UInt64, last: UInt64, nodes: [String: UInt64]) {
        var si: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(0)
        var o = jsOptions()
        jsOptions_Init(&o)
        let s = subjects.withCString { f in
            o.Stream.Info.SubjectsFilter = f
            return js_GetStreamInfo(&si, js, name, &o, &code)
        }
        guard s == NATS_OK, let si else {
            if s == NATS_NOT_FOUND { throw PlexusError(.UNAVAILABLE, "the cluster's event stream \(name) does not exist yet (no host has published to it)") }
            throw failure(s, "cannot read the stream \(name)")
        }
        defer { jsStreamInfo_Destroy(si) }
        let st = si.pointee.State
        var nodes: [String: UInt64] = [:]
        if let list = st.Subjects {
            for i in 0..<Int(list.pointee.Count) {
                let e = list.pointee.List[i]
                guard let p = e.Subject else { continue }
                let tokens = String(cString: p).split(separator: ".")
                if tokens.count == 5 { nodes[String(tokens[3])] = e.Msgs }
            }
        }
        return (st.FirstSeq, st.LastSeq, nodes)
    }

    /// The stream's message at seq with its stream sequence added; nil
    /// when it is not there (aged out, or never was).
    private func message(_ seq: UInt64) throws(PlexusError) -> JSONValue? {
        var m: OpaquePointer?
        var code = jsErrCode(0)
        let s = js_GetMsg(&m, js, name, seq, nil, &code)
        if s == NATS_NOT_FOUND { return nil }
        guard s == NATS_OK, let m else { throw failure(s, "cannot read message \(seq) of \(name)") }
        defer { natsMsg_Destroy(m) }
        guard case .object(var o)? = EventStream.payload(m) else { return nil }
        o["stream_seq"] = .int(Int64(seq))
        return .object(o)
    }

    static func payload(_ m: OpaquePointer) -> JSONValue? {
        let n = Int(natsMsg_GetDataLength(m))
        guard n > 0, let p = natsMsg_GetData(m) else { return nil }
        return try? JSONValue.parse(Array(UnsafeRawBufferPointer(start: p, count: n).bindMemory(to: UInt8.self)))
    }

    static func matches(_ e: JSONValue, kind: String) -> Bool {
        guard !kind.isEmpty else { return true }
        if case .string(let k)? = e["kind"] { return k.hasPrefix(kind) }
        return false
    }

    /// Events after stream sequence `after`, oldest first: {events, cursor}
    /// where cursor is the last sequence looked at (the next call's after).
    func page(after: UInt64, limit: Int, kind: String) throws(PlexusError) -> JSONValue {
        let (first, last, _) = try info()
        var seq = max(after + 1, first), cursor = after, out: [JSONValue] = [], scanned = 0
        while seq <= last && out.count < limit && scanned < EventStream.scanLimit {
            if let e = try message(seq), EventStream.matches(e, kind: kind) { out.append(e) }
            cursor = seq
            seq += 1
            scanned += 1
        }
        return .object(["events": .array(out), "cursor": .int(Int64(cursor)), "stream": .string(name)])
    }

    /// The newest `count` events of every node (of kinds starting with
    /// `kind`), oldest first, read back from the stream's end; at most
    /// scanLimit messages are read, and `complete` says whether that was
    /// enough. cursor: the stream's last sequence.
    func latest(perNode count: Int, kind: String) throws(PlexusError) -> JSONValue {
        let (first, last, nodes) = try info()
        var got: [String: Int] = [:], out: [JSONValue] = [], scanned = 0
        var seq = last
        func done() -> Bool {
            kind.isEmpty && nodes.allSatisfy { got[$0.key, default: 0] >= min(count, Int($0.value)) }
        }
        while count > 0 && seq >= max(first, 1) && scanned < EventStream.scanLimit && !done() {
            if let e = try message(seq), EventStream.matches(e, kind: kind), case .string(let n)? = e["node"], got[n, default: 0] < count {
                got[n, default: 0] += 1
                out.append(e)
            }
            seq -= 1
            scanned += 1
        }
        let complete = count == 0 || done() || seq < max(first, 1)
        return .object(["events": .array(out.reversed()), "cursor": .int(Int64(last)), "stream": .string(name), "complete": .bool(complete)])
    }

    /// Events published and lost so far, for /metrics.
    var counts: (published: Int, lost: Int) { state.withLock { ($0.published, $0.lost) } }

    /// What `plexus nodes` shows of the stream.
    var report: JSONValue {
        state.withLock { s in
            .object(["stream": .string(name), "published": .int(Int64(s.published)), "lost": .int(Int64(s.lost)),
                     "last_seq": .int(s.cursor), "problem": s.problem.map(JSONValue.string) ?? .null])
        }
    }

    /// A JetStream failure as UNAVAILABLE, saying when the server has no JetStream.
    private func failure(_ s: natsStatus, _ what: String) -> PlexusError {
        if s == NATS_NO_RESPONDERS {
            return PlexusError(.UNAVAILABLE, "\(what): the NATS server has no JetStream (start nats-server with -js, and -sd DIR for where it keeps streams)")
        }
        return PlexusError(.UNAVAILABLE, "\(what): \(NatsConnection.reason(s))")
    }
}
