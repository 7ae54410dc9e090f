//! The Plexus wire format (include/plexus_wire.h) in safe Rust: what a
//! client writes to and reads from a host's Unix socket.
//!
//! A frame is a 12-byte header (magic "PLXF", version 1, type 1, two zero
//! bytes, body length) and an envelope body: 76 fixed bytes, then sender,
//! target and content type each followed by a NUL, then the payload. All
//! integers are little-endian.

use crate::{Id, Kind, Status};

pub const HEADER_LEN: usize = 12;
pub const FIXED_LEN: usize = 76;
pub const MAX_NAME: usize = 255;
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

pub const TARGET_AGENT: u8 = 0;
pub const TARGET_CAPABILITY: u8 = 1;
pub const TARGET_TOPIC: u8 = 2;
pub const TARGET_REPLY: u8 = 3;
/// Envelope flag (ABI 1.2): on a Response, a partial answer; more follow.
pub const FLAG_MORE: u8 = 0x1;

/// One envelope, owning its fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    pub kind: Kind,
    pub target_kind: u8,
    pub target: String,
    pub priority: u8,
    pub status: i32,
    pub id: Id,
    pub correlation_id: Id,
    pub trace_id: Id,
    pub deadline_unix_ns: i64,
    pub sender: String,
    pub content_type: String,
    pub payload: Vec<u8>,
    /// FLAG_MORE on a partial Response; 0 otherwise.
    pub flags: u8,
}

impl Envelope {
    /// A partial answer: more answers to the same query follow.
    pub fn is_partial(&self) -> bool { self.kind == Kind::Response && self.flags & FLAG_MORE != 0 }

    /// An envelope to `target`, spelled as on the command line: a capability,
    /// `agent:NAME` or `topic:SUBJECT`.
    pub fn to(kind: Kind, target: &str, payload: &[u8]) -> Envelope {
        let (target_kind, name) = parse_target(target);
        Envelope {
            kind, target_kind, target: name.to_string(), priority: 1, status: 0,
            id: Id { hi: 0, lo: 0 }, correlation_id: Id { hi: 0, lo: 0 }, trace_id: Id { hi: 0, lo: 0 },
            deadline_unix_ns: 0, sender: String::new(), content_type: "application/json".into(), payload: payload.to_vec(),
            flags: 0,
        }
    }
}

pub fn parse_target(spec: &str) -> (u8, &str) {
    if let Some(n) = spec.strip_prefix("agent:") { (TARGET_AGENT, n) }
    else if let Some(n) = spec.strip_prefix("topic:") { (TARGET_TOPIC, n) }
    else { (TARGET_CAPABILITY, spec) }
}

fn kind_code(k: Kind) -> u8 {
    match k { Kind::Command => 0, Kind::Query => 1, Kind::Response => 2, Kind::Event => 3, Kind::Error => 4, Kind::Cancel => 5 }
}

fn kind_of(c: u8) -> Option<Kind> {
    Some(match c { 0 => Kind::Command, 1 => Kind::Query, 2 => Kind::Response, 3 => Kind::Event, 4 => Kind::Error, 5 => Kind::Cancel, _ => return None })
}

/// Why bytes are not a frame (maps to Status::MalformedFrame / TooLarge).
#[derive(Debug, PartialEq)]
pub struct WireError(pub Status, pub &'static str);

pub fn encode(e: &Envelope) -> Result<Vec<u8>, WireError> {
    for s in [&e.sender, &e.target, &e.content_type] {
        if s.len() > MAX_NAME || s.as_bytes().contains(&0) {
            return Err(WireError(Status::InvalidArgument, "a name is longer than 255 bytes or contains NUL"));
        }
    }
    if e.payload.len() > MAX_PAYLOAD { return Err(WireError(Status::TooLarge, "payload is larger than 16 MiB")); }
    let body = FIXED_LEN + e.sender.len() + e.target.len() + e.content_type.len() + 3 + e.payload.len();
    let mut f = Vec::with_capacity(HEADER_LEN + body);
    f.extend_from_slice(b"PLXF");
    f.extend_from_slice(&[1, 1, 0, 0]);
    f.extend_from_slice(&(body as u32).to_le_bytes());
    f.extend_from_slice(&[kind_code(e.kind), e.target_kind, e.priority, e.flags]);
    f.extend_from_slice(&e.status.to_le_bytes());
    for id in [e.id, e.correlation_id, e.trace_id] {
        f.extend_from_slice(&id.hi.to_le_bytes());
        f.extend_from_slice(&id.lo.to_le_bytes());
    }
    f.extend_from_slice(&e.deadline_unix_ns.to_le_bytes());
    for n in [e.sender.len(), e.target.len(), e.content_type.len(), 0] { f.extend_from_slice(&(n as u16).to_le_bytes()); }
    f.extend_from_slice(&(e.payload.len() as u32).to_le_bytes());
    for s in [&e.sender, &e.target, &e.content_type] {
        f.extend_from_slice(s.as_bytes());
        f.push(0);
    }
    f.extend_from_slice(&e.payload);
    Ok(f)
}

/// The body length a 12-byte header announces, checked.
pub fn body_len(h: &[u8; HEADER_LEN]) -> Result<usize, WireError> {
    if &h[0..4] != b"PLXF" { return Err(WireError(Status::MalformedFrame, "bad magic: not a Plexus frame")); }
    if h[4] != 1 || h[5] != 1 || h[6] != 0 || h[7] != 0 {
        return Err(WireError(Status::MalformedFrame, "unsupported wire version or frame type"));
    }
    let n = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
    if n < FIXED_LEN + 3 { return Err(WireError(Status::MalformedFrame, "body shorter than the smallest envelope")); }
    if n > FIXED_LEN + 3 * (MAX_NAME + 1) + MAX_PAYLOAD { return Err(WireError(Status::TooLarge, "body length exceeds the limit")); }
    Ok(n)
}

fn u16_at(b: &[u8], at: usize) -> usize { u16::from_le_bytes([b[at], b[at + 1]]) as usize }
fn u64_at(b: &[u8], at: usize) -> u64 { u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) }
fn id_at(b: &[u8], at: usize) -> Id { Id { hi: u64_at(b, at), lo: u64_at(b, at + 8) } }

