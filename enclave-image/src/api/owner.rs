//! Owner signatures, as the vault and MuSig2 endpoints check them: the owner's admission, the
//! request's `not_after` and a BIP-340 signature by the owner over the request's digest.
//!
//! Threat: anyone who can reach the API (the parent included) acting on what they do not own;
//! a leaked signature stays usable only until `not_after`, at most
//! [`MAX_VALIDITY_SECS`] ahead, and only at this boot of this enclave: the signed message
//! binds the digest to the enclave's attested per-boot key.
//!
//! Threat: anyone making owner keys at will, each with its own quotas, to fill the sealed
//! store or the session table. An image whose measured configuration lists its owners
//! ([`Admission::Only`]) serves no other key; an open image ([`Admission::Any`], for
//! development and demos) is bounded only by the per-kind caps of the sealed store.

use std::collections::BTreeSet;
use std::sync::Arc;

use k256::schnorr::{Signature, VerifyingKey};
use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::wire::{self, MAX_VALIDITY_SECS};

/// Whose keys may own vault entries, MuSig2 keys and aggregates: part of the measured
/// configuration (`owners.admit`), so the parent cannot widen it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Admission {
    /// Any valid x-only key.
    #[default]
    Any,
    /// Only these x-only keys.
    Only(BTreeSet<[u8; 32]>),
}

impl Admission {
    fn admits(&self, owner: &[u8; 32]) -> bool {
        match self {
            Admission::Any => true,
            Admission::Only(keys) => keys.contains(owner),
        }
    }
}

/// Checks owner-signed requests for this boot: the attested key signatures are bound to, and
/// who is admitted. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OwnerCheck {
    enclave_key: [u8; 32],
    admission: Arc<Admission>,
}

impl OwnerCheck {
    pub fn new(enclave_key: [u8; 32], admission: Admission) -> OwnerCheck {
        OwnerCheck {
            enclave_key,
            admission: Arc::new(admission),
        }
    }

    /// `owner` may act here (own things, approve sessions).
    pub fn admitted(&self, owner: &[u8; 32]) -> Result<(), ApiError> {
        if self.admission.admits(owner) {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::OwnerNotAdmitted,
                "this owner key is not on the image's owner allow-list (owners.admit)",
            ))
        }
    }

    /// `owner` is admitted, `not_after` is within bounds, and `signature` is the owner's over
    /// `digest` for this boot (see `wire::owner_message`).
    pub fn check(
        &self,
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
                format!(
                    "not_after may be at most {MAX_VALIDITY_SECS} s ahead (enclave time {now})"
                ),
            ));
        }
        let key = VerifyingKey::from_bytes(owner).map_err(|_| {
            ApiError::new(
                Code::InvalidOwnerKey,
                "owner is not a valid x-only secp256k1 key",
            )
        })?;
        // Before the signature: the allow-list is public (measured), and refusing here costs
        // no curve operation.
        self.admitted(owner)?;
        // 64 bytes by its wire type; a malformed encoding (r or s out of range) is refused here.
        let sig = Signature::try_from(&signature.0[..]).map_err(|_| {
            ApiError::new(Code::BadSignature, "signature is not a BIP-340 signature")
                .with_status(400)
        })?;
        // Only a signature for this boot of this enclave counts (see `wire::owner_message`).
        key.verify_raw(&wire::owner_message(&self.enclave_key, digest), &sig)
            .map_err(|_| ApiError::new(Code::BadSignature, "the owner's signature does not verify"))
    }
}
