//! A client of a running Plexus host (`plexus run`) over its Unix socket,
//! std only.
//!
//! ```no_run
//! use plexus_agent::client::Client;
//! use std::time::Duration;
//! let c = Client::connect(None).unwrap();
//! let reply = c.call("echo", br#"{"hello":"world"}"#, Duration::from_secs(5)).unwrap();
//! assert_eq!(reply, br#"{"hello":"world"}"#);
//! ```
//!
//! `Client` is `Send + Sync`: calls may come from any thread at once. One
//! reader thread receives every frame; events of subscriptions and messages
//! for agents the client registered wait in a queue for `receive`.
//!
//! Pipelining: `submit` sends a query without waiting and returns a
//! `Pending`; many can be in flight on one connection, and each `wait`
//! gets the answer to its own query (matched by correlation id), whatever
//! order the agents answer in.
//!
//! ```no_run
//! # use plexus_agent::client::Client;
//! # use std::time::Duration;
//! # let c = Client::connect(None).unwrap();
//! let pending: Vec<_> = (0..1000).map(|i| c.submit("echo", i.to_string().as_bytes(), Duration::from_secs(5)))
//!     .collect::<Result<_, _>>().unwrap();
//! for (i, p) in pending.into_iter().enumerate() { assert_eq!(p.wait().unwrap(), i.to_string().as_bytes()); }
//! ```

use crate::wire::{self, Envelope};
use crate::{Id, Kind, Status};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A refusal or failure: the status and the host's (or this library's) words.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientError {
    pub status: Status,
    pub message: String,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status.name(), self.message)
    }
}
impl std::error::Error for ClientError {}

fn err(status: Status, message: impl Into<String>) -> ClientError { ClientError { status, message: message.into() } }

/// $PLEXUS_SOCKET, else $XDG_RUNTIME_DIR/plexus.sock, else /tmp/plexus-UID/plexus.sock.
pub fn default_socket_path() -> String {
    if let Ok(p) = std::env::var("PLEXUS_SOCKET") { if !p.is_empty() { return p; } }
    if let Ok(x) = std::env::var("XDG_RUNTIME_DIR") { if !x.is_empty() { return format!("{x}/plexus.sock"); } }
    extern "C" { fn getuid() -> u32; }
    format!("/tmp/plexus-{}/plexus.sock", unsafe { getuid() })
}

/// A message for this client: an event of a subscription, or a command or
/// query for an agent it registered (answer a query with `Client::reply`).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub kind: Kind,
    /// The subject, capability or agent name it was sent to.
    pub target: String,
    pub sender: String,
    pub content_type: String,
    pub payload: Vec<u8>,
    pub id: Id,
    /// For kind Cancel (ABI 1.2): the id of the query its caller cancelled.
    pub correlation_id: Id,
}

type Waiters = HashMap<(u64, u64), Sender<Result<Envelope, ClientError>>>;

struct Shared {
    waiting: Mutex<Waiters>,
    closed: Mutex<Option<ClientError>>,
}

pub struct Client {
    stream: Mutex<UnixStream>,
    shared: Arc<Shared>,
    inbox: Mutex<Receiver<Delivery>>,
    node: u64,
    next: AtomicU64,
    reader: Option<JoinHandle<()>>,
}

