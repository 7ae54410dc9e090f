//! Mirrors of include/plexus.h, field for field. The host checks the sizes
//! these produce (descriptor.envelope_size, host_size, struct_size), so a
//! drift here is refused at load time, never silently misread.
#![allow(non_camel_case_types)]
use std::os::raw::{c_char, c_void};

pub const ABI_MAJOR: u16 = 1;
pub const ABI_MINOR: u16 = 2;

pub type plexus_status = i32;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct plexus_id {
    pub hi: u64,
    pub lo: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct plexus_envelope {
    pub struct_size: u32,
    pub kind: u8,
    pub target_kind: u8,
    pub priority: u8,
    pub flags: u8,
    pub id: plexus_id,
    pub correlation_id: plexus_id,
    pub trace_id: plexus_id,
    pub deadline_unix_ns: i64,
    pub sender: *const c_char,
    pub target: *const c_char,
    pub content_type: *const c_char,
    pub payload: *const u8,
    pub payload_len: u64,
    pub status: plexus_status,
    /// 0; was tail padding in ABI 1.0 (plexus.h names it so the next field grows the struct).
    pub reserved: u32,
}

impl plexus_envelope {
    pub fn new() -> Self {
        plexus_envelope {
            struct_size: std::mem::size_of::<plexus_envelope>() as u32,
            kind: 0,
            target_kind: 0,
            priority: 1,
            flags: 0,
            id: plexus_id::default(),
            correlation_id: plexus_id::default(),
            trace_id: plexus_id::default(),
            deadline_unix_ns: 0,
            sender: std::ptr::null(),
            target: std::ptr::null(),
            content_type: std::ptr::null(),
            payload: std::ptr::null(),
            payload_len: 0,
            status: 0,
            reserved: 0,
        }
    }
}

pub enum plexus_ctx {}

#[repr(C)]
pub struct plexus_host {
    pub struct_size: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    pub send: Option<unsafe extern "C" fn(*mut plexus_ctx, *const plexus_envelope) -> plexus_status>,
    pub request: Option<unsafe extern "C" fn(*mut plexus_ctx, *const plexus_envelope, u32, *mut plexus_id) -> plexus_status>,
    pub reply: Option<unsafe extern "C" fn(*mut plexus_ctx, *const plexus_envelope) -> plexus_status>,
    pub publish: Option<unsafe extern "C" fn(*mut plexus_ctx, *const plexus_envelope) -> plexus_status>,
    pub subscribe: Option<unsafe extern "C" fn(*mut plexus_ctx, *const c_char) -> plexus_status>,
    pub unsubscribe: Option<unsafe extern "C" fn(*mut plexus_ctx, *const c_char) -> plexus_status>,
    pub log: Option<unsafe extern "C" fn(*mut plexus_ctx, i32, *const c_char)>,
    pub alloc: Option<unsafe extern "C" fn(u64) -> *mut c_void>,
    pub free: Option<unsafe extern "C" fn(*mut c_void)>,
    pub now_unix_ns: Option<unsafe extern "C" fn() -> i64>,
    pub agent_name: Option<unsafe extern "C" fn(*mut plexus_ctx) -> *const c_char>,
    // added in 1.1
    pub kv_get: Option<unsafe extern "C" fn(*mut plexus_ctx, *const c_char, *mut *mut u8, *mut u64, *mut u64) -> plexus_status>,
    pub kv_put: Option<unsafe extern "C" fn(*mut plexus_ctx, *const c_char, *const u8, u64, i64, *mut u64) -> plexus_status>,
    pub kv_delete: Option<unsafe extern "C" fn(*mut plexus_ctx, *const c_char, i64) -> plexus_status>,
    // added in 1.2
    pub reply_partial: Option<unsafe extern "C" fn(*mut plexus_ctx, *const plexus_envelope) -> plexus_status>,
    pub cancel: Option<unsafe extern "C" fn(*mut plexus_ctx, plexus_id) -> plexus_status>,
    pub spawn: Option<unsafe extern "C" fn(*mut plexus_ctx, *const c_char, *const c_char, *const c_char, *mut c_char, u32) -> plexus_status>,
    pub stop: Option<unsafe extern "C" fn(*mut plexus_ctx, *const c_char) -> plexus_status>,
}

/// Envelope flag (ABI 1.2): on a Response, a partial answer; more follow.
pub const PLEXUS_FLAG_MORE: u8 = 0x1;

/// expected_version for kv_put and kv_delete: no condition.
pub const PLEXUS_KV_ANY: i64 = -1;

/// Sizes as ABI 1.0 laid the structs out (plexus.h's PLEXUS_*_SIZE_1_0).
pub const PLEXUS_ENVELOPE_SIZE_1_0: usize = 112;
pub const PLEXUS_HOST_SIZE_1_0: usize = 96;
pub const PLEXUS_HOST_SIZE_1_1: usize = 120;
pub const PLEXUS_HOST_SIZE_1_2: usize = 152;
/// The 1.2 draft's size (no spawn/stop): such plugins still load.
pub const PLEXUS_HOST_SIZE_1_2_DRAFT: usize = 136;
/// plexus.h's PLEXUS_MAX_NAME_LEN.
pub const PLEXUS_MAX_NAME_LEN: usize = 255;
pub const PLEXUS_CAPABILITY_SIZE_1_0: usize = 40;
pub const PLEXUS_PERMISSION_SIZE_1_0: usize = 16;
pub const PLEXUS_EXPORT_SIZE_1_0: usize = 56;
pub const PLEXUS_DESCRIPTOR_SIZE_1_0: usize = 112;

pub type plexus_init_fn =
    unsafe extern "C" fn(*const plexus_host, *mut plexus_ctx, *const c_char, *mut *mut c_void) -> plexus_status;
pub type plexus_handle_fn = unsafe extern "C" fn(*mut c_void, *mut plexus_ctx, *const plexus_envelope) -> plexus_status;
pub type plexus_shutdown_fn = unsafe extern "C" fn(*mut c_void);

#[repr(C)]
pub struct plexus_capability {
    pub struct_size: u32,
    pub name: *const c_char,
    pub description: *const c_char,
    pub input: *const c_char,
    pub output: *const c_char,
}

#[repr(C)]
pub struct plexus_permission {
    pub struct_size: u32,
    pub kind: u32,
    pub pattern: *const c_char,
}

#[repr(C)]
pub struct plexus_export {
    pub struct_size: u32,
    pub name: *const c_char,
    pub description: *const c_char,
    pub function: Option<unsafe extern "C" fn()>,
    pub return_type: u8,
    pub arg_count: u8,
    pub arg_types: *const u8,
    pub arg_names: *const *const c_char,
}

#[repr(C)]
pub struct plexus_plugin_descriptor {
    pub struct_size: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    pub envelope_size: u32,
    pub host_size: u32,
    pub name: *const c_char,
    pub version: *const c_char,
    pub description: *const c_char,
    pub flags: u32,
    pub capability_count: u32,
    pub capabilities: *const plexus_capability,
    pub permission_count: u32,
    pub permissions: *const plexus_permission,
    pub export_count: u32,
    pub exports: *const plexus_export,
    pub init: Option<plexus_init_fn>,
    pub handle: Option<plexus_handle_fn>,
    pub shutdown: Option<plexus_shutdown_fn>,
}

/// A descriptor that may live in a `static` (its raw pointers all point at
/// static data, which is what makes sharing it between threads sound).
#[repr(transparent)]
pub struct StaticDescriptor(pub plexus_plugin_descriptor);
unsafe impl Sync for StaticDescriptor {}

#[repr(transparent)]
pub struct StaticCapabilities<const N: usize>(pub [plexus_capability; N]);
unsafe impl<const N: usize> Sync for StaticCapabilities<N> {}
#[doc(hidden)]
pub struct StaticPermissions<const N: usize>(pub [plexus_permission; N]);
unsafe impl<const N: usize> Sync for StaticPermissions<N> {}

// The same layout checks as plexus.h's _Static_asserts: a drift between this
// mirror and the header fails the build, not a plugin load.
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<plexus_id>() == 16);
    assert!(size_of::<plexus_envelope>() == PLEXUS_ENVELOPE_SIZE_1_0);
    assert!(offset_of!(plexus_envelope, id) == 8);
    assert!(offset_of!(plexus_envelope, deadline_unix_ns) == 56);
    assert!(offset_of!(plexus_envelope, sender) == 64);
    assert!(offset_of!(plexus_envelope, payload_len) == 96);
    assert!(offset_of!(plexus_envelope, status) == 104);
    assert!(offset_of!(plexus_envelope, reserved) == 108);
    assert!(offset_of!(plexus_host, kv_get) == PLEXUS_HOST_SIZE_1_0);
    assert!(offset_of!(plexus_host, agent_name) == 88);
    assert!(offset_of!(plexus_host, reply_partial) == PLEXUS_HOST_SIZE_1_1);
    assert!(offset_of!(plexus_host, spawn) == PLEXUS_HOST_SIZE_1_2_DRAFT);
    assert!(size_of::<plexus_host>() == PLEXUS_HOST_SIZE_1_2);
    assert!(size_of::<plexus_capability>() == PLEXUS_CAPABILITY_SIZE_1_0);
    assert!(size_of::<plexus_permission>() == PLEXUS_PERMISSION_SIZE_1_0);
    assert!(size_of::<plexus_export>() == PLEXUS_EXPORT_SIZE_1_0);
    assert!(offset_of!(plexus_export, return_type) == 32);
    assert!(offset_of!(plexus_export, arg_types) == 40);
    assert!(size_of::<plexus_plugin_descriptor>() == PLEXUS_DESCRIPTOR_SIZE_1_0);
    assert!(offset_of!(plexus_plugin_descriptor, name) == 16);
    assert!(offset_of!(plexus_plugin_descriptor, flags) == 40);
    assert!(offset_of!(plexus_plugin_descriptor, permissions) == 64);
    assert!(offset_of!(plexus_plugin_descriptor, exports) == 80);
    assert!(offset_of!(plexus_plugin_descriptor, init) == 88);
};
