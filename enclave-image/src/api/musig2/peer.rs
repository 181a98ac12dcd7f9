//! MuSig2 sessions that span enclaves (KeyMeld's layout: each participant's key in its own
//! enclave). Each enclave runs its own session over the same aggregate, messages and tweaks,
//! the other enclaves' keys as external participants, approved by its own keys' owners. What
//! one session needs from another (the held keys' public nonces, then their partial
//! signatures) travels as a sealed peer message (`crate::peers::channel`), carried by the
//! coordinator.
//!
//! Threats, and what stops each:
//! - a coordinator or parent forging or changing a contribution: the message is sealed between
//!   the two enclaves' attested per-boot keys (HPKE auth mode), its session and step bound in
//!   its header, and the sender's document is checked against the measured peer policy;
//! - a contribution replayed into another session, or a step replayed: the recipient's session
//!   id is the message's session, and sequence numbers only increase;
//! - a contribution for a key that is not an external participant here: refused, so a peer
//!   can never speak for a key this enclave holds;
//! - what this does not stop: the peer's key is an external participant here, so whoever has
//!   the session id may also submit nonces for it through the plain external-participant
//!   endpoints, and any allowed enclave may send a contribution for it. Either can only make
//!   the session fail (a wrong partial signature is named, a second set of nonces is a
//!   conflict), never produce a signature: binding a participant to its enclave's node is
//!   left for later;
//! - bad partial signatures (made for other nonces, another message or aggregate): they are
//!   verified with BIP-327 `PartialSigVerify` before they are kept, and the session fails
//!   naming the signer, exactly as for any external participant.

use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::musig2::{
    MUSIG2_PEER, PartialSignaturesRequest, PeerContribution, PeerParticipant, PeerReceiveRequest,
    PeerSendRequest, PeerStep, SessionRef, StatusView, SubmitNoncesRequest,
};
use sigil_protocol::peers::{MAX_PEER_DOCUMENT, MAX_PEER_PAYLOAD, PeerMessage};
use sigil_protocol::wire::{Hex, Point};
use sigil_signing::SessionId;

use super::Musig2Api;
use crate::api::peers::{PeerCtx, channel_refusal, peer_refusal};

fn refused(m: impl Into<String>) -> ApiError {
    ApiError::new(Code::PeerMessageRefused, m)
}

impl Musig2Api {
    /// This enclave's contribution to session `r.session`, sealed to the recipient.
    pub fn peer_send(
        &self,
        ctx: &PeerCtx<'_>,
        r: PeerSendRequest,
        now: u64,
    ) -> Result<PeerMessage, ApiError> {
        let me = ctx.me()?;
        if r.recipient_document.0.len() > MAX_PEER_DOCUMENT {
            return Err(ApiError::new(
                Code::PeerDocumentRefused,
                "the recipient's document is too large",
            ));
        }
        let recipient = ctx
            .policy
            .verify(&r.recipient_document.0, now)
            .map_err(peer_refusal)?;
        let id = SessionId(r.session.0);
        let view = self.session_status(SessionRef { session: r.session }, now)?;
        let key_of = |index: u32| -> Result<Point, ApiError> {
            view.participants
                .iter()
                .find(|p| p.index == index)
                .map(|p| p.public_key)
                .ok_or_else(|| ApiError::new(Code::Internal, "a held participant has no key"))
        };
        let contribution = match r.step {
            PeerStep::Nonces => {
                let n = self.engine.public_nonces(&id, now);
                let n = self.session_result(&id, n)?;
                PeerContribution {
                    step: r.step,
                    aggregated_nonces: Vec::new(),
                    participants: n
                        .iter()
                        .map(|p| {
                            Ok(PeerParticipant {
                                public_key: key_of(p.index)?,
                                nonces: p.nonces.iter().copied().map(Hex).collect(),
                                partial_signatures: Vec::new(),
                            })
                        })
                        .collect::<Result<_, ApiError>>()?,
                }
            }
            PeerStep::PartialSignatures => {
                let h = self.engine.held_partial_signatures(&id, now);
                let h = self.session_result(&id, h)?;
                PeerContribution {
                    step: r.step,
                    aggregated_nonces: h.round.aggregated.iter().copied().map(Hex).collect(),
                    participants: h
                        .participants
                        .iter()
                        .map(|(index, psigs)| {
                            Ok(PeerParticipant {
                                public_key: key_of(*index)?,
                                nonces: Vec::new(),
                                partial_signatures: psigs.iter().copied().map(Hex).collect(),
                            })
                        })
                        .collect::<Result<_, ApiError>>()?,
                }
            }
        };
        if contribution.participants.is_empty() {
            return Err(ApiError::new(
                Code::WrongParticipant,
                "this enclave holds no key in this session",
            ));
        }
        let payload = serde_json::to_vec(&contribution)
            .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
        ctx.channel
            .seal(
                me,
                &recipient,
                (MUSIG2_PEER, r.recipient_session.0, r.step.round()),
                &payload,
            )
            .map_err(channel_refusal)
    }

