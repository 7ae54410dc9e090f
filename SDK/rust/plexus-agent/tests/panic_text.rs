//! A panicking agent behind a host table that records what the SDK hands the
//! host: the caller of a query must get HANDLER_FAILED whose message is the
//! panic's text and place, and a panic elsewhere must be logged with it.

use plexus_agent::ffi::{plexus_ctx, plexus_envelope, plexus_host, plexus_id};
use plexus_agent::{handle_instance, init_instance, Agent, Context, Message, Status};
use std::cell::RefCell;
use std::ffi::CStr;
use std::os::raw::{c_char, c_void};

/// What the host was given on this thread (the SDK calls back on the calling thread).
#[derive(Default)]
struct Seen {
    replies: Vec<(u8, i32, String)>,   // kind, status, payload
    logs: Vec<(i32, String)>,
}
thread_local! { static SEEN: RefCell<Seen> = RefCell::new(Seen::default()); }

unsafe extern "C" fn reply(_: *mut plexus_ctx, e: *const plexus_envelope) -> i32 {
    let e = &*e;
    let payload = std::slice::from_raw_parts(e.payload, e.payload_len as usize);
    SEEN.with(|s| s.borrow_mut().replies.push((e.kind, e.status, String::from_utf8(payload.to_vec()).unwrap())));
    0
}
unsafe extern "C" fn log(_: *mut plexus_ctx, level: i32, text: *const c_char) {
    let text = CStr::from_ptr(text).to_string_lossy().into_owned();
    SEEN.with(|s| s.borrow_mut().logs.push((level, text)));
}

fn host() -> plexus_host {
    plexus_host {
        struct_size: std::mem::size_of::<plexus_host>() as u32, abi_major: 1, abi_minor: 1,
        send: None, request: None, reply: Some(reply), publish: None, subscribe: None, unsubscribe: None,
        log: Some(log), alloc: None, free: None, now_unix_ns: None, agent_name: None,
        kv_get: None, kv_put: None, kv_delete: None, reply_partial: None, cancel: None, spawn: None, stop: None,
    }
}

struct Panicky;
impl Agent for Panicky {
    fn init(_: &Context, config: &str) -> Result<Self, Status> {
        if config == "panic" { panic!("init refuses config {config:?}") }
        Ok(Panicky)
    }
    fn handle(&mut self, _: &Context, msg: &Message) -> Result<(), Status> {
        match msg.text().as_ref() {
            "formatted" => panic!("bad \"row\" {}\n", 42),
            "index" => { let v: Vec<u8> = Vec::new(); let _ = v[usize::from(msg.payload()[0])]; Ok(()) }
            _ => Ok(()),
        }
    }
}

fn started(h: &plexus_host, config: &str) -> (i32, *mut c_void) {
    let mut state: *mut c_void = std::ptr::null_mut();
    let cfg = std::ffi::CString::new(config).unwrap();
    let s = unsafe { init_instance::<Panicky>(h, std::ptr::dangling_mut(), cfg.as_ptr(), &mut state) };
    (s, state)
}

fn deliver(state: *mut c_void, kind: u8, payload: &str) -> i32 {
    let mut e = plexus_envelope::new();
    e.kind = kind;
    e.id = plexus_id { hi: 7, lo: 9 };
    e.payload = payload.as_ptr();
    e.payload_len = payload.len() as u64;
    unsafe { handle_instance::<Panicky>(state, &e) }
}

/// The "message" field of an error payload, unescaped by hand for the cases here.
fn message_of(payload: &str) -> String {
    let start = payload.find("\"message\":\"").expect("a message field") + "\"message\":\"".len();
    let end = payload.rfind("\"}").expect("the end of the object");
    payload[start..end].replace("\\n", "\n").replace("\\\"", "\"")
}

#[test]
fn a_query_whose_handler_panics_is_answered_with_the_panic_text() {
    let h = host();
    let (s, state) = started(&h, "");
    assert_eq!(s, 0);
    assert_eq!(deliver(state, 1, "formatted"), Status::HandlerFailed as i32);
    let (kind, status, payload) = SEEN.with(|s| s.borrow_mut().replies.pop()).expect("an error reply");
    assert_eq!((kind, status), (4, Status::HandlerFailed as i32));
    assert!(payload.starts_with("{\"error\":\"HANDLER_FAILED\",\"message\":\""), "{payload}");
    let message = message_of(&payload);
    assert!(message.starts_with("panicked at tests/panic_text.rs:"), "{message}");
    assert!(message.ends_with(": bad \"row\" 42\n"), "{message}");

    // A panic the standard library raises carries its own text.
    assert_eq!(deliver(state, 1, "index"), Status::HandlerFailed as i32);
    let (_, _, payload) = SEEN.with(|s| s.borrow_mut().replies.pop()).expect("an error reply");
    assert!(message_of(&payload).contains("index out of bounds"), "{payload}");

    // A handler that does not panic leaves nothing behind for the next one.
    assert_eq!(deliver(state, 1, "fine"), 0);
    assert!(SEEN.with(|s| s.borrow().replies.is_empty()));
    unsafe { plexus_agent::shutdown_instance::<Panicky>(state) };
}

#[test]
fn a_panic_outside_a_query_is_logged_with_its_text() {
    let h = host();
    let (s, state) = started(&h, "");
    assert_eq!(s, 0);
    assert_eq!(deliver(state, 3, "formatted"), Status::HandlerFailed as i32);   // an event: nobody to answer
    let (level, text) = SEEN.with(|s| s.borrow_mut().logs.pop()).expect("a log line");
    assert_eq!(level, 4);
    assert!(text.starts_with("handle panicked at tests/panic_text.rs:") && text.ends_with("bad \"row\" 42\n"), "{text}");
    assert!(SEEN.with(|s| s.borrow().replies.is_empty()));
    unsafe { plexus_agent::shutdown_instance::<Panicky>(state) };

    let (s, _) = started(&h, "panic");
    assert_eq!(s, Status::HandlerFailed as i32);
    let (_, text) = SEEN.with(|s| s.borrow_mut().logs.pop()).expect("a log line");
    assert!(text.starts_with("init panicked at tests/panic_text.rs:") && text.ends_with("init refuses config \"panic\""), "{text}");
}
