//! The boot heartbeat nitro-cli waits for: connect to the parent on vsock port 9000, send
//! 0xB7, read 0xB7 back. Without it `nitro-cli run-enclave` declares the boot failed; with a
//! wrong answer we are not talking to the parent we expect, which is fatal too.

use std::io::{Read, Write};
use std::time::Duration;

use sigil_protocol::ports::{HEARTBEAT, HEARTBEAT_BYTE};

use sigil_sys::VsockAddr;
use sigil_sys::vsock::VsockStream;

pub const ATTEMPTS: u32 = 5;
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("heartbeat write: {0}")]
    Write(#[source] std::io::Error),
    #[error("heartbeat read: {0}")]
    Read(#[source] std::io::Error),
    #[error("heartbeat answered 0x{0:02x}, expected 0x{HEARTBEAT_BYTE:02x}")]
    WrongByte(u8),
    #[error(transparent)]
    Timeouts(std::io::Error),
    #[error("no heartbeat peer after {ATTEMPTS} attempts: {0}")]
    NoPeer(#[source] std::io::Error),
}

/// One exchange over any stream (tested over a socket pair).
pub fn exchange(s: &mut (impl Read + Write)) -> Result<(), HeartbeatError> {
    s.write_all(&[HEARTBEAT_BYTE])
        .map_err(HeartbeatError::Write)?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).map_err(HeartbeatError::Read)?;
    if b[0] != HEARTBEAT_BYTE {
        return Err(HeartbeatError::WrongByte(b[0]));
    }
    Ok(())
}

/// Sends the heartbeat to `parent_cid`, retrying briefly while the parent's listener may
/// not be up yet.
pub fn send(parent_cid: u32) -> Result<(), HeartbeatError> {
    let addr = VsockAddr {
        cid: parent_cid,
        port: HEARTBEAT,
    };
    let mut last = std::io::Error::other("not attempted");
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        match VsockStream::connect(addr) {
            Ok(mut s) => {
                s.set_timeouts(Some(TIMEOUT))
                    .map_err(HeartbeatError::Timeouts)?;
                // A wrong answer is not retried: it is not a timing problem.
                return exchange(&mut s);
            }
            Err(e) => last = e,
        }
    }
    Err(HeartbeatError::NoPeer(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn echoed_byte_passes_and_anything_else_fails() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut x = [0u8; 1];
            b.read_exact(&mut x).unwrap();
            assert_eq!(x[0], 0xB7);
            b.write_all(&x).unwrap();
        });
        exchange(&mut a).unwrap();
        t.join().unwrap();

        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut x = [0u8; 1];
            b.read_exact(&mut x).unwrap();
            b.write_all(&[0x00]).unwrap();
        });
        assert!(exchange(&mut a).unwrap_err().to_string().contains("0x00"));
        t.join().unwrap();

        let (mut a, b) = UnixStream::pair().unwrap();
        drop(b);
        assert!(exchange(&mut a).is_err());
    }
}
