import Foundation
import Glibc
import PlexusCore
import PlexusHost
import PlexusSocket
import Testing

/// Many requests in flight on one socket connection: the host answers each
/// client frame once, by its id, in the order the agents answer — not the
/// order the frames came in. Driven by raw frames (the host's side of the
/// promise), by the C client (SDK/c/examples/plexus_pipeline.c), the Rust
/// client (examples/plexus_client.rs `pipeline`) and the Python client.
@Suite("Pipelined socket clients", .serialized)
struct PipelinedClientTests {
    static let inFlight = 10_000

    /// A host with the example plugins (echo) and the reverser fixture,
    /// which answers every `hold` queries at once in reverse order.
    func withReverser(hold: Int = PipelinedClientTests.inFlight, _ body: (Host, String) throws -> Void) throws {
        var c = HostConfiguration(pluginsDirectory: PipelineTests.plugins)
        c.mailboxCapacity = 2 * Self.inFlight   // every request sits in the reverser until the last arrives
        try withServedHost(c, files: [try Fixtures.build("reverser.c", ["-DHOLD=\(hold)"], name: "reverser")], body)
    }

    @Test func tenThousandRequestsInFlightOnOneConnectionAreEachAnsweredOnceMatchedAndInTheAgentsOrder() throws {
        try withReverser { _, sock in
            let fd = try connectRaw(sock)
            defer { close(fd) }
            // Every query goes out before any answer can come: the reverser answers
            // only once it holds all of them, last one first.
            var out: [UInt8] = []
            var numberOf: [plexus_id: Int] = [:]
            for i in 0..<Self.inFlight {
                var q = Envelope(kind: .query, target: .capability("test.reverse"), payload: Array("\(i)".utf8),
                                 contentType: "application/json")
                q.id = plexus_id(hi: 7, lo: UInt64(i + 1))
                q.deadlineUnixNs = unixNow() + 60_000_000_000
                numberOf[q.id] = i
                out += try q.encode()
            }
            let frames = out
            let writer = Thread { _ = frames.withUnsafeBytes { writeAll(fd, $0) } }   // the host reads while we write
            writer.start()
            var reader = FrameReader(fd: fd)
            var order: [Int] = []
            var answered = Set<plexus_id>()
            for _ in 0..<Self.inFlight {
                let a = try #require(try reader.next(), "the host closed the connection after \(order.count) answers")
                #expect(a.kind == .response, "answer \(order.count): \(a.kind) \(a.payloadString)")
                let n = try #require(numberOf[a.correlationID], "an answer to \(a.correlationID.hex), which no request had")
                #expect(answered.insert(a.correlationID).inserted, "request \(n) answered twice")
                #expect(a.payloadString == "\(n)", "request \(n) got the answer '\(a.payloadString)'")
                order.append(n)
            }
            #expect(answered.count == Self.inFlight)
            #expect(order == Array((0..<Self.inFlight).reversed()), "answers come in the order the agent gave them")
            // Nothing more is owed: a further request is answered next, by itself.
            var echo = Envelope(kind: .query, target: .capability("echo"), payload: Array("after".utf8))
            echo.id = plexus_id(hi: 8, lo: 1)
            _ = try echo.encode().withUnsafeBytes { writeAll(fd, $0) }
            let last = try #require(try reader.next())
            #expect(last.correlationID == echo.id && last.payloadString == "after")
        }
    }

    // MARK: the SDKs

    static let cProgram = Fixtures.clientProgram("plexus_pipeline")

