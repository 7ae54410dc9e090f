import Foundation
import Glibc
import PlexusCore
import PlexusSocket
import PlexusTestSupport
import Testing

/// /metrics as Prometheus reads it: a real `plexus run --http`, a known
/// workload through the socket (a sandboxed and an in-process agent, some
/// calls failing), then the text parsed by prometheus_client's own parser
/// (Tests/metrics/parse_metrics.py) and compared with what was sent.
@Suite("Metrics endpoint")
struct MetricsEndpointTests {
    /// Every family issue 15 item 2 names.
    static let families: [(name: String, type: String)] = [
        ("plexus_messages_routed_total", "counter"), ("plexus_messages_dead_lettered_total", "counter"),
        ("plexus_agent_messages_handled_total", "counter"), ("plexus_agent_messages_failed_total", "counter"),
        ("plexus_agent_mailbox_depth", "gauge"), ("plexus_agent_in_flight", "gauge"),
        ("plexus_agent_restarts_total", "counter"), ("plexus_agent_state", "gauge"),
        ("plexus_agent_handle_seconds", "histogram"), ("plexus_request_seconds", "histogram"),
        ("plexus_worker_cpu_seconds_total", "counter"), ("plexus_worker_resident_bytes", "gauge"),
        ("plexus_socket_clients", "gauge"), ("plexus_pending_requests", "gauge"),
        ("plexus_denied_total", "counter"), ("plexus_denied_syscalls_total", "counter"),
        ("plexus_store_commit_seconds", "histogram"), ("plexus_store_batch_size", "histogram"),
        ("plexus_tasks", "gauge"), ("plexus_workflow_runs", "gauge"),
    ]

    /// A scrape, parsed: samples by name, and each family's type and help.
    struct Scrape {
        struct Sample { let name: String; let labels: [String: String]; let value: Double }
        var samples: [Sample] = []
        var types: [String: String] = [:]
        var helps: [String: String] = [:]
        let text: String

