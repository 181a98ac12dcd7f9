//! Signing sessions: the state machine that takes one approved request from approvals through
//! nonce exchange and partial signatures to verified final signatures.
//!
//! Sessions exist only in memory (see `nonce.rs` for why). All mutation of a session happens
//! under its mutex, held by the engine for the whole call, so every transition below is atomic
//! with respect to other requests for the same session.

use std::fmt;
use std::str::FromStr;

use musig2::secp::{MaybePoint, Point};
use musig2::{
    AdaptorSignature, AggNonce, BinaryEncoding, KeyAggContext, LiftedSignature, PartialSignature,
    PubNonce,
};
use zeroize::Zeroizing;

use crate::aggregate::{ParticipantInfo, Tweak};
use crate::approval::verify_bip340;
use crate::codec::{hex32, parse_hex};
use crate::error::Error;
use crate::keys::{AggregateId, HeldKey, KeyId};
use crate::nonce::{NonceSlot, SecretNonce, SignInput, parse_public_nonce, round_id};

/// Identifies a session: 32 bytes, shown as 64 hex digits. Chosen by the engine from fresh
/// randomness, a per-process counter (so two sessions in one process never share an id) and a
/// per-boot id from the kernel RNG (so two boots never do, even with a replayed entropy stream
/// in the same second).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 32]);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex32(&self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl FromStr for SessionId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        parse_hex(s)
            .map(SessionId)
            .ok_or(Error::InvalidRequest("SessionId must be 64 hex digits"))
    }
}

/// One message to sign, with an optional tweak applied on top of the aggregate's own tweaks
/// for this message only (for example a different taproot output per input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSpec {
    pub message: Vec<u8>,
    pub tweak: Option<Tweak>,
}

/// A request to start a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub aggregate: AggregateId,
    pub messages: Vec<MessageSpec>,
    /// Compressed adaptor point `T`; when set, the session yields adaptor pre-signatures that
    /// become BIP-340 signatures once adapted with `t` (see [`crate::complete_adaptor_signature`]).
    pub adaptor_point: Option<[u8; 33]>,
    /// Unix seconds after which the session is dead.
    pub expires_at: u64,
}

/// The signature a completed session returns for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureValue {
    /// BIP-340 signature `R.x[32] || s[32]`.
    Schnorr([u8; 64]),
    /// Adaptor pre-signature `R[33] || s[32]` (R without the adaptor point).
    Adaptor([u8; 65]),
}

/// A final signature, already verified by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalSignature {
    pub message_index: u32,
    /// The x-only key the signature verifies under (aggregate key plus all tweaks).
    pub output_key: [u8; 32],
    pub value: SignatureValue,
}

/// Why a session failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// An external signer's partial signature did not verify.
    BadPartialSignature {
        signer_index: u32,
        message_index: u32,
    },
    /// A held key was deleted or its record no longer matches the aggregate.
    KeyUnavailable { signer_index: u32 },
    /// Fresh randomness for nonces could not be drawn.
    EntropyFailed,
    /// The caller aborted the session.
    Aborted,
    /// An invariant broke (for example, aggregation failed after every partial verified).
    Internal(&'static str),
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::BadPartialSignature {
                signer_index,
                message_index,
            } => write!(
                f,
                "partial signature of signer {signer_index} on message {message_index} did not verify"
            ),
            FailureReason::KeyUnavailable { signer_index } => {
                write!(f, "held key of signer {signer_index} is unavailable")
            }
            FailureReason::EntropyFailed => f.write_str("randomness for nonces was unavailable"),
            FailureReason::Aborted => f.write_str("aborted"),
            FailureReason::Internal(what) => write!(f, "internal: {what}"),
        }
    }
}

/// Where a session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    WaitingForApprovals,
    WaitingForNonces,
    WaitingForPartialSignatures,
    Completed { signatures: Vec<FinalSignature> },
    Failed { reason: FailureReason },
    Expired,
}

