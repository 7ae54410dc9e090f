/// One agent's circuit breaker. Closed: messages flow. After `threshold`
/// failures in a row it opens: callers are refused at once (no queueing
/// behind a worker that keeps dying) for `cooldownSeconds`, doubled each
/// time a probe fails. Then half-open: one message is let through as a
/// probe; its success closes the circuit, its failure opens it again.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: String, Sendable { case closed, open, halfOpen = "half-open" }

    public private(set) var state = State.closed
    public private(set) var failures = 0
    public private(set) var openedAt = 0.0
    public private(set) var cooldown: Double
    public let threshold: Int
    public let baseCooldown: Double
    public let maxCooldown: Double
    private var probeOut = false

    public init(threshold: Int = 5, cooldownSeconds: Double = 1, maxCooldownSeconds: Double = 60) {
        self.threshold = threshold
        self.baseCooldown = cooldownSeconds
        self.cooldown = cooldownSeconds
        self.maxCooldown = maxCooldownSeconds
    }

    /// Whether a message may go to the agent now; in half-open, only one.
    public mutating func allow(now: Double) -> Bool {
        switch state {
        case .closed: return true
        case .open:
            guard now - openedAt >= cooldown else { return false }
            state = .halfOpen
            probeOut = true
            return true
        case .halfOpen:
            if probeOut { return false }
            probeOut = true
            return true
        }
    }

    public mutating func succeeded() {
        state = .closed
        failures = 0
        cooldown = baseCooldown
        probeOut = false
    }

    public mutating func failed(now: Double) {
        failures += 1
        switch state {
        case .halfOpen:
            cooldown = min(maxCooldown, cooldown * 2)
            open(now)
        case .closed where failures >= threshold:
            open(now)
        default: break
        }
    }

    /// Seconds until a probe may go, while open.
    public func remaining(now: Double) -> Double { state == .open ? max(0, cooldown - (now - openedAt)) : 0 }

    private mutating func open(_ now: Double) {
        state = .open
        openedAt = now
        probeOut = false
    }
}
