import Foundation
import Glibc
import PlexusCore

/// A real `plexus run` process (the built executable next to the test
/// bundle), its stderr in a file, for tests that measure or signal the
/// host from outside.
final class HostProcess {
    let process = Process()
    let dir: String
    let socket: String
    let log: String

    /// Starts `plexus run` on a fresh socket and store in dir with extra
    /// arguments; returns once it says it is up (or throws after 60 s).
    /// With openFiles, the host runs under that RLIMIT_NOFILE (soft and hard).
    init(_ name: String, plugins: [String: String] = [:], arguments: [String] = [], openFiles: Int? = nil,
         environment: [String: String] = [:]) throws {
        dir = Fixtures.dir + "/\(name)-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir + "/plugins", withIntermediateDirectories: true)
        for (file, so) in plugins { try FileManager.default.copyItem(atPath: so, toPath: dir + "/plugins/" + file) }
        socket = dir + "/plexus.sock"
        log = dir + "/host.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("plexus").path
        let args = ["run", "--plugins", dir + "/plugins", "--socket", socket, "--store", dir + "/plexus.db"] + arguments
        if let openFiles {
            // The shell lowers the limit, then becomes plexus (same pid).
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -n \(openFiles) && exec \"$0\" \"$@\"", exe] + args
        } else {
            process.executableURL = URL(fileURLWithPath: exe)
            process.arguments = args
        }
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        guard waitFor(seconds: 60, { self.logText.contains("host up") || !self.process.isRunning }), process.isRunning else {
            throw Fixtures.FixtureError(description: "plexus run did not come up: \(logText)")
        }
    }

    deinit {
        if process.isRunning { kill(pid, SIGKILL); process.waitUntilExit() }
    }

    var pid: Int32 { process.processIdentifier }
    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// The host's threads, mappings, descriptors, resident and virtual size (bytes), from /proc.
    struct Usage: CustomStringConvertible {
        var threads = 0, maps = 0, fds = 0, rss = 0, vsize = 0
        var description: String { "threads \(threads), maps \(maps), fds \(fds), rss \(rss >> 10) KiB, vsize \(vsize >> 10) KiB" }
    }

    var usage: Usage {
        var u = Usage()
        u.threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").count) ?? -1
        u.maps = ((try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)) ?? "").split(separator: "\n").count
        u.fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
        let statm = ((try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8)) ?? "").split(separator: " ").compactMap { Int($0) }
        if statm.count >= 2 { u.vsize = statm[0] * Int(getpagesize()); u.rss = statm[1] * Int(getpagesize()) }
        return u
    }
}

/// Polls condition until it holds or the deadline passes (a generous bound
/// for an event, not a timing assertion).
@discardableResult
func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// A raw client connection for tests that need more than SocketClient
/// gives: many at once, half frames, no hello.
struct RawClient {
    let fd: Int32

    /// Connects to path; nil with errno set when refused.
    static func connect(_ path: String, nonblocking: Bool = false) -> RawClient? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonblocking ? Int32(SOCK_NONBLOCK.rawValue) : 0), 0)
        guard fd >= 0 else { return nil }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            for (i, b) in path.utf8.enumerated() { dst[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 { let e = errno; Glibc.close(fd); errno = e; return nil }
        if nonblocking { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) }
        // A generous bound so a lost answer fails the test instead of hanging it.
        var tv = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return RawClient(fd: fd)
    }

    /// A QUERY frame to target.
    static func query(_ target: String, id: UInt64 = 1) -> [UInt8] {
        let e = Envelope(kind: .query, target: .capability(target), payload: [], id: plexus_id(hi: 7, lo: id))
        return (try? e.encode()) ?? []
    }

    func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { b in Glibc.send(fd, b.baseAddress, b.count, Int32(MSG_NOSIGNAL)) == b.count }
    }

    /// Reads one whole frame; nil at end of file, on error or timeout.
    func readFrame() -> Envelope? {
        var header = [UInt8](repeating: 0, count: Wire.headerLength)
        guard readFull(&header) else { return nil }
        guard let body = try? header.withUnsafeBytes({ h throws(PlexusError) in try Wire.bodyLength(header: h, maxPayload: 64 << 20) }) else { return nil }
        var rest = [UInt8](repeating: 0, count: body)
        guard readFull(&rest) else { return nil }
        return try? Envelope(frame: header + rest, maxPayload: 64 << 20)
    }

    /// True when the host closed the connection (end of file) before the timeout.
    func atEnd() -> Bool {
        var b: UInt8 = 0
        return recv(fd, &b, 1, 0) == 0
    }

    private func readFull(_ buf: inout [UInt8]) -> Bool {
        var off = 0
        while off < buf.count {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + off, $0.count - off, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    func close() { Glibc.close(fd) }
}
