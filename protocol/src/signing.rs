//! MuSig2 signing over the HTTP API: keys held by the enclave, aggregate keys and signing
//! sessions (the engine is `sigil-signing`; this module is only the wire).
//!
//! Every endpoint is `POST` with an encapsulated body (see [`crate::encap`]; the endpoints are
//! declared in [`crate::endpoint`]): the plaintext
//! inside is the JSON request below, the route string is the HPKE associated data, and the
//! answer (errors included, as [`crate::api::ErrorBody`]) is sealed back to the requester.
//! Keys, nonces, signatures and ids are lowercase hex; messages are hex bytes.
//!
//! Who may do what:
//!
//! - creating (generate, import) and deleting a held key needs the owner's BIP-340 signature
//!   over [`request_digest`] with a `not_after` at most [`MAX_VALIDITY_SECS`] ahead, as for the
//!   vault; so does deleting an aggregate (by the owner of one of its held keys) and aborting a
//!   session (by one of its approvers);
//! - every use of a held key needs its owner's approval: a BIP-340 signature over the session
//!   digest (`sigil_signing::session_digest`), which commits to the session id, the aggregate
//!   key, tweaks, messages, adaptor point and expiry;
//! - external participants are not authenticated by the API: they are authenticated by their
//!   MuSig2 partial signatures, which the enclave verifies (`verify_partial`) before it
//!   aggregates. Someone else submitting nonces in their name can only make the session fail
//!   (naming that signer), never obtain a signature;
//! - listing and describing keys, aggregates and sessions is public information.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A signature over [`request_digest`] may be valid for at most this long into the future.
pub const MAX_VALIDITY_SECS: u64 = 600;
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
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::GenerateKey => "key/generate",
            Op::ImportKey => "key/import",
            Op::DeleteKey => "key/delete",
            Op::DeleteAggregate => "aggregate/delete",
            Op::AbortSession => "session/abort",
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
pub fn request_digest(op: Op, fields: &[&[u8]], not_after: u64) -> [u8; 32] {
    let tag = Sha256::digest(REQUEST_TAG.as_bytes());
    let mut h = Sha256::new();
    h.update(tag);
    h.update(tag);
    let mut field = |b: &[u8]| {
        h.update((b.len() as u32).to_be_bytes());
        h.update(b);
    };
    field(op.as_str().as_bytes());
    for f in fields {
        field(f);
    }
    field(&not_after.to_be_bytes());
    h.finalize().into()
}

// ----- keys -----

/// `keys/generate`: a key generated inside the enclave (its secret never leaves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateKeyRequest {
    /// Hex x-only key of the owner who will approve every use.
    pub owner: String,
    /// Hex, 16 random bytes the client picks per key. The key's id derives from the owner and
    /// this, so sending the request again (a retry, or a replay) returns the same key.
    pub request_id: String,
    pub not_after: u64,
    /// Hex BIP-340 signature by `owner` over
    /// `request_digest(GenerateKey, [owner, request_id])`.
    pub signature: String,
}

/// `keys/import`: a secret key the client already has. The secret travels only inside the
/// encapsulated body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportKeyRequest {
    /// Hex 32-byte secret key.
    pub secret: String,
    pub owner: String,
    /// As in [`GenerateKeyRequest`]: a replayed import returns the first key instead of
    /// storing a second copy of the secret; the same id with another secret is refused.
    pub request_id: String,
    pub not_after: u64,
    /// By `owner` over `request_digest(ImportKey, [owner, public_key, request_id])`.
    pub signature: String,
}

impl std::fmt::Debug for ImportKeyRequest {
    // The secret is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportKeyRequest")
            .field("owner", &self.owner)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// `keys/describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdRequest {
    pub id: String,
}

/// `keys/list` and `aggregates/list` take an empty object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {}

/// `keys/delete`: by the key's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteKeyRequest {
    pub id: String,
    pub not_after: u64,
    /// By the key's owner over `request_digest(DeleteKey, [id])`.
    pub signature: String,
}

