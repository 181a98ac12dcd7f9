//! Clients for what the untrusted parent provides besides the API's bytes: the blob store,
//! the egress proxy to KMS and the credentials for signing KMS requests.
//!
//! Nothing these services return is trusted: blobs are sealed ([`crate::seal`]), KMS answers
//! arrive through TLS that ends in the enclave, and credentials are worth nothing without the
//! enclave's attestation (the key policy requires it).

pub mod credentials;
pub mod egress;

use std::time::Duration;

use sigil_protocol::ports;

use sigil_sys::{Addr, VsockAddr};

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
