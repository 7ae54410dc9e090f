//! The text of a panic caught at the C boundary, so that the caller learns
//! why a handler failed ("panicked at src/lib.rs:12:9: index out of bounds…")
//! instead of a bare HANDLER_FAILED.
//!
//! `catch_unwind` hands back only the payload; the location is known only to
//! the panic hook. `install` adds a hook, once per plugin (each cdylib has its
//! own std and so its own hook), that notes both in a thread-local and then
//! runs the hook that was there before (by default the message on stderr, which
//! a worker's log keeps). A plugin that replaces the hook after init still gets
//! the payload's message, without the location.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, PanicHookInfo};
use std::sync::Once;

thread_local! {
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the recording hook (idempotent).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            let text = match info.location() {
                Some(l) => format!("panicked at {}:{}:{}: {}", l.file(), l.line(), l.column(), message(info.payload())),
                None => format!("panicked: {}", message(info.payload())),
            };
            // try_with: a panic while the thread-local is being torn down has nowhere to go.
            let _ = LAST.try_with(|last| *last.borrow_mut() = Some(text));
            previous(info);
        }));
    });
}

/// What a caught panic said: the hook's note (with the location) when it is
/// about this panic, else the payload's message. (A note about another panic
/// is left behind when a hook installed later skips ours, or the plugin
/// caught a panic itself: its message then differs, or at worst its place.)
pub fn text(payload: &(dyn Any + Send)) -> String {
    let said = message(payload);
    match LAST.try_with(|last| last.borrow_mut().take()).ok().flatten() {
        Some(note) if note.ends_with(said) => note,
        _ => format!("panicked: {said}"),
    }
}

/// The message a panic payload carries: `panic!("...")` gives a &str or a String.
fn message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() { s }
    else if let Some(s) = payload.downcast_ref::<String>() { s.as_str() }
    else { "a panic whose payload is not a string" }
}
