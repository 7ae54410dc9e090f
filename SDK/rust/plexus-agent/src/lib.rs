//! Write Plexus agents in safe Rust, std only.
//!
//! ```ignore
//! use plexus_agent::{Agent, Context, Message, Status};
//! struct Upper;
//! impl Agent for Upper {
//!     fn init(_: &Context, _: &str) -> Result<Self, Status> { Ok(Upper) }
//!     fn handle(&mut self, ctx: &Context, msg: &Message) -> Result<(), Status> {
//!         let text = String::from_utf8_lossy(msg.payload()).to_uppercase();
//!         ctx.reply(msg, "text/plain", text.as_bytes())
//!     }
//! }
//! plexus_agent::export_agent!(Upper, name: "upper", version: "1.0.0",
//!     capabilities: [("text.upper", "upper-cases text")]);
//! ```
//!
//! A panic inside `init`, `handle` or `shutdown` is caught at the boundary and
//! reported to the host as `Status::HandlerFailed`; it never unwinds into C.
//! The caller of a query whose handler panicked gets HANDLER_FAILED with the
//! panic's text as the message ("panicked at src/lib.rs:12:9: boom"); a panic
//! in `init` or `shutdown` is logged with it.

pub mod ffi;
pub mod wire;
pub mod client;
mod panics;

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Every status of plexus.h.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0, InvalidArgument = 1, NoMemory = 2, NoSuchAgent = 3, NoSuchCapability = 4, Timeout = 5,
    Expired = 6, TooLarge = 7, MailboxFull = 8, HandlerFailed = 9, PermissionDenied = 10,
    AbiMismatch = 11, BadDescriptor = 12, MalformedFrame = 13, Unsupported = 14, ShuttingDown = 15,
    AgentCrashed = 16, TypeMismatch = 17, ArityMismatch = 18, NotARequest = 19, Internal = 20,
    Unavailable = 21, Conflict = 22, Cancelled = 23, LimitReached = 24,
}

