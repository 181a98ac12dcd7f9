//! KMS `awsJson1_1` request/response types for the three calls the enclave makes with an
//! attestation `Recipient`, and the signed HTTP request that carries them.
//!
//! Field names and shapes follow the KMS API reference (API_GenerateDataKey, API_Decrypt,
//! API_GenerateRandom, API_RecipientInfo). Binary fields are base64 in the JSON.

use crate::sigv4::{self, Credentials, Request, SigV4Error, SigningParams, SigningTime};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

/// Largest KMS response body we parse. The biggest legitimate one (Decrypt of a 4 KiB
/// plaintext, base64 CMS envelope, key ARN) is well under 16 KiB; the bound stops the parent
/// from making the enclave buffer or parse unbounded JSON (threat: memory exhaustion).
pub const MAX_RESPONSE: usize = 64 * 1024;

/// `base64` <-> `Vec<u8>` for JSON blob fields.
mod b64 {
    use super::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }

    pub mod opt {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(s) => STANDARD
                    .decode(s.as_bytes())
                    .map(Some)
                    .map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }
    }
}

/// The KMS operations used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    GenerateDataKey,
    Decrypt,
    GenerateRandom,
}

impl Operation {
    /// Value of the `X-Amz-Target` header.
    pub fn target(self) -> &'static str {
        match self {
            Operation::GenerateDataKey => "TrentService.GenerateDataKey",
            Operation::Decrypt => "TrentService.Decrypt",
            Operation::GenerateRandom => "TrentService.GenerateRandom",
        }
    }
}

/// The only key-encryption algorithm KMS accepts for a Recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyEncryptionAlgorithm {
    #[serde(rename = "RSAES_OAEP_SHA_256")]
    RsaesOaepSha256,
}

/// `RecipientInfo`: the attestation document whose `public_key` KMS encrypts to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecipientInfo {
    /// Raw COSE_Sign1 document from the NSM (sent base64).
    #[serde(with = "b64")]
    pub attestation_document: Vec<u8>,
    pub key_encryption_algorithm: KeyEncryptionAlgorithm,
}

