import Synchronization

/// An operator's suspension of one agent (`plexus agents suspend`): its
/// mailbox keeps taking mail, but no runner hands it any until resume.
///
/// A runner that finds the hold on parks instead of taking a message: it
/// keeps its claim on the agent (so admissions do not schedule it again)
/// and is counted here; resume hands every parked runner back to the
/// dispatcher, which delivers what queued, in order. The flag is read by
/// every batch with one relaxed load; the lock is taken only to park or to
/// release, so the two can never miss each other. A non-copyable struct
/// stored in the agent itself: reading the flag retains nothing (a class
/// here cost a retain and a release per message, about 60 instructions).
struct Hold: ~Copyable, Sendable {
    // Not private: Agent, which stores a Hold inline, needs its layout
    // (a private type here crashes the compiler in debug builds).
    struct State {
        var on = false
        var parked = 0
    }
    private let flag = Atomic<Bool>(false)
    private let state = Mutex(State())

    /// Whether the agent is suspended (a hint: park() decides under the lock).
    @inline(__always)
    var isOn: Bool { flag.load(ordering: .acquiring) }

    /// Suspends; false when it was suspended already.
    func engage() -> Bool {
        state.withLock { s in
            guard !s.on else { return false }
            s.on = true
            flag.store(true, ordering: .releasing)
            return true
        }
    }

    /// A runner stops here while the hold is on: true when it parked (it
    /// must return, keeping its claim), false when the hold was released
    /// meanwhile (it goes on).
    func park() -> Bool {
        state.withLock { s in
            guard s.on else { return false }
            s.parked += 1
            return true
        }
    }

    /// Releases the hold; returns how many runners parked, each of which
    /// the caller must hand back to the dispatcher. nil when it was not on.
    func release() -> Int? {
        state.withLock { s in
            guard s.on else { return nil }
            s.on = false
            flag.store(false, ordering: .releasing)
            defer { s.parked = 0 }
            return s.parked
        }
    }
}