impl Status {
    pub fn from_code(c: i32) -> Status {
        use Status::*;
        const ALL: [Status; 25] = [Ok, InvalidArgument, NoMemory, NoSuchAgent, NoSuchCapability, Timeout,
            Expired, TooLarge, MailboxFull, HandlerFailed, PermissionDenied, AbiMismatch, BadDescriptor,
            MalformedFrame, Unsupported, ShuttingDown, AgentCrashed, TypeMismatch, ArityMismatch, NotARequest, Internal,
            Unavailable, Conflict, Cancelled, LimitReached];
        ALL.get(c as usize).copied().unwrap_or(Internal)
    }
    /// The name plexus_status_name gives ("MAILBOX_FULL").
    pub fn name(self) -> &'static str {
        ["OK", "INVALID_ARGUMENT", "NO_MEMORY", "NO_SUCH_AGENT", "NO_SUCH_CAPABILITY", "TIMEOUT", "EXPIRED",
         "TOO_LARGE", "MAILBOX_FULL", "HANDLER_FAILED", "PERMISSION_DENIED", "ABI_MISMATCH", "BAD_DESCRIPTOR",
         "MALFORMED_FRAME", "UNSUPPORTED", "SHUTTING_DOWN", "AGENT_CRASHED", "TYPE_MISMATCH", "ARITY_MISMATCH",
         "NOT_A_REQUEST", "INTERNAL", "UNAVAILABLE", "CONFLICT", "CANCELLED", "LIMIT_REACHED"][self as usize]
    }
    fn check(code: i32) -> Result<(), Status> {
        if code == 0 { Ok(()) } else { Err(Status::from_code(code)) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind { Command, Query, Response, Event, Error, /** ABI 1.2: a caller cancelled the query correlation_id names */ Cancel }

pub type Id = ffi::plexus_id;

/// A message delivered to `handle`, borrowed for that call.
pub struct Message<'a> {
    raw: &'a ffi::plexus_envelope,
}

fn cstr<'a>(p: *const c_char) -> &'a str {
    if p.is_null() { "" } else { unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("") }
}

impl<'a> Message<'a> {
    pub fn kind(&self) -> Kind {
        match self.raw.kind { 1 => Kind::Query, 2 => Kind::Response, 3 => Kind::Event, 4 => Kind::Error, 5 => Kind::Cancel, _ => Kind::Command }
    }
    /// A partial answer (ABI 1.2) to one of this agent's requests: more follow.
    pub fn is_partial(&self) -> bool { self.raw.kind == 2 && self.raw.flags & ffi::PLEXUS_FLAG_MORE != 0 }
    /// The capability, agent name or subject it was sent to.
    pub fn target(&self) -> &'a str { cstr(self.raw.target) }
    pub fn sender(&self) -> &'a str { cstr(self.raw.sender) }
    /// The host's news that a child this agent spawned ended (ABI 1.2): an
    /// Event to "plexus.agent.terminated" from "plexus"; `text()` is
    /// {"name":..., "reason":..., "exit":...}.
    pub fn is_child_terminated(&self) -> bool {
        self.raw.kind == 3 && self.target() == "plexus.agent.terminated" && self.sender() == "plexus"
    }
    pub fn content_type(&self) -> &'a str { cstr(self.raw.content_type) }
    pub fn id(&self) -> Id { self.raw.id }
    /// For a Response or Error: the id of the request it answers.
    pub fn correlation_id(&self) -> Id { self.raw.correlation_id }
    pub fn status(&self) -> Status { Status::from_code(self.raw.status) }
    pub fn payload(&self) -> &'a [u8] {
        if self.raw.payload.is_null() || self.raw.payload_len == 0 { &[] }
        else { unsafe { std::slice::from_raw_parts(self.raw.payload, self.raw.payload_len as usize) } }
    }
    pub fn text(&self) -> std::borrow::Cow<'a, str> { String::from_utf8_lossy(self.payload()) }
}

/// The agent's handle on the host: valid from init until shutdown.
pub struct Context {
    host: *const ffi::plexus_host,
    ctx: *mut ffi::plexus_ctx,
}

// The host table and ctx may be used from any thread (plexus.h, "Threads").
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

fn c(s: &str) -> Result<CString, Status> { CString::new(s).map_err(|_| Status::InvalidArgument) }

impl Context {
    fn host(&self) -> &ffi::plexus_host { unsafe { &*self.host } }

    fn envelope(target_kind: u8, target: &CString, content_type: &CString, payload: &[u8]) -> ffi::plexus_envelope {
        let mut e = ffi::plexus_envelope::new();
        e.target_kind = target_kind;
        e.target = target.as_ptr();
        e.content_type = content_type.as_ptr();
        e.payload = payload.as_ptr();
        e.payload_len = payload.len() as u64;
        e
    }

    /// Answers a Query.
    pub fn reply(&self, request: &Message, content_type: &str, payload: &[u8]) -> Result<(), Status> {
        self.reply_to(request.id(), content_type, payload)
    }

    /// Answers the Query with this id (for replies sent after handle returned).
    pub fn reply_to(&self, request_id: Id, content_type: &str, payload: &[u8]) -> Result<(), Status> {
        let ct = c(content_type)?;
        let empty = c("")?;
        let mut e = Self::envelope(3, &empty, &ct, payload);
        e.kind = 2;
        e.correlation_id = request_id;
        Status::check(unsafe { (self.host().reply.unwrap())(self.ctx, &e) })
    }

    /// Answers a Query with an Error carrying `status` and a message.
    pub fn reply_error(&self, request: &Message, status: Status, message: &str) -> Result<(), Status> {
        let body = format!("{{\"error\":\"{}\",\"message\":{}}}", status.name(), json_string(message));
        let ct = c("application/json")?;
        let empty = c("")?;
        let mut e = Self::envelope(3, &empty, &ct, body.as_bytes());
        e.kind = 4;
        e.status = status as i32;
        e.correlation_id = request.id();
        Status::check(unsafe { (self.host().reply.unwrap())(self.ctx, &e) })
    }