impl Client {
    /// Connects to the host at `path` (None: `default_socket_path()`).
    pub fn connect(path: Option<&str>) -> Result<Client, ClientError> {
        let path = path.map(str::to_string).unwrap_or_else(default_socket_path);
        let stream = UnixStream::connect(&path)
            .map_err(|e| err(Status::Unavailable, format!("no host is running at {path} ({e}); start one with `plexus run`")))?;
        let read = stream.try_clone().map_err(|e| err(Status::Internal, e.to_string()))?;
        let shared = Arc::new(Shared { waiting: Mutex::new(HashMap::new()), closed: Mutex::new(None) });
        let (tx, rx) = mpsc::channel();
        let s = shared.clone();
        let reader = std::thread::Builder::new()
            .name("plexus-client-read".into())
            .spawn(move || read_loop(read, s, tx))
            .map_err(|e| err(Status::Internal, e.to_string()))?;
        let node = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) ^ (std::process::id() as u64) << 32;
        Ok(Client { stream: Mutex::new(stream), shared, inbox: Mutex::new(rx), node: node | 1, next: AtomicU64::new(0), reader: Some(reader) })
    }

    /// Connects and says hello as `client`, a client named in the host's
    /// plexus.yaml, with its token (None when that client is admitted by
    /// uid alone): its grants then decide what this connection may do.
    pub fn connect_as(path: Option<&str>, client: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let c = Client::connect(path)?;
        let token = token.map(|t| format!(",\"token\":{}", crate::json_string(t))).unwrap_or_default();
        c.operate("plexus.hello", &format!("{{\"client\":{}{}}}", crate::json_string(client), token))?;
        Ok(c)
    }

    /// Sends a query to `target` (a capability, `agent:NAME`) and waits for its reply payload.
    pub fn call(&self, target: &str, payload: &[u8], timeout: Duration) -> Result<Vec<u8>, ClientError> {
        let mut e = Envelope::to(Kind::Query, target, payload);
        e.deadline_unix_ns = unix_now() + timeout.as_nanos() as i64;
        Ok(self.exchange(e, timeout + Duration::from_secs(1))?.payload)
    }

    /// As `call`, joined to the W3C trace `tp` (None: the host starts one);
    /// returns the reply payload and the trace id the host recorded it in
    /// (`plexus trace ID`).
    pub fn call_traced(&self, target: &str, payload: &[u8], timeout: Duration, tp: Option<&TraceParent>)
        -> Result<(Vec<u8>, Id), ClientError> {
        let mut e = Envelope::to(Kind::Query, target, payload);
        e.deadline_unix_ns = unix_now() + timeout.as_nanos() as i64;
        if let Some(tp) = tp {
            e.trace_id = tp.trace;
            e.correlation_id = Id { hi: 0, lo: tp.parent };   // the parent span (SDK/PROTOCOL.md, "Tracing")
        }
        let a = self.exchange(e, timeout + Duration::from_secs(1))?;
        Ok((a.payload, a.trace_id))
    }

    /// Sends a query to `target` without waiting for its reply: the returned
    /// `Pending` takes it (`wait`), so many queries can be in flight on one
    /// connection. Dropping a `Pending` forgets its query (a late answer is dropped).
    pub fn submit(&self, target: &str, payload: &[u8], timeout: Duration) -> Result<Pending<'_>, ClientError> {
        let mut e = Envelope::to(Kind::Query, target, payload);
        e.deadline_unix_ns = unix_now() + timeout.as_nanos() as i64;
        let (key, rx) = self.post(e)?;
        Ok(Pending { client: self, key, rx, timeout: timeout + Duration::from_secs(1) })
    }

    /// Sends a command (or, to `topic:SUBJECT`, an event); returns the id the host gave it, in hex.
    pub fn send(&self, target: &str, payload: &[u8]) -> Result<String, ClientError> {
        let kind = if target.starts_with("topic:") { Kind::Event } else { Kind::Command };
        let ack = self.exchange(Envelope::to(kind, target, payload), Duration::from_secs(30))?;
        let text = String::from_utf8_lossy(&ack.payload).into_owned();
        Ok(text.split('"').nth(3).unwrap_or("").to_string())   // {"id":"HEX"}
    }

    pub fn publish(&self, subject: &str, payload: &[u8]) -> Result<String, ClientError> {
        self.send(&format!("topic:{subject}"), payload)
    }

    /// Events whose subject matches `pattern` ('*' one token, '>' the rest) arrive at `receive`.
    pub fn subscribe(&self, pattern: &str) -> Result<(), ClientError> {
        self.operate("plexus.subscribe", &format!("{{\"pattern\":{}}}", crate::json_string(pattern)))
    }

    pub fn unsubscribe(&self, pattern: &str) -> Result<(), ClientError> {
        self.operate("plexus.unsubscribe", &format!("{{\"pattern\":{}}}", crate::json_string(pattern)))
    }

    /// Joins the host as agent `name` providing `capabilities`; what it is
    /// sent arrives at `receive`, and queries are answered with `reply`.
    pub fn register(&self, name: &str, capabilities: &[&str]) -> Result<(), ClientError> {
        let caps: Vec<String> = capabilities.iter().map(|c| crate::json_string(c)).collect();
        self.operate("plexus.register", &format!("{{\"name\":{},\"capabilities\":[{}]}}", crate::json_string(name), caps.join(",")))
    }

    /// The next event or message for this client; None after `timeout` or once the connection ended.
    pub fn receive(&self, timeout: Duration) -> Option<Delivery> {
        self.inbox.lock().unwrap().recv_timeout(timeout).ok()
    }

    /// Answers a query this client's agent received.
    pub fn reply(&self, query: &Delivery, content_type: &str, payload: &[u8]) -> Result<(), ClientError> {
        let mut r = Envelope::to(Kind::Response, "", payload);
        r.target_kind = wire::TARGET_REPLY;
        r.correlation_id = query.id;
        r.content_type = content_type.into();
        self.write(&r)
    }

    /// Sends one partial answer to a query this client's agent received (ABI
    /// 1.2): the request stays open for more and for the final `reply`.
    pub fn reply_partial(&self, query: &Delivery, content_type: &str, payload: &[u8]) -> Result<(), ClientError> {
        let mut r = Envelope::to(Kind::Response, "", payload);
        r.target_kind = wire::TARGET_REPLY;
        r.flags = wire::FLAG_MORE;
        r.correlation_id = query.id;
        r.content_type = content_type.into();
        self.write(&r)
    }

    /// Sends a query whose answer may come as a stream (ABI 1.2): iterate the
    /// returned Stream for each partial answer's payload as it arrives; then
    /// `result()` holds the final answer. An Error answer ends the iteration
    /// with an Err (Expired when the deadline passes mid-stream, Cancelled
    /// after `cancel`).
    pub fn stream(&self, target: &str, payload: &[u8], timeout: Duration) -> Result<Stream<'_>, ClientError> {
        let mut e = Envelope::to(Kind::Query, target, payload);
        e.deadline_unix_ns = unix_now() + timeout.as_nanos() as i64;
        let (key, rx) = self.post(e)?;
        Ok(Stream { client: self, key, rx, deadline: std::time::Instant::now() + timeout + Duration::from_secs(1), result: None, done: false })
    }

    /// Cancels a query of this client's still waiting for its answer: the
    /// answer becomes an Error with Status::Cancelled, and its agent is told.
    pub fn cancel(&self, query: Id) -> Result<(), ClientError> {
        let mut e = Envelope::to(Kind::Cancel, "", b"");
        e.target_kind = wire::TARGET_REPLY;
        e.content_type = String::new();
        e.id = Id { hi: self.node, lo: self.next.fetch_add(1, Ordering::Relaxed) + 1 };
        e.correlation_id = query;
        self.write(&e)
    }

    /// Answers a query with an ERROR carrying `status` and `message`.
    pub fn reply_error(&self, query: &Delivery, status: Status, message: &str) -> Result<(), ClientError> {
        let body = format!("{{\"error\":\"{}\",\"message\":{}}}", status.name(), crate::json_string(message));
        let mut r = Envelope::to(Kind::Error, "", body.as_bytes());
        r.target_kind = wire::TARGET_REPLY;
        r.correlation_id = query.id;
        r.status = status as i32;
        self.write(&r)
    }

    fn operate(&self, op: &str, args: &str) -> Result<(), ClientError> {
        self.exchange(Envelope::to(Kind::Query, op, args.as_bytes()), Duration::from_secs(30)).map(|_| ())
    }

    fn write(&self, e: &Envelope) -> Result<(), ClientError> {
        if let Some(why) = self.shared.closed.lock().unwrap().clone() { return Err(why); }
        let frame = wire::encode(e).map_err(|w| err(w.0, w.1))?;
        let failed = match self.stream.lock().unwrap().write_all(&frame) { Ok(()) => return Ok(()), Err(e) => e };
        // A host that refused the connection closed it; its reason may still be on its way.
        for _ in 0..100 {
            if let Some(why) = self.shared.closed.lock().unwrap().clone() { return Err(why); }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(err(Status::Unavailable, format!("writing to the host failed: {failed}")))
    }

    /// Sends e with a fresh id, registered to receive its answer.
    fn post(&self, mut e: Envelope) -> Result<((u64, u64), Receiver<Result<Envelope, ClientError>>), ClientError> {
        e.id = Id { hi: self.node, lo: self.next.fetch_add(1, Ordering::Relaxed) + 1 };
        let key = (e.id.hi, e.id.lo);
        let (tx, rx) = mpsc::channel();
        self.shared.waiting.lock().unwrap().insert(key, tx);
        if let Err(why) = self.write(&e) {
            self.shared.waiting.lock().unwrap().remove(&key);
            return Err(why);
        }
        Ok((key, rx))
    }

    fn exchange(&self, e: Envelope, timeout: Duration) -> Result<Envelope, ClientError> {
        let (key, rx) = self.post(e)?;
        let answer = final_answer(&rx, timeout);
        self.shared.waiting.lock().unwrap().remove(&key);
        let a = answer?;
        if a.kind == Kind::Error { return Err(error_of(&a)); }
        Ok(a)
    }
}