impl SessionState {
    /// A stable name for the wire.
    pub fn name(&self) -> &'static str {
        match self {
            SessionState::WaitingForApprovals => "waiting_for_approvals",
            SessionState::WaitingForNonces => "waiting_for_nonces",
            SessionState::WaitingForPartialSignatures => "waiting_for_partial_signatures",
            SessionState::Completed { .. } => "completed",
            SessionState::Failed { .. } => "failed",
            SessionState::Expired => "expired",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            SessionState::Completed { .. } | SessionState::Failed { .. } | SessionState::Expired
        )
    }
}

/// A session's state and what it still waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    pub id: SessionId,
    pub state: SessionState,
    pub expires_at: u64,
    /// Owners (x-only) whose approval is still missing.
    pub missing_approvals: Vec<[u8; 32]>,
    /// External signer indices whose public nonces are still missing.
    pub missing_nonces: Vec<u32>,
    /// External signer indices whose partial signatures are still missing.
    pub missing_partial_signatures: Vec<u32>,
}

/// What a client needs after creating a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: SessionId,
    /// The digest every approver signs (BIP-340, as the 32-byte message); see
    /// [`crate::session_digest`] for how to recompute it.
    pub digest: [u8; 32],
    pub aggregate: AggregateId,
    /// The aggregate's internal (untweaked) key and tweaks, as the digest binds them: what a
    /// description of the session needs from the aggregate, without reading it again.
    pub internal_key: [u8; 33],
    pub tweaks: Vec<Tweak>,
    /// Owner keys that must approve, each once.
    pub approvers: Vec<[u8; 32]>,
    pub participants: Vec<ParticipantInfo>,
    /// Per message, the x-only key its signature will verify under.
    pub output_keys: Vec<[u8; 32]>,
    pub expires_at: u64,
    pub status: SessionStatus,
}

/// One participant's public nonces, one per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantNonces {
    pub index: u32,
    pub nonces: Vec<[u8; 66]>,
}

/// The partial signatures made with held keys, one list per held participant, with the round
/// they are for (public: they go to the other signers of a session that spans enclaves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPartials {
    pub round: NonceRound,
    /// (participant index, one partial signature per message).
    pub participants: Vec<(u32, Vec<[u8; 32]>)>,
}

/// The aggregated nonces (one per message) and the round id that partial signatures must cite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceRound {
    pub round_id: [u8; 32],
    pub aggregated: Vec<[u8; 66]>,
}

/// Record of one partial signature produced with a held key (public information).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningEvent {
    pub session: SessionId,
    pub signer_index: u32,
    pub message_index: u32,
    pub key: KeyId,
    /// The public nonce whose secret half was consumed.
    pub public_nonce: [u8; 66],
}

/// What a session needs from the engine while it runs.
pub(crate) trait SessionEnv {
    fn load_key(&self, id: &KeyId) -> Result<HeldKey, Error>;
    fn fresh_seed(&self) -> Result<Zeroizing<[u8; 32]>, Error>;
    fn record(&self, event: SigningEvent);
}

pub(crate) struct SessionMessage {
    pub spec: MessageSpec,
    pub ctx: KeyAggContext,
    pub output: Point,
}

pub(crate) enum Role {
    Held { key: KeyId, owner: [u8; 32] },
    External,
}

pub(crate) struct SessionParticipant {
    pub info: ParticipantInfo,
    pub point: Point,
    pub role: Role,
    pubnonces: Option<Vec<PubNonce>>,
    /// Held participants only: one slot per message.
    slots: Vec<NonceSlot>,
    psigs: Option<Vec<PartialSignature>>,
}

impl SessionParticipant {
    pub(crate) fn new(info: ParticipantInfo, point: Point, role: Role) -> Self {
        Self {
            info,
            point,
            role,
            pubnonces: None,
            slots: Vec::new(),
            psigs: None,
        }
    }

    fn is_external(&self) -> bool {
        matches!(self.role, Role::External)
    }
}

enum Phase {
    Approvals,
    Nonces,
    PartialSignatures,
    Completed(Vec<FinalSignature>),
    Failed(FailureReason),
    Expired,
}

