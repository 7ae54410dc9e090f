// reporter — the weather crew's Swift report writer.
//   report.write  everything the crew found in; {html, markdown} out: one
//                 report, written twice — HTML with the SVG chart inline, and
//                 Markdown that links chart.svg. Nothing in it depends on
//                 the clock or the run, so a resumed run writes the same bytes.
import FoundationEssentials
import PlexusAgent

/// Any JSON value, read loosely: a missing field is .null.
enum J: Decodable {
    case null, bool(Bool), number(Double), string(String), array([J]), object([String: J])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([J].self) { self = .array(a) }
        else { self = .object(try c.decode([String: J].self)) }
    }

    subscript(_ k: String) -> J { if case .object(let o) = self, let v = o[k] { v } else { .null } }
    var list: [J] { if case .array(let a) = self { a } else { [] } }
    var keys: [String] { if case .object(let o) = self { o.keys.sorted() } else { [] } }
    var isNull: Bool { if case .null = self { true } else { false } }
    var text: String {
        switch self {
        case .string(let s): return s
        case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String((n * 10).rounded() / 10)
        case .bool(let b): return b ? "yes" : "no"
        default: return "-"
        }
    }
    var number: Double { if case .number(let n) = self { n } else { 0 } }
}

/// A table in both forms.
struct Table {
    let head: [String]
    let rows: [[String]]
    var markdown: String {
        ([head, head.map { _ in "---" }] + rows).map { "| " + $0.joined(separator: " | ") + " |" }.joined(separator: "\n") + "\n"
    }
    var html: String {
        "<table>\n<thead><tr>" + head.map { "<th>\(esc($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
            + rows.map { "<tr>" + $0.map { "<td>\(esc($0))</td>" }.joined() + "</tr>" }.joined(separator: "\n") + "\n</tbody>\n</table>\n"
    }
}

func esc(_ s: String) -> String {
    s.replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;")
}

/// The report as sections of (heading, paragraphs, tables), rendered twice.
struct Section { let heading: String; let paragraphs: [String]; let tables: [Table] }

func sections(_ r: J) -> [Section] {
    let c = r["findings"]["climate"], x = r["findings"]["extremes"], a = r["anomalies"]
    var out: [Section] = []
    out.append(Section(heading: "The data", paragraphs: [
        "\(r["source"].text): \(r["rows"].text) daily rows (\(r["bytes"].text) bytes, FNV-1a \(r["fingerprint"].text)), \(c["first"].text) to \(c["last"].text), grouped into \(c["months"].list.count) months and cleaned in parallel.",
        "\(c["days"].text) days passed every check; \(c["refused"].list.count) rows were refused; \(c["flagged"].text) days carry a weather label their own precipitation contradicts (kept, and flagged below).",
    ], tables: []))
    let years = Table(head: ["Year", "Days", "Mean high °C", "Mean low °C", "Precipitation mm", "Wet days", "Mean wind m/s", "Most common"],
                      rows: c["years"].list.map { y in
                          [y["period"].text, y["days"].text, y["mean_temp_max"].text, y["mean_temp_min"].text, y["precipitation"].text,
                           y["wet_days"].text, y["mean_wind"].text, y["most_common_weather"].text] })
    out.append(Section(heading: "Year by year", paragraphs: [
        "Warmest month (mean high): \(c["warmest_month"].text). Coldest (mean low): \(c["coldest_month"].text). Wettest: \(c["wettest_month"].text). Driest: \(c["driest_month"].text).",
    ], tables: [years]))
    let labels = Table(head: ["Weather label", "Days"], rows: c["weather_counts"].keys.map { [$0, c["weather_counts"][$0].text] })
    out.append(Section(heading: "Weather labels", paragraphs: [], tables: [labels]))
    func top(_ key: String, _ unit: String) -> [String] {
        x[key].list.map { "\($0["date"].text) (\($0["value"].text) \(unit), \($0["weather"].text))" }
    }
    let extremes = Table(head: ["Measure", "The five most extreme days"], rows: [
        ["Wettest", top("wettest", "mm").joined(separator: "; ")],
        ["Hottest", top("hottest", "°C").joined(separator: "; ")],
        ["Coldest", top("coldest", "°C").joined(separator: "; ")],
        ["Windiest", top("windiest", "m/s").joined(separator: "; ")],
    ])
    let dry = x["longest_dry_spell"], wet = x["longest_wet_spell"]
    out.append(Section(heading: "Extremes", paragraphs: [
        "Longest dry spell: \(dry["days"].text) days, \(dry["from"].text) to \(dry["to"].text). Longest run of wet days: \(wet["days"].text) days, \(wet["from"].text) to \(wet["to"].text).",
    ], tables: [extremes]))
    if a.isNull {
        out.append(Section(heading: "Data quality", paragraphs: ["No day's weather label contradicts its precipitation."], tables: []))
    } else {
        let worst = Table(head: ["Date", "Label", "Precipitation mm", "Problem"],
                          rows: a["worst"].list.map { [$0["date"].text, $0["label"].text, $0["precipitation"].text, $0["reason"].text] })
        let byYear = a["by_year"].keys.map { "\($0): \(a["by_year"][$0].text)" }.joined(separator: ", ")
        let byReason = a["by_reason"].keys.map { "\($0.replacing("-", with: " ")): \(a["by_reason"][$0].text)" }.joined(separator: ", ")
        out.append(Section(heading: "Data quality", paragraphs: [
            "\(a["count"].text) days carry a label their precipitation contradicts (\(byReason)). By year: \(byYear). The labels are the data set's own; the figures above use the measured values, not the labels.",
        ], tables: [worst]))
    }
    if !c["refused"].list.isEmpty {
        out.append(Section(heading: "Refused rows", paragraphs: [], tables: [
            Table(head: ["Row", "Why"], rows: c["refused"].list.map { [$0["line"].text, $0["reason"].text] }),
        ]))
    }
    let months = Table(head: ["Month", "Mean high °C", "Mean low °C", "Precipitation mm", "Wet days"],
                       rows: c["months"].list.map { [$0["period"].text, $0["mean_temp_max"].text, $0["mean_temp_min"].text, $0["precipitation"].text, $0["wet_days"].text] })
    out.append(Section(heading: "Month by month", paragraphs: [], tables: [months]))
    out.append(Section(heading: "How this was made", paragraphs: [
        "Five sandboxed Plexus agents ran the workflow weather-report: collector (C) read the file, cleaner (Rust) checked each month in parallel, analyst (Swift) and cleaner's extremes ran as parallel branches merged into one finding, cleaner summarised the flagged labels (a branch taken only when there are any), visualiser (C) drew the chart, and reporter (Swift) wrote this page.",
        "Data: Seattle daily weather 2012–2015, public-domain NOAA data as packaged by vega_datasets 0.9.0 (MIT licence); see data/seattle-weather/SOURCE.md.",
    ], tables: []))
    return out
}

func markdown(_ title: String, _ s: [Section]) -> String {
    var md = "# \(title)\n\n![Monthly precipitation and mean daily temperatures](chart.svg)\n\n"
    for sec in s {
        md += "## \(sec.heading)\n\n"
        for p in sec.paragraphs { md += p + "\n\n" }
        for t in sec.tables { md += t.markdown + "\n" }
    }
    return md
}

func html(_ title: String, _ s: [Section], chart: String) -> String {
    var h = """
    <!DOCTYPE html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <title>\(esc(title))</title>
    <style>
    body { font-family: Helvetica, Arial, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; line-height: 1.45; padding: 0 1em; }
    table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
    th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; }
    th { background: #f3f6f9; }
    figure { margin: 1.5em 0; }
    svg { max-width: 100%; height: auto; }
    </style>
    </head>
    <body>
    <h1>\(esc(title))</h1>
    <figure>
    \(chart)
    <figcaption>Monthly precipitation (bars, right axis) and mean daily high and low (lines, left axis).</figcaption>
    </figure>

    """
    for sec in s {
        h += "<h2>\(esc(sec.heading))</h2>\n"
        for p in sec.paragraphs { h += "<p>\(esc(p))</p>\n" }
        for t in sec.tables { h += t.html }
    }
    return h + "</body>\n</html>\n"
}

final class Reporter: Agent {
    init(context: AgentContext, config: String) throws {}

