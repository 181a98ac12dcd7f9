//! The shim's own diagnostics, on stderr (the journal under systemd). Callers pass peers and
//! error texts, never payload bytes: the parent's logs are not a place for enclave data.

pub fn info(service: &str, msg: &str) {
    eprintln!("sigil-shim[{service}] info: {msg}");
}

pub fn warn(service: &str, msg: &str) {
    eprintln!("sigil-shim[{service}] warn: {msg}");
}

pub fn error(service: &str, msg: &str) {
    eprintln!("sigil-shim[{service}] error: {msg}");
}
