import Glibc

/// The two clocks the host reads: CLOCK_REALTIME for deadlines that travel in
/// envelopes, CLOCK_MONOTONIC for timers that must not jump.
public enum Clock {
    @inline(__always) public static func unixNanos() -> Int64 { read(CLOCK_REALTIME) }
    @inline(__always) public static func monotonicNanos() -> Int64 { read(CLOCK_MONOTONIC) }

    /// CLOCK_REALTIME_COARSE: the time at the kernel's last tick, read from
    /// memory without touching the hardware clock. It lags the real time by
    /// less than `coarseLagNanos` (a few ms), never leads it. The
    /// router reads it once per message and reads the exact clock only when
    /// a deadline falls inside that window (see `isPast`).
    @inline(__always) public static func coarseUnixNanos() -> Int64 { read(CLOCK_REALTIME_COARSE) }
    /// CLOCK_MONOTONIC_COARSE, read the same way, updated at the same tick.
    @inline(__always) public static func coarseMonotonicNanos() -> Int64 { read(CLOCK_MONOTONIC_COARSE) }

    /// How far the coarse clocks may lag, with room to spare: two of their
    /// ticks (clock_getres), so a tick the kernel runs late still fits.
    public static let coarseLagNanos: Int64 = {
        var ts = timespec()
        guard clock_getres(CLOCK_REALTIME_COARSE, &ts) == 0 else { return 20_000_000 }
        return 2 * max(1, Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
    }()

    /// Whether the unix deadline has passed, given a coarse reading taken
    /// now: exact, but the exact clock is read only when the deadline lies
    /// within `coarseLagNanos` of the coarse time (coarse <= real < coarse + lag).
    @inline(__always) public static func isPast(_ deadlineUnixNs: Int64, coarse: Int64) -> Bool {
        if deadlineUnixNs <= coarse { return true }
        if deadlineUnixNs > coarse + coarseLagNanos { return false }
        return deadlineUnixNs <= unixNanos()
    }

    @inline(__always) private static func read(_ id: clockid_t) -> Int64 {
        var ts = timespec()
        clock_gettime(id, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
