import Foundation
import Glibc
import PlexusTestSupport
import Testing

/// `plexus call --stream` prints partial answers as they arrive; Ctrl-C on
/// `plexus call` cancels the request (the agent hears CANCEL) and exits 130.
@Suite("plexus call: streams and Ctrl-C", .serialized)
struct CallStreamTests {
    @Test func aStreamedCallPrintsEachPartialThenTheFinalAnswer() throws {
        let dir = try CLITests().workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let streamed = try PlexusCommand.run(["call", "count.stream", "--embedded", "--stream", "--json", #"{"to":3,"every_ms":0}"#], in: dir)
        #expect(streamed.status == 0, "\(streamed.err)")
        #expect(streamed.out == "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"count\":3}", "\(streamed.out)")
        let plain = try PlexusCommand.run(["call", "count.stream", "--embedded", "--json", #"{"to":3,"every_ms":0}"#], in: dir)
        #expect(plain.status == 0, "\(plain.err)")
        #expect(plain.out == "{\"count\":3}", "without --stream only the final answer: \(plain.out)")
    }

    @Test func ctrlCCancelsTheCallThroughARunningHostAndExits130() throws {
        let dir = try CLITests().workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sock = dir + "/plexus.sock"
        let host = try PlexusCommand.startHost(in: dir, socket: sock)
        defer { host.interrupt(); host.waitUntilExit() }
        try interruptAfterFirstPartial(["--socket", sock], in: dir)
        let cancels = try PlexusCommand.run(["call", "count.cancels", "--socket", sock], in: dir)
        #expect(cancels.out == "{\"cancels\":1}", "\(cancels.err)")
    }

    @Test func ctrlCCancelsACallOnAnEmbeddedHostToo() throws {
        let dir = try CLITests().workspace()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try interruptAfterFirstPartial(["--embedded"], in: dir)
    }

    /// Streams count.stream with `plexus call`, sends SIGINT once the first
    /// partial is on stdout, and expects CANCELLED and exit status 130.
    func interruptAfterFirstPartial(_ options: [String], in dir: String) throws {
        let call = Process()
        call.executableURL = URL(fileURLWithPath: PlexusCommand.path)
        call.arguments = ["call", "count.stream", "--stream", "--json", #"{"to":100000,"every_ms":20}"#] + options
        call.currentDirectoryURL = URL(fileURLWithPath: dir)
        let out = Pipe(), err = Pipe()
        call.standardOutput = out
        call.standardError = err
        try call.run()
        // The first partial on stdout: the request is in flight at the agent.
        var first: [UInt8] = []
        while first.last != UInt8(ascii: "\n") {
            let d = out.fileHandleForReading.readData(ofLength: 1)
            if d.isEmpty { break }
            first += d
        }
        #expect(String(decoding: first, as: UTF8.self) == "{\"n\":1}\n")
        kill(call.processIdentifier, SIGINT)
        let e = err.fileHandleForReading.readDataToEndOfFile()
        _ = out.fileHandleForReading.readDataToEndOfFile()
        call.waitUntilExit()
        let text = String(decoding: e, as: UTF8.self)
        #expect(call.terminationStatus == 130, "\(text)")
        #expect(text.contains("CANCELLED"), "\(text)")
    }
}