    /// Sends a Query to a capability. Its answer arrives at `handle` as a
    /// Response or Error whose correlation_id is the returned id.
    pub fn request(&self, capability: &str, content_type: &str, payload: &[u8], timeout_ms: u32) -> Result<Id, Status> {
        let (t, ct) = (c(capability)?, c(content_type)?);
        let e = Self::envelope(1, &t, &ct, payload);
        let mut id = Id::default();
        Status::check(unsafe { (self.host().request.unwrap())(self.ctx, &e, timeout_ms, &mut id) })?;
        Ok(id)
    }

    /// Sends a Command to a capability (no reply).
    pub fn send(&self, capability: &str, content_type: &str, payload: &[u8]) -> Result<(), Status> {
        let (t, ct) = (c(capability)?, c(content_type)?);
        let e = Self::envelope(1, &t, &ct, payload);
        Status::check(unsafe { (self.host().send.unwrap())(self.ctx, &e) })
    }

    /// Publishes an Event to a subject.
    pub fn publish(&self, subject: &str, content_type: &str, payload: &[u8]) -> Result<(), Status> {
        let (t, ct) = (c(subject)?, c(content_type)?);
        let mut e = Self::envelope(2, &t, &ct, payload);
        e.kind = 3;
        Status::check(unsafe { (self.host().publish.unwrap())(self.ctx, &e) })
    }

    pub fn subscribe(&self, pattern: &str) -> Result<(), Status> {
        let p = c(pattern)?;
        Status::check(unsafe { (self.host().subscribe.unwrap())(self.ctx, p.as_ptr()) })
    }

    /// Sends one partial answer to a Query (ABI 1.2); the request stays open
    /// for more and for the final `reply`. Err(NotARequest) once the caller
    /// cancelled it or its deadline passed: a streaming loop stops there.
    pub fn reply_partial(&self, request: &Message, content_type: &str, payload: &[u8]) -> Result<(), Status> {
        let h = self.streams_table()?;
        let ct = c(content_type)?;
        let empty = c("")?;
        let mut e = Self::envelope(3, &empty, &ct, payload);
        e.kind = 2;
        e.correlation_id = request.id();
        Status::check(unsafe { (h.reply_partial.unwrap())(self.ctx, &e) })
    }

    /// Cancels a request this agent made (`request`'s id): its answer becomes
    /// an Error with Status::Cancelled, and its handler is told.
    pub fn cancel(&self, request_id: Id) -> Result<(), Status> {
        let h = self.streams_table()?;
        Status::check(unsafe { (h.cancel.unwrap())(self.ctx, request_id) })
    }