        /// The value of the one sample with this name and these labels (among others).
        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            samples.first { s in s.name == name && labels.allSatisfy { k, v in s.labels[k] == v } }?.value
        }
        /// prometheus_client names a counter family without its _total.
        func type(of family: String) -> String? {
            types[family] ?? (family.hasSuffix("_total") ? types[String(family.dropLast(6))] : nil)
        }
    }

    static func scrape(_ port: Int) throws -> Scrape {
        let reply = try HTTPGet.get(port: port, "/metrics")
        try #require(reply.status == 200, "GET /metrics: \(reply.status) \(reply.body)")
        #expect(reply.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        let file = TestDirectory.make("metrics-scrape") + "/metrics.txt"
        try reply.body.write(toFile: file, atomically: true, encoding: .utf8)
        let script = Fixtures.root + "/Tests/metrics/parse_metrics.py"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, file]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let why = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        try #require(p.terminationStatus == 0, "parse_metrics.py: \(why)")
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var s = Scrape(text: reply.body)
        for f in json["families"] as? [[String: Any]] ?? [] {
            let name = f["name"] as? String ?? ""
            s.types[name] = f["type"] as? String
            s.helps[name] = f["help"] as? String
            for x in f["samples"] as? [[String: Any]] ?? [] {
                s.samples.append(.init(name: x["name"] as? String ?? "", labels: x["labels"] as? [String: String] ?? [:],
                                       value: (x["value"] as? NSNumber)?.doubleValue ?? .nan))
            }
        }
        return s
    }

    @Test func countersAndHistogramsEqualTheWorkloadSent() throws {
        let boxed = try Fixtures.build("metered.c", ["-DAGENT_NAME=\"m_box\"", "-DCAPABILITY=\"box.echo\""], name: "m_box")
        let inproc = try Fixtures.build("metered.c", ["-DAGENT_NAME=\"m_in\"", "-DCAPABILITY=\"in.echo\""], name: "m_in")
        let config = TestDirectory.make("metrics-config") + "/plexus.yaml"
        try "plugins: { m_in: { sandbox: in-process } }\n".write(toFile: config, atomically: true, encoding: .utf8)
        let host = try HostProcess("metrics", plugins: ["m_box.so": boxed, "m_in.so": inproc],
                                   arguments: ["--http", "127.0.0.1:0", "--config", config])
        defer { host.process.interrupt(); host.process.waitUntilExit() }
        let port = try HTTPServerTests.port(of: host)
        let before = try Self.scrape(port)
        for f in Self.families {
            #expect(before.type(of: f.name) == f.type, "family \(f.name): \(before.type(of: f.name) ?? "missing")")
        }
        #expect(before.text.contains("# HELP plexus_agent_handle_seconds ") && before.text.contains("# TYPE plexus_request_seconds histogram"))

        // The workload: by capability, ok and failing, to each agent; a few by agent name.
        let client = try SocketClient(path: host.socket)
        func call(_ target: Target, _ text: String) -> Bool {
            (try? client.call(Envelope(kind: .query, target: target, payload: Array(text.utf8)), timeoutMs: 20_000)) != nil
        }
        let plan: [(Target, ok: Int, failing: Int)] = [(.capability("box.echo"), 20, 5), (.capability("in.echo"), 30, 7), (.agent("m_in"), 4, 0)]
        for (target, ok, failing) in plan {
            for i in 0..<ok { #expect(call(target, "hello \(i)")) }
            for i in 0..<failing { #expect(!call(target, "fail \(i)")) }
        }

        // A sandboxed agent's handle time ends at its worker's DONE, which
        // may come just after the answer: wait for it.
        var after = try Self.scrape(port)
        let deadline = Date().addingTimeInterval(20)
        while after.value("plexus_agent_handle_seconds_count", ["agent": "m_box"]) != 25 && Date() < deadline {
            usleep(50_000)
            after = try Self.scrape(port)
        }
        func delta(_ name: String, _ labels: [String: String]) -> Double {
            (after.value(name, labels) ?? .nan) - (before.value(name, labels) ?? 0)
        }
        // Counters equal the messages sent.
        #expect(delta("plexus_agent_messages_handled_total", ["agent": "m_box"]) == 25)
        #expect(delta("plexus_agent_messages_handled_total", ["agent": "m_in"]) == 41)
        #expect(delta("plexus_agent_messages_failed_total", ["agent": "m_in", "status": "INTERNAL"]) == 7)
        #expect(delta("plexus_agent_messages_failed_total", ["agent": "m_box", "status": "HANDLER_FAILED"]) == 5)
        #expect(delta("plexus_messages_routed_total", ["kind": "query"]) == 66)
        #expect(delta("plexus_messages_routed_total", ["kind": "response"]) == 54)
        #expect(delta("plexus_messages_routed_total", ["kind": "error"]) == 12)
        // Histogram counts equal the calls.
        #expect(delta("plexus_agent_handle_seconds_count", ["agent": "m_box"]) == 25)
        #expect(delta("plexus_agent_handle_seconds_count", ["agent": "m_in"]) == 41)
        #expect(delta("plexus_request_seconds_count", ["capability": "box.echo"]) == 25)
        #expect(delta("plexus_request_seconds_count", ["capability": "in.echo"]) == 37)
        #expect(delta("plexus_request_seconds_count", ["capability": "m_in"]) == 4)
        #expect(after.value("plexus_agent_handle_seconds_bucket", ["agent": "m_in", "le": "+Inf"]) == after.value("plexus_agent_handle_seconds_count", ["agent": "m_in"]))
        #expect((after.value("plexus_request_seconds_sum", ["capability": "box.echo"]) ?? 0) > 0)
        // Values read at scrape time.
        #expect(after.value("plexus_agent_state", ["agent": "m_box", "state": "active"]) == 1)
        #expect(after.value("plexus_agent_state", ["agent": "m_box", "state": "suspended"]) == 0)
        #expect(after.value("plexus_pending_requests") == 0)
        #expect((after.value("plexus_socket_clients") ?? 0) >= 1)
        let rss = after.samples.first { $0.name == "plexus_worker_resident_bytes" && $0.labels["agent"] == "m_box" }
        #expect((rss?.value ?? 0) > 0 && Int32(rss?.labels["pid"] ?? "") != nil)
        #expect(after.value("plexus_worker_cpu_seconds_total", ["agent": "m_box"]) != nil)
        #expect(after.value("plexus_agent_restarts_total", ["agent": "m_box"]) == 0)
        #expect((after.value("plexus_store_batch_size_count") ?? 0) >= 0)

        // `plexus agents` shows the same agents' handle times and the worker's usage.
        let agents = try PlexusCommand.run(["agents", "--json", "--socket", host.socket])
        let list = try #require(try JSONSerialization.jsonObject(with: Data(agents.out.utf8)) as? [[String: Any]], "\(agents.err)")
        let box = try #require(list.first { $0["name"] as? String == "m_box" })
        let inAgent = try #require(list.first { $0["name"] as? String == "m_in" })
        #expect((inAgent["handle_p50_us"] as? Double ?? 0) > 0 && (inAgent["handle_p99_us"] as? Double ?? 0) >= (inAgent["handle_p50_us"] as? Double ?? 0))
        #expect((box["handle_p50_us"] as? Double ?? 0) > 0)
        #expect((box["resident_bytes"] as? Int ?? 0) > 0 && box["cpu_seconds"] is Double)
        #expect(inAgent["resident_bytes"] == nil)
    }

    @Test func metricsOffAnswers404AndPlexusYamlCanForceThem() throws {
        let config = TestDirectory.make("metrics-off") + "/plexus.yaml"
        try "metrics: { enabled: false }\n".write(toFile: config, atomically: true, encoding: .utf8)
        let host = try HostProcess("metrics-off", arguments: ["--http", "127.0.0.1:0", "--config", config])
        defer { host.process.interrupt(); host.process.waitUntilExit() }
        let off = try HTTPGet.get(port: try HTTPServerTests.port(of: host), "/metrics")
        #expect(off.status == 404 && off.body.contains("metrics.enabled"))
        let bad = TestDirectory.make("metrics-bad") + "/plexus.yaml"
        try "metrics:\n  enabled: maybe\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try PlexusCommand.run(["run", "--config", bad, "--socket", "/nonexistent/x.sock"])
        #expect(refused.status != 0 && refused.err.contains("plexus.yaml:2:") && refused.err.contains("metrics.enabled"))
    }
}
