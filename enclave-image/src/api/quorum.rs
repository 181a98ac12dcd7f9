//! `/v1/quorum/...`: the quorum root's administrators (see `sigil_protocol::quorum` for the
//! protocol and `crate::seal::quorum` for the record). These handlers check who is asking
//! (an administrator of the measured configuration, by a signature for this boot); the
//! sealing service does the rest.
//!
//! Threats and where they are met:
//! - Someone other than an administrator starting genesis or posting shares: both need a
//!   BIP-340 signature by the administrator's measured key, over a digest bound to this
//!   boot's HPKE key (`wire::owner_message`), so a captured request works nowhere else.
//! - A share read on its way in: it travels in an encapsulated body, sealed to the per-boot
//!   key the administrator's client took from the attestation document it verified (its PCRs
//!   pinned).
//! - A wrong or altered share (a mistaken file, a hostile administrator): checked against the
//!   genesis commitments before it is kept, refused with its administrator named; it never
//!   reaches the combination.
//! - A re-share to administrators of someone else's choosing: it needs k approvals of the
//!   current administrators, bound to this boot, and the record keeps them so every later
//!   boot checks the chain back to the measured administrators.
//! - A share for another genesis (the parent swapped the record): refused as `wrong_genesis`
//!   before any check, naming both ids.

use k256::schnorr::{Signature, VerifyingKey};
use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::quorum::{
    GenesisRequest, QuorumView, ReshareRequest, SealedShare, ShareRequest, StatusRequest,
    UnlockRequest, genesis_digest, share_digest,
};
use sigil_protocol::wire;

use crate::seal::quorum::QuorumError;
use crate::seal::service::{QuorumCallError, Sealing};

pub(super) fn status(sealing: &Sealing, _r: StatusRequest) -> Result<QuorumView, ApiError> {
    sealing.quorum_view().map_err(refusal)
}

pub(super) fn genesis(
    sealing: &Sealing,
    boot_key: &[u8; 32],
    r: GenesisRequest,
) -> Result<QuorumView, ApiError> {
    let config = sealing
        .quorum_measured()
        .ok_or_else(|| refusal(QuorumCallError::Disabled))?;
    let admin = admin_key(&config, r.admin)?;
    check_signature(
        &admin,
        boot_key,
        &genesis_digest(&config.digest()),
        &r.signature,
    )?;
    sealing.quorum_genesis().map_err(refusal)
}

pub(super) fn share(sealing: &Sealing, r: ShareRequest) -> Result<SealedShare, ApiError> {
    sealing
        .quorum_share(r.index)
        .map_err(refusal)?
        .ok_or_else(|| {
            ApiError::new(
                Code::NotAnAdmin,
                format!("this quorum has no administrator {}", r.index),
            )
        })
}

pub(super) fn unlock(
    sealing: &Sealing,
    boot_key: &[u8; 32],
    r: UnlockRequest,
) -> Result<QuorumView, ApiError> {
    let config = sealing
        .quorum_current()
        .ok_or_else(|| refusal(QuorumCallError::Disabled))?;
    let genesis = sealing.quorum_genesis_id().map_err(refusal)?;
    if r.genesis.0 != genesis {
        return Err(ApiError::new(
            Code::WrongGenesis,
            format!(
                "the share is for genesis {}, this enclave's is {}",
                hex::encode(r.genesis.0),
                hex::encode(genesis)
            ),
        ));
    }
    let admin = admin_key(&config, r.index)?;
    let share = r.share.expose();
    let name = &config.admins[usize::from(r.index) - 1].name;
    if share[0] != r.index {
        return Err(ApiError::new(
            Code::BadShare,
            format!(
                "administrator {name:?} posted share {} as share {}",
                share[0], r.index
            ),
        ));
    }
    check_signature(
        &admin,
        boot_key,
        &share_digest(&genesis, r.index, share),
        &r.signature,
    )?;
    sealing.quorum_unlock(share).map_err(refusal)
}

pub(super) fn reshare(
    sealing: &Sealing,
    boot_key: &[u8; 32],
    r: ReshareRequest,
) -> Result<QuorumView, ApiError> {
    sealing
        .quorum_reshare(boot_key, r.threshold, r.admins, &r.approvals)
        .map_err(refusal)
}

fn admin_key(
    config: &crate::boot::config::QuorumConfig,
    index: u8,
) -> Result<VerifyingKey, ApiError> {
    let a = config
        .admins
        .get(usize::from(index).wrapping_sub(1))
        .ok_or_else(|| {
            ApiError::new(
                Code::NotAnAdmin,
                format!(
                    "this quorum's administrators are 1..={}, not {index}",
                    config.admins.len()
                ),
            )
        })?;
    // Checked at boot (`QuorumConfig::check`): every measured key parses.
    VerifyingKey::from_bytes(&a.sign.0)
        .map_err(|_| ApiError::new(Code::InternalError, "a measured administrator key"))
}

fn check_signature(
    key: &VerifyingKey,
    boot_key: &[u8; 32],
    digest: &[u8; 32],
    signature: &wire::Signature,
) -> Result<(), ApiError> {
    let sig = Signature::try_from(&signature.0[..]).map_err(|_| {
        ApiError::new(Code::BadSignature, "signature is not a BIP-340 signature").with_status(400)
    })?;
    key.verify_raw(&wire::owner_message(boot_key, digest), &sig)
        .map_err(|_| {
            ApiError::new(
                Code::BadSignature,
                "the administrator's signature does not verify (for this boot of this enclave)",
            )
        })
}

fn refusal(e: QuorumCallError) -> ApiError {
    let code = match &e {
        QuorumCallError::Disabled => Code::QuorumDisabled,
        QuorumCallError::NoGenesis => Code::NoGenesis,
        QuorumCallError::GenesisExists(_) => Code::Conflict,
        QuorumCallError::Unavailable(_) => Code::SealingUnavailable,
        QuorumCallError::Quorum(QuorumError::BadShare { .. }) => Code::BadShare,
        QuorumCallError::Quorum(QuorumError::BadRecord(_) | QuorumError::OtherState) => {
            Code::SealedBlobRejected
        }
        QuorumCallError::Quorum(QuorumError::Crypto(_)) => Code::InternalError,
        QuorumCallError::Quorum(QuorumError::Approvals(_)) => Code::BadApproval,
        QuorumCallError::Quorum(QuorumError::NewQuorum(_)) => Code::InvalidRequest,
        QuorumCallError::Store(_) => Code::BlobStoreFailed,
    };
    ApiError::new(code, e.to_string())
}
