//! The egress proxy: the enclave names a destination on a first line, the shim checks it
//! against the allow-list, connects, answers, then copies bytes both ways.
//!
//! Protocol: client sends `HOST:PORT\n` (at most 300 bytes); the shim answers `OK\n` or
//! `ERR <code> <message>\n` and closes. Codes: `bad_request`, `not_allowed`, `connect_failed`.
//! TLS runs end to end inside the enclave, so the shim sees only ciphertext.

use std::io::{Read, Write};
use std::time::Duration;

use sigil_sys::Addr;
use sigil_sys::Stream;

use crate::config::check_destination;
use crate::relay;

/// Longest request line: a 253-byte host, ':' and a port fit with room to spare.
pub const MAX_REQUEST: usize = 300;
/// Time allowed for the request line (slowloris on the handshake).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn refuse(s: &mut Stream, code: &str, msg: &str) -> String {
    let _ = s.write_all(format!("ERR {code} {msg}\n").as_bytes());
    format!("{code}: {msg}")
}

/// Reads the request line a byte at a time, so no byte meant for the destination is consumed.
fn request_line(s: &mut Stream) -> Result<String, String> {
    let mut line = Vec::with_capacity(64);
    loop {
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) => return Err("closed before naming a destination".into()),
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) if line.len() >= MAX_REQUEST => {
                return Err(refuse(
                    s,
                    "bad_request",
                    "request line longer than 300 bytes",
                ));
            }
            Ok(_) => line.push(b[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the request line: {e}")),
        }
    }
    String::from_utf8(line).map_err(|_| refuse(s, "bad_request", "request line is not UTF-8"))
}

/// `resolve` maps allowed destinations to fixed `ip:port` addresses (development only).
pub fn handle(
    mut client: Stream,
    allow: &[String],
    resolve: &[(String, String)],
    idle: Duration,
) -> Result<(), String> {
    client
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    client
        .set_write_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let line = request_line(&mut client)?;
    let dest = check_destination(line.trim_end_matches('\r'))
        .map_err(|e| refuse(&mut client, "bad_request", &e))?;
    // The allow-list is the whole defence against the proxy being used to reach anything
    // else (the instance metadata service, internal hosts): check before any DNS or connect.
    if !allow.contains(&dest) {
        return Err(refuse(
            &mut client,
            "not_allowed",
            &format!("{dest} is not on the egress allow-list"),
        ));
    }
    // Resolved afresh on every connection (Stream::connect does not cache), so a DNS change
    // at AWS takes effect without a restart.
    let target = resolve
        .iter()
        .find(|(d, _)| *d == dest)
        .map(|(_, to)| to.clone())
        .unwrap_or_else(|| dest.clone());
    let server = Stream::connect(&Addr::Tcp(target))
        .map_err(|e| refuse(&mut client, "connect_failed", &e.to_string()))?;
    client.write_all(b"OK\n").map_err(|e| e.to_string())?;
    relay::splice(client, server, idle).map_err(|e| format!("{dest}: {e}"))
}
