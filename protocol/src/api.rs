//! JSON shapes and constants shared by the enclave's HTTP API and its clients.

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Code, ServerCode};
use crate::wire::{Base64Bytes, HexBytes};

/// Content type of an encapsulated request or response body.
pub const ENCAPSULATED_CONTENT_TYPE: &str = "application/sigil-encapsulated";

/// Largest nonce, in bytes, accepted by `/v1/attestation`. The nonce is copied into a signed
/// document, so it is bounded before it reaches the NSM (memory/size abuse by a caller).
pub const MAX_NONCE_LEN: usize = 512;

/// Values of [`AttestationResponse::mode`].
pub const MODE_NITRO: &str = "nitro";
pub const MODE_HARNESS: &str = "harness";
pub const MODE_LOCAL: &str = "local";

/// The `error` member of every error body, as a client reads it: the code may be one this
/// build does not know (see [`ServerCode`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable snake_case code from the registry ([`crate::error::Code`]).
    pub code: ServerCode,
    /// One human-readable line.
    pub message: String,
}

/// Body of every error response: `{"error":{"code":..,"message":..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: ServerCode::Known(code),
                message: message.into(),
            },
        }
    }
}

impl From<ApiError> for ErrorBody {
    fn from(e: ApiError) -> Self {
        ErrorBody::new(e.code, e.message)
    }
}

/// The query of `GET /v1/attestation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationQuery {
    /// At most [`MAX_NONCE_LEN`] bytes; put into the document. (The enclave reads the query
    /// itself, to answer `bad_nonce` and `nonce_too_long`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<HexBytes>,
}

/// Body of `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// Always `ok`: the enclave answers.
    pub status: String,
    /// As [`AttestationResponse::mode`] (informational only).
    pub mode: String,
    pub version: String,
    pub sealing: SealingHealth,
    /// Present when the image has a prover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crs: Option<CrsHealth>,
    /// Present when the image has a prover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prover: Option<ProverHealth>,
}

/// The sealing service's state in [`HealthResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealingHealth {
    /// `disabled`, `starting`, `failed`, `awaiting_genesis` (the quorum is the only root and
    /// has no genesis yet), `locked` (the data key waits for the quorum administrators'
    /// shares; KMS, if configured, is still retried) or `ready`.
    pub state: String,
    /// `generated`, `recovered` (from KMS), `quorum` (unlocked by administrators) or
    /// `forwarded` (the root sent by another enclave of this image), once
    /// ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// A short stable code of the last error, for monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The last error in words (may change between versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The quorum root, when the image has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumHealth>,
}

/// The quorum root in [`SealingHealth`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumHealth {
    /// As `quorum/status` answers it: `starting`, `awaiting_genesis`, `locked`, `unlocked`
    /// or `open`.
    pub state: String,
    pub threshold: u16,
    pub admins: u16,
    /// Good shares held this boot, waiting for the threshold.
    pub received: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis: Option<String>,
}

/// The prover's CRS in [`HealthResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrsHealth {
    /// `loading`, `ready` or `failed`.
    pub state: String,
    pub points: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The prover's load in [`HealthResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProverHealth {
    pub bb_version: String,
    pub queued: usize,
    pub running: usize,
    /// `checking` (its bb binaries are being held to their pins: jobs wait), `ready` or
    /// `failed` (no job runs this boot: `error` says why). Absent from older enclaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `GET /v1/attestation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationResponse {
    /// COSE_Sign1 attestation document, base64 (standard alphabet, padded).
    pub document: Base64Bytes,
    /// [`MODE_NITRO`], [`MODE_HARNESS`] or [`MODE_LOCAL`]. Informational only: a client must
    /// decide trust from the verified document, never from this field (a lying host can set it).
    pub mode: String,
}

/// Plaintext (JSON) inside the encapsulated `POST /v1/ping` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingRequest {
    pub message: String,
}

/// Plaintext (JSON) inside the encapsulated `POST /v1/ping` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResponse {
    pub message: String,
    pub enclave_time_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_shape() {
        let b = ErrorBody::new(Code::EncapTooLarge, "body too large");
        let j = serde_json::to_value(&b).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"error": {"code": "encap_too_large", "message": "body too large"}})
        );
        let back: ErrorBody = serde_json::from_value(j).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn error_body_from_encap_error() {
        let b = ErrorBody::from(ApiError::from(crate::encap::EncapError::DecryptFailed));
        assert_eq!(b.error.code, "encap_decrypt_failed");
        assert_eq!(
            b.error.message,
            "decryption failed (wrong key, route or tampered body)"
        );
    }

    #[test]
    fn ping_and_attestation_shapes() {
        let p: PingRequest = serde_json::from_str(r#"{"message":"hi"}"#).unwrap();
        assert_eq!(p.message, "hi");
        let r = PingResponse {
            message: "hi".into(),
            enclave_time_ms: 42,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"message":"hi","enclave_time_ms":42}"#
        );
        let a = AttestationResponse {
            document: Base64Bytes(vec![0; 3]),
            mode: MODE_NITRO.into(),
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"document":"AAAA","mode":"nitro"}"#
        );
        assert!(serde_json::from_str::<PingRequest>("{}").is_err());
    }
}