/// A query in flight, from `Client::submit`.
pub struct Pending<'a> {
    client: &'a Client,
    key: (u64, u64),
    rx: Receiver<Result<Envelope, ClientError>>,
    timeout: Duration,
}

impl Pending<'_> {
    /// The id the query went out with (its answer's correlation id).
    pub fn id(&self) -> Id { Id { hi: self.key.0, lo: self.key.1 } }

    /// Waits for the answer's payload, up to the query's timeout (plus a second
    /// for the host's own TIMEOUT answer to arrive); an ERROR answer is an Err.
    pub fn wait(self) -> Result<Vec<u8>, ClientError> {
        let a = final_answer(&self.rx, self.timeout)?;
        if a.kind == Kind::Error { return Err(error_of(&a)); }
        Ok(a.payload)
    }

    /// The answer if it has arrived (None: not yet; the query stays in flight).
    pub fn try_wait(&self) -> Option<Result<Vec<u8>, ClientError>> {
        let a = loop {
            match self.rx.try_recv().ok()? {
                Ok(e) if e.is_partial() => continue,   // a plain wait reads only the final answer
                a => break a,
            }
        };
        Some(a.and_then(|a| if a.kind == Kind::Error { Err(error_of(&a)) } else { Ok(a.payload) }))
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) { self.client.shared.waiting.lock().unwrap().remove(&self.key); }
}