struct Round {
    id: [u8; 32],
    aggnonces: Vec<AggNonce>,
}

pub(crate) struct Session {
    pub id: SessionId,
    pub digest: [u8; 32],
    pub expires_at: u64,
    /// Unix seconds at creation (for [`crate::UNAPPROVED_SESSION_TTL_SECS`]).
    created: u64,
    adaptor: Option<Point>,
    messages: Vec<SessionMessage>,
    participants: Vec<SessionParticipant>,
    approvers: Vec<([u8; 32], bool)>,
    phase: Phase,
    round: Option<Round>,
}

impl Session {
    pub(crate) fn new(
        id: SessionId,
        digest: [u8; 32],
        (created, expires_at): (u64, u64),
        adaptor: Option<Point>,
        messages: Vec<SessionMessage>,
        participants: Vec<SessionParticipant>,
    ) -> Self {
        let mut approvers: Vec<([u8; 32], bool)> = Vec::new();
        for p in &participants {
            if let Role::Held { owner, .. } = p.role
                && !approvers.iter().any(|(o, _)| *o == owner)
            {
                approvers.push((owner, false));
            }
        }
        Self {
            id,
            digest,
            expires_at,
            created,
            adaptor,
            messages,
            participants,
            approvers,
            phase: Phase::Approvals,
            round: None,
        }
    }

    pub(crate) fn approvers(&self) -> Vec<[u8; 32]> {
        self.approvers.iter().map(|(o, _)| *o).collect()
    }

    pub(crate) fn output_keys(&self) -> Vec<[u8; 32]> {
        self.messages
            .iter()
            .map(|m| m.output.serialize_xonly())
            .collect()
    }

    pub(crate) fn is_terminal(&self) -> bool {
        matches!(
            self.phase,
            Phase::Completed(_) | Phase::Failed(_) | Phase::Expired
        )
    }

    /// Threat: a session left open forever keeps secret nonces in memory and lets a stale
    /// approval be used long after the owner meant it. Past `expires_at` (time supplied by the
    /// caller) a live session becomes `Expired` and its secret nonces are dropped.
    ///
    /// Threat: sessions created and never approved holding memory (and, before they finish,
    /// a slot) for their whole lifetime. Until the first approval arrives a session lives at
    /// most `UNAPPROVED_SESSION_TTL_SECS`.
    pub(crate) fn refresh(&mut self, now: u64) {
        let unapproved = matches!(self.phase, Phase::Approvals)
            && !self.approvers.iter().any(|(_, ok)| *ok)
            && now
                >= self
                    .created
                    .saturating_add(crate::UNAPPROVED_SESSION_TTL_SECS);
        if (now >= self.expires_at || unapproved) && !self.is_terminal() {
            self.discard_secrets();
            self.phase = Phase::Expired;
        }
    }

    fn discard_secrets(&mut self) {
        for p in &mut self.participants {
            for slot in &mut p.slots {
                slot.discard();
            }
        }
    }

    fn fail(&mut self, reason: FailureReason) {
        self.discard_secrets();
        self.phase = Phase::Failed(reason);
    }

    pub(crate) fn abort(&mut self) {
        if !self.is_terminal() {
            self.fail(FailureReason::Aborted);
        }
    }

    /// Failed or expired sessions refuse every further call with a clear error.
    fn ensure_open(&self) -> Result<(), Error> {
        match &self.phase {
            Phase::Failed(r) => Err(Error::SessionFailed(r.clone())),
            Phase::Expired => Err(Error::SessionExpired),
            _ => Ok(()),
        }
    }