    /// A peer's contribution, opened into session `r.session` as its external participants'.
    pub fn peer_receive(
        &self,
        ctx: &PeerCtx<'_>,
        r: PeerReceiveRequest,
        now: u64,
    ) -> Result<StatusView, ApiError> {
        let me = ctx.me()?;
        let m = &r.message;
        if m.protocol != MUSIG2_PEER || m.session != r.session {
            return Err(refused(
                "not a MuSig2 peer message for this session (its protocol or session differ)",
            ));
        }
        if let Some(d) = &r.sender_document
            && d.0.len() > MAX_PEER_DOCUMENT
        {
            return Err(ApiError::new(
                Code::PeerDocumentRefused,
                "the sender's document is too large",
            ));
        }
        if m.ct.0.len() > MAX_PEER_PAYLOAD + 16 {
            return Err(refused("the message is larger than any contribution"));
        }
        let (_, payload) = ctx
            .channel
            .open(
                me,
                ctx.policy,
                m,
                r.sender_document.as_ref().map(|d| d.0.as_slice()),
                now,
            )
            .map_err(channel_refusal)?;
        // Sealed by an allowed enclave, so malformed means another version, not an attack.
        let c: PeerContribution = serde_json::from_slice(&payload)
            .map_err(|e| refused(format!("the contribution does not parse: {e}")))?;
        if c.step.round() != m.round {
            return Err(refused(
                "the contribution's step is not its message's round",
            ));
        }
        let view = self.session_status(SessionRef { session: r.session }, now)?;
        for p in &c.participants {
            let Some(target) = view
                .participants
                .iter()
                .find(|v| v.public_key == p.public_key)
            else {
                return Err(ApiError::new(
                    Code::WrongParticipant,
                    format!(
                        "key {} is not a participant of this session",
                        hex::encode(p.public_key.0)
                    ),
                ));
            };
            if target.key_id.is_some() {
                return Err(ApiError::new(
                    Code::WrongParticipant,
                    format!(
                        "key {} is held by this enclave: a peer cannot speak for it",
                        hex::encode(p.public_key.0)
                    ),
                ));
            }
            match c.step {
                PeerStep::Nonces => {
                    self.submit_nonces(
                        SubmitNoncesRequest {
                            session: r.session,
                            index: target.index,
                            nonces: p.nonces.clone(),
                        },
                        now,
                    )?;
                }
                PeerStep::PartialSignatures => {
                    let round = self.round(SessionRef { session: r.session }, now)?;
                    if round.aggregated_nonces != c.aggregated_nonces {
                        return Err(ApiError::new(
                            Code::RoundMismatch,
                            "the peer's partial signatures were made for other nonces than this \
                             session's",
                        ));
                    }
                    self.submit_partial_signatures(
                        PartialSignaturesRequest {
                            session: r.session,
                            round_id: round.round_id,
                            index: target.index,
                            partial_signatures: p.partial_signatures.clone(),
                        },
                        now,
                    )?;
                }
            }
        }
        Ok(self
            .session_status(SessionRef { session: r.session }, now)?
            .status)
    }
}
