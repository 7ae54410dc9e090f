import CPlexusInternal
import CPlexusPOSIX
import Glibc
import PlexusCore
import PlexusThreads
import Synchronization

/// Pre-spawned workers waiting for a plugin image, so that a restart or a
/// new instance skips the process start, the namespaces and the new root
/// (`defaults: { warm_workers: N }` in plexus.yaml).
///
/// A worker's rlimits, namespaces, root, Landlock rules and syscall filter
/// all follow from its policy, so the pool keeps `size` warm workers per
/// distinct policy (and payload limit) that has started a worker, each
/// spawned with exactly that policy: a plugin only ever runs in a worker
/// confined for its own policy. A warm worker has done everything that
/// needs no image (namespaces, the new root, pivot) and waits,
/// single-threaded, on a socket; the image's arrival finishes its
/// confinement (copy into the root, read-only, nobody, Landlock, no
/// capabilities, limits, the filter) before the plugin's bytes are mapped.
public final class WarmPool: Sendable {
    public let size: Int

    private struct Key: Hashable {
        let policy: WorkerPolicy
        let maxPayload: UInt64
    }

    private struct State {
        var idle: [Key: [Launched]] = [:]
        /// Warm workers being started, per key.
        var starting: [Key: Int] = [:]
        /// Keys whose warm workers failed to start or died waiting: those
        /// start cold from then on (the cold start reports why).
        var broken: Set<Key> = []
        var closed = false
        /// Workers handed out since the pool was made.
        var taken = 0
    }

    private let state = Mutex(State())

    public init(size: Int) {
        self.size = max(0, size)
    }

    /// A warm worker for policy, handed image; nil when none is ready (the
    /// caller starts one cold). The caller refills (prime) once its worker
    /// is ready: starting the next one meanwhile would compete with it.
    func take(policy: WorkerPolicy, maxPayload: UInt64, image: PluginImage) -> Launched? {
        guard size > 0 else { return nil }
        let key = Key(policy: policy, maxPayload: maxPayload)
        while let w = state.withLock({ s -> Launched? in s.idle[key]?.popLast() }) {
            var code: Int32 = 0, signaled: Int32 = 0, core: Int32 = 0
            let gone = plexus_posix_wait(w.pid, 0, &code, &signaled, &core) != 0
            if gone || plexus_fds_send(w.imageSocket, CChar(UInt8(ascii: "I")), [image.fd], 1) != 0 {
                // Died while waiting (a confinement this kernel refuses):
                // the cold start that follows reports the reason.
                if !gone { w.discard() } else { for fd in [w.imageSocket, w.channel, w.out, w.err, w.wake.r, w.wake.w] { close(fd) } }
                state.withLock { _ = $0.broken.insert(key) }
                continue
            }
            close(w.imageSocket)
            state.withLock { $0.taken += 1 }
            return Launched(pid: w.pid, channel: w.channel, out: w.out, err: w.err, wake: w.wake, imageSocket: -1, ring: w.ring)
        }
        return nil
    }

    /// Starts warm workers for policy up to the pool's size, in the
    /// background: called when a worker of the policy is ready (the first
    /// one started cold, or one that took a warm worker).
    public func prime(policy: WorkerPolicy, maxPayload: UInt64) {
        guard size > 0 else { return }
        refill(Key(policy: policy, maxPayload: maxPayload))
    }

    private func refill(_ key: Key) {
        let need: Int = state.withLock { s in
            guard !s.closed, !s.broken.contains(key) else { return 0 }
            let n = size - (s.idle[key]?.count ?? 0) - (s.starting[key] ?? 0)
            if n > 0 { s.starting[key, default: 0] += n }
            return max(0, n)
        }
        guard need > 0 else { return }
        // Detached: it ends after `need` starts; shutdown() discards what
        // it adds after the pool closed.
        do throws(ThreadStartError) {
            try startDetachedThread(name: "plexus-warm") { [self] in
                for _ in 0..<need { start(key) }
            }
        } catch {
            state.withLock { $0.starting[key, default: need] -= need }
        }
    }

