#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod adaptor;
pub mod aggregate;
pub mod approval;
mod codec;
mod engine;
mod entropy;
mod error;
pub mod frost;
pub mod keys;
pub mod nonce;
pub mod owners;
pub mod records;
pub mod session;
mod table;

pub use adaptor::{complete_adaptor_signature, reveal_adaptor_secret};
pub use aggregate::{
    AggregateInfo, AggregateKeys, AggregateRecord, AggregateSpec, KeyOrder, ParticipantInfo,
    ParticipantSpec, Tweak, aggregate_keys, sort_keys,
};
pub use approval::{DigestInput, session_digest, verify_bip340};
pub use engine::{DELETION_MEMORY_SECS, Engine, Swept, key_id_for_request};
pub use entropy::{Entropy, EntropyError};
pub use error::Error;
pub use keys::{AggregateId, HeldKey, KeyId, KeyInfo};
pub use nonce::aggregate_nonces;
pub use records::{MemoryRecords, RecordStore, RecordStoreError};
pub use session::{
    FailureReason, FinalSignature, HeldPartials, MessageSpec, NonceRound, ParticipantNonces,
    SessionId, SessionInfo, SessionRequest, SessionState, SessionStatus, SignatureValue,
    SigningEvent,
};

/// Most participants in one aggregate key.
pub const MAX_PARTICIPANTS: usize = 64;
/// Most tweaks on one aggregate key.
pub const MAX_TWEAKS: usize = 8;
/// Most messages in one session.
pub const MAX_MESSAGES: usize = 64;
/// Longest message (bytes); Bitcoin sighashes are 32.
pub const MAX_MESSAGE_LEN: usize = 1024;
/// Longest a session may live; secret nonces never outlive it.
pub const MAX_SESSION_TTL_SECS: u64 = 3600;
/// Most sessions in flight at once (finished ones do not count; see `MAX_FINISHED_SESSIONS`).
pub const MAX_SESSIONS: usize = 256;
/// Most sessions in flight on one aggregate key, so that one aggregate cannot take every slot.
pub const MAX_SESSIONS_PER_AGGREGATE: usize = 32;
/// Most sessions in flight created by one owner, so that one owner cannot take every slot.
pub const MAX_SESSIONS_PER_OWNER: usize = 64;
/// Most finished sessions (completed, failed, aborted, expired) kept for late readers; the
/// oldest is forgotten to make room. They hold no secret nonces and no slot.
pub const MAX_FINISHED_SESSIONS: usize = 256;
/// A session that no owner has approved within this many seconds of its creation expires
/// then, whatever its `expires_at`: a session nobody means to approve should not sit in the
/// table for an hour.
pub const UNAPPROVED_SESSION_TTL_SECS: u64 = 300;
/// Most participants x messages in one session. A session keeps a key-aggregation context
/// per message (about 420 bytes per participant), so this bounds one session near 110 KiB
/// and all of them near 28 MiB (threat: anyone who can reach the API opening sessions to
/// exhaust the enclave's memory, which would take PID 1 and every session with it).
pub const MAX_SESSION_UNITS: usize = 256;
/// How many recent signing events the engine keeps for audit.
pub const SIGNING_EVENT_LOG_LEN: usize = 4096;