pub fn decode(b: &[u8]) -> Result<Envelope, WireError> {
    let bad = |what| Err(WireError(Status::MalformedFrame, what));
    if b.len() < FIXED_LEN + 3 { return bad("body shorter than the smallest envelope"); }
    let Some(kind) = kind_of(b[0]) else { return bad("kind is out of range") };
    if b[1] > TARGET_REPLY || b[2] > 3 { return bad("target kind or priority out of range"); }
    if b[3] & !FLAG_MORE != 0 || (b[3] != 0 && kind != Kind::Response) { return bad("flags other than MORE on a Response"); }
    let (s, t, c) = (u16_at(b, 64), u16_at(b, 66), u16_at(b, 68));
    let p = u32::from_le_bytes(b[72..76].try_into().unwrap()) as usize;
    if FIXED_LEN + s + t + c + 3 + p != b.len() { return bad("body length does not match its fields"); }
    let mut at = FIXED_LEN;
    let mut strings = Vec::with_capacity(3);
    for n in [s, t, c] {
        let chunk = &b[at..at + n];
        if b[at + n] != 0 || chunk.contains(&0) { return bad("a string field is not NUL-terminated"); }
        strings.push(String::from_utf8_lossy(chunk).into_owned());
        at += n + 1;
    }
    let content_type = strings.pop().unwrap();
    let target = strings.pop().unwrap();
    let sender = strings.pop().unwrap();
    Ok(Envelope {
        kind, target_kind: b[1], priority: b[2], status: i32::from_le_bytes(b[4..8].try_into().unwrap()),
        id: id_at(b, 8), correlation_id: id_at(b, 24), trace_id: id_at(b, 40),
        deadline_unix_ns: u64_at(b, 56) as i64, sender, target, content_type, payload: b[at..].to_vec(), flags: b[3],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        let mut e = Envelope::to(Kind::Query, "agent:pong", b"\x00hi");
        e.id = Id { hi: 1, lo: 2 };
        e.correlation_id = Id { hi: 3, lo: 4 };
        e.deadline_unix_ns = 123_456_789;
        e.sender = "client:1".into();
        e
    }

    #[test]
    fn round_trip_and_layout() {
        let f = encode(&sample()).unwrap();
        let n = body_len(f[..12].try_into().unwrap()).unwrap();
        assert_eq!(n, f.len() - 12);
        let b = &f[12..];
        assert_eq!((b[0], b[1]), (1, TARGET_AGENT));
        assert_eq!(u64_at(b, 24), 3);
        assert_eq!(&b[76..85], b"client:1\0");
        assert_eq!(decode(b).unwrap(), sample());
    }

    #[test]
    fn the_more_flag_is_kept_on_a_response_and_refused_elsewhere() {
        let mut e = Envelope::to(Kind::Response, "", b"{\"n\":1}");
        e.target_kind = TARGET_REPLY;
        e.flags = FLAG_MORE;
        let f = encode(&e).unwrap();
        assert_eq!(f[12 + 3], FLAG_MORE);
        assert!(decode(&f[12..]).unwrap().is_partial());
        let mut other = f.clone();
        other[12 + 3] = 0x2;   // a reserved bit
        assert!(decode(&other[12..]).is_err());
        let mut on_query = encode(&sample()).unwrap();
        on_query[12 + 3] = FLAG_MORE;
        assert!(decode(&on_query[12..]).is_err());
    }

    #[test]
    fn corruption_is_refused() {
        let mut f = encode(&sample()).unwrap();
        assert!(decode(&f[12..f.len() - 1]).is_err());
        let mut h: [u8; 12] = f[..12].try_into().unwrap();
        h[0] = b'X';
        assert_eq!(body_len(&h).unwrap_err().0, Status::MalformedFrame);
        f[12 + 76 + 8] = b'x';
        assert!(decode(&f[12..]).is_err());
    }
}
