//! The API's error registry: every `code` an error body can carry, with its HTTP status and
//! what it means, declared once. The enclave answers with [`ApiError`]; clients parse the code
//! into [`ServerCode`], which keeps codes this build does not know (an older or newer enclave)
//! instead of failing on them.
//!
//! A few codes are answered with more than one status (a malformed signature is a 400, one
//! that does not verify a 401); [`Code::statuses`] lists them, the first being the usual one.
//! `docs/openapi.yaml` lists every code; a test fails when the two disagree.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $s:literal, [$($status:literal),+], $meaning:literal;)*) => {
        /// A stable error code of the API. Never changes meaning once shipped.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $($(#[doc = $doc])* #[doc = $meaning] $variant,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The snake_case text on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $s,)*
                }
            }

            /// Every status this code is answered with; the first is the usual one.
            pub const fn statuses(self) -> &'static [u16] {
                match self {
                    $(Code::$variant => &[$($status),+],)*
                }
            }

            /// One line on what the code means.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Code::$variant => $meaning,)*
                }
            }

            /// The code with this wire text, if this build knows it.
            pub fn parse(s: &str) -> Option<Code> {
                match s {
                    $($s => Some(Code::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    // The HTTP layer and the router.
    Busy = "busy", [503], "too many connections or request bodies in flight; retry shortly";
    RequestTimeout = "request_timeout", [408], "the request was not received in time";
    HeadersTooLarge = "headers_too_large", [431], "the request line and headers are too long";
    TooManyHeaders = "too_many_headers", [431], "the request has too many headers";
    MalformedRequest = "malformed_request", [400], "not a valid HTTP/1.1 request";
    MalformedBody = "malformed_body", [400], "the request body could not be read";
    BodyTooLarge = "body_too_large", [413], "the body exceeds the endpoint's limit";
    NotFound = "not_found", [404], "no such endpoint, or no such vault entry";
    MethodNotAllowed = "method_not_allowed", [405], "the endpoint takes another method (see Allow)";
    UnsupportedMediaType = "unsupported_media_type", [415], "the endpoint takes encapsulated bodies only";
    MalformedJson = "malformed_json", [400], "the (opened) body is not the endpoint's JSON request";
    InternalError = "internal_error", [500], "a bug: the answer could not be produced";
    // Attestation.
    BadQuery = "bad_query", [400], "a query parameter the endpoint does not take, or a bad value for one it does";
    BadNonce = "bad_nonce", [400], "the nonce is not hex";
    NonceTooLong = "nonce_too_long", [400], "the nonce exceeds the attestation limit";
    NsmFailed = "nsm_failed", [503], "the NSM did not produce a document";
    // Encapsulation (400 when the request does not open, 500 when the answer cannot be sealed).
    EncapUnsupportedKeyId = "encap_unsupported_key_id", [400, 500], "the body names an unknown key id";
    EncapUnsupportedSuite = "encap_unsupported_suite", [400, 500], "the body names an unsupported HPKE suite";
    EncapMalformed = "encap_malformed", [400, 500], "the encapsulated body is too short";
    EncapTooLarge = "encap_too_large", [400, 500], "the encapsulated body is too large";
    EncapBadRoute = "encap_bad_route", [400, 500], "the route is too long";
    EncapBadPublicKey = "encap_bad_public_key", [400, 500], "the public key is not usable";
    EncapBadSeed = "encap_bad_seed", [400, 500], "the key seed has the wrong length";
    EncapDecryptFailed = "encap_decrypt_failed", [400, 500], "wrong key, wrong route or a tampered body";
    EncapRandomnessUnavailable = "encap_randomness_unavailable", [400, 500], "the random number generator failed";
    EncapInternal = "encap_internal", [400, 500], "a crypto primitive refused its inputs";
    // The ping.
    MessageTooLong = "message_too_long", [400], "the ping message is too long";
    // Sealed state.
    SealingDisabled = "sealing_disabled", [503], "this enclave is configured without sealed state";
    SealingUnavailable = "sealing_unavailable", [503], "the data key is not available (yet)";
    SealedBlobRejected = "sealed_blob_rejected", [502], "the parent served a blob that fails the seal";
    RollbackDetected = "rollback_detected", [502], "the parent served an older or forked version";
    BlobStoreFailed = "blob_store_failed", [502], "the parent's blob store failed";
    // Owner-signed requests (vault and MuSig2 keys).
    InvalidOwnerKey = "invalid_owner_key", [400], "the owner is not a 32-byte x-only secp256k1 key";
    SignatureExpired = "signature_expired", [401], "not_after has passed";
    NotAfterTooFar = "not_after_too_far", [400], "not_after is too far ahead";
    BadSignature = "bad_signature", [401, 400], "the owner's signature does not verify (401) or is not a BIP-340 signature (400)";
    NotOwner = "not_owner", [403], "the signer does not own what the request acts on";
    OwnerNotAdmitted = "owner_not_admitted", [403], "the owner key is not on this image's measured owner allow-list";
    StoreFull = "store_full", [507], "the enclave keeps as many sealed records of this kind as it may (1,000 each), or the parent's store is full: delete some first";
    // The vault.
    BadName = "bad_name", [400], "the vault name is empty, too long or has other characters";
    ValueTooLarge = "value_too_large", [413], "the vault value is too large";
    VersionConflict = "version_conflict", [409], "expected_version is not the current version";
    // MuSig2 (the engine's codes included).
    InvalidRequest = "invalid_request", [400], "the request decodes but the engine refuses it (no message, an expiry in the past, keys that aggregate to infinity, ...)";
    InvalidSecretKey = "invalid_secret_key", [400], "the secret key is zero or not below the curve order";
    InvalidPublicKey = "invalid_public_key", [400], "a participant's public key does not parse";
    InvalidTweak = "invalid_tweak", [400], "a tweak is malformed or out of range";
    LimitExceeded = "limit_exceeded", [413, 429], "a count or size bound (413), or a table or quota is full: sessions in flight in all, per aggregate or per owner, an owner's keys or aggregates (429)";
    EntropyFailed = "entropy_failed", [503], "the randomness source failed";
    RecordStoreFailed = "record_store_failed", [502], "the engine's record store failed";
    InvalidRecord = "invalid_record", [502], "a stored record does not parse";
    UnknownKey = "unknown_key", [404], "no held key with this id";
    UnknownAggregate = "unknown_aggregate", [404], "no aggregate with this id";
    Deleted = "deleted", [410], "the id was deleted";
    RequestReused = "request_reused", [409], "the request id already made another key";
    DuplicateParticipant = "duplicate_participant", [400], "a participant repeats an earlier key";
    NoHeldParticipant = "no_held_participant", [400], "no participant is a key held here";
    UnknownSession = "unknown_session", [404], "no live session with this id";
    SessionExpired = "session_expired", [410], "the session has expired";
    SessionFailed = "session_failed", [409], "the session has failed";
    WrongState = "wrong_state", [409], "the call does not fit the session's state";
    NotAnApprover = "not_an_approver", [403], "the key approves nothing in this session";
    BadApproval = "bad_approval", [401], "the approval signature does not verify";
    WrongParticipant = "wrong_participant", [400], "no such participant, or not of the needed kind";
    InvalidNonce = "invalid_nonce", [400], "a public nonce does not parse, or the count is wrong";
    Conflict = "conflict", [409], "the participant already sent different values, a run or session with this id is in flight, or the enclave already holds this share";
    RoundMismatch = "round_mismatch", [409], "the round id does not match the session's nonces";
    InvalidPartialSignature = "invalid_partial_signature", [400], "a partial signature does not parse";
    BadPartialSignature = "bad_partial_signature", [400], "a partial signature does not verify";
    InvalidSignature = "invalid_signature", [400], "a signature, adaptor point or adaptor secret is invalid";
    Internal = "internal", [500], "an engine invariant broke";
    // Peers.
    PeerNotAllowed = "peer_not_allowed", [403], "the peer's PCRs are not on this image's measured peer allow-list (peers.images), or the image accepts no peers; for a quorum forward, the other enclave is not of this very image (PCR0, PCR1, PCR2) or the image does not accept itself (self)";
    PeerDocumentRefused = "peer_document_refused", [400], "the peer's attestation document does not verify (chain, signature, age, debug mode) or carries no node identity";
    PeerMessageRefused = "peer_message_refused", [400], "a peer message is malformed, addressed to another node, changed, not sealed by its sender to this enclave, replayed or out of order, or from a sender whose document is not known; or a forwarded quorum root does not open here or does not match the commitments";
    // FROST.
    UnknownGroup = "unknown_group", [404], "this enclave holds no share of this FROST group";
    FrostDkgFailed = "frost_dkg_failed", [409], "the key generation failed: a member's package does not verify, or members saw different round-1 packages (the message names the member)";
    ApprovalUsed = "approval_used", [409], "this owner approval was used already: each starts one run or signing session";
    BadShare = "bad_share", [400], "a FROST signature share, or an administrator's quorum share, does not verify (the message names its signer or administrator)";
    // The quorum root.
    QuorumDisabled = "quorum_disabled", [503], "this image's measured configuration has no quorum section";
    NotAnAdmin = "not_an_admin", [403], "no administrator of this quorum has this index";
    NoGenesis = "no_genesis", [409], "the quorum has no genesis yet (an administrator approves one with quorum/genesis)";
    WrongGenesis = "wrong_genesis", [409], "the share or forwarded root belongs to another genesis than this enclave's (the parent may have swapped the quorum record)";
    // The registry.
    RegistryDisabled = "registry_disabled", [503], "this image's measured configuration has no registry section";
    InstanceNotAllowed = "instance_not_allowed", [403], "the instance's PCRs match no entry of the registry's allow-list";
    InstanceDocumentRefused = "instance_document_refused", [400], "the instance's attestation document does not verify (chain, signature, age, debug mode) or carries no 32-byte public key";
    UnknownChallenge = "unknown_challenge", [401], "the document's nonce is no live challenge of this registry (unknown, used or expired)";
    BadChange = "bad_change", [400], "the registry change is malformed or refers to something that does not exist (the message says what)";
    // Proving.
    ProverDisabled = "prover_disabled", [503], "this enclave is configured without a prover";
    BadScheme = "bad_scheme", [400], "the proving scheme is unknown";
    BadTarget = "bad_target", [400], "the verifier target is unknown or not for this scheme";
    UnknownBbVersion = "unknown_bb_version", [400], "the image does not serve the bb version the request names (the message lists the versions it serves)";
    BadInput = "bad_input", [400, 413], "the circuit, witness, inputs or result key are malformed (400) or too large (413)";
    QueueFull = "queue_full", [503], "the proving queue is full";
    SourceQuota = "source_quota", [429], "this client address already has its share of proving jobs queued or running; retry when one ends";
    CrsNotReady = "crs_not_ready", [503], "the CRS is not loaded (yet) or too small";
    ProverUnavailable = "prover_unavailable", [503], "a bb binary of the image failed its start check against the measured pins (the message says which): the prover runs no job this boot";
    UnknownJob = "unknown_job", [404], "no such job, or its result expired (cancel: or the token is not the job's)";
    JobEnded = "job_ended", [409], "the job has ended already (done or failed): nothing to cancel";
}

impl Code {
    /// The usual HTTP status.
    pub const fn status(self) -> u16 {
        self.statuses()[0]
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Code::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown code {s:?}")))
    }
}

/// A code as a client reads it: one of ours, or one this build does not know (an enclave of
/// another version), kept as text so the answer still parses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServerCode {
    Known(Code),
    Other(String),
}

impl ServerCode {
    pub fn as_str(&self) -> &str {
        match self {
            ServerCode::Known(c) => c.as_str(),
            ServerCode::Other(s) => s,
        }
    }

    pub fn known(&self) -> Option<Code> {
        match self {
            ServerCode::Known(c) => Some(*c),
            ServerCode::Other(_) => None,
        }
    }
}

impl From<&str> for ServerCode {
    fn from(s: &str) -> Self {
        Code::parse(s).map_or_else(|| ServerCode::Other(s.to_string()), ServerCode::Known)
    }
}

impl From<Code> for ServerCode {
    fn from(c: Code) -> Self {
        ServerCode::Known(c)
    }
}

impl fmt::Display for ServerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<Code> for ServerCode {
    fn eq(&self, other: &Code) -> bool {
        *self == ServerCode::Known(*other)
    }
}

impl PartialEq<str> for ServerCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ServerCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for ServerCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ServerCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ServerCode::from(String::deserialize(d)?.as_str()))
    }
}

