//! MuSig2 signing over the HTTP API: keys held by the enclave, aggregate keys and signing
//! sessions (the engine is `sigil-signing`; this module is only the wire).
//!
//! Every endpoint is `POST` with an encapsulated body (see [`crate::encap`]; the endpoints are
//! declared in [`crate::endpoint`]): the plaintext
//! inside is the JSON request below, the route string is the HPKE associated data, and the
//! answer (errors included, as [`crate::api::ErrorBody`]) is sealed back to the requester.
//! Keys, nonces, signatures and ids are lowercase hex; messages are hex bytes (the field
//! types in [`crate::wire`] check that while decoding).
//!
//! Who may do what:
//!
//! - creating (generate, import) and deleting a held key needs the owner's BIP-340 signature
//!   over [`request_digest`] with a `not_after` at most [`MAX_VALIDITY_SECS`] ahead, as for the
//!   vault; so do creating and deleting an aggregate (by the owner of one of its held keys),
//!   creating a session and aborting one (by one of its approvers);
//! - every use of a held key needs its owner's approval: a BIP-340 signature over the session
//!   digest (`sigil_signing::session_digest`), which commits to the session id, the aggregate
//!   key, tweaks, messages, adaptor point and expiry;
//! - external participants are not authenticated by the API: they are authenticated by their
//!   MuSig2 partial signatures, which the enclave verifies (`verify_partial`) before it
//!   aggregates. Someone else submitting nonces in their name can only make the session fail
//!   (naming that signer), never obtain a signature;
//! - listing and describing keys and aggregates needs the owner's signature too (an owner
//!   lists only its own); a session is read by whoever knows its id (32 random bytes, handed
//!   by its creator to the approvers and co-signers), since external co-signers hold no
//!   owner key.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sigil_signing::KeyId;

use crate::peers::PeerMessage;
use crate::wire::{
    AdaptorSignature, Base64Bytes, FieldError, Hex, Hex32, HexBytes, Id, Nonce, Point, SecretHex,
    Signature, wire_enum,
};

pub use crate::wire::MAX_VALIDITY_SECS;
/// The BIP-340 tag of [`request_digest`].
pub const REQUEST_TAG: &str = "sigil/musig2/request/v1";

/// What an owner-signed request does (the first field of [`request_digest`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Fields: owner (32 bytes), request id (16).
    GenerateKey,
    /// Fields: owner (32), the imported key's compressed public key (33), request id (16).
    ImportKey,
    /// Fields: key id (16).
    DeleteKey,
    /// Fields: aggregate id (16), the signing owner (32).
    DeleteAggregate,
    /// Fields: session id (32), the signing owner (32).
    AbortSession,
    /// Fields: the signing owner (32), [`CreateAggregateRequest::signed_spec`].
    CreateAggregate,
    /// Fields: the signing owner (32), [`CreateSessionRequest::signed_spec`].
    CreateSession,
    /// Fields: the signing owner (32).
    ListKeys,
    /// Fields: the signing owner (32).
    ListAggregates,
    /// Fields: key id (16), the signing owner (32).
    DescribeKey,
    /// Fields: aggregate id (16), the signing owner (32).
    DescribeAggregate,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::GenerateKey => "key/generate",
            Op::ImportKey => "key/import",
            Op::DeleteKey => "key/delete",
            Op::DeleteAggregate => "aggregate/delete",
            Op::AbortSession => "session/abort",
            Op::CreateAggregate => "aggregate/create",
            Op::CreateSession => "session/create",
            Op::ListKeys => "key/list",
            Op::ListAggregates => "aggregate/list",
            Op::DescribeKey => "key/describe",
            Op::DescribeAggregate => "aggregate/describe",
        }
    }
}

/// The 32-byte message an owner signs (BIP-340) to authorize `op`:
/// `SHA256(SHA256(TAG) || SHA256(TAG) || fields)`, each field a 4-byte big-endian length then
/// its bytes: the op name, then the op's fields (see [`Op`]), then `not_after` (8 bytes BE).
///
/// Threat: a signature made for one request being used for another. The op name and every
/// field that selects what is acted on are inside, length-prefixed so no two requests encode
/// alike, and the tag separates these digests from the vault's and from session approvals.
///
/// The owner signs this digest bound to the enclave's per-boot key
/// ([`crate::wire::owner_message`]), not the digest alone.
pub fn request_digest(op: Op, fields: &[&[u8]], not_after: u64) -> [u8; 32] {
    let not_after = not_after.to_be_bytes();
    let op = [op.as_str().as_bytes()];
    crate::wire::tagged_digest(
        REQUEST_TAG,
        op.into_iter()
            .chain(fields.iter().copied())
            .chain([&not_after[..]]),
    )
}