    @Test func theCClientKeepsTenThousandRequestsInFlightAndMatchesOutOfOrderAnswers() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.cProgram), "the C example did not build")
        try withReverser { _, sock in
            let (code, out, err) = try run(Self.cProgram, ["--socket", sock, "test.reverse", "\(Self.inFlight)"])
            #expect(code == 0, "\(err)")
            // Reversed (and an even count): no answer comes in the place of its request.
            #expect(out == "\(Self.inFlight) answered, each once; \(Self.inFlight) out of order\n", "\(out) \(err)")
            // An agent that answers at once: answers pile up while the client still writes,
            // past the 4,096 the host holds for a connection before it stops reading it.
            let unbounded = try run(Self.cProgram, ["--socket", sock, "echo", "20000"])
            #expect(unbounded.0 == 0, "\(unbounded.2)")
            #expect(unbounded.1 == "20000 answered, each once; 0 out of order\n", "\(unbounded.1) \(unbounded.2)")
            let windowed = try run(Self.cProgram, ["--socket", sock, "echo", "50000", "1000"])
            #expect(windowed.0 == 0, "\(windowed.2)")
            #expect(windowed.1 == "50000 answered, each once; 0 out of order\n")
        }
    }

    @Test func theRustClientKeepsTenThousandRequestsInFlightAndMatchesOutOfOrderAnswers() throws {
        try #require(FileManager.default.isExecutableFile(atPath: ExternalAgentTests.rustProgram), "the Rust example did not build")
        try withReverser { _, sock in
            let (code, out, err) = try run(ExternalAgentTests.rustProgram, ["--socket", sock, "pipeline", "test.reverse", "\(Self.inFlight)"])
            #expect(code == 0, "\(err)")
            #expect(out == "\(Self.inFlight) answered, each with its own number\n", "\(out) \(err)")
        }
    }

    @Test func thePythonClientKeepsTenThousandRequestsInFlightAndMatchesOutOfOrderAnswers() throws {
        try withReverser { _, sock in
            let script = ExternalAgentTests.header + """
                futures = [c.submit("test.reverse", str(i)) for i in range(\(Self.inFlight))]
                for i, f in enumerate(futures):
                    assert f.result(timeout=60) == str(i).encode(), (i, f.result())
                done = [int(f.result()) for f in futures]
                assert done == list(range(\(Self.inFlight))), "each future holds its own answer"
                first = c.submit("echo", "one")
                second = c.submit("echo", "two")
                print(second.result(timeout=10).decode(), first.result(timeout=10).decode())
                """
            let (code, out, err) = try ExternalAgentTests.Program.python(script, socket: sock).finish()
            #expect(code == 0, "\(err)")
            #expect(out == "two one\n", "\(out)")
        }
    }

    // MARK: helpers

    func run(_ exe: String, _ args: [String]) throws -> (Int32, String, String) {
        let p = try ExternalAgentTests.Program(exe, args)
        return p.finish()
    }

    func connectRaw(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        _ = withUnsafeMutableBytes(of: &addr.sun_path) { b in path.utf8CString.withUnsafeBytes { b.copyMemory(from: $0) } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(rc == 0, "cannot connect to \(path): \(String(cString: strerror(errno)))")
        return fd
    }
}

/// Writes every byte (blocking); false when the socket fails.
@discardableResult
private func writeAll(_ fd: Int32, _ b: UnsafeRawBufferPointer) -> Bool {
    var off = 0
    while off < b.count {
        let n = send(fd, b.baseAddress! + off, b.count - off, Int32(MSG_NOSIGNAL))
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        off += n
    }
    return true
}

/// Whole frames from a stream socket, read in large chunks (with a receive
/// timeout, so a host that stops answering fails the test instead of hanging it).
private struct FrameReader {
    let fd: Int32
    var buffer: [UInt8] = []
    var start = 0

    init(fd: Int32) {
        self.fd = fd
        var tv = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    mutating func next() throws -> Envelope? {
        while true {
            let have = buffer.count - start
            if have >= Wire.headerLength {
                let body = try buffer.withUnsafeBytes { b throws(PlexusError) in
                    try Wire.bodyLength(header: UnsafeRawBufferPointer(rebasing: b[start..<(start + Wire.headerLength)]),
                                        maxPayload: UInt64(PLEXUS_MAX_PAYLOAD_LEN))
                }
                if have >= Wire.headerLength + body {
                    let frame = Array(buffer[start..<(start + Wire.headerLength + body)])
                    start += frame.count
                    return try Envelope(frame: frame)
                }
            }
            if start > 0 { buffer.removeFirst(start); start = 0 }
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            buffer += chunk[0..<n]
        }
    }
}
