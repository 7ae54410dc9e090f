/// One value handed from a callback to a thread that waits for it: the
/// "set in a callback, wait on a lock" pattern, in one place, with the
/// value behind the lock it is waited on with.
public final class OneShot<Value>: @unchecked Sendable {   // value: under lock
    private let lock = ConditionLock()
    private var value: Value?
    /// Called too when the value comes: for a waiter asleep somewhere else.
    private var alsoWake: (@Sendable () -> Void)?

    public init() {}

    /// Whether the value has come.
    public var isSet: Bool { lock.withLock { value != nil } }

    /// Has `set` call wake as well, after the lock (a waiter that sleeps on
    /// something of its own, not only in `wait`). Once, before waiting.
    public func wakeAlso(_ wake: @escaping @Sendable () -> Void) {
        lock.withLock { alsoWake = wake }
    }

    /// Hands the value over; only the first one counts. The waiter is woken
    /// after the lock is released: woken under it, it would only block on the
    /// lock again, one more switch (on a shared core, a whole extra turn).
    public func set(_ v: Value) {
        let (first, also) = lock.withLock { () -> (Bool, (@Sendable () -> Void)?) in
            guard value == nil else { return (false, nil) }
            value = v
            return (true, alsoWake)
        }
        guard first else { return }
        lock.broadcast()
        also?()
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
