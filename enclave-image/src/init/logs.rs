//! Forwards the log ring to the parent's log port (the shim, or the QEMU harness), so the
//! console is never the only copy. Nobody listening is normal; the forwarder retries quietly
//! and lines that wait too long are evicted from the bounded ring rather than buffered.
//!
//! The stream is [`sigil_protocol::parent::logs`]: the ring's lines, each ending in `\n`.

use std::io::Write;
use std::time::Duration;

use sigil_sys::VsockAddr;
use sigil_sys::vsock::VsockStream;

use crate::boot::BootError;
use crate::log::Ring;

// Every line the enclave logs (cut at `log::MAX_LINE`, plus the cut mark) reaches the parent
// whole: the reader keeps `logs::MAX_LINE` bytes of a line.
const _: () = assert!(crate::log::MAX_LINE + 16 <= sigil_protocol::parent::logs::MAX_LINE);

pub fn start(ring: &'static Ring, parent: VsockAddr) -> Result<(), BootError> {
    std::thread::Builder::new()
        .name("sigil-logs".into())
        .spawn(move || {
            let mut next = 0u64;
            loop {
                let mut s = match VsockStream::connect(parent) {
                    Ok(s) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_secs(2));
                        continue;
                    }
                };
                let _ = s.set_timeouts(Some(Duration::from_secs(5)));
                loop {
                    let (lines, after) = ring.read_from(next, Duration::from_secs(1));
                    if lines.iter().any(|l| s.write_all(l).is_err()) {
                        break; // reconnect; the lines are still in the ring if not evicted
                    }
                    next = after;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .map(|_| ())
        .map_err(|source| BootError::Thread {
            what: "log forwarder",
            source,
        })
}
