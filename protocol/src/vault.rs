//! The vault: small secrets (up to [`MAX_VALUE`] bytes) that the enclave seals into the
//! parent's blob store and gives back only to their owner.
//!
//! Every request travels encapsulated (only the attested enclave reads it; only the requester
//! reads the answer) and carries the owner's BIP-340 signature over [`digest`]. The owner is a
//! secp256k1 x-only public key fixed when the entry is created.
//!
//! What the signature defends against: the parent (or anyone who can reach the API) making
//! its own encapsulated requests for an entry it does not own. `not_after` bounds how long a
//! leaked signature stays usable ([`MAX_VALIDITY_SECS`]); a replayed write or delete carries
//! a stale `expected_version` and is refused by the compare-and-swap (versions never restart:
//! a delete leaves a tombstone version); a replayed read is answered under the original
//! requester's key, which the replayer does not have.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::wire::{Hex32, SecretBase64, Signature};

/// Largest value, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// Longest name; names are `[A-Za-z0-9._-]`, not starting with `.`.
pub const MAX_NAME: usize = 64;
pub use crate::wire::MAX_VALIDITY_SECS;
/// The BIP-340 tag of [`digest`].
pub const TAG: &str = "sigil/vault/v1";

/// `POST /v1/vault/put`: create (`expected_version` 0) or replace an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRequest {
    pub name: String,
    /// Base64 (standard, padded); wiped once used.
    pub value: SecretBase64,
    /// The x-only public key; must equal the stored owner when replacing.
    pub owner: Hex32,
    pub expected_version: u64,
    /// Unix seconds after which the signature is refused.
    pub not_after: u64,
    /// BIP-340 signature by `owner` over [`digest`] bound to the enclave
    /// ([`crate::wire::owner_message`]).
    pub signature: Signature,
}

/// `POST /v1/vault/get` and `POST /v1/vault/delete` (delete needs `expected_version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameRequest {
    pub name: String,
    #[serde(default)]
    pub expected_version: u64,
    pub not_after: u64,
    pub signature: Signature,
}

/// The answer to a get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub value: SecretBase64,
    pub owner: Hex32,
    pub version: u64,
}

/// The answer to a put or delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub name: String,
    /// The new version. A delete leaves a tombstone at this version: versions never restart,
    /// and creating the entry again needs `expected_version` equal to it.
    pub version: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    Delete,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Delete => "delete",
        }
    }
}

/// The 32-byte message the owner signs (BIP-340 over these 32 bytes):
/// `SHA256(SHA256(TAG) || SHA256(TAG) || fields)` where each field is a 4-byte big-endian
/// length then its bytes, in this order: op, name, expected_version (8 bytes BE),
/// SHA256(value) (put) or empty, owner (32 bytes, put) or empty, not_after (8 bytes BE).
pub fn digest(
    op: Op,
    name: &str,
    expected_version: u64,
    value: Option<&[u8]>,
    owner: Option<&[u8; 32]>,
    not_after: u64,
) -> [u8; 32] {
    let value_hash = value.map(Sha256::digest);
    crate::wire::tagged_digest(
        TAG,
        [
            op.as_str().as_bytes(),
            name.as_bytes(),
            &expected_version.to_be_bytes(),
            value_hash.as_deref().unwrap_or(&[]),
            owner.map(|o| &o[..]).unwrap_or(&[]),
            &not_after.to_be_bytes(),
        ],
    )
}

/// Why a vault name is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name must be 1..{MAX_NAME} characters")]
    Length,
    #[error("name may hold only A-Z a-z 0-9 . _ - and must not start with '.'")]
    Characters,
}

/// Checks a vault name: `[A-Za-z0-9._-]{1,64}`, not starting with `.`.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(NameError::Length);
    }
    if name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(NameError::Characters);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_separates_every_field() {
        let o = [7u8; 32];
        let base = digest(Op::Put, "a", 1, Some(b"v"), Some(&o), 9);
        assert_ne!(base, digest(Op::Get, "a", 1, Some(b"v"), Some(&o), 9));
        assert_ne!(base, digest(Op::Put, "b", 1, Some(b"v"), Some(&o), 9));
        assert_ne!(base, digest(Op::Put, "a", 2, Some(b"v"), Some(&o), 9));
        assert_ne!(base, digest(Op::Put, "a", 1, Some(b"w"), Some(&o), 9));
        assert_ne!(base, digest(Op::Put, "a", 1, Some(b"v"), Some(&[8; 32]), 9));
        assert_ne!(base, digest(Op::Put, "a", 1, Some(b"v"), Some(&o), 10));
        assert_ne!(base, digest(Op::Put, "a", 1, None, Some(&o), 9));
        assert_eq!(base, digest(Op::Put, "a", 1, Some(b"v"), Some(&o), 9));
    }

    #[test]
    fn names() {
        assert!(check_name("wallet-1.seed_b").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