impl RecipientInfo {
    pub fn new(attestation_document: Vec<u8>) -> Self {
        RecipientInfo {
            attestation_document,
            key_encryption_algorithm: KeyEncryptionAlgorithm::RsaesOaepSha256,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeySpec {
    #[serde(rename = "AES_256")]
    Aes256,
    #[serde(rename = "AES_128")]
    Aes128,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyRequest {
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_spec: Option<KeySpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_bytes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_context: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<RecipientInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptRequest {
    #[serde(with = "b64")]
    pub ciphertext_blob: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_context: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<RecipientInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateRandomRequest {
    pub number_of_bytes: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<RecipientInfo>,
}

/// Response of GenerateDataKey. `plaintext` is wrapped so it is wiped when dropped.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyResponse {
    #[serde(with = "b64")]
    pub ciphertext_blob: Vec<u8>,
    pub key_id: String,
    #[serde(default, deserialize_with = "zeroizing_opt")]
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    #[serde(default, deserialize_with = "b64::opt::deserialize")]
    pub ciphertext_for_recipient: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptResponse {
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub encryption_algorithm: Option<String>,
    #[serde(default, deserialize_with = "zeroizing_opt")]
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    #[serde(default, deserialize_with = "b64::opt::deserialize")]
    pub ciphertext_for_recipient: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateRandomResponse {
    #[serde(default, deserialize_with = "zeroizing_opt")]
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    #[serde(default, deserialize_with = "b64::opt::deserialize")]
    pub ciphertext_for_recipient: Option<Vec<u8>>,
}

fn zeroizing_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Zeroizing<Vec<u8>>>, D::Error> {
    // The base64 text itself is also secret; wipe it after decoding.
    match Option::<String>::deserialize(d)?.map(Zeroizing::new) {
        Some(s) => STANDARD
            .decode(s.as_bytes())
            .map(|v| Some(Zeroizing::new(v)))
            .map_err(serde::de::Error::custom),
        None => Ok(None),
    }
}

/// Common view of the three responses for [`recipient_ciphertext`].
pub trait RecipientResponse {
    fn plaintext(&self) -> Option<&[u8]>;
    fn ciphertext_for_recipient(&self) -> Option<&[u8]>;
}

macro_rules! recipient_response {
    ($t:ty) => {
        impl RecipientResponse for $t {
            fn plaintext(&self) -> Option<&[u8]> {
                self.plaintext.as_deref().map(|v| v.as_slice())
            }
            fn ciphertext_for_recipient(&self) -> Option<&[u8]> {
                self.ciphertext_for_recipient.as_deref()
            }
        }
    };
}
recipient_response!(GenerateDataKeyResponse);
recipient_response!(DecryptResponse);
recipient_response!(GenerateRandomResponse);

/// For a call made with a `Recipient`: returns the CMS envelope and refuses a response that
/// also (or instead) carries `Plaintext`. Threat: an emulator or a relaying parent returning
/// the secret in the clear, which the parent could then read; the enclave must never use it.
pub fn recipient_ciphertext<R: RecipientResponse>(resp: &R) -> Result<&[u8], KmsApiError> {
    if resp.plaintext().is_some_and(|p| !p.is_empty()) {
        return Err(KmsApiError::UnexpectedPlaintext);
    }
    resp.ciphertext_for_recipient()
        .ok_or(KmsApiError::MissingCiphertextForRecipient)
}

/// The awsJson1_1 error body. KMS spells the message `message`; some tools use `Message`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct KmsErrorBody {
    #[serde(rename = "__type")]
    pub error_type: String,
    #[serde(default, alias = "Message")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsApiError {
    /// The body is larger than [`MAX_RESPONSE`].
    TooLarge,
    /// The body is not the JSON shape expected for this status.
    Malformed(String),
    /// KMS answered with an error (`code` is the part of `__type` after `#`).
    Service {
        status: u16,
        code: String,
        message: String,
    },
    /// A Recipient call got `Plaintext` back.
    UnexpectedPlaintext,
    /// A Recipient call got no `CiphertextForRecipient`.
    MissingCiphertextForRecipient,
}

impl fmt::Display for KmsApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KmsApiError::TooLarge => write!(f, "KMS response exceeds {MAX_RESPONSE} bytes"),
            KmsApiError::Malformed(e) => write!(f, "malformed KMS response: {e}"),
            KmsApiError::Service {
                status,
                code,
                message,
            } => write!(f, "KMS error {status} {code}: {message}"),
            KmsApiError::UnexpectedPlaintext => {
                write!(f, "KMS response carries Plaintext on a Recipient call")
            }
            KmsApiError::MissingCiphertextForRecipient => {
                write!(f, "KMS response lacks CiphertextForRecipient")
            }
        }
    }
}

impl std::error::Error for KmsApiError {}

/// Caps a string copied from the untrusted response into an error (threat: log flooding).
fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(256).collect()
}

/// Parses a KMS HTTP response: 200 gives `T`, anything else the KMS error shape.
pub fn parse_response<T: serde::de::DeserializeOwned>(
    status: u16,
    body: &[u8],
) -> Result<T, KmsApiError> {
    if body.len() > MAX_RESPONSE {
        return Err(KmsApiError::TooLarge);
    }
    if status == 200 {
        return serde_json::from_slice(body)
            .map_err(|e| KmsApiError::Malformed(clip(&e.to_string())));
    }
    let err: KmsErrorBody =
        serde_json::from_slice(body).map_err(|e| KmsApiError::Malformed(clip(&e.to_string())))?;
    let code = err.error_type.rsplit('#').next().unwrap_or_default();
    Err(KmsApiError::Service {
        status,
        code: clip(code),
        message: clip(err.message.as_deref().unwrap_or("")),
    })
}

/// The KMS endpoint host for a region.
pub fn host(region: &str) -> String {
    format!("kms.{region}.amazonaws.com")
}

/// Builds the signed `POST /` for a KMS call. `body_json` is the serialized request (for
/// instance `serde_json::to_vec(&GenerateDataKeyRequest{..})`).
///
/// Returns an error rather than a bare `Request` because the region, credentials and time are
/// validated before anything is signed: the region becomes part of the host name, so a region
/// such as `evil.example/x` must not produce a request at all (threat: request redirection).
pub fn request(
    target: Operation,
    body_json: Vec<u8>,
    region: &str,
    creds: &Credentials,
    time: SigningTime,
) -> Result<Request, SigV4Error> {
    let params = SigningParams::new(region, "kms", time);
    let mut req = Request {
        method: "POST".into(),
        path: "/".into(),
        query: Vec::new(),
        headers: vec![
            ("Host".into(), host(region)),
            ("Content-Type".into(), "application/x-amz-json-1.1".into()),
            ("X-Amz-Target".into(), target.target().into()),
        ],
        body: body_json,
    };
    sigv4::sign(&mut req, creds, &params)?;
    Ok(req)
}
