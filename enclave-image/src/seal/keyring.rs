//! The data key: made by KMS on the first boot, recovered from KMS on every later one.
//!
//! First boot: `GenerateDataKey` with a `Recipient` (a fresh RSA-2048 key bound into a fresh
//! attestation document). KMS checks the document against the key policy and answers with
//! the data key encrypted to that RSA key (`CiphertextForRecipient`, CMS) and with the data
//! key under the KMS key (`CiphertextBlob`). The enclave keeps the first in memory only and
//! stores the second in the parent's blob store as [`RECORD_NAME`]. Later boots: `Decrypt`
//! the stored `CiphertextBlob`, again with a `Recipient`.
//!
//! What the parent can do with the record:
//! - Read it: useless. Decrypting it needs the KMS key, and the key policy releases the
//!   plaintext only as `CiphertextForRecipient` to an enclave whose attestation matches.
//! - Delete it: the enclave would start a new, empty state (a rollback to nothing). When
//!   sealed blobs exist but the record is gone, the enclave refuses to make a new key
//!   instead ([`KeyringError::RecordMissing`]), so this needs the blobs deleted as well, and
//!   then it is the same denial of service as deleting everything.
//! - Replace it with another KMS ciphertext: if KMS decrypts it for us, every existing blob
//!   fails to open (denial of service). A ciphertext whose plaintext the parent knows (from
//!   `kms:Encrypt`) would make the enclave seal new state under a known key: the key policy
//!   must not grant `kms:Encrypt` to any principal the parent controls (the policy that
//!   `scripts/kms-key-policy` writes grants it to nobody).
//! - Point the record at another KMS key: refused ([`KeyringError::OtherKey`]); the measured
//!   configuration names the key.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sigil_kms::api::{
    DecryptRequest, GenerateDataKeyRequest, KeySpec, RecipientInfo, RecipientResponse,
    recipient_ciphertext,
};
use sigil_kms::client::{Connector, KmsClient, KmsError, Trust};
use sigil_kms::{Credentials, RecipientKey, SigningTime, cms};
use sigil_sys::Stream;

use super::format::DataKey;
use super::store::{BlobClient, StoreError};
use crate::boot::config::{FirstBoot, KmsConfig, KmsTrust};
use crate::nsm::{Mode, Nsm};
use crate::parent::credentials::CredentialsError;

/// Blob-store name of the data-key record (not sealed: it holds KMS ciphertext only).
pub const RECORD_NAME: &str = "kms/data-key";
/// The key epoch sealed blobs carry. A new data key (a future rotation) gets a new epoch.
pub const EPOCH: u32 = 1;
/// A record is a few hundred bytes of JSON.
const MAX_RECORD: usize = 16 * 1024;

/// The development KMS's CA (its private key is public by design).
const DEV_CA_PEM: &str = include_str!("../../../devkms/dev-ca/ca.pem");

/// What is stored under [`RECORD_NAME`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    v: u32,
    epoch: u32,
    /// The key id from the configuration when the data key was made.
    key_id: String,
    /// KMS's `CiphertextBlob`, base64.
    ciphertext_blob: String,
}

#[derive(Debug)]
pub enum KeyringError {
    /// Development trust on Nitro hardware: refused (see [`trust`]).
    DevelopmentTrustOnNitro,
    /// Sealed blobs exist but the data-key record does not.
    RecordMissing { blobs: usize },
    /// No state at all, and the measured configuration forbids starting one.
    FirstBootRefused,
    /// The record names another KMS key than the configuration.
    OtherKey { stored: String, configured: String },
    /// The record is malformed.
    BadRecord(String),
    /// The parent's credentials service failed.
    Credentials(String),
    /// The blob store failed.
    Store(StoreError),
    /// The attestation for the Recipient failed.
    Nsm(String),
    /// KMS refused or could not be reached.
    Kms(KmsError),
    /// KMS answered, but not with a usable data key.
    BadAnswer(String),
    /// The enclave's clock cannot date a SigV4 request.
    Clock(String),
    /// The node key could not be read or made (see `seal::node`).
    NodeKey(String),
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringError::DevelopmentTrustOnNitro => f.write_str(
                "kms.trust is \"development\" but this is Nitro hardware: the development CA's \
                 key is public, so the parent could impersonate KMS; refusing to seal",
            ),
            KeyringError::RecordMissing { blobs } => write!(
                f,
                "{blobs} sealed blob(s) exist but the data-key record {RECORD_NAME} is missing; \
                 refusing to start a new state over them (restore the record)"
            ),
            KeyringError::FirstBootRefused => write!(
                f,
                "the parent's store has no data-key record ({RECORD_NAME}) and the measured \
                 configuration (kms.first_boot = \"refuse\") forbids starting a new state: \
                 restore the state the parent lost or hid"
            ),
            KeyringError::OtherKey { stored, configured } => write!(
                f,
                "the stored data key was made with KMS key {stored:?}, but the configuration \
                 names {configured:?}"
            ),
            KeyringError::BadRecord(m) => write!(f, "data-key record {RECORD_NAME}: {m}"),
            KeyringError::Credentials(m) => write!(f, "credentials: {m}"),
            KeyringError::Store(e) => write!(f, "blob store: {e}"),
            KeyringError::Nsm(m) => write!(f, "attestation for KMS: {m}"),
            KeyringError::Kms(e) => write!(f, "KMS: {e}"),
            KeyringError::BadAnswer(m) => write!(f, "KMS answer: {m}"),
            KeyringError::Clock(m) => write!(f, "clock: {m}"),
            KeyringError::NodeKey(m) => write!(f, "node key: {m}"),
        }
    }
}

