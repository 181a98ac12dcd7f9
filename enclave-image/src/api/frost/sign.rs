//! FROST signing at one member (`/v1/frost/sign/...`): the owner's approval before any
//! commitment, nonces in memory used once, and aggregation that answers only a signature
//! that verifies (a bad share named).

use std::collections::BTreeMap;

use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::frost::{
    MAX_BATCH, MAX_FROST_ITEM, SignAggregate, SignCommit, SignShare, Signatures, SignerItems,
    sign_digest,
};
use sigil_protocol::wire::{Base64Bytes, Hex};
use sigil_signing::frost::{self as engine, FrostError, Nonces};

use super::{FrostApi, MAX_SIGN_SESSIONS, engine_refusal, invalid, load, lock};
use crate::api::peers::PeerCtx;

/// One signer's session: its nonces (secret, used once) and what the owner approved.
pub(super) struct SignSession {
    me: u16,
    signers: Vec<u16>,
    messages: Vec<[u8; 32]>,
    merkle_root: Option<[u8; 32]>,
    nonces: Vec<Nonces>,
    commitments: Vec<Vec<u8>>,
    key: engine::KeyPackage,
    expires: u64,
}

/// In signing, a package that does not parse is a malformed commitment (`what`) or share,
/// named by its signer; a share that does not verify is `bad_share`.
fn sign_refusal(e: FrostError, what: &str) -> ApiError {
    match e {
        FrostError::BadPackage { from, reason } if what == "share" => ApiError::new(
            Code::BadShare,
            format!("the signature share of signer {from} does not parse: {reason}"),
        ),
        FrostError::BadPackage { from, reason } => invalid(format!(
            "the {what} of participant {from} does not parse: {reason}"
        )),
        e => engine_refusal(e),
    }
}

fn check_items(items: &[SignerItems], what: &str, count: usize) -> Result<(), ApiError> {
    for s in items {
        if s.items.len() != count {
            return Err(invalid(format!(
                "participant {} sent {} {what}; the session signs {count} messages",
                s.participant,
                s.items.len()
            )));
        }
        if s.items.iter().any(|i| i.0.len() > MAX_FROST_ITEM) {
            return Err(invalid(format!(
                "a {what} item is longer than {MAX_FROST_ITEM} bytes"
            )));
        }
    }
    Ok(())
}

/// Column `i` of `items` (one signer's item per message) by participant.
fn column(items: &[SignerItems], i: usize) -> BTreeMap<u16, Vec<u8>> {
    items
        .iter()
        .map(|s| (s.participant, s.items[i].0.clone()))
        .collect()
}

fn merkle(root: &Option<[u8; 32]>) -> Option<&[u8]> {
    root.as_ref().map(|r| &r[..])
}