// ----- keys -----

/// `keys/generate`: a key generated inside the enclave (its secret never leaves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateKeyRequest {
    /// The x-only key of the owner who will approve every use.
    pub owner: Hex32,
    /// 16 random bytes the client picks per key. The key's id derives from the owner and
    /// this, so sending the request again (a retry, or a replay) returns the same key.
    pub request_id: Id,
    pub not_after: u64,
    /// BIP-340 signature by `owner` over
    /// `request_digest(GenerateKey, [owner, request_id])`.
    pub signature: Signature,
}

/// `keys/import`: a secret key the client already has. The secret travels only inside the
/// encapsulated body, and is wiped (and never printed) here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportKeyRequest {
    /// The 32-byte secret key.
    pub secret: SecretHex<32>,
    pub owner: Hex32,
    /// As in [`GenerateKeyRequest`]: a replayed import returns the first key instead of
    /// storing a second copy of the secret; the same id with another secret is refused.
    pub request_id: Id,
    pub not_after: u64,
    /// By `owner` over `request_digest(ImportKey, [owner, public_key, request_id])`.
    pub signature: Signature,
}

/// `keys/describe` (by the key's owner), `aggregates/describe` (by the owner of one of its
/// held keys).
///
/// Threat: an anonymous reader linking owners to keys and output keys. Reads of owner-linked
/// data are signed like writes; a read that is refused does not say whether the id exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdRequest {
    pub id: Id,
    pub owner: Hex32,
    pub not_after: u64,
    /// By `owner` over `request_digest(DescribeKey | DescribeAggregate, [id, owner])`.
    pub signature: Signature,
}

/// `keys/list` (the owner's keys) and `aggregates/list` (the aggregates the owner created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    pub owner: Hex32,
    pub not_after: u64,
    /// By `owner` over `request_digest(ListKeys | ListAggregates, [owner])`.
    pub signature: Signature,
}

/// `keys/delete`: by the key's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteKeyRequest {
    pub id: Id,
    pub not_after: u64,
    /// By the key's owner over `request_digest(DeleteKey, [id])`.
    pub signature: Signature,
}

/// A held key's public facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub id: Id,
    /// Compressed SEC1 (33 bytes).
    pub public_key: Point,
    pub owner: Hex32,
    pub created: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdList {
    pub ids: Vec<Id>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub id: Id,
    pub deleted: bool,
}

// ----- aggregates -----

/// One participant of a new aggregate: `{"key_id": ..}` for a key held by this enclave or
/// `{"public_key": ..}` for an external signer's compressed public key, exactly one of the two
/// (an object with both, or neither, does not decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParticipantSpec {
    #[serde(rename = "key_id")]
    Held(Id),
    #[serde(rename = "public_key")]
    External(Point),
}

impl From<ParticipantSpec> for sigil_signing::ParticipantSpec {
    fn from(p: ParticipantSpec) -> Self {
        match p {
            ParticipantSpec::Held(id) => sigil_signing::ParticipantSpec::Held(KeyId(id.0)),
            ParticipantSpec::External(pk) => sigil_signing::ParticipantSpec::External(pk.0),
        }
    }
}

wire_enum! {
    /// How an aggregate orders its keys.
    pub enum KeyOrder ("key order") {
        /// Exactly as given.
        AsGiven = "as_given",
        /// BIP-327 KeySort.
        Sorted = "sorted",
    }
}

impl From<KeyOrder> for sigil_signing::KeyOrder {
    fn from(o: KeyOrder) -> Self {
        match o {
            KeyOrder::AsGiven => sigil_signing::KeyOrder::AsGiven,
            KeyOrder::Sorted => sigil_signing::KeyOrder::Sorted,
        }
    }
}

