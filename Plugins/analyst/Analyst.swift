// analyst — the weather crew's Swift agent.
//   data.climate  the cleaners' outputs (one per month, in order) in; out:
//                 each month's and year's means and totals, the label counts,
//                 what was refused and flagged, and the monthly series as TSV
//                 for the visualiser. Figures are rounded to 0.1 so the output
//                 is the same on every run.
import FoundationEssentials
import PlexusAgent

struct CleanMonth: Decodable {
    struct Refused: Codable { let line: String; let reason: String }
    let month: String
    let kept: Int
    let csv: String
    let rejected: [Refused]
    let flags: [String]
}

struct Day {
    let date: String, precipitation: Double, tempMax: Double, tempMin: Double, wind: Double, weather: String
    init?(_ line: Substring) {
        let f = line.split(separator: ",", omittingEmptySubsequences: false)
        guard f.count == 6, let p = Double(f[1]), let hi = Double(f[2]), let lo = Double(f[3]), let w = Double(f[4]) else { return nil }
        date = String(f[0]); precipitation = p; tempMax = hi; tempMin = lo; wind = w; weather = String(f[5])
    }
}

struct Period: Encodable {
    let period: String
    let days: Int
    let mean_temp_max: Double
    let mean_temp_min: Double
    let precipitation: Double
    let wet_days: Int
    let mean_wind: Double
    let most_common_weather: String

    init(_ period: String, _ days: [Day]) {
        func r(_ x: Double) -> Double { (x * 10).rounded() / 10 }
        let n = Double(max(1, days.count))
        self.period = period
        self.days = days.count
        mean_temp_max = r(days.map(\.tempMax).reduce(0, +) / n)
        mean_temp_min = r(days.map(\.tempMin).reduce(0, +) / n)
        precipitation = r(days.map(\.precipitation).reduce(0, +))
        wet_days = days.filter { $0.precipitation > 0 }.count
        mean_wind = r(days.map(\.wind).reduce(0, +) / n)
        let counts = Dictionary(grouping: days, by: \.weather).mapValues(\.count)
        most_common_weather = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.first?.key ?? "-"
    }
}

struct Climate: Encodable {
    let days: Int
    let first: String
    let last: String
    let months: [Period]
    let years: [Period]
    let weather_counts: [String: Int]
    let refused: [CleanMonth.Refused]
    let flagged: Int
    let warmest_month: String
    let coldest_month: String
    let wettest_month: String
    let driest_month: String
    let series: String
}

func climate(_ input: [CleanMonth]) -> Climate {
    let all = input.flatMap { m in m.csv.split(separator: "\n").compactMap(Day.init) }
    let months = input.map { m in Period(m.month, m.csv.split(separator: "\n").compactMap(Day.init)) }
    let years = Dictionary(grouping: all) { String($0.date.prefix(4)) }.sorted { $0.key < $1.key }.map { Period($0.key, $0.value) }
    func pick(_ better: (Period, Period) -> Bool) -> String { months.filter { $0.days > 0 }.sorted(by: better).first?.period ?? "-" }
    let series = months.map { "\($0.period)\t\($0.mean_temp_max)\t\($0.mean_temp_min)\t\($0.precipitation)" }.joined(separator: "\n") + "\n"
    return Climate(
        days: all.count, first: all.first?.date ?? "-", last: all.last?.date ?? "-", months: months, years: years,
        weather_counts: Dictionary(grouping: all, by: \.weather).mapValues(\.count),
        refused: input.flatMap(\.rejected), flagged: input.reduce(0) { $0 + $1.flags.count },
        warmest_month: pick { ($0.mean_temp_max, $1.period) > ($1.mean_temp_max, $0.period) },
        coldest_month: pick { ($0.mean_temp_min, $0.period) < ($1.mean_temp_min, $1.period) },
        wettest_month: pick { ($0.precipitation, $1.period) > ($1.precipitation, $0.period) },
        driest_month: pick { ($0.precipitation, $0.period) < ($1.precipitation, $1.period) },
        series: series)
}

final class Analyst: Agent {
    init(context: AgentContext, config: String) throws {}

    func handle(_ m: AgentMessage, context: AgentContext) throws {
        guard m.kind == .query, m.target == "data.climate" else { throw AgentError(PLEXUS_UNSUPPORTED, "analyst answers data.climate only") }
        let input: [CleanMonth]
        do { input = try JSONDecoder().decode([CleanMonth].self, from: Data(m.payload)) } catch {
            throw AgentError(PLEXUS_INVALID_ARGUMENT, "data.climate needs the list data.clean produced: \(error)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try context.reply(to: m, payload: Array(try encoder.encode(climate(input))))
    }
}

@_cdecl("plexus_plugin_entry")
public func plexusPluginEntry() -> UnsafeRawPointer {
    PluginExport.descriptor(Analyst.self, name: "analyst", version: "1.0.0",
                            description: "monthly and yearly climate figures from cleaned weather rows",
                            capabilities: [.init("data.climate", "means, totals and label counts per month and year, and a TSV series",
                                                 input: "JSON list of data.clean outputs", output: "JSON")])
}
