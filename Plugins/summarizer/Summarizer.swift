// summarizer — the Swift example agent.
//   report.summarize  text in; a report out: title, statistics (asked of the
//                     C agent's text.stats), keywords (asked of the Rust
//                     agent's text.keywords) and the three sentences that
//                     carry the most keyword weight. Each finished report is
//                     announced on the topic docs.summarized. A query
//                     to the agent by name (agent:summarizer) is the same.
import FoundationEssentials
import Glibc
import PlexusAgent

final class Summarizer: Agent {
    /// One report being assembled while its two sub-requests are out.
    struct Job {
        let request: plexus_id
        let title: String
        let text: String
        var stats: String?
        var keywords: String?
    }

    private var jobs: [plexus_id: Job] = [:]              // by incoming request id
    private var waiting: [plexus_id: plexus_id] = [:]      // sub-request id -> job

    init(context: AgentContext, config: String) throws {}

    func handle(_ m: AgentMessage, context: AgentContext) throws {
        switch m.kind {
        case .query where m.target == "report.summarize" || m.target == "summarizer": try start(m, context)
        case .response, .error: try collect(m, context)
        default: throw AgentError(PLEXUS_UNSUPPORTED, "summarizer answers report.summarize only")
        }
    }

    private func start(_ m: AgentMessage, _ ctx: AgentContext) throws {
        let text = m.text
        let title = text.split(separator: "\n").lazy
            .map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
            .first { !$0.isEmpty }.map { String($0.prefix(80)) } ?? "untitled"
        let s = try ctx.request("text.stats", payload: m.payload, contentType: "text/plain", timeoutMs: 10_000)
        let k = try ctx.request("text.keywords", payload: m.payload, contentType: "text/plain", timeoutMs: 10_000)
        jobs[m.id] = Job(request: m.id, title: title, text: text)
        waiting[s] = m.id
        waiting[k] = m.id
    }

    private func collect(_ m: AgentMessage, _ ctx: AgentContext) throws {
        guard let key = waiting.removeValue(forKey: m.correlationID), var job = jobs[key] else { return }
        if m.kind == .error {
            jobs[key] = nil
            waiting = waiting.filter { $0.value != key }
            let body = "{\"error\":\"HANDLER_FAILED\",\"message\":\(jsonString("a sub-request failed: " + m.text))}"
            try ctx.reply(toID: key, payload: Array(body.utf8), error: plexus_status(PLEXUS_HANDLER_FAILED.rawValue))
            return
        }
        if m.text.contains("\"keywords\"") { job.keywords = m.text } else { job.stats = m.text }
        guard let stats = job.stats, let keywords = job.keywords else { jobs[key] = job; return }
        jobs[key] = nil
        try finish(job, stats: stats, keywords: keywords, ctx)
    }

    private struct Keywords: Decodable {
        struct Term: Decodable { let term: String; let count: Int }
        let keywords: [Term]
    }

    private func finish(_ job: Job, stats: String, keywords: String, _ ctx: AgentContext) throws {
        let terms = (try? JSONDecoder().decode(Keywords.self, from: Data(keywords.utf8)))?.keywords ?? []
        let summary = Self.topSentences(job.text, weights: Dictionary(terms.map { ($0.term, $0.count) }, uniquingKeysWith: +), count: 3)
        let report = """
            {"title":\(jsonString(job.title)),"stats":\(stats),"keywords":\(keywords),\
            "summary":[\(summary.map(jsonString).joined(separator: ","))]}
            """
        // Announce first, then answer: whoever hears the answer and asks a
        // subscriber about it finds the announcement already delivered.
        let event = "{\"title\":\(jsonString(job.title)),\"top\":[\(terms.prefix(3).map { jsonString($0.term) }.joined(separator: ","))]}"
        try ctx.publish("docs.summarized", payload: Array(event.utf8))
        try ctx.reply(toID: job.request, payload: Array(report.utf8))
    }

    /// The `count` sentences with the highest keyword weight per word, in text order.
    static func topSentences(_ text: String, weights: [String: Int], count: Int) -> [String] {
        var sentences: [String] = []
        var current = ""
        for ch in text {
            current.append(ch == "\n" ? " " : ch)
            if ch == "." || ch == "!" || ch == "?" {
                let s = current.split(separator: " ").joined(separator: " ")
                if s.count > 20 { sentences.append(s) }
                current = ""
            }
        }
        let scored = sentences.enumerated().map { i, s -> (Int, Double) in
            let words = s.lowercased().split { !$0.isLetter && $0 != "'" }
            let w = words.reduce(0) { $0 + (weights[String($1)] ?? 0) }
            return (i, Double(w) / Double(max(8, words.count)).squareRoot())
        }
        let best = scored.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.prefix(count).map(\.0).sorted()
        return best.map { String(sentences[$0].prefix(400)) }
    }
}

@_cdecl("plexus_plugin_entry")
public func plexusPluginEntry() -> UnsafeRawPointer {
    PluginExport.descriptor(Summarizer.self, name: "summarizer", version: "1.0.0",
                            description: "builds a report of a text with help from the C and Rust agents",
                            capabilities: [.init("report.summarize", "title, statistics, keywords and a three-sentence summary",
                                                 input: "text/plain", output: "JSON report")],
                            permissions: [.call("text.stats"), .call("text.keywords"), .publish("docs.summarized")])
}
