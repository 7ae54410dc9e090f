//! cleaner — the weather crew's Rust agent.
//!   data.clean      {"text": CSV rows of one month, "pace_ms"?} in; out: the
//!                   rows that pass every check (ISO dates), the rows refused
//!                   and why, and the days whose weather label contradicts
//!                   their own precipitation (kept, but flagged).
//!   data.extremes   CSV rows (as data.clean writes them) in; out: the five
//!                   wettest, hottest, coldest and windiest days and the
//!                   longest dry and wet spells.
//!   data.anomalies  flagged days, one per line, in; out: counts by label and
//!                   year and the worst examples.
use plexus_agent::{export_agent, json_string, Agent, Context, Kind, Message, Status};
use std::collections::BTreeMap;

pub const LABELS: &[&str] = &["drizzle", "rain", "sun", "snow", "fog"];

#[derive(Clone, Debug, PartialEq)]
pub struct Day { pub date: String, pub precipitation: f64, pub temp_max: f64, pub temp_min: f64, pub wind: f64, pub weather: String }

/// One raw row checked: a day, or why it cannot be one.
pub fn parse_row(line: &str) -> Result<Day, String> {
    let f: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
    if f.len() != 6 { return Err(format!("{} fields, expected 6", f.len())); }
    let d: Vec<&str> = f[0].split(|c| c == '/' || c == '-').collect();
    let ok_date = d.len() == 3 && d[0].len() == 4 && d.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && (1..=12).contains(&d[1].parse::<u32>().unwrap_or(0)) && (1..=31).contains(&d[2].parse::<u32>().unwrap_or(0));
    if !ok_date { return Err(format!("date '{}' is not YYYY/MM/DD", f[0])); }
    let num = |i: usize, name: &str, lo: f64, hi: f64| -> Result<f64, String> {
        let v: f64 = f[i].trim().parse().map_err(|_| format!("{} '{}' is not a number", name, f[i]))?;
        if v < lo || v > hi { return Err(format!("{} {} is outside {}..{}", name, v, lo, hi)); }
        Ok(v)
    };
    let day = Day {
        date: format!("{}-{:0>2}-{:0>2}", d[0], d[1], d[2]),
        precipitation: num(1, "precipitation", 0.0, 500.0)?,
        temp_max: num(2, "temp_max", -50.0, 55.0)?,
        temp_min: num(3, "temp_min", -60.0, 50.0)?,
        wind: num(4, "wind", 0.0, 120.0)?,
        weather: f[5].trim().to_lowercase(),
    };
    if day.temp_min > day.temp_max { return Err(format!("temp_min {} is above temp_max {}", day.temp_min, day.temp_max)); }
    if !LABELS.contains(&day.weather.as_str()) { return Err(format!("weather '{}' is not one of {}", f[5], LABELS.join(", "))); }
    Ok(day)
}

/// A label its own numbers contradict, or None.
pub fn flag(d: &Day) -> Option<&'static str> {
    match d.weather.as_str() {
        "sun" | "fog" if d.precipitation >= 10.0 => Some("dry-label-on-wet-day"),
        "rain" | "snow" if d.precipitation == 0.0 => Some("wet-label-on-dry-day"),
        _ => None,
    }
}

fn csv(d: &Day) -> String {
    format!("{},{},{},{},{},{}\n", d.date, d.precipitation, d.temp_max, d.temp_min, d.wind, d.weather)
}

pub fn clean(text: &str) -> String {
    let (mut kept, mut rows, mut rejected, mut flags) = (0, String::new(), Vec::new(), Vec::new());
    let mut month = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_row(line) {
            Ok(d) => {
                if month.is_empty() { month = d.date[..7].to_string(); }
                if let Some(why) = flag(&d) { flags.push(json_string(&format!("{},{},{},{}", d.date, d.weather, d.precipitation, why))); }
                rows.push_str(&csv(&d));
                kept += 1;
            }
            Err(why) => rejected.push(format!("{{\"line\":{},\"reason\":{}}}", json_string(line), json_string(&why))),
        }
    }
    format!("{{\"month\":{},\"kept\":{},\"csv\":{},\"rejected\":[{}],\"flags\":[{}]}}",
            json_string(&month), kept, json_string(&rows), rejected.join(","), flags.join(","))
}

pub fn days(text: &str) -> Vec<Day> { text.lines().filter_map(|l| parse_row(l).ok()).collect() }

pub fn extremes(days: &[Day]) -> String {
    fn top(days: &[Day], key: impl Fn(&Day) -> f64, highest: bool) -> String {
        let mut v: Vec<&Day> = days.iter().collect();
        v.sort_by(|a, b| {
            let o = key(a).partial_cmp(&key(b)).unwrap();
            (if highest { o.reverse() } else { o }).then(a.date.cmp(&b.date))
        });
        v.iter().take(5).map(|d| format!("{{\"date\":\"{}\",\"value\":{},\"weather\":\"{}\"}}", d.date, key(d), d.weather))
            .collect::<Vec<_>>().join(",")
    }
    fn spell(days: &[Day], wet: bool) -> String {
        let (mut best, mut best_end, mut run) = (0usize, 0usize, 0usize);
        for (i, d) in days.iter().enumerate() {
            run = if (d.precipitation > 0.0) == wet { run + 1 } else { 0 };
            if run > best { best = run; best_end = i; }
        }
        if best == 0 { return "null".into(); }
        format!("{{\"days\":{},\"from\":\"{}\",\"to\":\"{}\"}}", best, days[best_end + 1 - best].date, days[best_end].date)
    }
    format!("{{\"days\":{},\"wettest\":[{}],\"hottest\":[{}],\"coldest\":[{}],\"windiest\":[{}],\"longest_dry_spell\":{},\"longest_wet_spell\":{}}}",
            days.len(), top(days, |d| d.precipitation, true), top(days, |d| d.temp_max, true),
            top(days, |d| d.temp_min, false), top(days, |d| d.wind, true), spell(days, false), spell(days, true))
}

