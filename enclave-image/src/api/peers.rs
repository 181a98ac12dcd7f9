//! `POST /v1/peers/verify`: another enclave's attestation document, verified against this
//! enclave's measured peer policy (`crate::peers`); the answer is sealed to the coordinator,
//! so what it reports (the peer's node and per-boot key) is this enclave's word.

use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::peers::{MAX_PEER_DOCUMENT, PeerView, VerifyPeerRequest};
use sigil_protocol::wire::Hex;

use crate::peers::{PeerError, PeerPolicy};

pub(super) fn verify(
    policy: &PeerPolicy,
    r: VerifyPeerRequest,
    now: u64,
) -> Result<PeerView, ApiError> {
    if r.document.0.len() > MAX_PEER_DOCUMENT {
        return Err(ApiError::new(
            Code::PeerDocumentRefused,
            format!(
                "the document is {} bytes; at most {MAX_PEER_DOCUMENT}",
                r.document.0.len()
            ),
        ));
    }
    let peer = policy.verify(&r.document.0, now).map_err(|e| {
        let code = match e {
            PeerError::NoPeers | PeerError::NotAllowed => Code::PeerNotAllowed,
            PeerError::Document(_) | PeerError::Missing(_) => Code::PeerDocumentRefused,
        };
        ApiError::new(code, e.to_string())
    })?;
    Ok(PeerView {
        node: Hex(peer.node),
        public_key: Hex(peer.public_key),
        image: peer.image as u32,
        mode: peer.mode,
        age_secs: peer.age_secs,
    })
}
