//! One error type for every engine call, each variant with a stable machine-readable code that
//! the HTTP layer returns next to the human message.

use std::fmt;

use crate::entropy::EntropyError;
use crate::records::RecordStoreError;
use crate::session::FailureReason;

/// Everything an engine call can refuse. None of these carries secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The caller-supplied entropy source failed or returned an implausible value.
    Entropy(EntropyError),
    /// The caller's record store failed.
    RecordStore(RecordStoreError),
    /// The record store holds as many records as it may (the text says which); deleting
    /// frees room.
    StoreFull(String),
    /// A 32-byte secret is zero or not below the curve order.
    InvalidSecretKey,
    /// An owner key is not a valid x-only BIP-340 public key.
    InvalidOwnerKey,
    /// A participant's public key does not parse (index in the request's order).
    InvalidPublicKey { index: u32 },
    /// A tweak is out of range or turns the key into the point at infinity.
    InvalidTweak { index: u32 },
    /// A sealed record does not parse or is inconsistent.
    InvalidRecord {
        kind: &'static str,
        reason: &'static str,
    },
    /// A request is malformed (the text names what).
    InvalidRequest(&'static str),
    /// A request exceeds a bound (the text names which).
    LimitExceeded(&'static str),
    /// The live-session table is full: not the request's fault, and it frees up as sessions
    /// expire (so the API answers "retry later", not "too large").
    TooManySessions,
    /// A per-aggregate or per-owner bound on sessions in flight is reached (the text names
    /// which); it frees up as those sessions finish.
    SessionQuota(&'static str),
    /// An owner holds as many keys or aggregates as its quota allows (the text names which);
    /// deleting some frees room.
    OwnerQuota(&'static str),
    /// The signing owner owns none of the held keys the request acts on.
    NotOwner,
    /// No key record with this id.
    UnknownKey(String),
    /// No aggregate record with this id.
    UnknownAggregate(String),
    /// The id was deleted in this process and may not be used again.
    Deleted(String),
    /// A key-creation request id already made a different key.
    RequestReused,
    /// The same public key appears twice among the participants.
    DuplicateParticipant { index: u32 },
    /// The aggregate has no key held by this engine, so it has nothing to sign.
    NoHeldParticipant,
    /// No live session with this id (unknown, pruned, or lost in a restart).
    UnknownSession,
    /// The session passed its expiry and is closed.
    SessionExpired,
    /// The session has failed and is closed.
    SessionFailed(FailureReason),
    /// The call does not fit the session's current state.
    WrongState { state: &'static str },
    /// The key is not the owner of any held key in this session.
    NotAnApprover,
    /// The approval signature does not verify over the session digest.
    BadApproval,
    /// No participant with this index, or it is not of the kind the call needs.
    WrongParticipant { index: u32 },
    /// A public nonce does not parse, or the count does not match the messages.
    InvalidNonce { index: u32 },
    /// A participant resubmitted different nonces or partial signatures than it first sent.
    Conflict { index: u32 },
    /// The round id does not match this session's nonces.
    RoundMismatch,
    /// A partial signature does not parse or the count does not match the messages.
    InvalidPartialSignature { index: u32 },
    /// A partial signature failed verification; the session is now failed.
    BadPartialSignature {
        signer_index: u32,
        message_index: u32,
    },
    /// A signature, adaptor point or adaptor secret is invalid.
    InvalidSignature,
    /// An invariant broke; the affected session is failed.
    Internal(&'static str),
}

impl Error {
    /// A stable code for the wire; never changes meaning once shipped.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Entropy(_) => "entropy_failed",
            Error::RecordStore(_) => "record_store_failed",
            Error::StoreFull(_) => "store_full",
            Error::InvalidSecretKey => "invalid_secret_key",
            Error::InvalidOwnerKey => "invalid_owner_key",
            Error::InvalidPublicKey { .. } => "invalid_public_key",
            Error::InvalidTweak { .. } => "invalid_tweak",
            Error::InvalidRecord { .. } => "invalid_record",
            Error::InvalidRequest(_) => "invalid_request",
            Error::LimitExceeded(_)
            | Error::TooManySessions
            | Error::SessionQuota(_)
            | Error::OwnerQuota(_) => "limit_exceeded",
            Error::NotOwner => "not_owner",
            Error::UnknownKey(_) => "unknown_key",
            Error::UnknownAggregate(_) => "unknown_aggregate",
            Error::Deleted(_) => "deleted",
            Error::RequestReused => "request_reused",
            Error::DuplicateParticipant { .. } => "duplicate_participant",
            Error::NoHeldParticipant => "no_held_participant",
            Error::UnknownSession => "unknown_session",
            Error::SessionExpired => "session_expired",
            Error::SessionFailed(_) => "session_failed",
            Error::WrongState { .. } => "wrong_state",
            Error::NotAnApprover => "not_an_approver",
            Error::BadApproval => "bad_approval",
            Error::WrongParticipant { .. } => "wrong_participant",
            Error::InvalidNonce { .. } => "invalid_nonce",
            Error::Conflict { .. } => "conflict",
            Error::RoundMismatch => "round_mismatch",
            Error::InvalidPartialSignature { .. } => "invalid_partial_signature",
            Error::BadPartialSignature { .. } => "bad_partial_signature",
            Error::InvalidSignature => "invalid_signature",
            Error::Internal(_) => "internal",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Entropy(e) => write!(f, "entropy source failed: {e}"),
            Error::RecordStore(e) => write!(f, "record store: {e}"),
            Error::StoreFull(m) => write!(f, "record store full: {m}"),
            Error::InvalidSecretKey => {
                f.write_str("secret key is zero or not below the curve order")
            }
            Error::InvalidOwnerKey => f.write_str("owner key is not a valid x-only public key"),
            Error::InvalidPublicKey { index } => {
                write!(f, "participant {index}: invalid public key")
            }
            Error::InvalidTweak { index } => write!(f, "tweak {index} is invalid"),
            Error::InvalidRecord { kind, reason } => write!(f, "{kind} record: {reason}"),
            Error::InvalidRequest(what) => write!(f, "invalid request: {what}"),
            Error::LimitExceeded(what) => write!(f, "limit exceeded: {what}"),
            Error::TooManySessions => f.write_str("limit exceeded: too many sessions"),
            Error::SessionQuota(what) => write!(f, "limit exceeded: too many {what}"),
            Error::OwnerQuota(what) => write!(f, "quota reached: too many {what}; delete some"),
            Error::NotOwner => f.write_str("the signing owner owns none of the held keys involved"),
            Error::UnknownKey(id) => write!(f, "no key {id}"),
            Error::UnknownAggregate(id) => write!(f, "no aggregate {id}"),
            Error::Deleted(id) => write!(f, "{id} was deleted"),
            Error::RequestReused => f.write_str(
                "this request id already made another key: use a fresh request id per key",
            ),
            Error::DuplicateParticipant { index } => {
                write!(f, "participant {index} repeats an earlier public key")
            }
            Error::NoHeldParticipant => f.write_str("no participant is a key held here"),
            Error::UnknownSession => {
                f.write_str("no such session (sessions do not survive a restart: start a new one)")
            }
            Error::SessionExpired => f.write_str("session expired"),
            Error::SessionFailed(r) => write!(f, "session failed: {r}"),
            Error::WrongState { state } => write!(f, "not allowed while the session is {state}"),
            Error::NotAnApprover => f.write_str("key is not an approver of this session"),
            Error::BadApproval => f.write_str("approval signature does not verify"),
            Error::WrongParticipant { index } => {
                write!(
                    f,
                    "participant {index} does not exist or cannot make this call"
                )
            }
            Error::InvalidNonce { index } => write!(f, "participant {index}: invalid public nonce"),
            Error::Conflict { index } => {
                write!(f, "participant {index} already submitted different values")
            }
            Error::RoundMismatch => f.write_str("round id does not match the session's nonces"),
            Error::InvalidPartialSignature { index } => {
                write!(f, "participant {index}: malformed partial signature")
            }
            Error::BadPartialSignature {
                signer_index,
                message_index,
            } => write!(
                f,
                "partial signature of signer {signer_index} on message {message_index} does not verify"
            ),
            Error::InvalidSignature => f.write_str("invalid signature"),
            Error::Internal(what) => write!(f, "internal error: {what}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<RecordStoreError> for Error {
    fn from(e: RecordStoreError) -> Self {
        if e.full {
            return Error::StoreFull(e.message);
        }
        Error::RecordStore(e)
    }
}

impl From<EntropyError> for Error {
    fn from(e: EntropyError) -> Self {
        Error::Entropy(e)
    }
}