    /// Starts a child of this agent from the loaded plugin `plugin` (ABI
    /// 1.2), `config` (JSON object text; None: "{}") given to its init, and
    /// returns its agent name (THIS_AGENT/INSTANCE; `instance` None lets the
    /// host choose). plexus.yaml must let this plugin spawn that one
    /// (`plugins.NAME.spawn`), else Err(PermissionDenied); over its
    /// `max_children`, Err(LimitReached). When a child ends, `handle` gets an
    /// Event whose `is_child_terminated()` is true. Blocks until the child's init returned.
    pub fn spawn(&self, plugin: &str, instance: Option<&str>, config: Option<&str>) -> Result<String, Status> {
        let h = self.spawn_table()?;
        let p = c(plugin)?;
        let i = instance.map(c).transpose()?;
        let cfg = config.map(c).transpose()?;
        let mut out = vec![0u8; ffi::PLEXUS_MAX_NAME_LEN + 1];
        Status::check(unsafe {
            (h.spawn.unwrap())(self.ctx, p.as_ptr(), i.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                               cfg.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()), out.as_mut_ptr() as *mut c_char, out.len() as u32)
        })?;
        let n = out.iter().position(|&b| b == 0).unwrap_or(out.len());
        Ok(String::from_utf8_lossy(&out[..n]).into_owned())
    }

    /// Stops a child this agent spawned (ABI 1.2); Err(PermissionDenied)
    /// for any other agent. Blocks until it has stopped.
    pub fn stop(&self, child: &str) -> Result<(), Status> {
        let h = self.spawn_table()?;
        let n = c(child)?;
        Status::check(unsafe { (h.stop.unwrap())(self.ctx, n.as_ptr()) })
    }

    /// The host table with spawn/stop, or Unsupported on an older host.
    fn spawn_table(&self) -> Result<&ffi::plexus_host, Status> {
        let h = self.host();
        if (h.struct_size as usize) < ffi::PLEXUS_HOST_SIZE_1_2 || h.spawn.is_none() { return Err(Status::Unsupported); }
        Ok(h)
    }

    /// The host table with the 1.2 functions, or Unsupported on an older host.
    fn streams_table(&self) -> Result<&ffi::plexus_host, Status> {
        let h = self.host();
        if (h.struct_size as usize) < ffi::PLEXUS_HOST_SIZE_1_2 || h.reply_partial.is_none() { return Err(Status::Unsupported); }
        Ok(h)
    }

    /// The host table as the plugin's header knew it (ABI 1.0 hosts have no kv_*).
    fn kv_table(&self) -> Result<&ffi::plexus_host, Status> {
        let h = self.host();
        if (h.struct_size as usize) < ffi::PLEXUS_HOST_SIZE_1_1 || h.kv_get.is_none() { return Err(Status::Unsupported); }
        Ok(h)
    }

    /// A key of this plugin's durable key-value namespace: its value and
    /// version, or None when absent.
    pub fn kv_get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, Status> {
        let (h, k) = (self.kv_table()?, c(key)?);
        let (mut p, mut n, mut v) = (std::ptr::null_mut::<u8>(), 0u64, 0u64);
        Status::check(unsafe { (h.kv_get.unwrap())(self.ctx, k.as_ptr(), &mut p, &mut n, &mut v) })?;
        if v == 0 { return Ok(None); }
        let value = unsafe { std::slice::from_raw_parts(p, n as usize).to_vec() };
        unsafe { (h.free.unwrap())(p as *mut c_void) };
        Ok(Some((value, v)))
    }

    /// Writes key when it is at `expected` (None: any version; Some(0):
    /// create only). Returns the new version; Err(Conflict) when the key
    /// moved on. On disk when it returns.
    pub fn kv_put(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, Status> {
        let (h, k) = (self.kv_table()?, c(key)?);
        let mut v = 0u64;
        let e = expected.map(|x| x as i64).unwrap_or(ffi::PLEXUS_KV_ANY);
        Status::check(unsafe { (h.kv_put.unwrap())(self.ctx, k.as_ptr(), value.as_ptr(), value.len() as u64, e, &mut v) })?;
        Ok(v)
    }

    /// Removes key when it is at `expected` (None: whatever is there).
    pub fn kv_delete(&self, key: &str, expected: Option<u64>) -> Result<(), Status> {
        let (h, k) = (self.kv_table()?, c(key)?);
        let e = expected.map(|x| x as i64).unwrap_or(ffi::PLEXUS_KV_ANY);
        Status::check(unsafe { (h.kv_delete.unwrap())(self.ctx, k.as_ptr(), e) })
    }

    pub fn log(&self, level: i32, message: &str) {
        if let Ok(m) = CString::new(message.replace('\0', " ")) {
            unsafe { (self.host().log.unwrap())(self.ctx, level, m.as_ptr()) }
        }
    }
}

