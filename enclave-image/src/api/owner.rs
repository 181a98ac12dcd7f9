//! Owner signatures, as the vault and MuSig2 endpoints check them: the request's `not_after`
//! and a BIP-340 signature by the owner over the request's digest.
//!
//! Threat: anyone who can reach the API (the parent included) acting on what they do not own;
//! a leaked signature stays usable only until `not_after`, at most
//! [`MAX_VALIDITY_SECS`] ahead, and only at this boot of this enclave: the signed message
//! binds the digest to the enclave's attested per-boot key.

use k256::schnorr::{Signature, VerifyingKey};
use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::wire::{self, MAX_VALIDITY_SECS};

pub(super) fn check_owner_signature(
    enclave_key: &[u8; 32],
    owner: &[u8; 32],
    digest: &[u8; 32],
    signature: &wire::Signature,
    not_after: u64,
    now: u64,
) -> Result<(), ApiError> {
    if not_after < now {
        return Err(ApiError::new(
            Code::SignatureExpired,
            format!("not_after {not_after} has passed (enclave time {now})"),
        ));
    }
    if not_after > now + MAX_VALIDITY_SECS {
        return Err(ApiError::new(
            Code::NotAfterTooFar,
            format!("not_after may be at most {MAX_VALIDITY_SECS} s ahead (enclave time {now})"),
        ));
    }
    let key = VerifyingKey::from_bytes(owner).map_err(|_| {
        ApiError::new(
            Code::InvalidOwnerKey,
            "owner is not a valid x-only secp256k1 key",
        )
    })?;
    // 64 bytes by its wire type; a malformed encoding (r or s out of range) is refused here.
    let sig = Signature::try_from(&signature.0[..]).map_err(|_| {
        ApiError::new(Code::BadSignature, "signature is not a BIP-340 signature").with_status(400)
    })?;
    // Only a signature for this boot of this enclave counts (see `wire::owner_message`).
    key.verify_raw(&wire::owner_message(enclave_key, digest), &sig)
        .map_err(|_| ApiError::new(Code::BadSignature, "the owner's signature does not verify"))
}
