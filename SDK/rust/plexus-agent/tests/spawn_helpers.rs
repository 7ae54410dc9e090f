//! Context::spawn / Context::stop (ABI 1.2) against a host table that
//! records what the SDK hands the host and answers as plexus.h says.

use plexus_agent::ffi::{plexus_ctx, plexus_envelope, plexus_host, plexus_id};
use plexus_agent::{handle_instance, init_instance, Agent, Context, Message, Status};
use std::cell::RefCell;
use std::ffi::CStr;
use std::os::raw::{c_char, c_void};

#[derive(Default)]
struct Seen {
    spawns: Vec<(String, Option<String>, Option<String>, u32)>,
    stops: Vec<String>,
    results: Vec<String>,
}
thread_local! { static SEEN: RefCell<Seen> = RefCell::new(Seen::default()); }

unsafe fn opt(p: *const c_char) -> Option<String> {
    if p.is_null() { None } else { Some(CStr::from_ptr(p).to_string_lossy().into_owned()) }
}

unsafe extern "C" fn spawn(_: *mut plexus_ctx, plugin: *const c_char, instance: *const c_char, config: *const c_char,
                           out: *mut c_char, size: u32) -> i32 {
    let plugin = opt(plugin).unwrap();
    SEEN.with(|s| s.borrow_mut().spawns.push((plugin.clone(), opt(instance), opt(config), size)));
    if plugin != "helper" { return Status::PermissionDenied as i32; }
    let name = format!("boss/{}", opt(instance).unwrap_or_else(|| "helper.1".into()));
    std::ptr::copy_nonoverlapping(name.as_ptr() as *const c_char, out, name.len());
    *out.add(name.len()) = 0;
    0
}
unsafe extern "C" fn stop(_: *mut plexus_ctx, name: *const c_char) -> i32 {
    let name = opt(name).unwrap();
    SEEN.with(|s| s.borrow_mut().stops.push(name.clone()));
    if name.starts_with("boss/") { 0 } else { Status::PermissionDenied as i32 }
}

fn host(with_spawn: bool) -> plexus_host {
    plexus_host {
        struct_size: if with_spawn { std::mem::size_of::<plexus_host>() as u32 } else { plexus_agent::ffi::PLEXUS_HOST_SIZE_1_2_DRAFT as u32 },
        abi_major: 1, abi_minor: 2,
        send: None, request: None, reply: None, publish: None, subscribe: None, unsubscribe: None,
        log: None, alloc: None, free: None, now_unix_ns: None, agent_name: None,
        kv_get: None, kv_put: None, kv_delete: None, reply_partial: None, cancel: None,
        spawn: if with_spawn { Some(spawn) } else { None }, stop: if with_spawn { Some(stop) } else { None },
    }
}

struct Boss;
impl Agent for Boss {
    fn init(_: &Context, _: &str) -> Result<Self, Status> { Ok(Boss) }
    fn handle(&mut self, ctx: &Context, msg: &Message) -> Result<(), Status> {
        let r = if msg.is_child_terminated() {
            format!("ended {}", msg.text())
        } else {
            match msg.text().as_ref() {
                "named" => format!("{:?}", ctx.spawn("helper", Some("h1"), Some("{\"n\":1}"))),
                "anonymous" => format!("{:?}", ctx.spawn("helper", None, None)),
                "refused" => format!("{:?}", ctx.spawn("boss", None, None)),
                "stop" => format!("{:?} {:?}", ctx.stop("boss/h1"), ctx.stop("other")),
                _ => "?".into(),
            }
        };
        SEEN.with(|s| s.borrow_mut().results.push(r));
        Ok(())
    }
}

fn deliver(state: *mut c_void, kind: u8, target: &str, sender: &str, payload: &str) {
    let (t, s) = (std::ffi::CString::new(target).unwrap(), std::ffi::CString::new(sender).unwrap());
    let mut e = plexus_envelope::new();
    e.kind = kind;
    e.id = plexus_id { hi: 1, lo: 2 };
    e.target = t.as_ptr();
    e.sender = s.as_ptr();
    e.payload = payload.as_ptr();
    e.payload_len = payload.len() as u64;
    assert_eq!(unsafe { handle_instance::<Boss>(state, &e) }, 0);
}

fn started(h: &plexus_host) -> *mut c_void {
    let mut state: *mut c_void = std::ptr::null_mut();
    let cfg = std::ffi::CString::new("{}").unwrap();
    assert_eq!(unsafe { init_instance::<Boss>(h, std::ptr::dangling_mut(), cfg.as_ptr(), &mut state) }, 0);
    state
}

fn last() -> String { SEEN.with(|s| s.borrow_mut().results.pop().unwrap()) }

#[test]
fn spawn_and_stop_reach_the_host_and_bring_back_its_answers() {
    let h = host(true);
    let state = started(&h);
    deliver(state, 0, "boss", "client:1", "named");
    assert_eq!(last(), "Ok(\"boss/h1\")");
    deliver(state, 0, "boss", "client:1", "anonymous");
    assert_eq!(last(), "Ok(\"boss/helper.1\")");
    deliver(state, 0, "boss", "client:1", "refused");
    assert_eq!(last(), "Err(PermissionDenied)");
    SEEN.with(|s| {
        let s = s.borrow();
        assert_eq!(s.spawns[0], ("helper".into(), Some("h1".into()), Some("{\"n\":1}".into()), 256));
        assert_eq!(s.spawns[1], ("helper".into(), None, None, 256));
    });
    deliver(state, 0, "boss", "client:1", "stop");
    assert_eq!(last(), "Ok(()) Err(PermissionDenied)");
    assert_eq!(SEEN.with(|s| s.borrow().stops.clone()), vec!["boss/h1".to_string(), "other".to_string()]);

    // The host's news of a child's end, and a look-alike from anyone else.
    deliver(state, 3, "plexus.agent.terminated", "plexus", "{\"name\":\"boss/h1\"}");
    assert_eq!(last(), "ended {\"name\":\"boss/h1\"}");
    deliver(state, 3, "plexus.agent.terminated", "forger", "x");
    assert_eq!(last(), "?");
    unsafe { plexus_agent::shutdown_instance::<Boss>(state) };
}

#[test]
fn a_host_without_spawn_answers_unsupported() {
    let h = host(false);
    let state = started(&h);
    deliver(state, 0, "boss", "client:1", "named");
    assert_eq!(last(), "Err(Unsupported)");
    deliver(state, 0, "boss", "client:1", "stop");
    assert_eq!(last(), "Err(Unsupported) Err(Unsupported)");
    unsafe { plexus_agent::shutdown_instance::<Boss>(state) };
}