impl FrostApi {
    /// Step 1 of signing: the owner's approval, then one commitment per message.
    pub fn sign_commit(
        &self,
        ctx: &PeerCtx<'_>,
        r: SignCommit,
        now: u64,
    ) -> Result<SignerItems, ApiError> {
        if r.messages.is_empty() || r.messages.len() > MAX_BATCH {
            return Err(invalid(format!(
                "a session signs 1 to {MAX_BATCH} messages, not {}",
                r.messages.len()
            )));
        }
        let rec = load(ctx.sealing, &r.group.0)?;
        let n = rec.members.len() as u16;
        if !r.signers.windows(2).all(|w| w[0] < w[1])
            || r.signers.first().is_none_or(|s| *s < 1)
            || r.signers.last().is_none_or(|s| *s > n)
        {
            return Err(invalid(format!(
                "signers must be increasing participant numbers 1..={n}"
            )));
        }
        if (r.signers.len() as u16) < rec.threshold {
            return Err(invalid(format!(
                "{} signers; the group needs {}",
                r.signers.len(),
                rec.threshold
            )));
        }
        if !r.signers.contains(&rec.participant) {
            return Err(invalid(format!(
                "this enclave (participant {}) is not among the signers",
                rec.participant
            )));
        }
        let messages: Vec<[u8; 32]> = r.messages.iter().map(|m| m.0).collect();
        let root = r.merkle_root.map(|m| m.0);
        let digest = sign_digest(
            &r.session.0,
            &r.group.0,
            &r.signers,
            &messages,
            root.as_ref(),
            r.not_after,
        );
        // Before any nonce exists.
        self.approve(ctx, &rec.owner, &digest, &r.signature, r.not_after, now)?;

        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.expires >= now);
        if sessions.contains_key(&r.session.0) {
            return Err(ApiError::new(
                Code::Conflict,
                "a signing session with this id is in flight",
            ));
        }
        if sessions.len() >= MAX_SIGN_SESSIONS {
            return Err(ApiError::new(
                Code::LimitExceeded,
                format!("{MAX_SIGN_SESSIONS} signing sessions are in flight; retry later"),
            )
            .with_status(429));
        }
        let mut nonces = Vec::with_capacity(messages.len());
        let mut commitments = Vec::with_capacity(messages.len());
        for _ in &messages {
            let (secret, public) = engine::commit(&rec.key).map_err(engine_refusal)?;
            nonces.push(secret);
            commitments.push(public);
        }
        let items = commitments.iter().map(|c| Base64Bytes(c.clone())).collect();
        sessions.insert(
            r.session.0,
            SignSession {
                me: rec.participant,
                signers: r.signers,
                messages,
                merkle_root: root,
                nonces,
                commitments,
                key: rec.key,
                expires: r.not_after,
            },
        );
        Ok(SignerItems {
            participant: rec.participant,
            items,
        })
    }

    /// Step 2 of signing: the session leaves the table before anything is checked, so its
    /// nonces sign at most once whatever happens next.
    pub fn sign_share(&self, r: SignShare, now: u64) -> Result<SignerItems, ApiError> {
        let s = {
            let mut sessions = lock(&self.sessions);
            sessions.retain(|_, s| s.expires >= now);
            sessions.remove(&r.session.0).ok_or_else(|| {
                ApiError::new(
                    Code::UnknownSession,
                    "no signing session with this id at this boot (it signed already, expired, \
                     or the enclave restarted): start a new one",
                )
            })?
        };
        check_items(&r.commitments, "commitments", s.messages.len())?;
        let from: Vec<u16> = r.commitments.iter().map(|c| c.participant).collect();
        if from != s.signers {
            return Err(invalid(format!(
                "commitments from participants {from:?}; the session's signers are {:?}",
                s.signers
            )));
        }
        let own = r
            .commitments
            .iter()
            .find(|c| c.participant == s.me)
            .map(|c| c.items.iter().map(|i| i.0.clone()).collect::<Vec<_>>());
        if own.as_ref() != Some(&s.commitments) {
            return Err(invalid(
                "this enclave's commitments are not the ones it made for this session",
            ));
        }
        let mut shares = Vec::with_capacity(s.messages.len());
        for (i, nonces) in s.nonces.into_iter().enumerate() {
            let package = engine::signing_package(&column(&r.commitments, i), &s.messages[i])
                .map_err(|e| sign_refusal(e, "commitment"))?;
            let share = engine::sign(nonces, &s.key, &package, merkle(&s.merkle_root))
                .map_err(engine_refusal)?;
            shares.push(Base64Bytes(share));
        }
        Ok(SignerItems {
            participant: s.me,
            items: shares,
        })
    }

    /// Step 3 of signing, on public values only: a bad share named, each signature verified
    /// under the output key.
    pub fn sign_aggregate(
        &self,
        ctx: &PeerCtx<'_>,
        r: SignAggregate,
    ) -> Result<Signatures, ApiError> {
        if r.messages.is_empty() || r.messages.len() > MAX_BATCH {
            return Err(invalid(format!(
                "a session signs 1 to {MAX_BATCH} messages, not {}",
                r.messages.len()
            )));
        }
        check_items(&r.commitments, "commitments", r.messages.len())?;
        check_items(&r.shares, "shares", r.messages.len())?;
        let from: Vec<u16> = r.commitments.iter().map(|c| c.participant).collect();
        let shared: Vec<u16> = r.shares.iter().map(|c| c.participant).collect();
        if from != shared || !from.windows(2).all(|w| w[0] < w[1]) {
            return Err(invalid(
                "commitments and shares must come from the same signers, in increasing order",
            ));
        }
        let rec = load(ctx.sealing, &r.group.0)?;
        if (from.len() as u16) < rec.threshold {
            return Err(invalid(format!(
                "{} signers; the group needs {}",
                from.len(),
                rec.threshold
            )));
        }
        let root = r.merkle_root.map(|m| m.0);
        let output_key = engine::output_key(&rec.public, merkle(&root)).map_err(engine_refusal)?;
        let verifier = k256::schnorr::VerifyingKey::from_bytes(&output_key)
            .map_err(|_| ApiError::new(Code::InternalError, "the output key does not parse"))?;
        let mut signatures = Vec::with_capacity(r.messages.len());
        for (i, m) in r.messages.iter().enumerate() {
            let package = engine::signing_package(&column(&r.commitments, i), &m.0)
                .map_err(|e| sign_refusal(e, "commitment"))?;
            let sig =
                engine::aggregate(&package, &column(&r.shares, i), &rec.public, merkle(&root))
                    .map_err(|e| {
                        let mut a = sign_refusal(e, "share");
                        a.message = format!("message {}: {}", i + 1, a.message);
                        a
                    })?;
            // Verified again on its own, as any Bitcoin node will.
            let parsed = k256::schnorr::Signature::try_from(&sig[..])
                .map_err(|_| ApiError::new(Code::InternalError, "the signature does not parse"))?;
            verifier.verify_raw(&m.0, &parsed).map_err(|_| {
                ApiError::new(
                    Code::InternalError,
                    "the aggregated signature does not verify",
                )
            })?;
            signatures.push(Hex(sig));
        }
        Ok(Signatures {
            output_key: Hex(output_key),
            signatures,
        })
    }
}