/// A JSON string literal for s (quotes and escapes included).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What an agent implements. The host calls one instance from one thread at
/// a time.
pub trait Agent: Send + Sized + 'static {
    fn init(ctx: &Context, config: &str) -> Result<Self, Status>;
    fn handle(&mut self, ctx: &Context, msg: &Message) -> Result<(), Status>;
    fn shutdown(&mut self, _ctx: &Context) {}
}

/// The agent and its context, behind the state pointer the host keeps.
pub struct Instance<A: Agent> {
    ctx: Context,
    agent: A,
}

#[doc(hidden)]
pub unsafe fn init_instance<A: Agent>(host: *const ffi::plexus_host, ctx: *mut ffi::plexus_ctx,
                                      config: *const c_char, out: *mut *mut c_void) -> i32 {
    if host.is_null() || out.is_null() { return Status::InvalidArgument as i32; }
    panics::install();
    let context = Context { host, ctx };
    let config = cstr(config).to_owned();
    match catch_unwind(AssertUnwindSafe(|| A::init(&context, &config))) {
        Ok(Ok(agent)) => {
            *out = Box::into_raw(Box::new(Instance { ctx: context, agent })) as *mut c_void;
            0
        }
        Ok(Err(s)) => s as i32,
        Err(payload) => {
            context.log(LOG_ERROR, &format!("init {}", panics::text(&*payload)));
            Status::HandlerFailed as i32
        }
    }
}

const LOG_ERROR: i32 = 4;   // plexus.h's PLEXUS_LOG_ERROR

#[doc(hidden)]
pub unsafe fn handle_instance<A: Agent>(state: *mut c_void, msg: *const ffi::plexus_envelope) -> i32 {
    if state.is_null() || msg.is_null() { return Status::InvalidArgument as i32; }
    let inst = &mut *(state as *mut Instance<A>);
    let m = Message { raw: &*msg };
    match catch_unwind(AssertUnwindSafe(|| inst.agent.handle(&inst.ctx, &m))) {
        Ok(Ok(())) => 0,
        Ok(Err(s)) => s as i32,
        Err(payload) => {
            // A query is answered here with the panic's text; the host then
            // finds it answered and only counts the failure. (If the handler
            // replied before it panicked, this reply is refused: harmless.)
            let text = panics::text(&*payload);
            if m.kind() == Kind::Query { let _ = inst.ctx.reply_error(&m, Status::HandlerFailed, &text); }
            else { inst.ctx.log(LOG_ERROR, &format!("handle {}", text)); }
            Status::HandlerFailed as i32
        }
    }
}