/// A held key's public facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub id: String,
    /// Compressed SEC1 (33 bytes).
    pub public_key: String,
    pub owner: String,
    pub created: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdList {
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

// ----- aggregates -----

/// One participant of a new aggregate: exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantSpec {
    /// A key held by this enclave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// An external signer's compressed public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// A tweak. `kind`: `plain`, `xonly` (value: 32-byte scalar), `taproot` (value: merkle root),
/// `taproot_unspendable` (no value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TweakSpec {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Why a [`TweakSpec`] is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TweakError {
    #[error("{0} tweak needs a value")]
    MissingValue(String),
    #[error("tweak value must be 32 bytes of hex")]
    BadValue,
    #[error(
        "tweak {kind:?} (with value: {with_value}): use plain, xonly, taproot (with a value) or \
         taproot_unspendable (without)"
    )]
    Unknown { kind: String, with_value: bool },
}

impl TweakSpec {
    /// The engine's tweak: the one conversion, used by the enclave and the client alike, so
    /// both refuse the same specs (`taproot_unspendable` takes no value: a value there would
    /// be silently ignored, and the signer would not get the tweak they asked for).
    pub fn to_tweak(&self) -> Result<sigil_signing::Tweak, TweakError> {
        use sigil_signing::Tweak;
        let value = || {
            let v = self
                .value
                .as_deref()
                .ok_or_else(|| TweakError::MissingValue(self.kind.clone()))?;
            let mut out = [0u8; 32];
            if v.len() != 64 || hex::decode_to_slice(v, &mut out).is_err() {
                return Err(TweakError::BadValue);
            }
            Ok(out)
        };
        match self.kind.as_str() {
            "plain" => value().map(Tweak::Plain),
            "xonly" => value().map(Tweak::XOnly),
            "taproot" => value().map(Tweak::Taproot),
            "taproot_unspendable" if self.value.is_none() => Ok(Tweak::TaprootUnspendable),
            other => Err(TweakError::Unknown {
                kind: other.into(),
                with_value: self.value.is_some(),
            }),
        }
    }

    /// The wire form of the engine's tweak.
    pub fn from_tweak(t: &sigil_signing::Tweak) -> TweakSpec {
        use sigil_signing::Tweak;
        let (kind, value) = match t {
            Tweak::Plain(v) => ("plain", Some(v)),
            Tweak::XOnly(v) => ("xonly", Some(v)),
            Tweak::Taproot(v) => ("taproot", Some(v)),
            Tweak::TaprootUnspendable => ("taproot_unspendable", None),
        };
        TweakSpec {
            kind: kind.into(),
            value: value.map(hex::encode),
        }
    }
}

/// `aggregates/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAggregateRequest {
    pub participants: Vec<ParticipantSpec>,
    /// `as_given` or `sorted` (BIP-327 KeySort).
    pub order: String,
    #[serde(default)]
    pub tweaks: Vec<TweakSpec>,
}

/// `aggregates/delete`: by the owner of one of the aggregate's held keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAggregateRequest {
    pub id: String,
    pub owner: String,
    pub not_after: u64,
    /// By `owner` over `request_digest(DeleteAggregate, [id, owner])`.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantView {
    pub index: u32,
    pub public_key: String,
    /// Set for keys held by this enclave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateView {
    pub id: String,
    /// In signer order.
    pub participants: Vec<ParticipantView>,
    pub order: String,
    pub tweaks: Vec<TweakSpec>,
    /// The untweaked aggregate key (compressed), BIP-341's internal key when taproot-tweaked.
    pub internal_key: String,
    pub internal_xonly: String,
    /// After every tweak: what signatures verify under.
    pub output_key: String,
    pub output_xonly: String,
    pub created: u64,
}

// ----- sessions -----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageView {
    /// Hex bytes (a 32-byte sighash, typically).
    pub message: String,
    /// Applied on top of the aggregate's tweaks for this message only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tweak: Option<TweakSpec>,
}

