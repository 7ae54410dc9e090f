import CNats
import Glibc
import PlexusCore
import Synchronization

/// JetStream through libnats' js* C API, on an existing NATS connection:
/// streams and durable pull consumers made idempotently (add, else update),
/// publishing with a message id (the stream drops a second copy within its
/// duplicates window), fetching, and the acknowledgements (ack, nak with a
/// delay, in progress). Key-value buckets (create-if-absent) are in
/// JetStreamKV below. General on purpose: durable tasks use it, and so can
/// anything else the hosts keep on JetStream.
///
/// Every failure is a PlexusError (UNAVAILABLE, or INVALID_ARGUMENT for a
/// configuration the server refuses) carrying libnats' text and the
/// server's JetStream error code.
/// @unchecked: the jsCtx is thread-safe (libnats locks inside) and lives
/// as long as this object.
final class JetStream: @unchecked Sendable {
    let js: OpaquePointer
    let conn: NatsConnection
    /// Copies of every stream and bucket made here (`nats.replicas`).
    let replicas: Int

    enum Retention { case limits, workQueue }

    /// A context on conn; `waitMs` bounds every JetStream API call and publish;
    /// streams and buckets it makes are kept on `replicas` servers.
    init(_ conn: NatsConnection, replicas: Int = 1, waitMs: Int64 = 5_000) throws(PlexusError) {
        var opts = jsOptions()
        jsOptions_Init(&opts)
        opts.Wait = waitMs
        var ctx: OpaquePointer?
        let s = natsConnection_JetStream(&ctx, conn.nc, &opts)
        guard s == NATS_OK, let ctx else { throw PlexusError(.UNAVAILABLE, "cannot open a JetStream context: \(NatsConnection.reason(s))") }
        js = ctx
        self.conn = conn
        self.replicas = replicas
    }

    deinit { jsCtx_Destroy(js) }

    /// libnats' text and the server's JetStream code, for an error message.
    static func reason(_ s: natsStatus, _ code: jsErrCode) -> String {
        let r = NatsConnection.reason(s)
        return code.rawValue == 0 ? r : "\(r) (JetStream error \(code.rawValue))"
    }

