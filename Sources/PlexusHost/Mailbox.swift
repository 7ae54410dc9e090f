import DequeModule

/// A bounded mailbox: one FIFO per priority, highest priority first. FIFO
/// within a priority is what keeps one sender's messages in order. Not
/// thread-safe by itself: the owning Agent guards it.
struct Mailbox {
    private var queues: [Deque<Message>] = Array(repeating: Deque(), count: 4)
    private(set) var count = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count >= capacity }

    /// Appends unless full. `force` admits replies the agent itself asked for,
    /// which must never be refused (the request already succeeded).
    /// `elsewhere` counts messages waiting outside this mailbox that still
    /// count against its capacity (those a worker holds but has not started).
    mutating func push(_ m: __owned Message, force: Bool = false, elsewhere: Int = 0) -> Bool {
        if count + elsewhere >= capacity && !force { return false }
        queues[Int(min(m.header.priority, 3))].append(m)
        count += 1
        return true
    }

    mutating func pop() -> Message? {
        guard count > 0 else { return nil }
        for p in stride(from: 3, through: 0, by: -1) where !queues[p].isEmpty {
            count -= 1
            return queues[p].removeFirst()
        }
        return nil
    }

    /// Puts messages back at the front of their priority, in their order:
    /// redelivery after a worker died. Always admitted (they were accepted once).
    mutating func pushFront(_ ms: [Message]) {
        for m in ms.reversed() { queues[Int(min(m.header.priority, 3))].prepend(m) }
        count += ms.count
    }

    mutating func removeAll() -> [Message] {
        var out: [Message] = []
        while let m = pop() { out.append(m) }
        return out
    }
}
