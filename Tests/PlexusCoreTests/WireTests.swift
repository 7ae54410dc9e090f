import CPlexusInternal
import PlexusCore
import Testing

@Suite("Wire codec")
struct WireTests {
    func sample(payload: [UInt8] = Array("{\"a\":1}".utf8)) -> Envelope {
        Envelope(kind: .query, target: .capability("text.stats"), priority: .high, payload: payload,
                 contentType: "application/json", deadlineUnixNs: 1_700_000_000_000_000_000, sender: "client:1",
                 id: plexus_id(hi: 1, lo: 2), correlationID: plexus_id(hi: 3, lo: 4), traceID: plexus_id(hi: 5, lo: 6))
    }

    @Test func roundTripKeepsEveryField() throws {
        let e = sample()
        let frame = try e.encode()
        #expect(frame.count == 12 + 76 + "client:1".utf8.count + 1 + "text.stats".utf8.count + 1 + "application/json".utf8.count + 1 + 7)
        #expect(try Envelope(frame: frame) == e)
    }

    @Test func emptyPayloadAndReplyTarget() throws {
        let e = Envelope(kind: .response, target: .reply, payload: [], contentType: "", correlationID: plexus_id(hi: 9, lo: 9))
        #expect(try Envelope(frame: e.encode()) == e)
    }

    func decodeError(_ frame: [UInt8], max: UInt64 = UInt64(PLEXUS_MAX_PAYLOAD_LEN)) -> PlexusError? {
        do { _ = try Envelope(frame: frame, maxPayload: max); return nil } catch { return error }
    }

    @Test func badMagicIsRefused() throws {
        var f = try sample().encode(); f[0] = 0x51
        #expect(decodeError(f)?.detail.contains("bad magic") == true)
    }

    @Test func truncatedHeaderIsRefused() throws {
        let f = try sample().encode()
        #expect(decodeError(Array(f.prefix(7)))?.detail.contains("header is incomplete") == true)
    }

    @Test func unknownFrameTypeIsRefused() throws {
        var f = try sample().encode(); f[5] = 9
        #expect(decodeError(f)?.is(.MALFORMED_FRAME) == true)
    }

    @Test func hugeDeclaredLengthIsRefusedBeforeReadingIt() throws {
        var f = try sample().encode()
        f[8] = 0xff; f[9] = 0xff; f[10] = 0xff; f[11] = 0x7f
        let err = try #require(decodeError(f))
        #expect(err.is(.TOO_LARGE))
        // The header check alone refuses it: no body needed.
        let header = Array(f.prefix(12))
        #expect(throws: PlexusError.self) { try header.withUnsafeBytes { try Wire.bodyLength(header: $0, maxPayload: 1024) } }
    }

    @Test func bodyShorterThanDeclaredIsRefused() throws {
        let f = try sample().encode()
        #expect(decodeError(Array(f.dropLast()))?.is(.MALFORMED_FRAME) == true)
    }

    @Test func fieldLengthsMustAddUp() throws {
        var f = try sample().encode()
        f[12 + 64] = f[12 + 64] &+ 1   // sender length one longer than its bytes
        #expect(decodeError(f)?.detail.contains("add up") == true)
    }

    @Test func stringsMustBeNulTerminated() throws {
        var f = try sample().encode()
        f[12 + 76 + 8] = 0x41          // overwrite the NUL after "client:1"
        #expect(decodeError(f)?.detail.contains("NUL") == true)
    }

    @Test func outOfRangeEnumsAreRefused() throws {
        var f = try sample().encode(); f[12] = 7   // kind
        #expect(decodeError(f)?.detail.contains("kind") == true)
        var g = try sample().encode(); g[14] = 4   // priority
        #expect(decodeError(g)?.detail.contains("priority") == true)
    }

    @Test func payloadExactlyAtTheLimitIsAcceptedOneOverIsNot() throws {
        let limit: UInt64 = 1000
        let at = sample(payload: [UInt8](repeating: 1, count: 1000))
        #expect(try Envelope(frame: at.encode(maxPayload: limit), maxPayload: limit).payload.count == 1000)
        let over = sample(payload: [UInt8](repeating: 1, count: 1001))
        #expect(throws: PlexusError.self) { try over.encode(maxPayload: limit) }
        let frame = try over.encode()
        #expect(decodeError(frame, max: limit)?.is(.TOO_LARGE) == true)
    }

    @Test func badNamesAreRefusedOnEncode() {
        let e = Envelope(target: .capability("has space"))
        #expect(throws: PlexusError.self) { try e.encode() }
        let empty = Envelope(target: .capability(""))
        #expect(throws: PlexusError.self) { try empty.encode() }
    }

    /// A cheap deterministic fuzz: every single-byte corruption and every
    /// truncation of a valid frame either decodes or is refused; none crashes.
    @Test func corruptedFramesNeverCrashTheDecoder() throws {
        let f = try sample().encode()
        for i in 0..<f.count {
            for v: UInt8 in [0, 1, 0x7f, 0xff] {
                var g = f; g[i] = v
                _ = try? Envelope(frame: g)
            }
            _ = try? Envelope(frame: Array(f.prefix(i)))
        }
    }

    /// The host reads its own frames with plexus_wire_view (no checks) and
    /// writes them with plexus_wire_encode_valid: both must agree with the
    /// checked codec, byte for byte and field for field.
    @Test func uncheckedPathsMatchTheCheckedCodec() throws {
        for e in [sample(), sample(payload: []), Envelope(kind: .response, target: .reply, payload: [1, 2], contentType: "")] {
            let checked = try e.encode()
            let unchecked: [UInt8] = e.withCEnvelope { c in
                var out = [UInt8](repeating: 0xAA, count: Int(plexus_wire_frame_size(c)))
                let n = out.withUnsafeMutableBufferPointer { plexus_wire_encode_valid(c, $0.baseAddress!) }
                #expect(Int(n) == out.count)
                return out
            }
            #expect(unchecked == checked)
            let viewed: Envelope = checked.withUnsafeBufferPointer { b in
                var v = plexus_envelope_init()
                plexus_wire_view(b.baseAddress!, &v)
                return withUnsafePointer(to: &v) { Envelope($0) }
            }
            #expect(viewed == (try Envelope(frame: checked)))
        }
    }
}
