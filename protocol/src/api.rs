//! JSON shapes and constants shared by the enclave's HTTP API and its clients.

use serde::{Deserialize, Serialize};

/// Route strings: the AEAD associated data of encapsulated bodies (see [`crate::encap`]),
/// so a body sealed for one endpoint is refused by every other.
pub const ROUTE_ATTESTATION: &str = "GET /v1/attestation";
pub const ROUTE_PING: &str = "POST /v1/ping";

pub const PATH_ATTESTATION: &str = "/v1/attestation";
pub const PATH_PING: &str = "/v1/ping";
pub const PATH_HEALTH: &str = "/v1/health";

/// Content type of an encapsulated request or response body.
pub const ENCAPSULATED_CONTENT_TYPE: &str = "application/sigil-encapsulated";

/// Largest nonce, in bytes, accepted by `/v1/attestation`. The nonce is copied into a signed
/// document, so it is bounded before it reaches the NSM (memory/size abuse by a caller).
pub const MAX_NONCE_LEN: usize = 512;

/// Values of [`AttestationResponse::mode`].
pub const MODE_NITRO: &str = "nitro";
pub const MODE_HARNESS: &str = "harness";
pub const MODE_LOCAL: &str = "local";

/// The `error` member of every error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable snake_case code (e.g. [`crate::encap::EncapError::code`]).
    pub code: String,
    /// One human-readable line.
    pub message: String,
}

/// Body of every error response: `{"error":{"code":..,"message":..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ApiError {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

impl From<crate::encap::EncapError> for ErrorBody {
    fn from(e: crate::encap::EncapError) -> Self {
        ErrorBody::new(e.code(), e.to_string())
    }
}

/// Body of `GET /v1/attestation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationResponse {
    /// COSE_Sign1 attestation document, base64 (standard alphabet, padded).
    pub document: String,
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
        let b = ErrorBody::new("encap_too_large", "body too large");
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
        let b = ErrorBody::from(crate::encap::EncapError::DecryptFailed);
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
            document: "AAAA".into(),
            mode: MODE_NITRO.into(),
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"document":"AAAA","mode":"nitro"}"#
        );
        assert!(serde_json::from_str::<PingRequest>("{}").is_err());
    }

    #[test]
    fn routes_match_paths() {
        assert_eq!(ROUTE_PING, format!("POST {PATH_PING}"));
        assert_eq!(ROUTE_ATTESTATION, format!("GET {PATH_ATTESTATION}"));
    }
}