impl From<sigil_signing::KeyOrder> for KeyOrder {
    fn from(o: sigil_signing::KeyOrder) -> Self {
        match o {
            sigil_signing::KeyOrder::AsGiven => KeyOrder::AsGiven,
            sigil_signing::KeyOrder::Sorted => KeyOrder::Sorted,
        }
    }
}

wire_enum! {
    /// What a tweak does (BIP-327 / BIP-341).
    pub enum TweakKind ("tweak kind") {
        /// `Q + t*G`; value: a 32-byte scalar.
        Plain = "plain",
        /// `with_even_y(Q) + t*G`; value: a 32-byte scalar.
        Xonly = "xonly",
        /// BIP-341 taproot tweak; value: the 32-byte merkle root.
        Taproot = "taproot",
        /// BIP-341 taproot tweak with no script path (BIP-86); no value.
        TaprootUnspendable = "taproot_unspendable",
    }
}

/// A tweak: `kind` and, for every kind but `taproot_unspendable`, a 32-byte `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TweakSpec {
    pub kind: TweakKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Hex32>,
}

/// Why a [`TweakSpec`] is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TweakError {
    #[error("{0} tweak needs a value")]
    MissingValue(TweakKind),
    #[error(
        "tweak {0} takes no value: use plain, xonly, taproot (with a value) or \
         taproot_unspendable (without)"
    )]
    UnexpectedValue(TweakKind),
}

impl TweakSpec {
    /// The engine's tweak: the one conversion, used by the enclave and the client alike, so
    /// both refuse the same specs (`taproot_unspendable` takes no value: a value there would
    /// be silently ignored, and the signer would not get the tweak they asked for).
    pub fn to_tweak(&self) -> Result<sigil_signing::Tweak, TweakError> {
        use sigil_signing::Tweak;
        let value = || {
            self.value
                .map(|v| v.0)
                .ok_or(TweakError::MissingValue(self.kind))
        };
        match self.kind {
            TweakKind::Plain => value().map(Tweak::Plain),
            TweakKind::Xonly => value().map(Tweak::XOnly),
            TweakKind::Taproot => value().map(Tweak::Taproot),
            TweakKind::TaprootUnspendable => match self.value {
                None => Ok(Tweak::TaprootUnspendable),
                Some(_) => Err(TweakError::UnexpectedValue(self.kind)),
            },
        }
    }

    /// The wire form of the engine's tweak.
    pub fn from_tweak(t: &sigil_signing::Tweak) -> TweakSpec {
        use sigil_signing::Tweak;
        let (kind, value) = match t {
            Tweak::Plain(v) => (TweakKind::Plain, Some(v)),
            Tweak::XOnly(v) => (TweakKind::Xonly, Some(v)),
            Tweak::Taproot(v) => (TweakKind::Taproot, Some(v)),
            Tweak::TaprootUnspendable => (TweakKind::TaprootUnspendable, None),
        };
        TweakSpec {
            kind,
            value: value.map(|v| Hex(*v)),
        }
    }
}

impl TryFrom<&TweakSpec> for sigil_signing::Tweak {
    type Error = TweakError;
    fn try_from(t: &TweakSpec) -> Result<Self, TweakError> {
        t.to_tweak()
    }
}

impl From<&sigil_signing::Tweak> for TweakSpec {
    fn from(t: &sigil_signing::Tweak) -> Self {
        TweakSpec::from_tweak(t)
    }
}

/// Why a command-line tweak (`KIND` or `KIND:HEX`) is refused.
#[derive(Debug, thiserror::Error)]
pub enum TweakArgError {
    #[error("{0}")]
    Kind(FieldError),
    #[error("tweak value: {0}")]
    Value(FieldError),
    #[error(transparent)]
    Tweak(#[from] TweakError),
}

impl FromStr for TweakSpec {
    type Err = TweakArgError;
    /// `KIND` or `KIND:HEX` (`plain:..`, `xonly:..`, `taproot:ROOT`, `taproot_unspendable`),
    /// checked as the enclave checks it.
    fn from_str(s: &str) -> Result<Self, TweakArgError> {
        let (kind, value) = match s.split_once(':') {
            Some((k, v)) => (k, Some(v)),
            None => (s, None),
        };
        let spec = TweakSpec {
            kind: kind.parse().map_err(TweakArgError::Kind)?,
            value: value
                .map(Hex::parse)
                .transpose()
                .map_err(TweakArgError::Value)?,
        };
        spec.to_tweak()?;
        Ok(spec)
    }
}

/// `aggregates/create`: by the owner of one of its held keys, and counted against that
/// owner's quota (threat: anyone filling the sealed store with aggregates nobody can delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAggregateRequest {
    pub participants: Vec<ParticipantSpec>,
    pub order: KeyOrder,
    #[serde(default)]
    pub tweaks: Vec<TweakSpec>,
    /// The owner of at least one held participant; the aggregate counts against its quota.
    pub owner: Hex32,
    pub not_after: u64,
    /// By `owner` over `request_digest(CreateAggregate, [owner, signed_spec])`.
    pub signature: Signature,
}