/// What a handler refuses with: a registered code, the status it is answered with (one of
/// [`Code::statuses`]) and one line for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct ApiError {
    pub code: Code,
    pub status: u16,
    pub message: String,
}

impl ApiError {
    /// An error with the code's usual status.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            status: code.status(),
            message: message.into(),
        }
    }

    /// The same error answered with another of the code's registered statuses. A status the
    /// registry does not list for the code is ignored (the usual one stays), so an answer's
    /// status is always one the documentation names.
    pub fn with_status(mut self, status: u16) -> ApiError {
        if self.code.statuses().contains(&status) {
            self.status = status;
        }
        self
    }
}

impl From<crate::encap::EncapError> for ApiError {
    /// A request that does not open is the client's error (400); sealing an answer that fails
    /// is ours, and the caller says so with `with_status(500)`.
    fn from(e: crate::encap::EncapError) -> Self {
        use crate::encap::EncapError as E;
        let code = match e {
            E::UnsupportedKeyId(_) => Code::EncapUnsupportedKeyId,
            E::UnsupportedSuite { .. } => Code::EncapUnsupportedSuite,
            E::TooShort => Code::EncapMalformed,
            E::TooLarge { .. } => Code::EncapTooLarge,
            E::RouteTooLong => Code::EncapBadRoute,
            E::BadPublicKey => Code::EncapBadPublicKey,
            E::BadSeed => Code::EncapBadSeed,
            E::DecryptFailed => Code::EncapDecryptFailed,
            E::RandomnessUnavailable => Code::EncapRandomnessUnavailable,
            E::Internal => Code::EncapInternal,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<sigil_signing::Error> for ApiError {
    /// The MuSig2 engine's refusals; the code is the engine's own stable one.
    fn from(e: sigil_signing::Error) -> Self {
        use sigil_signing::Error as E;
        let code = match &e {
            E::Entropy(_) => Code::EntropyFailed,
            E::RecordStore(_) => Code::RecordStoreFailed,
            E::StoreFull(_) => Code::StoreFull,
            E::InvalidSecretKey => Code::InvalidSecretKey,
            E::InvalidOwnerKey => Code::InvalidOwnerKey,
            E::InvalidPublicKey { .. } => Code::InvalidPublicKey,
            E::InvalidTweak { .. } => Code::InvalidTweak,
            E::InvalidRecord { .. } => Code::InvalidRecord,
            E::InvalidRequest(_) => Code::InvalidRequest,
            E::LimitExceeded(_) => Code::LimitExceeded,
            // Not the request's fault: the room frees up as sessions finish, or as the owner
            // deletes keys or aggregates.
            E::TooManySessions | E::SessionQuota(_) | E::OwnerQuota(_) => {
                return ApiError::new(Code::LimitExceeded, e.to_string()).with_status(429);
            }
            E::NotOwner => Code::NotOwner,
            E::UnknownKey(_) => Code::UnknownKey,
            E::UnknownAggregate(_) => Code::UnknownAggregate,
            E::Deleted(_) => Code::Deleted,
            E::RequestReused => Code::RequestReused,
            E::DuplicateParticipant { .. } => Code::DuplicateParticipant,
            E::NoHeldParticipant => Code::NoHeldParticipant,
            E::UnknownSession => Code::UnknownSession,
            E::SessionExpired => Code::SessionExpired,
            E::SessionFailed(_) => Code::SessionFailed,
            E::WrongState { .. } => Code::WrongState,
            E::NotAnApprover => Code::NotAnApprover,
            E::BadApproval => Code::BadApproval,
            E::WrongParticipant { .. } => Code::WrongParticipant,
            E::InvalidNonce { .. } => Code::InvalidNonce,
            E::Conflict { .. } => Code::Conflict,
            E::RoundMismatch => Code::RoundMismatch,
            E::InvalidPartialSignature { .. } => Code::InvalidPartialSignature,
            E::BadPartialSignature { .. } => Code::BadPartialSignature,
            E::InvalidSignature => Code::InvalidSignature,
            E::Internal(_) => Code::Internal,
            // A variant added to the engine later: an invariant of ours, until it is mapped.
            _ => Code::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert_eq!(Code::parse(s), Some(*c));
            assert!(!c.meaning().is_empty());
            for st in c.statuses() {
                assert!((400..600).contains(st), "{s}: {st}");
            }
            let j = serde_json::to_string(c).unwrap();
            assert_eq!(j, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<Code>(&j).unwrap(), *c);
        }
    }

    #[test]
    fn unknown_codes_are_kept() {
        let c: ServerCode = serde_json::from_str("\"from_the_future\"").unwrap();
        assert_eq!(c, ServerCode::Other("from_the_future".into()));
        assert_eq!(c, "from_the_future");
        let k: ServerCode = serde_json::from_str("\"not_found\"").unwrap();
        assert_eq!(k, Code::NotFound);
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"not_found\"");
        assert!(serde_json::from_str::<Code>("\"from_the_future\"").is_err());
    }

    #[test]
    fn statuses_stay_registered() {
        let e = ApiError::new(Code::BadSignature, "x");
        assert_eq!(e.status, 401);
        assert_eq!(e.clone().with_status(400).status, 400);
        assert_eq!(e.with_status(418).status, 401);
    }

    #[test]
    fn engine_errors_keep_their_codes_and_statuses() {
        use sigil_signing::{Error as E, RecordStoreError};
        let cases = [
            E::UnknownSession,
            E::BadApproval,
            E::TooManySessions,
            E::SessionQuota("x"),
            E::OwnerQuota("x"),
            E::NotOwner,
            E::LimitExceeded("x"),
            E::RecordStore(RecordStoreError::failed("x")),
            E::InvalidOwnerKey,
            E::BadPartialSignature {
                signer_index: 2,
                message_index: 0,
            },
            E::Internal("x"),
        ];
        for e in cases {
            let a = ApiError::from(e.clone());
            assert_eq!(a.code.as_str(), e.code(), "{e:?}");
            assert_eq!(a.message, e.to_string());
        }
        let status = |e| ApiError::from(e).status;
        assert_eq!(status(E::UnknownSession), 404);
        assert_eq!(status(E::BadApproval), 401);
        assert_eq!(status(E::TooManySessions), 429);
        assert_eq!(status(E::SessionQuota("x")), 429);
        assert_eq!(status(E::OwnerQuota("x")), 429);
        assert_eq!(status(E::NotOwner), 403);
        assert_eq!(status(E::LimitExceeded("x")), 413);
        assert_eq!(status(E::RecordStore(RecordStoreError::failed("x"))), 502);
        assert_eq!(status(E::from(RecordStoreError::full("x"))), 507);
        let r = ApiError::from(E::BadPartialSignature {
            signer_index: 2,
            message_index: 0,
        });
        assert_eq!((r.status, r.code), (400, Code::BadPartialSignature));
        assert!(r.message.contains("signer 2"));
    }

    #[test]
    fn encap_errors_keep_their_codes() {
        use crate::encap::EncapError as E;
        for e in [
            E::UnsupportedKeyId(3),
            E::TooShort,
            E::TooLarge { limit: 1 },
            E::RouteTooLong,
            E::BadPublicKey,
            E::BadSeed,
            E::DecryptFailed,
            E::RandomnessUnavailable,
            E::Internal,
        ] {
            let a = ApiError::from(e);
            assert_eq!(a.code.as_str(), e.code());
            assert_eq!(a.status, 400);
        }
    }
}