    /// How long a warm worker may take to enter its namespaces and root.
    static let prepareTimeoutMs: Int32 = 10_000

    private func start(_ key: Key) {
        var launched: Launched?
        do throws(PlexusError) {
            launched = try WorkerProcess.launch(policy: key.policy, maxPayload: key.maxPayload, image: nil)
        } catch {
            launched = nil
        }
        // Counted as warm only once it says it is confined (one byte on the
        // image socket): a worker still starting saves nothing. End of file
        // instead: its confinement failed, and this policy starts cold.
        if let w = launched, !Self.awaitReady(w.imageSocket) {
            w.discard()
            launched = nil
        }
        let late: Launched? = state.withLock { s in
            s.starting[key, default: 1] -= 1
            guard let w = launched else { s.broken.insert(key); return nil }
            if s.closed { return w }
            s.idle[key, default: []].append(w)
            return nil
        }
        late?.discard()
    }

    private static func awaitReady(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        var rc: Int32
        repeat { rc = poll(&p, 1, prepareTimeoutMs) } while rc < 0 && errno == EINTR
        var byte: UInt8 = 0
        return rc == 1 && recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) == 1 && byte == UInt8(ascii: "R")
    }

    /// Warm workers ready for policy now.
    public func ready(for policy: WorkerPolicy, maxPayload: UInt64) -> Int {
        state.withLock { $0.idle[Key(policy: policy, maxPayload: maxPayload)]?.count ?? 0 }
    }

    /// Warm workers ready now, for every policy.
    public var readyCount: Int { state.withLock { $0.idle.values.reduce(0) { $0 + $1.count } } }

    /// Reaps waiting workers that died after they were ready (killed from
    /// outside: their confinement had succeeded), closes their descriptors
    /// and starts others in their place. Run by the health monitor's tick
    /// (100 ms), so a dead warm worker neither stays a zombie nor counts as
    /// ready for longer than that.
    public func prune() {
        let dead: [(Key, Launched)] = state.withLock { s in
            var dead: [(Key, Launched)] = []
            for (key, list) in s.idle {
                var alive: [Launched] = []
                for w in list {
                    var code: Int32 = 0, signaled: Int32 = 0, core: Int32 = 0
                    if plexus_posix_wait(w.pid, 0, &code, &signaled, &core) != 0 { dead.append((key, w)) } else { alive.append(w) }
                }
                s.idle[key] = alive
            }
            return dead
        }
        for (_, w) in dead { for fd in [w.imageSocket, w.channel, w.out, w.err, w.wake.r, w.wake.w] { close(fd) } }
        for key in Set(dead.map(\.0)) { refill(key) }
    }

    /// Workers handed out since the pool was made.
    public var takenCount: Int { state.withLock { $0.taken } }

    /// Pids of the warm workers waiting now (tests: a restart's new pid is one of them).
    public var readyPids: [Int32] { state.withLock { $0.idle.values.flatMap { $0.map(\.pid) } } }

    /// Kills and reaps every waiting worker; nothing refills afterwards.
    public func shutdown() {
        let all: [Launched] = state.withLock { s in
            s.closed = true
            let all = s.idle.values.flatMap { $0 }
            s.idle = [:]
            return all
        }
        for w in all { w.discard() }
    }
}

extension WorkerProcess {
    /// Starts a worker for image under policy: a warm one from pool when one
    /// is ready for exactly this policy, else cold. The caller primes the
    /// pool once the worker is ready.
    public convenience init(pool: WarmPool?, image: PluginImage, policy: WorkerPolicy, maxPayload: UInt64,
                            label: String, events: any WorkerEvents) throws(PlexusError) {
        if let pool, let w = pool.take(policy: policy, maxPayload: maxPayload, image: image) {
            try self.init(launched: w, policy: policy, maxPayload: maxPayload, label: label, events: events)
            return
        }
        try self.init(image: image, policy: policy, maxPayload: maxPayload, label: label, events: events)
    }
}