/// Lines "date,label,precipitation,reason" summarised.
pub fn anomalies(text: &str) -> String {
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_label: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_year: BTreeMap<String, usize> = BTreeMap::new();
    let mut rows: Vec<(String, String, f64, String)> = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(',').collect();
        if f.len() != 4 { continue; }
        *by_reason.entry(f[3].into()).or_default() += 1;
        *by_label.entry(f[1].into()).or_default() += 1;
        *by_year.entry(f[0].chars().take(4).collect()).or_default() += 1;
        rows.push((f[0].into(), f[1].into(), f[2].parse().unwrap_or(0.0), f[3].into()));
    }
    rows.sort_by(|a, b| b.2.partial_cmp(&a.2).unwrap().then(a.0.cmp(&b.0)));
    let map = |m: &BTreeMap<String, usize>| m.iter().map(|(k, v)| format!("{}:{}", json_string(k), v)).collect::<Vec<_>>().join(",");
    let worst: Vec<String> = rows.iter().take(8).map(|(d, l, p, r)| {
        format!("{{\"date\":\"{}\",\"label\":\"{}\",\"precipitation\":{},\"reason\":\"{}\"}}", d, l, p, r)
    }).collect();
    format!("{{\"count\":{},\"by_reason\":{{{}}},\"by_label\":{{{}}},\"by_year\":{{{}}},\"worst\":[{}]}}",
            rows.len(), map(&by_reason), map(&by_label), map(&by_year), worst.join(","))
}

/// The string or number value of "key" in a flat JSON object.
pub fn field(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{}\"", key))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    if let Some(body) = rest.strip_prefix('"') {
        let (mut out, mut chars) = (String::new(), body.chars());
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'), 't' => out.push('\t'), 'r' => out.push('\r'),
                    'u' => { let h: String = chars.by_ref().take(4).collect(); out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?); }
                    c => out.push(c),
                },
                c => out.push(c),
            }
        }
        return None;
    }
    Some(rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-').collect())
}

struct Cleaner;

impl Agent for Cleaner {
    fn init(_ctx: &Context, _config: &str) -> Result<Self, Status> { Ok(Cleaner) }

    fn handle(&mut self, ctx: &Context, msg: &Message) -> Result<(), Status> {
        if msg.kind() != Kind::Query { return Err(Status::Unsupported); }
        let input = msg.text();
        let body = match msg.target() {
            "data.clean" => {
                let (text, pace) = if input.trim_start().starts_with('{') {
                    (field(&input, "text").unwrap_or_default(), field(&input, "pace_ms").and_then(|p| p.parse::<u64>().ok()).unwrap_or(0))
                } else { (input.to_string(), 0) };
                // pace_ms: stands in for heavier work, so a person can watch the fan-out.
                if pace > 0 { std::thread::sleep(std::time::Duration::from_millis(pace.min(5_000))); }
                clean(&text)
            }
            "data.extremes" => extremes(&days(&input)),
            "data.anomalies" => anomalies(&input),
            _ => return Err(Status::Unsupported),
        };
        ctx.reply(msg, "application/json", body.as_bytes())
    }
}

export_agent!(Cleaner, name: "cleaner", version: "1.0.0",
              capabilities: [("data.clean", "validates one month of weather rows; flags labels their numbers contradict"),
                             ("data.extremes", "the most extreme days and the longest dry and wet spells"),
                             ("data.anomalies", "flagged days summarised by label, reason and year")]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_rows_and_flags_contradicting_labels() {
        let out = clean("2013/04/07,39.1,8.3,5.0,3.9,fog\n2013/04/08,x,1,1,1,rain\n2013/04/09,0.0,9.0,10.0,1.0,sun\n2013/04/10,0,12,3,2,rain\n");
        assert!(out.contains("\"month\":\"2013-04\""));
        assert!(out.contains("\"kept\":2"));
        assert!(out.contains("precipitation 'x' is not a number"));
        assert!(out.contains("temp_min 10 is above temp_max 9"));
        assert!(out.contains("2013-04-07,fog,39.1,dry-label-on-wet-day"));
        assert!(out.contains("2013-04-10,rain,0,wet-label-on-dry-day"));
    }

    #[test]
    fn finds_spells_and_extremes() {
        let d = days("2012-01-01,0,5,1,2,sun\n2012-01-02,0,6,1,9,sun\n2012-01-03,4,7,-2,1,rain\n");
        let out = extremes(&d);
        assert!(out.contains("\"longest_dry_spell\":{\"days\":2,\"from\":\"2012-01-01\",\"to\":\"2012-01-02\"}"));
        assert!(out.contains("\"coldest\":[{\"date\":\"2012-01-03\",\"value\":-2"));
    }

    #[test]
    fn reads_json_fields() {
        assert_eq!(field("{\"pace_ms\": 40, \"text\": \"a\\nb\"}", "text").as_deref(), Some("a\nb"));
        assert_eq!(field("{\"pace_ms\": 40}", "pace_ms").as_deref(), Some("40"));
    }
}
