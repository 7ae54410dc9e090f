//! keywords — the Rust example agent.
//!   text.keywords  the ten most significant words of a text, with counts
//! Words are lower-cased runs of letters (apostrophes inside kept), at least
//! three long, not in an English stop list; ties rank alphabetically.
use plexus_agent::{export_agent, json_string, Agent, Context, Kind, Message, Status};
use std::collections::HashMap;

const STOP: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was", "one", "our",
    "out", "has", "have", "his", "how", "its", "may", "new", "now", "old", "see", "two", "who", "did", "get",
    "him", "let", "say", "she", "too", "use", "this", "that", "with", "from", "they", "will", "would", "there",
    "their", "what", "about", "which", "when", "make", "like", "than", "then", "them", "these", "some", "such",
    "into", "only", "other", "also", "been", "were", "more", "most", "each", "shall", "does", "made", "upon",
    "under", "over", "your", "being", "where", "after", "before", "because", "those", "through", "while",
    "both", "same", "should", "could", "must", "very", "just", "here", "without", "within", "between",
];

pub fn keywords(text: &str, k: usize) -> (Vec<(String, usize)>, usize, usize) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    for raw in text.split(|c: char| !(c.is_alphabetic() || c == '\'')) {
        let w = raw.trim_matches('\'').to_lowercase();
        if w.chars().count() < 3 || STOP.contains(&w.as_str()) { continue; }
        total += 1;
        *counts.entry(w).or_insert(0) += 1;
    }
    let distinct = counts.len();
    let mut ranked: Vec<(String, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(k);
    (ranked, distinct, total)
}

struct Keywords;

impl Agent for Keywords {
    fn init(_ctx: &Context, _config: &str) -> Result<Self, Status> { Ok(Keywords) }

    fn handle(&mut self, ctx: &Context, msg: &Message) -> Result<(), Status> {
        if msg.kind() != Kind::Query || msg.target() != "text.keywords" { return Err(Status::Unsupported); }
        let (top, distinct, total) = keywords(&msg.text(), 10);
        let items: Vec<String> = top.iter()
            .map(|(w, n)| format!("{{\"term\":{},\"count\":{}}}", json_string(w), n))
            .collect();
        let body = format!("{{\"keywords\":[{}],\"distinct\":{},\"counted\":{}}}", items.join(","), distinct, total);
        ctx.reply(msg, "application/json", body.as_bytes())
    }
}

export_agent!(Keywords, name: "keywords", version: "1.0.0",
              capabilities: [("text.keywords", "the ten most significant words of a text, with counts")]);

#[cfg(test)]
mod tests {
    #[test]
    fn ranks_by_count_then_alphabetically() {
        let (top, distinct, total) = super::keywords("Licence licence LICENSE; the software, software and warranty.", 3);
        assert_eq!(top, vec![("licence".to_string(), 2), ("software".to_string(), 2), ("license".to_string(), 1)]);
        assert_eq!((distinct, total), (4, 6));
    }
}