/// The final answer on rx within `timeout`, skipping partial answers.
fn final_answer(rx: &Receiver<Result<Envelope, ClientError>>, timeout: Duration) -> Result<Envelope, ClientError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(e)) if e.is_partial() => continue,
            Ok(a) => return a,
            Err(_) => return Err(err(Status::Timeout, format!("no answer from the host within {timeout:?}"))),
        }
    }
}

/// A query answered as a stream (`Client::stream`): an iterator over the
/// partial answers' payloads, in order; `result()` is the final answer's.
pub struct Stream<'a> {
    client: &'a Client,
    key: (u64, u64),
    rx: Receiver<Result<Envelope, ClientError>>,
    deadline: std::time::Instant,
    result: Option<Vec<u8>>,
    done: bool,
}

impl Stream<'_> {
    /// The id the query went out with.
    pub fn id(&self) -> Id { Id { hi: self.key.0, lo: self.key.1 } }
    /// Cancels the query: the iteration then ends with Err(Cancelled).
    pub fn cancel(&self) -> Result<(), ClientError> { self.client.cancel(self.id()) }
    /// The final answer's payload, once the iteration has ended with it.
    pub fn result(&self) -> Option<&[u8]> { self.result.as_deref() }
}

impl Iterator for Stream<'_> {
    type Item = Result<Vec<u8>, ClientError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done { return None; }
        let left = self.deadline.saturating_duration_since(std::time::Instant::now());
        let got = self.rx.recv_timeout(left).unwrap_or_else(|_| Err(err(Status::Timeout, "no answer from the host within the timeout")));
        match got {
            Ok(e) if e.is_partial() => Some(Ok(e.payload)),
            Ok(e) => {
                self.done = true;
                if e.kind == Kind::Error { return Some(Err(error_of(&e))); }
                self.result = Some(e.payload);
                None
            }
            Err(why) => { self.done = true; Some(Err(why)) }
        }
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) { self.client.shared.waiting.lock().unwrap().remove(&self.key); }
}


impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(s) = self.stream.lock() { let _ = s.shutdown(std::net::Shutdown::Both); }
        if let Some(r) = self.reader.take() { let _ = r.join(); }
    }
}

/// The status and message of an ERROR envelope ({"error":NAME,"message":TEXT}).
fn error_of(e: &Envelope) -> ClientError {
    let text = String::from_utf8_lossy(&e.payload);
    let message = text.find("\"message\":\"").map(|i| json_unquote(&text[i + 11..])).unwrap_or_else(|| text.to_string());
    err(Status::from_code(e.status), message)
}

