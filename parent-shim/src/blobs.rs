//! The blob service: frames in, [`Store`] operations, frames out. The blobs themselves are
//! sealed by the enclave and stay opaque here.

use std::time::Duration;

use sigil_sys::Stream;

use crate::store::Store;
use crate::wire::{self, FrameError, Response};

/// At most this many blob connections at once: each may hold one maximum-size frame in
/// memory, so this bounds the service's memory (~16 x 4 MiB).
pub const MAX_CONNECTIONS: usize = 16;

/// Serves one connection until the peer closes, is idle for `idle`, or sends a frame that
/// cannot be framed. A frame that frames but does not decode gets an error reply and the
/// connection goes on: only a broken length prefix makes the stream unusable.
pub fn serve_conn(store: &Store, mut s: Stream, idle: Duration) -> Result<(), String> {
    // A slow or silent peer (slowloris) cannot hold a connection slot past `idle`.
    s.set_timeouts(Some(idle)).map_err(|e| e.to_string())?;
    loop {
        let resp = match wire::read_frame(&mut s) {
            Ok(body) => match wire::decode_request(&body) {
                Ok(req) => store.handle(req),
                Err(e) => Response::err("bad_request", e.0),
            },
            Err(FrameError::Eof) => return Ok(()),
            Err(FrameError::TooLarge(n)) => {
                let msg = format!("frame of {n} bytes; the limit is {}", wire::MAX_FRAME);
                let _ = wire::write_frame(
                    &mut s,
                    &wire::encode_response(&Response::err("too_large", &*msg)),
                );
                return Err(msg);
            }
            Err(FrameError::Io(e)) => return Err(format!("reading a frame: {e}")),
        };
        wire::write_frame(&mut s, &wire::encode_response(&resp))
            .map_err(|e| format!("writing a reply: {e}"))?;
    }
}
