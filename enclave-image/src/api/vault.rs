//! The vault endpoints: small owner-signed secrets sealed into the parent's blob store
//! (formats and the threat model of the signatures in `sigil_protocol::vault`).
//!
//! A sealed entry is `owner (32 bytes) || value`, sealed as [`Kind::Secret`] under the entry's
//! name: the parent cannot read it, and a blob moved to another name or altered is refused by
//! the seal (see `seal::format`); an older version is refused within a boot, while after a
//! restart a parent can serve an older version it kept (what sealing cannot prevent; see
//! `seal::format`).
//!
//! A delete writes a tombstone (an all-zero owner, which is no valid key) as the next version
//! instead of removing the blob, so versions never restart: a replayed create
//! (`expected_version` 0) or an old delete can never match again (threat: the parent
//! replaying a captured request after the owner deleted or re-created the entry).

use std::time::{SystemTime, UNIX_EPOCH};

use k256::schnorr::VerifyingKey;
use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::vault::{self, Entry, MAX_VALUE, NameRequest, Op, PutRequest, Written};
use sigil_protocol::wire::{Hex, Hex32, SecretBase64};
use zeroize::Zeroizing;

use super::owner::OwnerCheck;

use crate::seal::service::{Sealing, SealingError};
use crate::seal::{Kind, SealedStoreError, StoreError};