/// `sessions/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    pub aggregate: String,
    pub messages: Vec<MessageView>,
    /// Compressed adaptor point: the session then yields adaptor pre-signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptor_point: Option<String>,
    /// Unix seconds (enclave time) after which the session is dead; at most one hour ahead.
    pub expires_at: u64,
}

/// `sessions/status`, `sessions/nonces`, `sessions/round`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRef {
    pub session: String,
}

/// `sessions/approve`: an owner's BIP-340 signature over the session digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    pub session: String,
    pub owner: String,
    pub signature: String,
}

/// `sessions/nonces/submit`: an external participant's public nonces, one per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitNoncesRequest {
    pub session: String,
    pub index: u32,
    /// 66-byte public nonces.
    pub nonces: Vec<String>,
}

/// `sessions/partial-signatures`: an external participant's partial signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialSignaturesRequest {
    pub session: String,
    /// From `sessions/round`: the signatures are for exactly that set of nonces.
    pub round_id: String,
    pub index: u32,
    /// 32-byte scalars, one per message.
    pub partial_signatures: Vec<String>,
}

/// `sessions/abort`: by one of the session's approvers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    pub session: String,
    pub owner: String,
    pub not_after: u64,
    /// By `owner` over `request_digest(AbortSession, [session, owner])`.
    pub signature: String,
}

/// Why a session failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureView {
    /// `bad_partial_signature`, `key_unavailable`, `entropy_failed`, `aborted`, `internal`.
    pub code: String,
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
    pub output_key: String,
    /// 64-byte BIP-340 signature (sessions without an adaptor point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// 65-byte adaptor pre-signature `R || s` (sessions with an adaptor point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptor_signature: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub session: String,
    /// `waiting_for_approvals`, `waiting_for_nonces`, `waiting_for_partial_signatures`,
    /// `completed`, `failed`, `expired`.
    pub state: String,
    pub expires_at: u64,
    pub missing_approvals: Vec<String>,
    pub missing_nonces: Vec<u32>,
    pub missing_partial_signatures: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureView>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<SignatureView>,
}

/// Everything about a session: what `sessions/create` and `sessions/status` answer. An
/// approver recomputes `digest` from these fields with `sigil_signing::session_digest` after
/// checking that the messages are the ones they mean to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: String,
    pub digest: String,
    pub aggregate: String,
    pub internal_key: String,
    pub tweaks: Vec<TweakSpec>,
    pub messages: Vec<MessageView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptor_point: Option<String>,
    pub expires_at: u64,
    /// Owners whose approval is needed.
    pub approvers: Vec<String>,
    pub participants: Vec<ParticipantView>,
    /// Per message, the x-only key its signature will verify under.
    pub output_keys: Vec<String>,
    pub status: StatusView,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantNoncesView {
    pub index: u32,
    pub nonces: Vec<String>,
}

/// The engine's public nonces (available once every approval is in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncesView {
    pub session: String,
    pub participants: Vec<ParticipantNoncesView>,
}

/// The aggregated nonces (one per message) and the round id partial signatures cite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundView {
    pub session: String,
    pub round_id: String,
    pub aggregated_nonces: Vec<String>,
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
        let spec = |kind: &str, value: Option<String>| TweakSpec {
            kind: kind.into(),
            value,
        };
        assert_eq!(
            spec("plain", None).to_tweak(),
            Err(TweakError::MissingValue("plain".into()))
        );
        assert_eq!(
            spec("xonly", Some("00".into())).to_tweak(),
            Err(TweakError::BadValue)
        );
        // The case the client once accepted and the enclave refused.
        assert_eq!(
            spec("taproot_unspendable", Some("00".repeat(32))).to_tweak(),
            Err(TweakError::Unknown {
                kind: "taproot_unspendable".into(),
                with_value: true
            })
        );
        assert!(spec("nope", None).to_tweak().is_err());
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