impl std::error::Error for KeyringError {}

impl KeyringError {
    /// A short, stable code for `/v1/health`, so monitoring can match on it; the text beside
    /// it is for people and may change.
    pub fn code(&self) -> &'static str {
        match self {
            KeyringError::DevelopmentTrustOnNitro => "development_trust_on_nitro",
            KeyringError::RecordMissing { .. } => "record_missing",
            KeyringError::FirstBootRefused => "first_boot_refused",
            KeyringError::OtherKey { .. } => "other_kms_key",
            KeyringError::BadRecord(_) => "bad_record",
            KeyringError::Credentials(_) => "credentials",
            KeyringError::Store(_) => "blob_store",
            KeyringError::Nsm(_) => "attestation",
            KeyringError::Kms(KmsError::Connect(_) | KmsError::Io(_)) => "kms_unreachable",
            KeyringError::Kms(KmsError::Tls(_)) => "kms_tls",
            KeyringError::Kms(KmsError::Http(_)) => "kms_bad_http",
            KeyringError::Kms(KmsError::Api(_)) => "kms_refused",
            KeyringError::Kms(KmsError::Sign(_)) => "kms_signing",
            KeyringError::BadAnswer(_) => "kms_bad_answer",
            KeyringError::Clock(_) => "clock",
            KeyringError::NodeKey(_) => "node_key",
        }
    }
}

impl From<StoreError> for KeyringError {
    fn from(e: StoreError) -> Self {
        KeyringError::Store(e)
    }
}

impl From<KmsError> for KeyringError {
    fn from(e: KmsError) -> Self {
        KeyringError::Kms(e)
    }
}

/// The TLS trust for KMS. Threat: with development trust the parent, which can run the
/// development KMS with its public CA key, would hand the enclave a data key it knows; so
/// development trust exists only where the attestation is simulated anyway.
pub fn trust(cfg: &KmsConfig, mode: Mode) -> Result<Trust, KeyringError> {
    match cfg.trust {
        KmsTrust::Amazon => Ok(Trust::AmazonRoots),
        KmsTrust::Development if mode == Mode::Nitro => Err(KeyringError::DevelopmentTrustOnNitro),
        KmsTrust::Development => Ok(Trust::Custom(vec![dev_ca_der()?])),
    }
}

fn dev_ca_der() -> Result<Vec<u8>, KeyringError> {
    let body: String = DEV_CA_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    B64.decode(body.trim())
        .map_err(|e| KeyringError::BadAnswer(format!("embedded development CA: {e}")))
}

/// Everything [`establish`] needs.
pub struct Keyring<'a, C: Connector> {
    pub config: &'a KmsConfig,
    pub nsm: &'a dyn Nsm,
    pub kms: KmsClient<C>,
    pub credentials: &'a dyn Fn() -> Result<Credentials, CredentialsError>,
}

/// How the data key was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// GenerateDataKey (first boot).
    Generated,
    /// Decrypt of the stored record (a later boot).
    Recovered,
    /// Unwrapped under the quorum root, rebuilt from the administrators' shares
    /// (`seal::quorum`).
    Quorum,
    /// Unwrapped under the quorum root that another enclave of this image forwarded.
    Forwarded,
}

