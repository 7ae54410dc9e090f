import Glibc
import Synchronization

/// The write end of the running screen's signal pipe (-1 when none): the
/// handler below writes the signal's number there, and `TerminalScreen.wait`
/// polls the read end, so a signal wakes the loop without a race and the
/// handler does nothing but one async-signal-safe write.
private let signalPipe = Atomic<Int32>(-1)

/// A full-screen terminal session for `plexus top`: the alternate screen, a
/// hidden cursor, and stdin in raw mode so single keys arrive at once; all
/// undone by `restore()`, which every exit path reaches (the command's
/// `defer`, a stop signal, an error). Used from one thread.
final class TerminalScreen: Sendable {
    enum Event: Equatable {
        case timeout
        case keys([UInt8])
        case resized
        /// SIGINT, SIGTERM, SIGHUP or SIGQUIT: restore, then die of it.
        case stop(Int32)
    }

    static let stopSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

    private struct State {
        var active = false
        var saved: termios?
        var pipe: (read: Int32, write: Int32) = (-1, -1)
    }
    private let state = Mutex(State())

    /// stdout is a terminal, so escapes make sense. Keys need stdin to be one
    /// too; without it the screen still refreshes and stops on a signal.
    static var stdoutIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }

    /// Enters the alternate screen and raw mode, and routes the stop signals
    /// and SIGWINCH into `wait`. Throws when the signal pipe cannot be made.
    init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw CLIError("plexus top: pipe: \(String(cString: strerror(errno)))") }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        var saved: termios?
        if isatty(STDIN_FILENO) == 1 {
            var t = termios()
            if tcgetattr(STDIN_FILENO, &t) == 0 {
                saved = t
                // No line editing, no echo, no signals from keys (Ctrl-C arrives
                // as a key and quits like q), no flow control (Ctrl-S would freeze
                // the screen); output processing stays, so "\n" still returns.
                t.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG | IEXTEN)
                t.c_iflag &= ~tcflag_t(IXON | ICRNL)
                withUnsafeMutableBytes(of: &t.c_cc) { cc in
                    cc[Int(VMIN)] = 1
                    cc[Int(VTIME)] = 0
                }
                _ = tcsetattr(STDIN_FILENO, TCSANOW, &t)
            }
        }
        state.withLock { $0 = State(active: true, saved: saved, pipe: (fds[0], fds[1])) }
        signalPipe.store(fds[1], ordering: .sequentiallyConsistent)
        var sa = sigaction()
        sa.__sigaction_handler.sa_handler = { sig in
            let saved = errno
            var b = UInt8(truncatingIfNeeded: sig)
            _ = write(signalPipe.load(ordering: .relaxed), &b, 1)
            errno = saved
        }
        sigemptyset(&sa.sa_mask)
        for s in Self.stopSignals + [SIGWINCH] { sigaction(s, &sa, nil) }
        // Alternate screen, cursor hidden.
        emit("\u{1B}[?1049h\u{1B}[?25l")
    }

    deinit { restore() }

    /// Columns and rows of the terminal on stdout (80x24 when it does not say).
    var size: (columns: Int, rows: Int) {
        var ws = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0, ws.ws_row > 0 else { return (80, 24) }
        return (Int(ws.ws_col), Int(ws.ws_row))
    }

    /// Waits up to `milliseconds` for keys or a signal.
    func wait(milliseconds: Int32) -> Event {
        let (readEnd, hasKeys) = state.withLock { ($0.pipe.read, $0.saved != nil) }
        var fds = [pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)]
        if hasKeys { fds.append(pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)) }
        let n = poll(&fds, nfds_t(fds.count), max(0, milliseconds))
        guard n > 0 else { return .timeout }   // 0, or EINTR from a signal whose byte the next poll sees
        if fds[0].revents != 0 {
            var sigs = [UInt8](repeating: 0, count: 16)
            let got = read(readEnd, &sigs, sigs.count)
            // A stop wins over a resize that came with it.
            let caught = got > 0 ? sigs[..<got].map(Int32.init) : []
            if let stop = caught.first(where: { Self.stopSignals.contains($0) }) { return .stop(stop) }
            if !caught.isEmpty { return .resized }
        }
        if fds.count > 1, fds[1].revents != 0 {
            var keys = [UInt8](repeating: 0, count: 64)
            let got = read(STDIN_FILENO, &keys, keys.count)
            // End of input (the terminal went away) reads as a quit.
            if got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR) { return .keys([UInt8(ascii: "q")]) }
            if got > 0 { return .keys(Array(keys[..<got])) }
        }
        return .timeout
    }

    /// Replaces the screen with these lines, each cut to the width; one write,
    /// so the terminal never shows half a frame.
    func draw(_ lines: [String]) {
        var out = "\u{1B}[H"
        for (i, line) in lines.enumerated() {
            if i > 0 { out += "\r\n" }
            out += line + "\u{1B}[K"
        }
        out += "\u{1B}[J"
        emit(out)
    }

    /// Leaves the alternate screen, shows the cursor, restores the terminal's
    /// modes and the signals' default actions. Safe to call more than once.
    func restore() {
        let s = state.withLock { s -> State? in
            guard s.active else { return nil }
            s.active = false
            return s
        }
        guard let s else { return }
        emit("\u{1B}[?25h\u{1B}[?1049l")
        if var t = s.saved { _ = tcsetattr(STDIN_FILENO, TCSANOW, &t) }
        for sig in Self.stopSignals + [SIGWINCH] { signal(sig, SIG_DFL) }
        signalPipe.store(-1, ordering: .sequentiallyConsistent)
        close(s.pipe.read)
        close(s.pipe.write)
    }

    private func emit(_ s: String) { FileHandleErr.write(Array(s.utf8), to: STDOUT_FILENO) }
}