    func handle(_ m: AgentMessage, context: AgentContext) throws {
        guard m.kind == .query, m.target == "report.write" else { throw AgentError(PLEXUS_UNSUPPORTED, "reporter answers report.write only") }
        let r: J
        do { r = try JSONDecoder().decode(J.self, from: Data(m.payload)) } catch {
            throw AgentError(PLEXUS_INVALID_ARGUMENT, "report.write needs a JSON object: \(error)")
        }
        guard case .string(let chart) = r["chart"], chart.hasPrefix("<svg") else {
            throw AgentError(PLEXUS_INVALID_ARGUMENT, "report.write needs \"chart\": the SVG chart.render drew")
        }
        let title = r["title"].isNull ? "Weather report" : r["title"].text
        let s = sections(r)
        let out = "{\"markdown\":\(jsonString(markdown(title, s))),\"html\":\(jsonString(html(title, s, chart: chart)))}"
        try context.reply(to: m, payload: Array(out.utf8))
    }
}

@_cdecl("plexus_plugin_entry")
public func plexusPluginEntry() -> UnsafeRawPointer {
    PluginExport.descriptor(Reporter.self, name: "reporter", version: "1.0.0",
                            description: "writes the weather crew's findings as HTML (chart inline) and Markdown",
                            capabilities: [.init("report.write", "a report a person reads, as HTML and Markdown",
                                                 input: "JSON findings and the SVG chart", output: "JSON {html, markdown}")])
}