impl<C: Connector> Keyring<'_, C> {
    /// Recovers the data key, or makes one on the first boot. Safe to retry after any error:
    /// a key generated but not stored is simply never used.
    pub fn establish(
        &self,
        blobs: &mut BlobClient<Stream>,
    ) -> Result<(DataKey, Origin), KeyringError> {
        // Two boots racing to create the record: the loser reads the winner's.
        for _ in 0..3 {
            match blobs.get(RECORD_NAME) {
                Ok((_, bytes)) => return Ok((self.recover(&bytes)?, Origin::Recovered)),
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            let (sealed, truncated) = blobs.list("seal/")?;
            if !sealed.is_empty() || truncated {
                return Err(KeyringError::RecordMissing {
                    blobs: sealed.len(),
                });
            }
            if self.config.first_boot == FirstBoot::Refuse {
                return Err(KeyringError::FirstBootRefused);
            }
            let (key, record) = self.generate()?;
            match blobs.put(RECORD_NAME, 0, &record) {
                Ok(_) => return Ok((key, Origin::Generated)),
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(KeyringError::Store(StoreError::Protocol(
            "the data-key record keeps changing under us".into(),
        )))
    }

    fn context(&self) -> Option<BTreeMap<String, String>> {
        (!self.config.encryption_context.is_empty()).then(|| self.config.encryption_context.clone())
    }

    /// A fresh RSA key and an attestation document carrying it. Each key decrypts exactly
    /// one KMS answer and is dropped with it (the RSA decryption is not constant time; one
    /// use per key leaves no oracle to query).
    fn recipient(&self) -> Result<(RecipientKey, RecipientInfo), KeyringError> {
        let key = RecipientKey::generate().map_err(|e| KeyringError::Nsm(e.to_string()))?;
        let doc = self
            .nsm
            .attest(Some(&key.spki_der()), None, None)
            .map_err(|e| KeyringError::Nsm(e.to_string()))?;
        Ok((key, RecipientInfo::new(doc)))
    }

    /// A fresh recipient key with its attestation, and the credentials for a call.
    fn recipient_and_credentials(
        &self,
    ) -> Result<(RecipientKey, RecipientInfo, Credentials), KeyringError> {
        let (key, recipient) = self.recipient()?;
        let creds = (self.credentials)().map_err(|e| KeyringError::Credentials(e.to_string()))?;
        Ok((key, recipient, creds))
    }

    fn generate(&self) -> Result<(DataKey, Vec<u8>), KeyringError> {
        let (rkey, recipient, creds) = self.recipient_and_credentials()?;
        let resp = self.kms.generate_data_key(
            &creds,
            signing_time()?,
            &GenerateDataKeyRequest {
                key_id: self.config.key_id.clone(),
                key_spec: Some(KeySpec::Aes256),
                number_of_bytes: None,
                encryption_context: self.context(),
                recipient: Some(recipient),
            },
        )?;
        let key = key_for_recipient(&resp, &rkey)?;
        let record = Record {
            v: 1,
            epoch: EPOCH,
            key_id: self.config.key_id.clone(),
            ciphertext_blob: B64.encode(&resp.ciphertext_blob),
        };
        let bytes = serde_json::to_vec(&record)
            .map_err(|e| KeyringError::BadRecord(format!("encoding: {e}")))?;
        Ok((key, bytes))
    }

    fn recover(&self, bytes: &[u8]) -> Result<DataKey, KeyringError> {
        if bytes.len() > MAX_RECORD {
            return Err(KeyringError::BadRecord(format!(
                "{} bytes; at most {MAX_RECORD}",
                bytes.len()
            )));
        }
        let record: Record =
            serde_json::from_slice(bytes).map_err(|e| KeyringError::BadRecord(e.to_string()))?;
        if record.v != 1 || record.epoch != EPOCH {
            return Err(KeyringError::BadRecord(format!(
                "format {} epoch {} (this build reads format 1 epoch {EPOCH})",
                record.v, record.epoch
            )));
        }
        if record.key_id != self.config.key_id {
            return Err(KeyringError::OtherKey {
                stored: record.key_id,
                configured: self.config.key_id.clone(),
            });
        }
        let blob = B64
            .decode(record.ciphertext_blob.as_bytes())
            .map_err(|e| KeyringError::BadRecord(format!("ciphertext_blob: {e}")))?;
        let (rkey, recipient, creds) = self.recipient_and_credentials()?;
        let resp = self.kms.decrypt(
            &creds,
            signing_time()?,
            &DecryptRequest {
                ciphertext_blob: blob,
                // Naming the key makes KMS refuse a ciphertext of any other key.
                key_id: Some(self.config.key_id.clone()),
                encryption_context: self.context(),
                recipient: Some(recipient),
            },
        )?;
        key_for_recipient(&resp, &rkey)
    }
}

/// The data key in the answer to a call made with a Recipient. Threat: a KMS (or impostor)
/// that also returns the plaintext in the clear. With a Recipient, KMS never does; an answer
/// that does is not trusted.
fn key_for_recipient<R: RecipientResponse>(
    resp: &R,
    key: &RecipientKey,
) -> Result<DataKey, KeyringError> {
    if resp.plaintext().is_some() {
        return Err(KeyringError::BadAnswer(
            "Plaintext present although a Recipient was given".into(),
        ));
    }
    let ct = recipient_ciphertext(resp).map_err(|e| KeyringError::BadAnswer(e.to_string()))?;
    let env = cms::parse(ct).map_err(|e| KeyringError::BadAnswer(format!("CMS: {e}")))?;
    let plain =
        cms::decrypt(&env, key).map_err(|e| KeyringError::BadAnswer(format!("CMS: {e}")))?;
    DataKey::from_slice(&plain).ok_or_else(|| {
        KeyringError::BadAnswer(format!("data key is {} bytes, not 32", plain.len()))
    })
}

fn signing_time() -> Result<SigningTime, KeyringError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    SigningTime::from_unix(now).map_err(|e| KeyringError::Clock(e.to_string()))
}
