import PlexusHost

/// What `plexus top` shows, computed from two successive `plexus.agents`
/// snapshots: the counters as the host reports them, and rates (handled/s,
/// failed/s, CPU %) from their differences over the real time between the
/// two. No I/O here.
struct TopTable {
    /// One answer of `plexus.agents`, and when (monotonic seconds) it arrived.
    struct Snapshot {
        var agents: [AgentReport]
        var at: Double
    }

    /// The columns `plexus top` can sort by (`--sort`, or s, < and > while it runs).
    enum SortKey: String, CaseIterable {
        case rate, name, mailbox, cpu, memory

        func moved(by step: Int) -> SortKey {
            let all = Self.allCases
            let i = all.firstIndex(of: self)!
            return all[(i + step + all.count) % all.count]
        }
    }

    struct Row {
        var agent: AgentReport
        /// nil on the first snapshot, or when a counter went backwards (the host restarted).
        var handledPerSecond: Double?
        var failedPerSecond: Double?
        /// Percent of one core; nil in process, on the first snapshot, or when the worker changed.
        var cpuPercent: Double?
    }

    var rows: [Row]

    init(_ current: Snapshot, after previous: Snapshot?, sortedBy key: SortKey) {
        let before = Dictionary(previous?.agents.map { ($0.name, $0) } ?? [], uniquingKeysWith: { a, _ in a })
        let elapsed = previous.map { current.at - $0.at } ?? 0
        rows = current.agents.map { a in
            var row = Row(agent: a)
            guard elapsed > 0, let b = before[a.name] else { return row }
            if a.handled >= b.handled && a.failed >= b.failed {
                row.handledPerSecond = Double(a.handled - b.handled) / elapsed
                row.failedPerSecond = Double(a.failed - b.failed) / elapsed
            }
            // A new worker's CPU time starts again from zero: no rate across it.
            if let now = a.cpu_seconds, let then = b.cpu_seconds, a.pid == b.pid, now >= then {
                row.cpuPercent = (now - then) / elapsed * 100
            }
            return row
        }
        rows.sort { Self.ordered($0, $1, by: key) }
    }

    var totalHandledPerSecond: Double? { sum(\.handledPerSecond) }
    var totalFailedPerSecond: Double? { sum(\.failedPerSecond) }

    private func sum(_ field: KeyPath<Row, Double?>) -> Double? {
        let known = rows.compactMap { $0[keyPath: field] }
        return known.isEmpty ? nil : known.reduce(0, +)
    }

    /// Biggest first for the numeric keys (an unknown value last), names A to Z;
    /// ties by name so rows do not jump between refreshes.
    static func ordered(_ x: Row, _ y: Row, by key: SortKey) -> Bool {
        func desc<T: Comparable>(_ a: T?, _ b: T?) -> Bool? {
            switch (a, b) {
            case let (a?, b?) where a != b: a > b
            case (_?, nil): true
            case (nil, _?): false
            default: nil
            }
        }
        let decided: Bool? = switch key {
        case .name: nil
        case .rate: desc(x.handledPerSecond, y.handledPerSecond) ?? desc(x.agent.handled, y.agent.handled)
        case .mailbox: desc(x.agent.queued, y.agent.queued) ?? desc(x.agent.in_flight, y.agent.in_flight)
        case .cpu: desc(x.cpuPercent, y.cpuPercent) ?? desc(x.agent.cpu_seconds, y.agent.cpu_seconds)
        case .memory: desc(x.agent.resident_bytes, y.agent.resident_bytes)
        }
        return decided ?? (x.agent.name < y.agent.name)
    }

    /// The column headers, and which one each sort key sorts by (for the marker).
    static let headers = ["NAME", "STATE", "KIND", "PID", "CIRCUIT", "RESTARTS", "QUEUED", "IN-FLIGHT",
                          "HANDLED/S", "HANDLED", "FAILED/S", "FAILED", "P50", "P99", "CPU%", "MEM", "LAST EXIT"]
    static func column(of key: SortKey) -> Int {
        switch key {
        case .rate: 8
        case .name: 0
        case .mailbox: 6
        case .cpu: 14
        case .memory: 15
        }
    }
    /// Text columns are left-aligned; numbers right-aligned, as in top.
    private static let leftAligned: Set<Int> = [0, 1, 2, 4, 16]

    /// Every row's cells, "-" where the host does not know the value.
    var cells: [[String]] {
        rows.map { r in
            let a = r.agent
            let pid: String = a.pid.map { "\($0)" } ?? "-"
            let handledRate: String = r.handledPerSecond.map(Self.rate) ?? "-"
            let failedRate: String = r.failedPerSecond.map(Self.rate) ?? "-"
            let p50: String = a.handle_p50_us.map(Self.duration) ?? "-"
            let p99: String = a.handle_p99_us.map(Self.duration) ?? "-"
            let cpu: String = r.cpuPercent.map(Self.rate) ?? "-"
            let mem: String = a.resident_bytes.map(Self.bytes) ?? "-"
            var row: [String] = [a.name, a.state, a.kind, pid, a.circuit ?? "-", "\(a.restarts)", "\(a.queued)", "\(a.in_flight)"]
            row += [handledRate, "\(a.handled)", failedRate, "\(a.failed)", p50, p99, cpu, mem, a.last_exit ?? "-"]
            return row
        }
    }

    /// The header line and the rows, as padded lines (no trailing blanks).
    var lines: [String] {
        let all = [Self.headers] + cells
        let widths = Self.headers.indices.map { c in all.map { $0[c].count }.max() ?? 0 }
        return all.map { r in
            var line = r.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return Self.leftAligned.contains(c) ? cell + pad : pad + cell
            }.joined(separator: "  ")
            while line.last == " " { line.removeLast() }
            return line
        }
    }

    // MARK: formatting

    /// One decimal below 100, none above: 0.0, 12.5, 340.
    static func rate(_ v: Double) -> String {
        guard v.isFinite else { return "-" }
        if v >= 99.95 { return "\(Int(v.rounded()))" }
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// Microseconds as 850us, 1.2ms, 3.4s.
    static func duration(_ us: Double) -> String {
        if us < 999.5 { return "\(Int(us.rounded()))us" }
        if us < 999_950 { return rate(us / 1_000) + "ms" }
        return rate(us / 1_000_000) + "s"
    }

    /// 512B, 12.0K, 3.4M, 1.2G (powers of 1024).
    static func bytes(_ n: Int) -> String {
        let units = ["K", "M", "G", "T"]
        guard n >= 1024 else { return "\(n)B" }
        var v = Double(n) / 1024
        var u = 0
        while v >= 1023.95 && u < units.count - 1 { v /= 1024; u += 1 }
        return rate(v) + units[u]
    }
}
