import Glibc
import Logging
import PlexusCore
import PlexusThreads
import Synchronization

/// Watches the plugins directory (inotify) and reports each `.so` whose
/// writer closed it, that was renamed in, or that was removed, once no
/// event about it came for `debounceMs`.
///
/// Why these events: `cp new.so Plugins/` writes the file in place, so
/// the file is whole only at IN_CLOSE_WRITE; `mv` (and installers that
/// write elsewhere, then rename) give IN_MOVED_TO, whole at once. A
/// write that goes on after a close (IN_MODIFY) postpones the report, so
/// a file being copied again is read once, after the last close.
final class PluginWatcher: Sendable {
    let directory: String
    private let fd: Int32
    private let debounceNs: Int64
    private let report: @Sendable (String) -> Void
    private let logger = Logger(label: "plexus.watcher")
    private struct State {
        var stopping = false
        var thread: OwnedThread?
    }
    private let state = Mutex(State())

    /// `report` gets the file's full path, on the watcher's thread; it
    /// decides from the file system whether the file changed or went.
    init(directory: String, debounceMs: Int64, report: @escaping @Sendable (String) -> Void) throws(PlexusError) {
        let fd = inotify_init1(Int32(IN_CLOEXEC) | Int32(IN_NONBLOCK))
        guard fd >= 0 else { throw PlexusError(.INTERNAL, "cannot watch \(directory): inotify_init1: \(String(cString: strerror(errno)))") }
        let mask = UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO) | UInt32(IN_MOVED_FROM) | UInt32(IN_DELETE) | UInt32(IN_MODIFY)
        guard inotify_add_watch(fd, directory, mask) >= 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw PlexusError(.INVALID_ARGUMENT, "cannot watch plugins directory '\(directory)': \(why)")
        }
        self.fd = fd
        self.directory = directory.hasSuffix("/") ? directory : directory + "/"
        self.debounceNs = max(1, debounceMs) * 1_000_000
        self.report = report
    }

    func start() throws(ThreadStartError) {
        let t = try startThread(name: "plexus-watcher") { [self] in run() }
        state.withLock { $0.thread = t }
    }

    /// Ends the thread (within one poll interval) and waits for it.
    func stop() {
        let t: OwnedThread? = state.withLock { s in
            s.stopping = true
            defer { s.thread = nil }
            return s.thread
        }
        t?.join()
    }

    deinit { close(fd) }

    private static let pollMs: Int64 = 50

    private func run() {
        var due: [String: Int64] = [:]     // file name -> when to report it
        var armed = Set<String>()          // names with a close or rename seen
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !state.withLock({ $0.stopping }) {
            let now = Clock.monotonicNanos()
            let next = due.values.min().map { max(0, ($0 - now) / 1_000_000 + 1) } ?? Self.pollMs
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(min(next, Self.pollMs)))
            if ready > 0 {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 { parse(buffer, count: n, at: Clock.monotonicNanos(), due: &due, armed: &armed) }
            }
            let t = Clock.monotonicNanos()
            for (name, when) in due where when <= t {
                due[name] = nil
                if armed.remove(name) != nil { report(directory + name) }
            }
        }
    }

    /// inotify_event: wd, mask, cookie, len (4 bytes each), then len bytes of name.
    private func parse(_ b: [UInt8], count: Int, at now: Int64, due: inout [String: Int64], armed: inout Set<String>) {
        var o = 0
        while o + 16 <= count {
            let mask = b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o + 4, as: UInt32.self) }
            let len = Int(b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o + 12, as: UInt32.self) })
            let nameBytes = b[(o + 16)..<min(count, o + 16 + len)].prefix { $0 != 0 }
            o += 16 + len
            if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                logger.warning("inotify queue overflowed: some plugin changes may be missed; `plexus plugins reload FILE` loads one by hand")
                continue
            }
            let name = String(decoding: nameBytes, as: UTF8.self)
            guard name.hasSuffix(".so"), !name.hasPrefix(".") else { continue }
            if mask & UInt32(IN_MODIFY) != 0 {
                if due[name] != nil { due[name] = now + debounceNs }   // still being written: later
                continue
            }
            armed.insert(name)
            due[name] = now + debounceNs
        }
    }
}
