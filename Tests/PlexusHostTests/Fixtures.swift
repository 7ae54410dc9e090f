import Foundation
import PlexusTestSupport
import PlexusCore
import PlexusHost
import PlexusSocket
import Synchronization

typealias Host = PlexusHost.Host

/// Builds the test plugins in Tests/Fixtures with cc, each into its own file
/// so that every test gets a private copy (dlopen shares globals per file).
enum Fixtures {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    static let dir: String = TestDirectory.make("fixtures")
    private static let counter = Atomic<Int>(0)

    /// Compiles source (relative to Tests/Fixtures) with flags into a fresh .so.
    static func build(_ source: String, _ flags: [String] = [], name: String? = nil) throws -> String {
        let n = counter.add(1, ordering: .relaxed).newValue
        let out = "\(dir)/\(name ?? "fixture")-\(n).so"
        try run("/usr/bin/cc", ["-std=c11", "-shared", "-fPIC", "-O1", "-I\(root)/include", "-I\(root)/SDK/c"]
                + flags + ["\(root)/Tests/Fixtures/\(source)", "-o", out])
        return out
    }

    /// Compiles a C client example (SDK/c/examples/NAME.c) with the client
    /// library into an executable; returns its path (missing if it failed).
    static func clientProgram(_ name: String) -> String {
        let out = dir + "/" + name
        try? run("/usr/bin/cc", ["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-I\(root)/include", "-I\(root)/SDK/c",
                                 "-I\(root)/Sources/CPlexusInternal/include",
                                 "\(root)/SDK/c/examples/\(name).c", "\(root)/SDK/c/plexus_client.c",
                                 "\(root)/Sources/CPlexus/wire.c", "-o", out])
        return out
    }

    static func probe(named agent: String = "probe", subscribe: String? = nil) throws -> String {
        var flags = ["-DAGENT_NAME=\"\(agent)\""]
        if let subscribe { flags.append("-DSUBSCRIBE=\"\(subscribe)\"") }
        return try build("probe.c", flags, name: agent)
    }

    static func run(_ exe: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            let msg = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw FixtureError(description: "\(exe) \(args.joined(separator: " ")) failed: \(msg)")
        }
    }

    struct FixtureError: Error, CustomStringConvertible { let description: String }
}

/// A started host with the given plugin files loaded.
func startedHost(_ files: [String], mailbox: Int = 4096, threads: Int = 2, timeoutMs: Int64 = 10_000,
                 maxPayload: UInt64 = 4 << 20) throws -> Host {
    var c = HostConfiguration(pluginsDirectory: nil)
    c.mailboxCapacity = mailbox
    c.threads = threads
    c.defaultTimeoutMs = timeoutMs
    c.maxPayload = maxPayload
    let host = Host(c)
    for f in files { try host.load(path: f) }
    host.start()
    return host
}

/// A started host running every plugin in a sandboxed worker (2 dispatcher
/// threads, 10 s default timeout, 5 ms restart backoff; `configure` changes
/// any of it) with the given plugin files loaded.
func sandboxedHost(_ files: [String], configure: (inout HostConfiguration) -> Void = { _ in }) throws -> Host {
    var c = HostConfiguration(pluginsDirectory: nil)
    c.sandbox = .process
    c.threads = 2
    c.defaultTimeoutMs = 10_000
    c.restartPolicy.backoffBaseMs = 5
    configure(&c)
    let host = Host(c)
    for f in files { try host.load(path: f) }
    host.start()
    return host
}

/// A started host (plugins from `config`'s directory plus `files`) serving a
/// socket at a fresh path in `directory` while `body` runs.
func withServedHost(_ config: HostConfiguration, files: [String] = [], directory: String = Fixtures.dir,
                    _ body: (Host, String) throws -> Void) throws {
    let h = Host(config)
    try h.loadPlugins()
    for f in files { _ = try h.load(path: f) }
    h.start()
    defer { h.shutdown() }
    let path = directory + "/plexus-\(UUID().uuidString.prefix(8)).sock"
    let server = try SocketServer(host: h, path: path)
    try server.start()
    defer { server.stop() }
    try body(h, path)
}

extension Host {
    func callText(_ target: String, _ payload: String = "", timeoutMs: Int64 = 5_000) throws -> String {
        try call(Envelope(kind: .query, target: Target(parsing: target), payload: Array(payload.utf8)), timeoutMs: timeoutMs).payloadString
    }

    func command(_ target: String, _ payload: String, priority: Priority = .normal, deadline: Int64 = 0) throws {
        try send(Envelope(kind: .command, target: Target(parsing: target), priority: priority,
                          payload: Array(payload.utf8), deadlineUnixNs: deadline))
    }
}

func expectError(_ code: plexus_status_code, _ body: () throws -> Void) -> PlexusError? {
    do { try body() } catch let e as PlexusError {
        return e.is(code) ? e : { Issue.record("expected \(code), got \(e)"); return e }()
    } catch { Issue.record("unexpected error \(error)"); return nil }
    Issue.record("expected \(code), got success")
    return nil
}

import Testing

func unixNow() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}