impl CreateAggregateRequest {
    /// What the owner's signature covers besides the owner:
    /// `order u8 (0 as_given, 1 sorted) || u16 n || n * (0x01 || key_id[16] | 0x02 ||
    /// public_key[33]) || u8 m || m * tweak`, integers big-endian, `tweak = kind u8 (1 plain,
    /// 2 xonly, 3 taproot, 4 taproot_unspendable) || (0x00 | 0x01 || value[32])`. Counts past
    /// their field's range are clamped; such requests are refused before the digest matters.
    pub fn signed_spec(&self) -> Vec<u8> {
        let mut out = vec![match self.order {
            KeyOrder::AsGiven => 0,
            KeyOrder::Sorted => 1,
        }];
        out.extend_from_slice(
            &(self.participants.len().min(u16::MAX as usize) as u16).to_be_bytes(),
        );
        for p in &self.participants {
            match p {
                ParticipantSpec::Held(id) => {
                    out.push(1);
                    out.extend_from_slice(&id.0);
                }
                ParticipantSpec::External(pk) => {
                    out.push(2);
                    out.extend_from_slice(&pk.0);
                }
            }
        }
        push_tweaks(&mut out, &self.tweaks);
        out
    }
}

fn push_tweak(out: &mut Vec<u8>, t: &TweakSpec) {
    out.push(match t.kind {
        TweakKind::Plain => 1,
        TweakKind::Xonly => 2,
        TweakKind::Taproot => 3,
        TweakKind::TaprootUnspendable => 4,
    });
    match &t.value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.0);
        }
    }
}

fn push_tweaks(out: &mut Vec<u8>, tweaks: &[TweakSpec]) {
    out.push(tweaks.len().min(u8::MAX as usize) as u8);
    for t in tweaks {
        push_tweak(out, t);
    }
}

/// `aggregates/delete`: by the owner of one of the aggregate's held keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAggregateRequest {
    pub id: Id,
    pub owner: Hex32,
    pub not_after: u64,
    /// By `owner` over `request_digest(DeleteAggregate, [id, owner])`.
    pub signature: Signature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantView {
    pub index: u32,
    pub public_key: Point,
    /// Set for keys held by this enclave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Id>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateView {
    pub id: Id,
    /// In signer order.
    pub participants: Vec<ParticipantView>,
    pub order: KeyOrder,
    pub tweaks: Vec<TweakSpec>,
    /// The untweaked aggregate key (compressed), BIP-341's internal key when taproot-tweaked.
    pub internal_key: Point,
    pub internal_xonly: Hex32,
    /// After every tweak: what signatures verify under.
    pub output_key: Point,
    pub output_xonly: Hex32,
    pub created: u64,
}

// ----- sessions -----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageView {
    /// The bytes to sign (a 32-byte sighash, typically).
    pub message: HexBytes,
    /// Applied on top of the aggregate's tweaks for this message only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tweak: Option<TweakSpec>,
}

impl TryFrom<&MessageView> for sigil_signing::MessageSpec {
    type Error = TweakError;
    fn try_from(m: &MessageView) -> Result<Self, TweakError> {
        Ok(sigil_signing::MessageSpec {
            message: m.message.0.clone(),
            tweak: m.tweak.as_ref().map(TweakSpec::to_tweak).transpose()?,
        })
    }
}