fn refuse(code: Code, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The owner's key: the wire type guarantees 32 bytes, this that they are a curve point
/// (checked before anything else is, so a bad owner is named as such).
fn owner_key(owner: &Hex32) -> Result<[u8; 32], ApiError> {
    VerifyingKey::from_bytes(&owner.0).map_err(|_| {
        refuse(
            Code::InvalidOwnerKey,
            "owner is not a valid x-only secp256k1 key",
        )
    })?;
    Ok(owner.0)
}

fn sealing_refusal(e: SealingError) -> ApiError {
    match e {
        SealingError::Store(SealedStoreError::Store(StoreError::NotFound)) => {
            refuse(Code::NotFound, "no such vault entry")
        }
        e => ApiError::from(e),
    }
}

/// The owner field of a deleted entry: no x-only key is all zeros.
const TOMBSTONE: [u8; 32] = [0; 32];

/// The stored entry: owner and value, wiped when dropped.
struct Stored {
    owner: [u8; 32],
    value: Zeroizing<Vec<u8>>,
    version: u64,
}

fn load(sealing: &Sealing, name: &str) -> Result<Stored, ApiError> {
    let (version, plain) = sealing
        .with_store(|s| s.get_sealed(Kind::Secret, name))
        .map_err(sealing_refusal)?;
    if plain.len() < 32 {
        // Only an enclave with the data key can seal, so this is a bug, not an attack.
        return Err(refuse(
            Code::InternalError,
            "vault entry shorter than its owner key",
        ));
    }
    let mut owner = [0u8; 32];
    owner.copy_from_slice(&plain[..32]);
    if owner == TOMBSTONE {
        return Err(refuse(
            Code::NotFound,
            format!(
                "the entry was deleted at version {version}; create it again with expected_version {version}"
            ),
        ));
    }
    Ok(Stored {
        owner,
        value: Zeroizing::new(plain[32..].to_vec()),
        version,
    })
}

fn blob_id(name: &str) -> Result<(), ApiError> {
    vault::check_name(name).map_err(|m| refuse(Code::BadName, m.to_string()))
}

pub fn put(sealing: &Sealing, owners: &OwnerCheck, req: PutRequest) -> Result<Written, ApiError> {
    blob_id(&req.name)?;
    // Wiped when `req` drops.
    let value = req.value.expose();
    if value.len() > MAX_VALUE {
        return Err(refuse(
            Code::ValueTooLarge,
            format!("value is {} bytes; at most {MAX_VALUE}", value.len()),
        ));
    }
    let owner = owner_key(&req.owner)?;
    let digest = vault::digest(
        Op::Put,
        &req.name,
        req.expected_version,
        Some(value),
        Some(&owner),
        req.not_after,
    );
    owners.check(&owner, &digest, &req.signature, req.not_after, now_secs())?;

    let mut plain = Zeroizing::new(Vec::with_capacity(32 + value.len()));
    plain.extend_from_slice(&owner);
    plain.extend_from_slice(value);
    let name = req.name.clone();
    let expected = req.expected_version;
    // Read, compare and write under one hold of the store: atomic within this enclave.
    let version = sealing
        .with_store(|s| {
            let current = match s.get_sealed(Kind::Secret, &name) {
                // A deleted entry may be created again, by anyone, at its tombstone's version.
                Ok((v, old)) if old.len() == 32 && old[..] == TOMBSTONE => v,
                Ok((v, old)) => {
                    if old.len() < 32 || old[..32] != owner {
                        return Ok(Err(refuse(
                            Code::NotOwner,
                            "the entry belongs to another owner",
                        )));
                    }
                    // This very write is already the current version: the request was sent
                    // again (a client retry, or an internal retry after the store's answer
                    // was lost). Report it as done rather than as a conflict with itself.
                    if v == expected.saturating_add(1) && old[..] == plain[..] {
                        return Ok(Ok(v));
                    }
                    v
                }
                Err(SealedStoreError::Store(StoreError::NotFound)) => 0,
                Err(e) => return Err(e),
            };
            if current != expected {
                return Ok(Err(refuse(
                    Code::VersionConflict,
                    format!("the current version is {current}, the request expects {expected}"),
                )));
            }
            // Over the version read: another enclave on a shared store that wrote meanwhile
            // makes this a version conflict, not a lost update.
            s.put_sealed_at(Kind::Secret, &name, current, &plain)
                .map(Ok)
        })
        .map_err(sealing_refusal)??;
    Ok(Written {
        name: req.name,
        version,
    })
}

/// The owner is only known once the entry is loaded, so a caller without the owner's key
/// learns whether a name exists (404 against 401); names are the owner's choice and should
/// not be secrets. Values are never returned without the owner's signature.
pub fn get(sealing: &Sealing, owners: &OwnerCheck, req: NameRequest) -> Result<Entry, ApiError> {
    blob_id(&req.name)?;
    let stored = load(sealing, &req.name)?;
    VerifyingKey::from_bytes(&stored.owner)
        .map_err(|_| refuse(Code::InternalError, "stored owner key is invalid"))?;
    let digest = vault::digest(
        Op::Get,
        &req.name,
        req.expected_version,
        None,
        None,
        req.not_after,
    );
    owners.check(
        &stored.owner,
        &digest,
        &req.signature,
        req.not_after,
        now_secs(),
    )?;
    Ok(Entry {
        name: req.name,
        value: SecretBase64::new(stored.value),
        owner: Hex(stored.owner),
        version: stored.version,
    })
}

pub fn delete(
    sealing: &Sealing,
    owners: &OwnerCheck,
    req: NameRequest,
) -> Result<Written, ApiError> {
    blob_id(&req.name)?;
    let name = req.name.clone();
    let version = sealing
        .with_store(|s| {
            let (version, plain) = s.get_sealed(Kind::Secret, &name)?;
            if plain.get(..32) == Some(&TOMBSTONE[..]) {
                return Ok(Err(refuse(
                    Code::NotFound,
                    format!("the entry was already deleted at version {version}"),
                )));
            }
            let Some(key) = plain
                .get(..32)
                .and_then(|o| VerifyingKey::from_bytes(o).ok())
            else {
                return Ok(Err(refuse(
                    Code::InternalError,
                    "stored owner key is invalid",
                )));
            };
            let digest = vault::digest(
                Op::Delete,
                &name,
                req.expected_version,
                None,
                None,
                req.not_after,
            );
            if let Err(r) = owners.check(
                &key.to_bytes().into(),
                &digest,
                &req.signature,
                req.not_after,
                now_secs(),
            ) {
                return Ok(Err(r));
            }
            if version != req.expected_version {
                return Ok(Err(refuse(
                    Code::VersionConflict,
                    format!(
                        "the current version is {version}, the request expects {}",
                        req.expected_version
                    ),
                )));
            }
            // The tombstone replaces the value in the store (the shim overwrites the file).
            s.put_sealed_at(Kind::Secret, &name, version, &TOMBSTONE)
                .map(Ok)
        })
        .map_err(sealing_refusal)??;
    Ok(Written {
        name: req.name,
        version,
    })
}