    /// Makes the stream (on `replicas` servers), or brings an existing one
    /// to this configuration, except its replicas: it keeps its own (a
    /// change there is an operator's move, `nats stream edit`). A server
    /// without JetStream (nats-server started without -js) is named in the error.
    func ensureStream(name: String, subjects: [String], retention: Retention, duplicatesWindowNs: Int64 = 120_000_000_000,
                      maxAgeNs: Int64 = 0) throws(PlexusError) {
        var cfg = jsStreamConfig()
        jsStreamConfig_Init(&cfg)
        let cName = strdup(name)!
        var cSubjects = subjects.map { UnsafePointer<CChar>(strdup($0)!) }
        defer { free(cName); for p in cSubjects { free(UnsafeMutablePointer(mutating: p)) } }
        cfg.Name = UnsafePointer(cName)
        cfg.Retention = retention == .workQueue ? js_WorkQueuePolicy : js_LimitsPolicy
        cfg.Storage = js_FileStorage
        cfg.Duplicates = duplicatesWindowNs
        cfg.MaxAge = maxAgeNs
        cfg.Replicas = Int64(replicas)
        var code = jsErrCode(rawValue: 0)
        let s: natsStatus = cSubjects.withUnsafeMutableBufferPointer { b -> natsStatus in
            b.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: b.count) { p -> natsStatus in
                cfg.Subjects = p
                cfg.SubjectsLen = Int32(b.count)
                var st = js_AddStream(nil, js, &cfg, nil, &code)
                if st != NATS_OK && code == JSStreamNameExistErr {
                    code = jsErrCode(rawValue: 0)
                    if let have = existingReplicas(name) { cfg.Replicas = have }
                    st = js_UpdateStream(nil, js, &cfg, nil, &code)
                }
                return st
            }
        }
        guard s == NATS_OK else {
            let hint = code == JSNotEnabledErr || code == JSNotEnabledForAccountErr || s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT
                ? " (is JetStream on? start nats-server with -js)"
                : replicas > 1 ? " (nats.replicas is \(replicas): the NATS cluster needs that many servers with JetStream up)" : ""
            throw PlexusError(.UNAVAILABLE, "cannot make JetStream stream \(name): \(JetStream.reason(s, code))\(hint)")
        }
    }

    /// How many replicas the stream has now; nil when it cannot be read.
    func existingReplicas(_ stream: String) -> Int64? {
        var si: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(rawValue: 0)
        guard js_GetStreamInfo(&si, js, stream, nil, &code) == NATS_OK, let si else { return nil }
        defer { jsStreamInfo_Destroy(si) }
        return si.pointee.Config?.pointee.Replicas
    }

    /// Makes a durable pull consumer with explicit acks, or brings an
    /// existing one to this configuration; "already in use" by another
    /// host binding the same durable is not an error.
    func ensureConsumer(stream: String, durable: String, filter: String, ackWaitNs: Int64, maxDeliver: Int64 = -1,
                        maxAckPending: Int64 = 10_000) throws(PlexusError) {
        var cfg = jsConsumerConfig()
        jsConsumerConfig_Init(&cfg)
        let cDurable = strdup(durable)!, cFilter = strdup(filter)!, cStream = strdup(stream)!
        defer { free(cDurable); free(cFilter); free(cStream) }
        cfg.Durable = UnsafePointer(cDurable)
        cfg.FilterSubject = UnsafePointer(cFilter)
        cfg.AckPolicy = js_AckExplicit
        cfg.DeliverPolicy = js_DeliverAll
        cfg.AckWait = ackWaitNs
        cfg.MaxDeliver = maxDeliver
        cfg.MaxAckPending = maxAckPending
        var code = jsErrCode(rawValue: 0)
        var s = js_AddConsumer(nil, js, cStream, &cfg, nil, &code)
        if s != NATS_OK && (code == JSConsumerNameExistErr || code == JSConsumerExistingActiveErr) {
            code = jsErrCode(rawValue: 0)
            s = js_UpdateConsumer(nil, js, cStream, &cfg, nil, &code)
            // Another host changed it at the same moment: it is there.
            if s != NATS_OK && code == JSConsumerExistingActiveErr { return }
        }
        guard s == NATS_OK else {
            throw PlexusError(.UNAVAILABLE, "cannot make JetStream consumer \(durable) on \(stream): \(JetStream.reason(s, code))")
        }
    }

    /// Publishes and waits for the stream's acknowledgement: on return the
    /// message is stored (file storage). `msgID` dedupes within the
    /// stream's duplicates window; `duplicate` says it was a second copy.
    @discardableResult
    func publish(_ subject: String, _ bytes: [UInt8], msgID: String?) throws(PlexusError) -> (sequence: UInt64, duplicate: Bool) {
        if let tooLarge = conn.refusal(ofSize: bytes.count) { throw tooLarge }
        var po = jsPubOptions()
        jsPubOptions_Init(&po)
        let cID = msgID.map { strdup($0)! }
        defer { if let cID { free(cID) } }
        if let cID { po.MsgId = UnsafePointer(cID) }
        var pa: UnsafeMutablePointer<jsPubAck>?
        var code = jsErrCode(rawValue: 0)
        let s = bytes.withUnsafeBytes { b in js_Publish(&pa, js, subject, b.baseAddress, Int32(b.count), &po, &code) }
        defer { if let pa { jsPubAck_Destroy(pa) } }
        guard s == NATS_OK, let pa else {
            throw PlexusError(.UNAVAILABLE, "JetStream did not store the message for \(subject): \(JetStream.reason(s, code))")
        }
        return (pa.pointee.Sequence, pa.pointee.Duplicate)
    }

    /// Binds a pull subscription to an existing durable consumer.
    func pullSubscription(stream: String, durable: String, filter: String) throws(PlexusError) -> PullSubscription {
        var so = jsSubOptions()
        jsSubOptions_Init(&so)
        let cStream = strdup(stream)!, cDurable = strdup(durable)!
        defer { free(cStream); free(cDurable) }
        so.Stream = UnsafePointer(cStream)
        so.Consumer = UnsafePointer(cDurable)
        var sub: OpaquePointer?
        var code = jsErrCode(rawValue: 0)
        let s = js_PullSubscribe(&sub, js, filter, durable, nil, &so, &code)
        guard s == NATS_OK, let sub else {
            throw PlexusError(.UNAVAILABLE, "cannot bind to JetStream consumer \(durable) on \(stream): \(JetStream.reason(s, code))")
        }
        return PullSubscription(sub, conn: conn)
    }

    /// A key-value bucket (made when missing, on `replicas` servers; one
    /// that exists keeps its own): `history` values kept per key.
    func keyValue(bucket: String, history: UInt8 = 1) throws(PlexusError) -> JetStreamKV {
        var cfg = kvConfig()
        kvConfig_Init(&cfg)
        let cBucket = strdup(bucket)!
        defer { free(cBucket) }
        cfg.Bucket = UnsafePointer(cBucket)
        cfg.History = history
        cfg.StorageType = js_FileStorage
        cfg.Replicas = Int32(replicas)
        var kv: OpaquePointer?
        var s = js_CreateKeyValue(&kv, js, &cfg)
        if s != NATS_OK { s = js_KeyValue(&kv, js, cBucket) }   // there already, made by another host
        guard s == NATS_OK, let kv else {
            throw PlexusError(.UNAVAILABLE, "cannot open JetStream key-value bucket \(bucket): \(NatsConnection.reason(s)) (is JetStream on? start nats-server with -js)")
        }
        return JetStreamKV(kv, bucket: bucket, context: self)
    }

    /// A key or durable name from any text: [A-Za-z0-9-] kept, every other
    /// byte as _XX (hex), so distinct texts stay distinct.
    static func token(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            let c = Character(UnicodeScalar(b))
            if (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 45 { out.append(c) } else {
                out += "_" + String(b, radix: 16, uppercase: true).leftPadded(2)
            }
        }
        return out
    }
}

private extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

/// A pull subscription bound to a durable consumer. fetch blocks the
/// calling thread for up to its timeout; one thread fetches at a time.
///
/// Lifetimes: libnats' messages point at their subscription (an ack or
/// nak goes through it to the connection) without holding it, so every
/// JetStreamMessage holds its PullSubscription, and this holds the
/// connection: a message acknowledged after its fetcher ended, or after
/// the connection closed, fails with CONNECTION_CLOSED instead of
/// reaching freed memory (the crash of a host stopped while it ran a
/// cluster task).
final class PullSubscription: @unchecked Sendable {
    private let sub: OpaquePointer
    private let conn: NatsConnection
    init(_ sub: OpaquePointer, conn: NatsConnection) { self.sub = sub; self.conn = conn }
    deinit {
        // Not Unsubscribe: that would delete nothing of a durable, but
        // Destroy alone is enough to stop using it here.
        natsSubscription_Destroy(sub)
    }

    /// Up to `batch` messages, waiting at most timeoutMs for the first;
    /// [] when none came (a timeout is not an error).
    func fetch(batch: Int, timeoutMs: Int64) throws(PlexusError) -> [JetStreamMessage] {
        var list = natsMsgList()
        var code = jsErrCode(rawValue: 0)
        let s = natsSubscription_Fetch(&list, sub, Int32(batch), timeoutMs, &code)
        defer { natsMsgList_Destroy(&list) }
        if s == NATS_TIMEOUT { return [] }
        guard s == NATS_OK else { throw PlexusError(.UNAVAILABLE, "JetStream fetch failed: \(JetStream.reason(s, code))") }
        var out: [JetStreamMessage] = []
        for i in 0..<Int(list.Count) {
            guard let m = list.Msgs[i] else { continue }
            list.Msgs[i] = nil   // ours now: natsMsgList_Destroy frees only the array
            out.append(JetStreamMessage(m, from: self))
        }
        return out
    }

    /// Ends the binding on the server's side (the durable stays).
    func drain() { _ = natsSubscription_Unsubscribe(sub) }
}