/// `sessions/create`: by one of the session's approvers (an owner of a held participant).
///
/// Threat: anonymous clients holding the session table full. Creation is signed so that each
/// session has an accountable creator with a quota of sessions in flight that nobody else can
/// spend; the enclave cannot tell anonymous clients apart (they all arrive through the
/// parent), so a limit per source could not be enforced here. A counterparty (an external
/// signer, holding no key here) hands its proposal to an owner, who creates the session and
/// has to check and approve exactly that anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    pub aggregate: Id,
    pub messages: Vec<MessageView>,
    /// Compressed adaptor point: the session then yields adaptor pre-signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptor_point: Option<Point>,
    /// Unix seconds (enclave time) after which the session is dead; at most one hour ahead.
    /// A session no owner has approved within five minutes expires then.
    pub expires_at: u64,
    /// An approver of the session; it counts against this owner's sessions in flight.
    pub owner: Hex32,
    pub not_after: u64,
    /// By `owner` over `request_digest(CreateSession, [owner, signed_spec])`.
    pub signature: Signature,
}

impl CreateSessionRequest {
    /// What the owner's signature covers besides the owner: `aggregate[16] || expires_at u64
    /// || u16 n || n * (u32 len || message || (0x00 | 0x01 || tweak)) || (0x00 | 0x01 ||
    /// adaptor_point[33])`, integers big-endian, tweaks as in
    /// [`CreateAggregateRequest::signed_spec`].
    pub fn signed_spec(&self) -> Vec<u8> {
        let mut out = self.aggregate.0.to_vec();
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(&(self.messages.len().min(u16::MAX as usize) as u16).to_be_bytes());
        for m in &self.messages {
            out.extend_from_slice(&(m.message.0.len().min(u32::MAX as usize) as u32).to_be_bytes());
            out.extend_from_slice(&m.message.0);
            match &m.tweak {
                None => out.push(0),
                Some(t) => {
                    out.push(1);
                    push_tweak(&mut out, t);
                }
            }
        }
        match &self.adaptor_point {
            None => out.push(0),
            Some(p) => {
                out.push(1);
                out.extend_from_slice(&p.0);
            }
        }
        out
    }
}

/// `sessions/status`, `sessions/nonces`, `sessions/round`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRef {
    pub session: Hex32,
}

/// `sessions/approve`: an owner's BIP-340 signature over the session digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    pub session: Hex32,
    pub owner: Hex32,
    pub signature: Signature,
}

/// `sessions/nonces/submit`: an external participant's public nonces, one per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitNoncesRequest {
    pub session: Hex32,
    pub index: u32,
    /// 66-byte public nonces.
    pub nonces: Vec<Nonce>,
}

/// `sessions/partial-signatures`: an external participant's partial signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialSignaturesRequest {
    pub session: Hex32,
    /// From `sessions/round`: the signatures are for exactly that set of nonces.
    pub round_id: Hex32,
    pub index: u32,
    /// 32-byte scalars, one per message.
    pub partial_signatures: Vec<Hex32>,
}

/// `sessions/abort`: by one of the session's approvers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    pub session: Hex32,
    pub owner: Hex32,
    pub not_after: u64,
    /// By `owner` over `request_digest(AbortSession, [session, owner])`.
    pub signature: Signature,
}

wire_enum! {
    /// Where a session is.
    pub enum SessionState ("session state") {
        WaitingForApprovals = "waiting_for_approvals",
        WaitingForNonces = "waiting_for_nonces",
        WaitingForPartialSignatures = "waiting_for_partial_signatures",
        Completed = "completed",
        Failed = "failed",
        Expired = "expired",
    }
}

wire_enum! {
    /// Why a session failed.
    pub enum FailureCode ("failure code") {
        BadPartialSignature = "bad_partial_signature",
        KeyUnavailable = "key_unavailable",
        EntropyFailed = "entropy_failed",
        Aborted = "aborted",
        Internal = "internal",
    }
}

/// Why a session failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureView {
    pub code: FailureCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer_index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_index: Option<u32>,
}

/// A final signature, verified by the enclave before it is returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureView {
    pub message_index: u32,
    /// x-only key the signature verifies under.
    pub output_key: Hex32,
    /// 64-byte BIP-340 signature (sessions without an adaptor point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// 65-byte adaptor pre-signature `R || s` (sessions with an adaptor point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptor_signature: Option<AdaptorSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub session: Hex32,
    pub state: SessionState,
    pub expires_at: u64,
    pub missing_approvals: Vec<Hex32>,
    pub missing_nonces: Vec<u32>,
    pub missing_partial_signatures: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureView>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<SignatureView>,
}

