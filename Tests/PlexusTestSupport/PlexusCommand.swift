import Foundation

/// The built `plexus` executable, run as a user would: in a directory of the
/// test's choosing, stdin empty, both output streams captured.
public enum PlexusCommand {
    /// `plexus` sits beside the test bundle in SwiftPM's bin directory.
    public static let path = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        .appendingPathComponent("plexus").path

    public struct Outcome: Sendable {
        public let status: Int32
        public let out: String
        public let err: String
    }

    /// Runs `plexus` (or `executable`) with args; env adds to the test's
    /// environment and `unset` removes names from it.
    public static func run(_ args: [String], in dir: String? = nil, env: [String: String] = [:],
                           unset: [String] = [], executable: String = path) throws -> Outcome {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        if let dir { p.currentDirectoryURL = URL(fileURLWithPath: dir) }
        if !env.isEmpty || !unset.isEmpty {
            var e = ProcessInfo.processInfo.environment.merging(env) { $1 }
            for name in unset { e[name] = nil }
            p.environment = e
        }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        // Read both pipes before waiting, so a chatty command cannot block on a full pipe.
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Outcome(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
    }

    /// Starts `plexus run` in dir with its socket at socket and its store in
    /// dir, stderr discarded, and waits (up to 20 s) until `agents` answers.
    /// The caller interrupts and waits for the process it gets.
    public static func startHost(in dir: String, socket: String) throws -> Process {
        let host = Process()
        host.executableURL = URL(fileURLWithPath: path)
        host.arguments = ["run", "--socket", socket, "--store", dir + "/plexus.db"]
        host.currentDirectoryURL = URL(fileURLWithPath: dir)
        host.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try host.run()
        for _ in 0..<400 {
            if (try? run(["agents", "--socket", socket], in: dir))?.status == 0 { return host }
            usleep(50_000)
        }
        host.interrupt()
        host.waitUntilExit()
        throw HostDidNotStart(dir: dir)
    }

    public struct HostDidNotStart: Error, CustomStringConvertible {
        public let dir: String
        public var description: String { "plexus run did not answer within 20 s in \(dir)" }
    }
}