    fn phase_name(&self) -> &'static str {
        match self.phase {
            Phase::Approvals => "waiting_for_approvals",
            Phase::Nonces => "waiting_for_nonces",
            Phase::PartialSignatures => "waiting_for_partial_signatures",
            Phase::Completed(_) => "completed",
            Phase::Failed(_) => "failed",
            Phase::Expired => "expired",
        }
    }

    pub(crate) fn status(&self) -> SessionStatus {
        let state = match &self.phase {
            Phase::Approvals => SessionState::WaitingForApprovals,
            Phase::Nonces => SessionState::WaitingForNonces,
            Phase::PartialSignatures => SessionState::WaitingForPartialSignatures,
            Phase::Completed(sigs) => SessionState::Completed {
                signatures: sigs.clone(),
            },
            Phase::Failed(r) => SessionState::Failed { reason: r.clone() },
            Phase::Expired => SessionState::Expired,
        };
        let waiting_nonces = matches!(self.phase, Phase::Approvals | Phase::Nonces);
        let waiting_psigs = matches!(self.phase, Phase::PartialSignatures);
        SessionStatus {
            id: self.id,
            state,
            expires_at: self.expires_at,
            missing_approvals: if matches!(self.phase, Phase::Approvals) {
                self.approvers
                    .iter()
                    .filter(|(_, ok)| !ok)
                    .map(|(o, _)| *o)
                    .collect()
            } else {
                Vec::new()
            },
            missing_nonces: self
                .participants
                .iter()
                .filter(|p| waiting_nonces && p.is_external() && p.pubnonces.is_none())
                .map(|p| p.info.index)
                .collect(),
            missing_partial_signatures: self
                .participants
                .iter()
                .filter(|p| waiting_psigs && p.is_external() && p.psigs.is_none())
                .map(|p| p.info.index)
                .collect(),
        }
    }

    /// Records an owner's approval. When the last one arrives the engine generates its nonces
    /// (and, if every external nonce is already in, signs).
    ///
    /// Threat: use of a held key without its owner's consent. No secret key is loaded, and no
    /// nonce generated, until every owner has signed this session's digest; a wrong or missing
    /// approval leaves the session waiting until it expires.
    pub(crate) fn approve(
        &mut self,
        owner: &[u8; 32],
        signature: &[u8; 64],
        env: &dyn SessionEnv,
    ) -> Result<SessionStatus, Error> {
        self.ensure_open()?;
        let Some(pos) = self.approvers.iter().position(|(o, _)| o == owner) else {
            return Err(Error::NotAnApprover);
        };
        if !verify_bip340(owner, &self.digest, signature) {
            return Err(Error::BadApproval);
        }
        if self.approvers[pos].1 {
            // A replayed approval changes nothing: nonces are generated exactly once, below.
            return Ok(self.status());
        }
        if !matches!(self.phase, Phase::Approvals) {
            return Err(Error::Internal(
                "approval missing outside the approval phase",
            ));
        }
        self.approvers[pos].1 = true;
        if self.approvers.iter().all(|(_, ok)| *ok) {
            let keys = self.generate_nonces(env)?;
            self.phase = Phase::Nonces;
            // In this same call the keys just loaded sign too (if every nonce is in): a
            // second load would only read the same records and owner indexes again.
            self.try_sign_with(env, Some(keys))?;
        }
        Ok(self.status())
    }

    /// Draws the held participants' secret nonces; returns the keys it loaded, by participant
    /// position (`None` for an external participant).
    fn generate_nonces(
        &mut self,
        env: &dyn SessionEnv,
    ) -> Result<Vec<Option<(KeyId, HeldKey)>>, Error> {
        let mut keys = Vec::with_capacity(self.participants.len());
        for pi in 0..self.participants.len() {
            let Some((key, held)) = self.load_held(env, pi)? else {
                keys.push(None);
                continue;
            };
            let index = self.participants[pi].info.index;
            let mut slots = Vec::with_capacity(self.messages.len());
            for (mi, m) in self.messages.iter().enumerate() {
                let seed = match env.fresh_seed() {
                    Ok(s) => s,
                    Err(e) => {
                        drop(slots);
                        self.fail(FailureReason::EntropyFailed);
                        return Err(e);
                    }
                };
                slots.push(NonceSlot::new(SecretNonce::generate(
                    &seed,
                    &held,
                    m.output,
                    &m.spec.message,
                    &self.id,
                    index,
                    mi as u32,
                )));
            }
            let p = &mut self.participants[pi];
            p.pubnonces = Some(slots.iter().map(|s| s.public().clone()).collect());
            p.slots = slots;
            keys.push(Some((key, held)));
        }
        Ok(keys)
    }

    /// The answer to an external participant who already submitted `existing`, if it did:
    /// the same values again are a harmless retry, different ones are refused.
    fn resubmission<T: PartialEq>(
        &self,
        existing: Option<&[T]>,
        parsed: &[T],
        index: u32,
    ) -> Option<Result<SessionStatus, Error>> {
        let existing = existing?;
        Some(if existing == parsed {
            Ok(self.status())
        } else {
            Err(Error::Conflict { index })
        })
    }

    /// The external participant at signer `index`.
    fn external(&self, index: u32) -> Result<&SessionParticipant, Error> {
        self.participants
            .get(index as usize)
            .filter(|p| p.is_external())
            .ok_or(Error::WrongParticipant { index })
    }

    /// Loads participant `pi`'s held key (`None` for an external participant) and checks it is
    /// still the key this participant stands for. A key that cannot be loaded fails the session.
    fn load_held(
        &mut self,
        env: &dyn SessionEnv,
        pi: usize,
    ) -> Result<Option<(KeyId, HeldKey)>, Error> {
        let p = &self.participants[pi];
        let Role::Held { key, .. } = p.role else {
            return Ok(None);
        };
        let (index, public_key) = (p.info.index, p.info.public_key);
        let loaded = env.load_key(&key).and_then(|held| {
            if held.public_key() == public_key {
                Ok(held)
            } else {
                Err(Error::InvalidRecord {
                    kind: "key",
                    reason: "public key differs from the aggregate's participant",
                })
            }
        });
        match loaded {
            Ok(held) => Ok(Some((key, held))),
            Err(e) => {
                self.fail(FailureReason::KeyUnavailable {
                    signer_index: index,
                });
                Err(e)
            }
        }
    }

    /// The engine's own public nonces (available once every approval is in).
    pub(crate) fn engine_nonces(&self) -> Result<Vec<ParticipantNonces>, Error> {
        self.ensure_open()?;
        if matches!(self.phase, Phase::Approvals) {
            return Err(Error::WrongState {
                state: self.phase_name(),
            });
        }
        Ok(self
            .participants
            .iter()
            .filter(|p| !p.is_external())
            .map(|p| ParticipantNonces {
                index: p.info.index,
                nonces: p.pubnonces.iter().flatten().map(|n| n.to_bytes()).collect(),
            })
            .collect())
    }

    /// The held participants' partial signatures, once every nonce is in (they are made then).
    pub(crate) fn engine_partial_signatures(&self) -> Result<HeldPartials, Error> {
        self.ensure_open()?;
        let round = self.nonce_round()?;
        Ok(HeldPartials {
            round,
            participants: self
                .participants
                .iter()
                // Held keys only: an external participant's partial signatures came from
                // elsewhere, and its own enclave refuses to be spoken for.
                .filter(|p| !p.is_external())
                .filter_map(|p| {
                    let psigs = p.psigs.as_ref()?;
                    Some((p.info.index, psigs.iter().map(|s| s.serialize()).collect()))
                })
                .collect(),
        })
    }

    /// Accepts an external participant's public nonces (one per message). Allowed while
    /// approvals are still being collected, so nonce exchange can overlap them.
    pub(crate) fn submit_nonces(
        &mut self,
        index: u32,
        nonces: &[[u8; 66]],
        env: &dyn SessionEnv,
    ) -> Result<SessionStatus, Error> {
        self.ensure_open()?;
        let p = self.external(index)?;
        if nonces.len() != self.messages.len() {
            return Err(Error::InvalidNonce { index });
        }
        let parsed = nonces
            .iter()
            .map(|n| parse_public_nonce(n, index))
            .collect::<Result<Vec<_>, _>>()?;
        // Threat: changing nonces after others may have used them.
        if let Some(answer) = self.resubmission(p.pubnonces.as_deref(), &parsed, index) {
            return answer;
        }
        if !matches!(self.phase, Phase::Approvals | Phase::Nonces) {
            return Err(Error::WrongState {
                state: self.phase_name(),
            });
        }
        self.participants[index as usize].pubnonces = Some(parsed);
        if matches!(self.phase, Phase::Nonces) {
            self.try_sign(env)?;
        }
        Ok(self.status())
    }

    /// Once every public nonce is known: fix the aggregated nonces and the round id, then spend
    /// every held secret nonce to produce the engine's partial signatures, in this one call.
    fn try_sign(&mut self, env: &dyn SessionEnv) -> Result<(), Error> {
        self.try_sign_with(env, None)
    }

    /// As [`Session::try_sign`], with the held keys this same call has loaded, by participant
    /// position (see [`Session::generate_nonces`]); `None` loads them.
    fn try_sign_with(
        &mut self,
        env: &dyn SessionEnv,
        mut loaded: Option<Vec<Option<(KeyId, HeldKey)>>>,
    ) -> Result<(), Error> {
        if !matches!(self.phase, Phase::Nonces)
            || self.participants.iter().any(|p| p.pubnonces.is_none())
        {
            return Ok(());
        }
        let per_message: Vec<Vec<PubNonce>> = (0..self.messages.len())
            .map(|mi| {
                self.participants
                    .iter()
                    .map(|p| p.pubnonces.as_ref().map(|n| n[mi].clone()))
                    .collect::<Option<Vec<_>>>()
            })
            .collect::<Option<Vec<_>>>()
            .ok_or(Error::Internal("nonce missing"))?;
        let aggnonces: Vec<AggNonce> = per_message.iter().map(AggNonce::sum).collect();
        let id = round_id(&self.id, &per_message);

        for pi in 0..self.participants.len() {
            // Reloaded here, unless this call loaded it already, so that a key deleted after
            // approval is not used.
            let held = match loaded.as_mut().and_then(|keys| keys.get_mut(pi)) {
                Some(key) => key.take(),
                None => self.load_held(env, pi)?,
            };
            let Some((key, held)) = held else {
                continue;
            };
            let index = self.participants[pi].info.index;
            let mut psigs = Vec::with_capacity(self.messages.len());
            for (mi, m) in self.messages.iter().enumerate() {
                let slot = &mut self.participants[pi].slots[mi];
                let public_nonce = slot.public().to_bytes();
                let result = slot.sign(&SignInput {
                    ctx: &m.ctx,
                    key: &held,
                    aggnonce: &aggnonces[mi],
                    adaptor: self.adaptor,
                    message: &m.spec.message,
                });
                match result {
                    Ok(s) => {
                        env.record(SigningEvent {
                            session: self.id,
                            signer_index: index,
                            message_index: mi as u32,
                            key,
                            public_nonce,
                        });
                        psigs.push(s);
                    }
                    Err(e) => {
                        self.fail(FailureReason::Internal("partial signing failed"));
                        return Err(e);
                    }
                }
            }
            self.participants[pi].psigs = Some(psigs);
        }
        self.round = Some(Round { id, aggnonces });
        self.phase = Phase::PartialSignatures;
        self.try_complete()
    }

    /// The aggregated nonces and round id (available once every nonce is in).
    pub(crate) fn nonce_round(&self) -> Result<NonceRound, Error> {
        self.ensure_open()?;
        let round = self.round.as_ref().ok_or(Error::WrongState {
            state: self.phase_name(),
        })?;
        Ok(NonceRound {
            round_id: round.id,
            aggregated: round.aggnonces.iter().map(|a| a.to_bytes()).collect(),
        })
    }

    /// Accepts an external participant's partial signatures (one per message), each verified
    /// against its public key and nonce before it is kept.
    ///
    /// Threat: a bad partial signature would make the aggregate invalid (wasting the held
    /// signers' nonces) and hide who caused it. Each is checked with BIP-327
    /// `PartialSigVerify`; the first failure fails the session and names the signer.
    pub(crate) fn submit_partial_signatures(
        &mut self,
        round_id: &[u8; 32],
        index: u32,
        psigs: &[[u8; 32]],
    ) -> Result<SessionStatus, Error> {
        self.ensure_open()?;
        let round = self.round.as_ref().ok_or(Error::WrongState {
            state: self.phase_name(),
        })?;
        if round.id != *round_id {
            return Err(Error::RoundMismatch);
        }
        let p = self.external(index)?;
        if psigs.len() != self.messages.len() {
            return Err(Error::InvalidPartialSignature { index });
        }
        let parsed = psigs
            .iter()
            .map(|s| {
                PartialSignature::try_from(*s).map_err(|_| Error::InvalidPartialSignature { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(answer) = self.resubmission(p.psigs.as_deref(), &parsed, index) {
            return answer;
        }
        let pubnonces = p
            .pubnonces
            .as_ref()
            .ok_or(Error::Internal("nonce missing"))?;
        let adaptor = self
            .adaptor
            .map(MaybePoint::Valid)
            .unwrap_or(MaybePoint::Infinity);
        for (mi, m) in self.messages.iter().enumerate() {
            let ok = musig2::adaptor::verify_partial(
                &m.ctx,
                parsed[mi],
                &round.aggnonces[mi],
                adaptor,
                p.point,
                &pubnonces[mi],
                &m.spec.message,
            )
            .is_ok();
            if !ok {
                let reason = FailureReason::BadPartialSignature {
                    signer_index: index,
                    message_index: mi as u32,
                };
                self.fail(reason);
                return Err(Error::BadPartialSignature {
                    signer_index: index,
                    message_index: mi as u32,
                });
            }
        }
        self.participants[index as usize].psigs = Some(parsed);
        self.try_complete()?;
        Ok(self.status())
    }

    /// Aggregates once every partial signature is in, and verifies each result before it is
    /// exposed. Threat: returning an invalid signature (a bug, a fault) to a client that would
    /// broadcast it; nothing unverified leaves the engine.
    fn try_complete(&mut self) -> Result<(), Error> {
        if !matches!(self.phase, Phase::PartialSignatures)
            || self.participants.iter().any(|p| p.psigs.is_none())
        {
            return Ok(());
        }
        let round = self
            .round
            .as_ref()
            .ok_or(Error::Internal("round missing"))?;
        let mut out = Vec::with_capacity(self.messages.len());
        for (mi, m) in self.messages.iter().enumerate() {
            let psigs: Vec<PartialSignature> = self
                .participants
                .iter()
                .filter_map(|p| p.psigs.as_ref().map(|s| s[mi]))
                .collect();
            let output_key = m.output.serialize_xonly();
            let value = match self.adaptor {
                None => musig2::aggregate_partial_signatures::<_, LiftedSignature>(
                    &m.ctx,
                    &round.aggnonces[mi],
                    psigs,
                    &m.spec.message,
                )
                .ok()
                .map(|s| s.to_bytes())
                .filter(|s| verify_bip340(&output_key, &m.spec.message, s))
                .map(SignatureValue::Schnorr),
                Some(t) => musig2::adaptor::aggregate_partial_signatures(
                    &m.ctx,
                    &round.aggnonces[mi],
                    t,
                    psigs,
                    &m.spec.message,
                )
                .ok()
                .filter(|s: &AdaptorSignature| {
                    musig2::adaptor::verify_single(m.output, s, &m.spec.message, t).is_ok()
                })
                .map(|s| SignatureValue::Adaptor(s.to_bytes())),
            };
            let Some(value) = value else {
                self.fail(FailureReason::Internal(
                    "aggregate signature did not verify",
                ));
                return Err(Error::Internal("aggregate signature did not verify"));
            };
            out.push(FinalSignature {
                message_index: mi as u32,
                output_key,
                value,
            });
        }
        self.phase = Phase::Completed(out);
        Ok(())
    }
}