/// Everything about a session: what `sessions/create` and `sessions/status` answer. An
/// approver checks every input of `digest` against what they mean to sign (key, tweaks,
/// messages, adaptor point, expiry) and computes the digest they sign from that, with
/// `sigil_signing::session_digest`, never taking this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: Hex32,
    pub digest: Hex32,
    pub aggregate: Id,
    pub internal_key: Point,
    pub tweaks: Vec<TweakSpec>,
    pub messages: Vec<MessageView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptor_point: Option<Point>,
    pub expires_at: u64,
    /// Owners whose approval is needed.
    pub approvers: Vec<Hex32>,
    pub participants: Vec<ParticipantView>,
    /// Per message, the x-only key its signature will verify under.
    pub output_keys: Vec<Hex32>,
    pub status: StatusView,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantNoncesView {
    pub index: u32,
    pub nonces: Vec<Nonce>,
}

/// The engine's public nonces (available once every approval is in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncesView {
    pub session: Hex32,
    pub participants: Vec<ParticipantNoncesView>,
}

/// The aggregated nonces (one per message) and the round id partial signatures cite, with
/// the public nonces of the participants this enclave holds (what `sessions/nonces` answers):
/// an external signer checks the aggregate against them without a second request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundView {
    pub session: Hex32,
    pub round_id: Hex32,
    pub aggregated_nonces: Vec<Nonce>,
    /// Absent from enclaves older than this field: fetch `sessions/nonces` then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nonces: Vec<ParticipantNoncesView>,
}

/// The peer-message protocol name of MuSig2 sessions that span enclaves.
pub const MUSIG2_PEER: &str = "musig2";

wire_enum! {
    /// What one enclave hands another in a session that spans them.
    pub enum PeerStep ("peer step") {
        /// Its held participants' public nonces (peer message round 1).
        Nonces = "nonces",
        /// Its held participants' partial signatures (round 2).
        PartialSignatures = "partial_signatures",
    }
}

impl PeerStep {
    /// The peer message round that carries this step.
    pub fn round(self) -> u16 {
        match self {
            PeerStep::Nonces => 1,
            PeerStep::PartialSignatures => 2,
        }
    }
}

/// `sessions/peer-send`: seal this enclave's contribution to a session (its held keys' nonces,
/// or their partial signatures) to the enclave that holds another participant's key.
///
/// A session that spans enclaves is one session per enclave, each created there over the same
/// aggregate, messages and tweaks, the other enclaves' keys as external participants, each
/// approved by its own keys' owners. The coordinator carries the sealed contributions between
/// them; each enclave verifies the other's partial signatures (BIP-327 `PartialSigVerify`)
/// before it aggregates, so every enclave ends with the same verified signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSendRequest {
    /// This enclave's session.
    pub session: Hex32,
    pub step: PeerStep,
    /// The recipient's attestation document (fresh).
    pub recipient_document: Base64Bytes,
    /// The recipient's session for the same signing.
    pub recipient_session: Hex32,
}

/// `sessions/peer-receive`: open a peer's sealed contribution into this enclave's session, as
/// its external participants' nonces or partial signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerReceiveRequest {
    /// This enclave's session (the message's `session` must name it).
    pub session: Hex32,
    pub message: PeerMessage,
    /// The sender's document; may be left out when this enclave verified it recently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_document: Option<Base64Bytes>,
}

/// The sealed payload of a MuSig2 peer message (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerContribution {
    pub step: PeerStep,
    /// With partial signatures: the aggregated nonces they were made for, one per message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregated_nonces: Vec<Nonce>,
    pub participants: Vec<PeerParticipant>,
}