#[doc(hidden)]
pub unsafe fn shutdown_instance<A: Agent>(state: *mut c_void) {
    if state.is_null() { return; }
    let mut inst = Box::from_raw(state as *mut Instance<A>);
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| inst.agent.shutdown(&inst.ctx))) {
        inst.ctx.log(LOG_ERROR, &format!("shutdown {}", panics::text(&*payload)));
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! permit {
    (call) => { 0u32 };
    (publish) => { 1u32 };
    (subscribe) => { 2u32 };
}

#[doc(hidden)]
#[macro_export]
macro_rules! count { () => { 0usize }; ($h:tt $($t:tt)*) => { 1usize + $crate::count!($($t)*) }; }

/// Exports an Agent type as a plugin: the descriptor, the entry symbol and
/// the C lifecycle functions.
#[macro_export]
macro_rules! export_agent {
    ($ty:ty, name: $name:literal, version: $version:literal,
     capabilities: [$(($cap:literal, $desc:literal)),* $(,)?]) => {
        $crate::export_agent!($ty, name: $name, version: $version, capabilities: [$(($cap, $desc)),*], permissions: []);
    };
    // permissions: what the agent asks to reach, e.g. [(call, "text.stats"),
    // (publish, "docs.>"), (subscribe, "jobs.*")]; plexus.yaml may grant
    // otherwise, and without a grant the host answers PERMISSION_DENIED.
    ($ty:ty, name: $name:literal, version: $version:literal,
     capabilities: [$(($cap:literal, $desc:literal)),* $(,)?],
     permissions: [$(($perm:ident, $pattern:literal)),* $(,)?]) => {
        const _: () = {
            use $crate::ffi::*;
            static CAPS: StaticCapabilities<{ $crate::count!($($cap)*) }> = StaticCapabilities([$(
                plexus_capability {
                    struct_size: ::std::mem::size_of::<plexus_capability>() as u32,
                    name: concat!($cap, "\0").as_ptr() as *const ::std::os::raw::c_char,
                    description: concat!($desc, "\0").as_ptr() as *const ::std::os::raw::c_char,
                    input: ::std::ptr::null(),
                    output: ::std::ptr::null(),
                }
            ),*]);
            static PERMS: StaticPermissions<{ $crate::count!($($perm)*) }> = StaticPermissions([$(
                plexus_permission {
                    struct_size: ::std::mem::size_of::<plexus_permission>() as u32,
                    kind: $crate::permit!($perm),
                    pattern: concat!($pattern, "\0").as_ptr() as *const ::std::os::raw::c_char,
                }
            ),*]);
            unsafe extern "C" fn init(h: *const plexus_host, c: *mut plexus_ctx, cfg: *const ::std::os::raw::c_char,
                                      out: *mut *mut ::std::os::raw::c_void) -> i32 {
                $crate::init_instance::<$ty>(h, c, cfg, out)
            }
            unsafe extern "C" fn handle(s: *mut ::std::os::raw::c_void, _c: *mut plexus_ctx, m: *const plexus_envelope) -> i32 {
                $crate::handle_instance::<$ty>(s, m)
            }
            unsafe extern "C" fn shutdown(s: *mut ::std::os::raw::c_void) { $crate::shutdown_instance::<$ty>(s) }
            static DESCRIPTOR: StaticDescriptor = StaticDescriptor(plexus_plugin_descriptor {
                struct_size: ::std::mem::size_of::<plexus_plugin_descriptor>() as u32,
                abi_major: ABI_MAJOR,
                abi_minor: ABI_MINOR,
                envelope_size: ::std::mem::size_of::<plexus_envelope>() as u32,
                host_size: ::std::mem::size_of::<plexus_host>() as u32,
                name: concat!($name, "\0").as_ptr() as *const ::std::os::raw::c_char,
                version: concat!($version, "\0").as_ptr() as *const ::std::os::raw::c_char,
                description: ::std::ptr::null(),
                flags: 0,
                capability_count: $crate::count!($($cap)*) as u32,
                capabilities: CAPS.0.as_ptr(),
                permission_count: $crate::count!($($perm)*) as u32,
                permissions: PERMS.0.as_ptr(),
                export_count: 0,
                exports: ::std::ptr::null(),
                init: Some(init),
                handle: Some(handle),
                shutdown: Some(shutdown),
            });
            #[no_mangle]
            pub extern "C" fn plexus_plugin_entry() -> *const plexus_plugin_descriptor { &DESCRIPTOR.0 }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn layout_matches_plexus_h() {
        assert_eq!(std::mem::size_of::<ffi::plexus_envelope>(), 112);
        assert_eq!(std::mem::size_of::<ffi::plexus_plugin_descriptor>(), 112);
        assert_eq!(std::mem::size_of::<ffi::plexus_host>(), 8 + 18 * 8);
        assert_eq!(std::mem::size_of::<ffi::plexus_capability>(), 40);
    }
    #[test]
    fn status_names_round_trip() {
        assert_eq!(Status::from_code(8), Status::MailboxFull);
        assert_eq!(Status::MailboxFull.name(), "MAILBOX_FULL");
        assert_eq!(Status::from_code(999), Status::Internal);
    }
    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\n\u{1}"), "\"a\\\"b\\n\\u0001\"");
    }
}
