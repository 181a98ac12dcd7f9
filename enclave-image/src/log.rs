//! Logging for the enclave: one line per event on stderr, never a secret.
//!
//! Levels are few on purpose; `SIGIL_LOG=debug` adds the per-connection noise.

use std::fmt::Arguments;
use std::io::Write;
use std::sync::OnceLock;

fn debug_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("SIGIL_LOG").is_ok_and(|v| v == "debug"))
}

fn emit(level: &str, args: Arguments<'_>) {
    // One write per line so lines from different threads do not interleave; a failing
    // stderr must not take the service down.
    let line = format!("sigil-enclave {level}: {args}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

pub fn info(args: Arguments<'_>) {
    emit("info", args);
}

pub fn warn(args: Arguments<'_>) {
    emit("warn", args);
}

pub fn debug(args: Arguments<'_>) {
    if debug_enabled() {
        emit("debug", args);
    }
}
