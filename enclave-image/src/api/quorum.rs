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
use sigil_protocol::encap::ServerKey;
use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::quorum::{
    ForwardRequest, Forwarded, GenesisRequest, QuorumView, ReceiveRequest, ReshareRequest,
    SealedShare, ShareRequest, StatusRequest, UnlockRequest, genesis_digest, share_digest,
};
use sigil_protocol::wire;

use crate::peers::PeerPolicy;
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
    sealing.quorum_refresh().map_err(refusal)?;
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

/// Key forwarding, the sender's side. What it checks before the root leaves (the bar is
/// QuorumOS's key forwarding):
/// - the recipient's document verifies to the root the measured peer policy trusts (AWS;
///   the sigil test root only where that policy allows it, never on Nitro hardware), is
///   fresh (the policy's max age), and is not a debug enclave's unless the test root is
///   trusted;
/// - the recipient runs this very image: PCR0, PCR1 and PCR2 equal this enclave's own (the
///   same kernel, code and measured configuration, hence the same quorum and the same rules
///   for the root), and the policy accepts this image at all (`"self"`);
/// - the root is sealed to the per-boot key that document binds, in HPKE auth mode from this
///   enclave's key, bound to the quorum, the genesis and that key (`forward_info`): only that
///   boot of that enclave can open it, and it knows who sealed it.
pub(super) fn forward(
    sealing: &Sealing,
    policy: &PeerPolicy,
    key: &ServerKey,
    r: ForwardRequest,
    now: u64,
) -> Result<Forwarded, ApiError> {
    let peer = policy
        .verify_same_image(&r.document.0, now)
        .map_err(super::peers::peer_refusal)?;
    sealing
        .quorum_forward(key, &peer.public_key)
        .map_err(refusal)
}

/// Key forwarding, the recipient's side: the sender's document passes the same checks (this
/// image, fresh, the trusted root), the root opens only if that enclave sealed it to this
/// one's key for this quorum and genesis, and it must match the record's commitments and
/// unwrap the data key (`Sealing::quorum_receive`).
pub(super) fn receive(
    sealing: &Sealing,
    policy: &PeerPolicy,
    key: &ServerKey,
    r: ReceiveRequest,
    now: u64,
) -> Result<QuorumView, ApiError> {
    let peer = policy
        .verify_same_image(&r.document.0, now)
        .map_err(super::peers::peer_refusal)?;
    sealing.quorum_refresh().map_err(refusal)?;
    sealing
        .quorum_receive(key, &peer.public_key, &r.forwarded)
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

pub(super) fn refusal(e: QuorumCallError) -> ApiError {
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
        QuorumCallError::WrongGenesis(_) => Code::WrongGenesis,
        QuorumCallError::Refused(_) => Code::PeerMessageRefused,
        QuorumCallError::Limit(_) => Code::LimitExceeded,
        QuorumCallError::Stale(_) => Code::RollbackDetected,
    };
    ApiError::new(code, e.to_string())
}