/// One message fetched from a pull consumer, until acknowledged.
final class JetStreamMessage: @unchecked Sendable {
    private let msg: OpaquePointer
    /// Kept alive while the message is: its acks go through it.
    private let subscription: PullSubscription
    let bytes: [UInt8]
    /// 1 on the first delivery, more on each redelivery (ack wait passed, nak).
    let deliveries: Int

    init(_ msg: OpaquePointer, from subscription: PullSubscription) {
        self.msg = msg
        self.subscription = subscription
        let n = Int(natsMsg_GetDataLength(msg))
        bytes = n > 0 ? Array(UnsafeRawBufferPointer(start: natsMsg_GetData(msg), count: n)) : []
        var meta: UnsafeMutablePointer<jsMsgMetaData>?
        if natsMsg_GetMetaData(&meta, msg) == NATS_OK, let meta {
            deliveries = Int(meta.pointee.NumDelivered)
            jsMsgMetaData_Destroy(meta)
        } else {
            deliveries = 1
        }
    }
    deinit { natsMsg_Destroy(msg) }

    /// Acknowledges and waits for the server to confirm it: once this
    /// returns, the message is gone from a work-queue stream.
    func ack() throws(PlexusError) {
        var code = jsErrCode(rawValue: 0)
        let s = natsMsg_AckSync(msg, nil, &code)
        guard s == NATS_OK else { throw PlexusError(.UNAVAILABLE, "JetStream ack failed: \(JetStream.reason(s, code))") }
    }

    /// Acknowledges without waiting for the server: a lost ack only means
    /// one more delivery, for a receiver that tolerates one.
    func ackAsync() { _ = natsMsg_Ack(msg, nil) }

    /// Gives it back for redelivery after delayMs (to any bound host).
    func nak(delayMs: Int64) { _ = natsMsg_NakWithDelay(msg, delayMs, nil) }

    /// Still being worked on: restarts the consumer's ack wait for it.
    func inProgress() { _ = natsMsg_InProgress(msg, nil) }
}

/// A JetStream key-value bucket: create-if-absent, get, put.
final class JetStreamKV: @unchecked Sendable {
    private let kv: OpaquePointer
    /// The context (and through it the connection) the bucket's calls use, kept alive with it.
    private let context: JetStream
    let bucket: String
    init(_ kv: OpaquePointer, bucket: String, context: JetStream) { self.kv = kv; self.bucket = bucket; self.context = context }
    deinit { kvStore_Destroy(kv) }

    enum Created { case created, exists([UInt8]) }

    /// Stores value under key only if the key has none: .created, or
    /// .exists with the value already there (the first writer wins,
    /// cluster-wide).
    func create(_ key: String, _ value: [UInt8]) throws(PlexusError) -> Created {
        var rev: UInt64 = 0
        let s = value.withUnsafeBytes { b in kvStore_Create(&rev, kv, key, b.baseAddress, Int32(b.count)) }
        if s == NATS_OK { return .created }
        let why = NatsConnection.reason(s)
        if let v = try get(key) { return .exists(v) }
        throw PlexusError(.UNAVAILABLE, "JetStream key-value \(bucket) did not take \(key): \(why)")
    }

    /// The value under key, nil when it has none.
    func get(_ key: String) throws(PlexusError) -> [UInt8]? {
        var e: OpaquePointer?
        let s = kvStore_Get(&e, kv, key)
        if s == NATS_NOT_FOUND { return nil }
        guard s == NATS_OK, let e else { throw PlexusError(.UNAVAILABLE, "JetStream key-value \(bucket) could not read \(key): \(NatsConnection.reason(s))") }
        defer { kvEntry_Destroy(e) }
        let n = Int(kvEntry_ValueLen(e))
        guard n > 0, let p = kvEntry_Value(e) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    func put(_ key: String, _ value: [UInt8]) throws(PlexusError) {
        var rev: UInt64 = 0
        let s = value.withUnsafeBytes { b in kvStore_Put(&rev, kv, key, b.baseAddress, Int32(b.count)) }
        guard s == NATS_OK else { throw PlexusError(.UNAVAILABLE, "JetStream key-value \(bucket) did not take \(key): \(NatsConnection.reason(s))") }
    }
}
