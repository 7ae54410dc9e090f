/// One FIFO of messages in a ring of raw memory that doubles when full.
/// Push and pop are a few loads and stores: no copy-on-write uniqueness
/// check and no reference counting beyond the one reference the ring owns
/// per message (taken over from the caller on push, handed back on pop).
struct MessageRing: ~Copyable, @unchecked Sendable {   // used under its owner's lock only
    private var slots: UnsafeMutablePointer<Unmanaged<Message>>?
    private var mask = -1          // capacity - 1; capacity is a power of two (0 before the first push)
    private var head = 0           // index of the oldest message
    private(set) var count = 0

    init() {}

    deinit {
        guard let slots else { return }
        for i in 0..<count { slots[(head + i) & mask].release() }
        slots.deallocate()
    }

    var isEmpty: Bool { count == 0 }

    /// Takes over the reference u carries (+1).
    mutating func append(_ u: Unmanaged<Message>) {
        if count == mask + 1 { grow() }
        slots.unsafelyUnwrapped[(head + count) & mask] = u
        count += 1
    }

    /// Takes over the reference u carries (+1).
    mutating func prepend(_ u: Unmanaged<Message>) {
        if count == mask + 1 { grow() }
        head = (head - 1) & mask
        slots.unsafelyUnwrapped[head] = u
        count += 1
    }

    mutating func removeFirst() -> Message? {
        guard count > 0, let slots else { return nil }
        let m = slots[head].takeRetainedValue()
        head = (head + 1) & mask
        count -= 1
        return m
    }

    /// Doubles the ring, keeping the messages in order from index 0.
    private mutating func grow() {
        let capacity = max(16, (mask + 1) * 2)
        let bigger = UnsafeMutablePointer<Unmanaged<Message>>.allocate(capacity: capacity)
        if let slots {
            for i in 0..<count { bigger[i] = slots[(head + i) & mask] }
            slots.deallocate()
        }
        slots = bigger
        mask = capacity - 1
        head = 0
    }
}

/// A bounded mailbox: one FIFO per priority, highest priority first. FIFO
/// within a priority is what keeps one sender's messages in order. Not
/// thread-safe by itself: the owning Agent guards it.
struct Mailbox: ~Copyable, Sendable {
    // Four named rings, not an array of them: an array would be checked for
    // uniqueness (and retained) on every push and pop.
    private var p0 = MessageRing(), p1 = MessageRing(), p2 = MessageRing(), p3 = MessageRing()
    private(set) var count = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count >= capacity }

    private mutating func ring<R>(_ priority: UInt8, _ body: (inout MessageRing) -> R) -> R {
        switch priority {
        case 0: body(&p0)
        case 1: body(&p1)
        case 2: body(&p2)
        default: body(&p3)
        }
    }

    /// Appends unless full. `force` admits replies the agent itself asked for,
    /// which must never be refused (the request already succeeded).
    /// `elsewhere` counts messages waiting outside this mailbox that still
    /// count against its capacity (those a worker holds but has not started).
    /// Takes over u's reference (+1) when it returns true; the caller keeps
    /// it otherwise. An Unmanaged handle, so the router's reference moves
    /// into the ring with no reference counting on the way.
    mutating func push(_ u: Unmanaged<Message>, force: Bool = false, elsewhere: Int = 0) -> Bool {
        if count + elsewhere >= capacity && !force { return false }
        ring(u._withUnsafeGuaranteedRef { $0.header.priority }) { $0.append(u) }
        count += 1
        return true
    }

    mutating func push(_ m: Message, force: Bool = false, elsewhere: Int = 0) -> Bool {
        let u = Unmanaged.passRetained(m)
        if push(u, force: force, elsewhere: elsewhere) { return true }
        u.release()
        return false
    }

    mutating func pop() -> Message? {
        guard count > 0 else { return nil }
        let m = !p3.isEmpty ? p3.removeFirst() : !p2.isEmpty ? p2.removeFirst()
            : !p1.isEmpty ? p1.removeFirst() : p0.removeFirst()
        if m != nil { count -= 1 }
        return m
    }

    /// Puts messages back at the front of their priority, in their order:
    /// redelivery after a worker died. Always admitted (they were accepted once).
    mutating func pushFront(_ ms: [Message]) {
        for m in ms.reversed() { ring(m.header.priority) { $0.prepend(Unmanaged.passRetained(m)) } }
        count += ms.count
    }

    /// Bit p set when priority p (3 for 3 and above) has messages waiting.
    var waitingPriorities: Int {
        (p0.isEmpty ? 0 : 1) | (p1.isEmpty ? 0 : 2) | (p2.isEmpty ? 0 : 4) | (p3.isEmpty ? 0 : 8)
    }

    mutating func removeAll() -> [Message] {
        var out: [Message] = []
        while let m = pop() { out.append(m) }
        return out
    }
}
