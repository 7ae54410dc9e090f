import CPlexusPOSIX
import Glibc
import Synchronization

/// Why a thread could not be started: pthread_create's error, with the
/// thread's name. Callers report it (a refused call, a failed start); the
/// host never aborts for it.
public struct ThreadStartError: Error, CustomStringConvertible, Sendable {
    public let name: String
    public let code: Int32
    public var description: String { "cannot start thread '\(name)': pthread_create: \(String(cString: strerror(code)))" }
}

/// A joinable OS thread with exactly one owner. `join()` waits for it; an
/// OwnedThread dropped without a join detaches its thread, so no stack is
/// ever left behind whatever path the owner takes.
public final class OwnedThread: Sendable {
    public let name: String
    private enum State { case running(pthread_t), released }
    private let state: Mutex<State>

    fileprivate init(name: String, tid: pthread_t) {
        self.name = name
        self.state = Mutex(.running(tid))
    }

    /// Waits for the thread to end. Idempotent; a thread joining itself
    /// detaches instead (pthread_join would fail with EDEADLK).
    public func join() {
        guard let tid = release() else { return }
        if pthread_equal(tid, pthread_self()) != 0 { pthread_detach(tid) } else { pthread_join(tid, nil) }
    }

    /// Lets the thread run on its own; its resources go back when it ends.
    public func detach() {
        if let tid = release() { pthread_detach(tid) }
    }

    private func release() -> pthread_t? {
        state.withLock { s in
            guard case .running(let tid) = s else { return nil }
            s = .released
            return tid
        }
    }

    deinit { detach() }
}

/// Starts a named OS thread running body; the caller owns (joins) it.
/// Plugins get real threads (never Swift's cooperative pool) because a
/// plugin handler may block.
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) throws(ThreadStartError) -> OwnedThread {
    OwnedThread(name: name, tid: try spawnThread(name: name, body))
}

/// Starts a named OS thread that nobody joins: it is detached at once and
/// its resources go back when body returns.
public func startDetachedThread(name: String, _ body: @escaping @Sendable () -> Void) throws(ThreadStartError) {
    pthread_detach(try spawnThread(name: name, body))
}

/// A test seam: pthread_create is made to fail (EAGAIN, as when a process
/// reaches its thread limit) for the next `count` threads named `name`.
/// A lowered RLIMIT_NPROC cannot make it fail reliably (root ignores it),
/// and a name keeps the fault away from the other threads of a test process.
public enum ThreadFaults {
    private static let armed = Atomic<Int>(0)
    private static let pending = Mutex<[String: Int]>([:])

    public static func failNext(_ count: Int, named name: String) {
        pending.withLock { $0[name, default: 0] += count }
        armed.add(count, ordering: .relaxed)
    }

    /// Consumes one armed failure for name, if any.
    static func take(_ name: String) -> Bool {
        guard armed.load(ordering: .relaxed) > 0 else { return false }
        return pending.withLock { p in
            guard let n = p[name], n > 0 else { return false }
            p[name] = n == 1 ? nil : n - 1
            armed.subtract(1, ordering: .relaxed)
            return true
        }
    }
}

private final class ThreadBody {
    let name: String
    let body: @Sendable () -> Void
    init(_ name: String, _ body: @escaping @Sendable () -> Void) { self.name = name; self.body = body }
}

private func spawnThread(name: String, _ body: @escaping @Sendable () -> Void) throws(ThreadStartError) -> pthread_t {
    if ThreadFaults.take(name) { throw ThreadStartError(name: name, code: EAGAIN) }
    let box = Unmanaged.passRetained(ThreadBody(name, body)).toOpaque()
    var tid = pthread_t()
    let rc = pthread_create(&tid, nil, { arg in
        let b = Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue()
        // The name `top -H`, `ps -L`, perf and gdb show (the kernel keeps 15 bytes).
        plexus_posix_name_thread(b.name)
        b.body()
        return nil
    }, box)
    guard rc == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        throw ThreadStartError(name: name, code: rc)
    }
    return tid
}