/// The JSON string body starting at s (after its opening quote), unescaped.
fn json_unquote(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    if let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) { out.push(ch) }
                }
                Some(other) => out.push(other),
                None => break,
            },
            _ => out.push(c),
        }
    }
    out
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

fn read_frame(s: &mut UnixStream) -> Result<Option<Envelope>, String> {
    let mut h = [0u8; wire::HEADER_LEN];
    match s.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let n = wire::body_len(&h).map_err(|w| w.1.to_string())?;
    let mut body = vec![0u8; n];
    s.read_exact(&mut body).map_err(|e| e.to_string())?;
    wire::decode(&body).map(Some).map_err(|w| w.1.to_string())
}

fn read_loop(mut s: UnixStream, shared: Arc<Shared>, inbox: Sender<Delivery>) {
    let mut refusal: Option<ClientError> = None;   // the host's reason, when it refused the connection
    let reason = loop {
        match read_frame(&mut s) {
            Ok(Some(e)) if e.kind == Kind::Error && e.correlation_id.hi == 0 && e.correlation_id.lo == 0 => {
                refusal = Some(error_of(&e));
            }
            Ok(Some(e)) if e.kind == Kind::Response || e.kind == Kind::Error => {
                if let Some(tx) = shared.waiting.lock().unwrap().get(&(e.correlation_id.hi, e.correlation_id.lo)) {
                    let _ = tx.send(Ok(e));
                }
            }
            Ok(Some(e)) => {
                let _ = inbox.send(Delivery { kind: e.kind, target: e.target, sender: e.sender,
                                              content_type: e.content_type, payload: e.payload, id: e.id,
                                              correlation_id: e.correlation_id });
            }
            Ok(None) => break "the host closed the connection".to_string(),
            Err(why) => break format!("the connection failed: {why}"),
        }
    };
    let why = refusal.unwrap_or_else(|| err(Status::Unavailable, reason));
    *shared.closed.lock().unwrap() = Some(why.clone());
    for (_, tx) in shared.waiting.lock().unwrap().drain() {
        let _ = tx.send(Err(why.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_host_says_so() {
        let path = std::env::temp_dir().join(format!("plexus-nobody-{}.sock", std::process::id()));
        let e = Client::connect(Some(path.to_str().unwrap())).err().unwrap();
        assert_eq!(e.status, Status::Unavailable);
        assert!(e.message.starts_with(&format!("no host is running at {}", path.display())), "{}", e.message);
    }

    #[test]
    fn error_messages_are_unquoted() {
        let mut e = Envelope::to(Kind::Error, "", br#"{"error":"NO_SUCH_CAPABILITY","message":"no agent provides capability 'x\"y'"}"#);
        e.status = Status::NoSuchCapability as i32;
        let c = error_of(&e);
        assert_eq!(c.status, Status::NoSuchCapability);
        assert_eq!(c.message, "no agent provides capability 'x\"y'");
    }
}

/// A W3C Trace Context traceparent: `00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceParent {
    pub trace: Id,
    pub parent: u64,
    pub flags: u8,
}

impl TraceParent {
    /// Parses one; an InvalidArgument error says what is wrong.
    pub fn parse(text: &str) -> Result<TraceParent, ClientError> {
        let bad = || err(Status::InvalidArgument, format!(
            "traceparent '{text}' is malformed: expected 00-<32 lowercase hex trace id, not all zero>-<16 lowercase hex parent id, not all zero>-<2 hex flags>"));
        let parts: Vec<&str> = text.split('-').collect();
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if parts.len() != 4 || parts[0] != "00" || !hex(parts[1], 32) || !hex(parts[2], 16) || !hex(parts[3], 2) { return Err(bad()); }
        let hi = u64::from_str_radix(&parts[1][..16], 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(&parts[1][16..], 16).map_err(|_| bad())?;
        let parent = u64::from_str_radix(parts[2], 16).map_err(|_| bad())?;
        let flags = u8::from_str_radix(parts[3], 16).map_err(|_| bad())?;
        if (hi == 0 && lo == 0) || parent == 0 { return Err(bad()); }
        Ok(TraceParent { trace: Id { hi, lo }, parent, flags })
    }
}
