import Glibc

/// The two clocks the host reads: CLOCK_REALTIME for deadlines that travel in
/// envelopes, CLOCK_MONOTONIC for timers that must not jump.
public enum Clock {
    @inline(__always) public static func unixNanos() -> Int64 { read(CLOCK_REALTIME) }
    @inline(__always) public static func monotonicNanos() -> Int64 { read(CLOCK_MONOTONIC) }

    @inline(__always) private static func read(_ id: clockid_t) -> Int64 {
        var ts = timespec()
        clock_gettime(id, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