/// One held participant's contribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerParticipant {
    pub public_key: Point,
    /// One per message (step `nonces`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nonces: Vec<Nonce>,
    /// One per message (step `partial_signatures`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partial_signatures: Vec<Hex32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tweaks_round_trip_and_bad_ones_are_refused() {
        use sigil_signing::Tweak;
        for t in [
            Tweak::Plain([1; 32]),
            Tweak::XOnly([2; 32]),
            Tweak::Taproot([3; 32]),
            Tweak::TaprootUnspendable,
        ] {
            assert_eq!(TweakSpec::from_tweak(&t).to_tweak(), Ok(t));
        }
        let spec = |kind, value: Option<[u8; 32]>| TweakSpec {
            kind,
            value: value.map(Hex),
        };
        assert_eq!(
            spec(TweakKind::Plain, None).to_tweak(),
            Err(TweakError::MissingValue(TweakKind::Plain))
        );
        // The case the client once accepted and the enclave refused.
        assert_eq!(
            spec(TweakKind::TaprootUnspendable, Some([0; 32])).to_tweak(),
            Err(TweakError::UnexpectedValue(TweakKind::TaprootUnspendable))
        );
        // Shapes are refused while decoding.
        let json = |s: &str| serde_json::from_str::<TweakSpec>(s).map_err(|e| e.to_string());
        assert!(
            json(r#"{"kind":"nope"}"#)
                .unwrap_err()
                .contains("unknown tweak kind")
        );
        assert!(json(r#"{"kind":"xonly","value":"00"}"#).is_err());
        assert_eq!(
            json(&format!(
                r#"{{"kind":"xonly","value":"{}"}}"#,
                "02".repeat(32)
            ))
            .unwrap(),
            spec(TweakKind::Xonly, Some([2; 32]))
        );
        // The command-line form.
        assert_eq!(
            "taproot_unspendable".parse::<TweakSpec>().unwrap(),
            spec(TweakKind::TaprootUnspendable, None)
        );
        let e = format!("taproot_unspendable:{}", "00".repeat(32))
            .parse::<TweakSpec>()
            .unwrap_err();
        assert!(
            e.to_string().contains("taproot_unspendable (without)"),
            "{e}"
        );
        assert!("plain".parse::<TweakSpec>().is_err());
        assert!("bogus:00".parse::<TweakSpec>().is_err());
    }

    #[test]
    fn participants_are_one_of_two_and_keep_their_json() {
        let held = ParticipantSpec::Held(Hex([1; 16]));
        let j = serde_json::to_string(&held).unwrap();
        assert_eq!(j, format!(r#"{{"key_id":"{}"}}"#, "01".repeat(16)));
        assert_eq!(serde_json::from_str::<ParticipantSpec>(&j).unwrap(), held);
        let ext = format!(r#"{{"public_key":"{}"}}"#, "02".repeat(33));
        assert_eq!(
            serde_json::from_str::<ParticipantSpec>(&ext).unwrap(),
            ParticipantSpec::External(Hex([2; 33]))
        );
        let both = format!(
            r#"{{"key_id":"{}","public_key":"{}"}}"#,
            "01".repeat(16),
            "02".repeat(33)
        );
        assert!(serde_json::from_str::<ParticipantSpec>(&both).is_err());
        assert!(serde_json::from_str::<ParticipantSpec>("{}").is_err());
    }

    #[test]
    fn an_imported_secret_is_never_printed() {
        let json = format!(
            r#"{{"secret":"{}","owner":"{}","request_id":"{}","not_after":1,"signature":"{}"}}"#,
            "ab".repeat(32),
            "01".repeat(32),
            "02".repeat(16),
            "03".repeat(64)
        );
        let r: ImportKeyRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(**r.secret.expose(), [0xab; 32]);
        assert!(!format!("{r:?}").contains("abab"));
        assert_eq!(serde_json::to_string(&r).unwrap(), json);
    }

    #[test]
    fn request_digest_separates_ops_fields_and_expiry() {
        let base = request_digest(Op::DeleteKey, &[&[1; 16]], 9);
        assert_ne!(base, request_digest(Op::GenerateKey, &[&[1; 16]], 9));
        assert_ne!(base, request_digest(Op::DeleteKey, &[&[2; 16]], 9));
        assert_ne!(base, request_digest(Op::DeleteKey, &[&[1; 16]], 10));
        assert_ne!(
            request_digest(Op::ImportKey, &[b"ab", b"c"], 1),
            request_digest(Op::ImportKey, &[b"a", b"bc"], 1)
        );
        assert_eq!(base, request_digest(Op::DeleteKey, &[&[1; 16]], 9));
    }
}
