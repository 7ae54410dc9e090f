/// One value handed from a callback to a thread that waits for it: the
/// "set in a callback, wait on a lock" pattern, in one place, with the
/// value behind the lock it is waited on with.
public final class OneShot<Value>: @unchecked Sendable {   // value: under lock
    private let lock = ConditionLock()
    private var value: Value?

    public init() {}

    /// Hands the value over; only the first one counts. The waiter is woken
    /// after the lock is released: woken under it, it would only block on the
    /// lock again, one more switch (on a shared core, a whole extra turn).
    public func set(_ v: Value) {
        let first: Bool = lock.withLock {
            guard value == nil else { return false }
            value = v
            return true
        }
        if first { lock.broadcast() }
    }

    /// Waits for the value.
    public func wait() -> Value {
        lock.withLock {
            while value == nil { lock.wait() }
            return value!
        }
    }

    /// Waits for the value until the monotonic deadline (ns); nil if it did not come.
    public func wait(untilMonotonic deadline: Int64) -> Value? {
        lock.withLock {
            while value == nil && Clock.monotonicNanos() < deadline { lock.wait(untilMonotonic: deadline) }
            return value
        }
    }
}
