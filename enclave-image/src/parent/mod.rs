//! Clients for what the untrusted parent provides besides the API's bytes: the blob store,
//! the egress proxy to KMS and the credentials for signing KMS requests.
//!
//! Nothing these services return is trusted: blobs are sealed ([`crate::seal`]), KMS answers
//! arrive through TLS that ends in the enclave, and credentials are worth nothing without the
//! enclave's attestation (the key policy requires it).

pub mod credentials;
pub mod egress;

use std::ops::ControlFlow;
use std::time::Duration;

use sigil_protocol::ports;

use sigil_sys::{Addr, VsockAddr};

/// Retry delays after a failed attempt: quick at first (the shim may still be starting), then
/// every 30 s.
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Calls `attempt` with the attempt number (from 1) and the delay before the next one until
/// it breaks, sleeping that delay between attempts.
pub fn retry_with_backoff(mut attempt: impl FnMut(u32, Duration) -> ControlFlow<()>) {
    let mut delay = BACKOFF_START;
    for n in 1u32.. {
        if attempt(n, delay).is_break() {
            return;
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

/// Bound on every exchange with a parent service: they answer in milliseconds, and a hung
/// parent must not hold a request thread.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Where the parent's services are.
#[derive(Clone, Debug)]
pub struct ParentServices {
    pub blobs: Addr,
    pub egress: Addr,
    pub credentials: Addr,
}

impl ParentServices {
    /// The well-known vsock ports at the parent's CID (3 on Nitro, 2 in the harness).
    pub fn vsock(parent_cid: u32) -> ParentServices {
        let at = |port| {
            Addr::Vsock(VsockAddr {
                cid: parent_cid,
                port,
            })
        };
        ParentServices {
            blobs: at(ports::BLOBS),
            egress: at(ports::EGRESS),
            credentials: at(ports::CREDENTIALS),
        }
    }
}
