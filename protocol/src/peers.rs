//! Peer enclaves: what a coordinator asks one enclave about another.
//!
//! `POST /v1/peers/verify` (encapsulated): the coordinator hands an enclave another enclave's
//! attestation document (fetched from that enclave with a fresh nonce); the enclave verifies
//! it against its own measured `peers` policy (chain to the pinned root, signature, PCRs on
//! the allow-list, age) and answers, sealed, with the peer's node identity and per-boot key.
//! Nothing the coordinator or the parent says changes whom the enclave trusts.

use serde::{Deserialize, Serialize};

use crate::wire::{Base64Bytes, Hex32};

/// Largest attestation document taken (a real one is about 4.5 KiB).
pub const MAX_PEER_DOCUMENT: usize = 16 * 1024;

/// `POST /v1/peers/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyPeerRequest {
    /// The peer's COSE_Sign1 attestation document.
    pub document: Base64Bytes,
}

/// A peer this enclave accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerView {
    /// The peer's long-term node identity (x-only key, from its `user_data`).
    pub node: Hex32,
    /// The peer's per-boot X25519 key (the document's `public_key`).
    pub public_key: Hex32,
    /// Which entry of this enclave's `peers.images` allow-list the peer's PCRs match.
    pub image: u32,
    /// The peer's mode as its `user_data` says (`nitro`, `harness` or `local`).
    pub mode: String,
    /// How old the document was when verified, seconds.
    pub age_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_strict() {
        let r: VerifyPeerRequest = serde_json::from_str(r#"{"document":"AAEC"}"#).unwrap();
        assert_eq!(r.document.0, vec![0, 1, 2]);
        assert!(serde_json::from_str::<VerifyPeerRequest>(r#"{"document":"AAEC","x":1}"#).is_err());
        assert!(
            serde_json::from_str::<VerifyPeerRequest>(r#"{"document":"not base64!"}"#).is_err()
        );
    }
}
