//! Configuration: listen address, region and keys with their key policies (JSON).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Largest config file read (it holds a few keys and credentials).
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Most keys / credentials per key a config may list.
pub const MAX_KEYS: usize = 64;

/// The whole server configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on (TLS). Default `127.0.0.1:8443`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// AWS region the server pretends to be (SigV4 scope, host name, ARNs).
    #[serde(default = "default_region")]
    pub region: String,
    /// Account id used in key ARNs. Default `111122223333`.
    #[serde(default = "default_account")]
    pub account_id: String,
    /// Directory holding `ca.pem` and `ca.key` (PKCS#8), such as the committed development CA
    /// `devkms/dev-ca`: the server certificate is then issued by that fixed CA, so clients can
    /// pin it ahead of time. Absent: a throw-away CA generated at start.
    #[serde(default)]
    pub tls_ca_dir: Option<std::path::PathBuf>,
    /// The keys.
    pub keys: Vec<KeyConfig>,
}

fn default_listen() -> String {
    "127.0.0.1:8443".into()
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_account() -> String {
    "111122223333".into()
}

/// One symmetric KMS key.
#[derive(Clone, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Key id (for example a UUID). The ARN is `arn:aws:kms:<region>:<account>:key/<key_id>`.
    #[zeroize(skip)]
    pub key_id: String,
    /// Extra names that resolve to this key (for example `alias/sigil`).
    #[serde(default)]
    #[zeroize(skip)]
    pub aliases: Vec<String>,
    /// 32-byte master key, hex. Generated at start when absent (blobs then die with the process).
    #[serde(default)]
    pub master_key_hex: Option<String>,
    /// Who may use the key and under which attestation conditions.
    #[zeroize(skip)]
    pub policy: KeyPolicy,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("key_id", &self.key_id)
            .field("aliases", &self.aliases)
            .field(
                "master_key_hex",
                &self.master_key_hex.as_ref().map(|_| "<redacted>"),
            )
            .field("policy", &self.policy)
            .finish()
    }
}

/// A key policy, modelled on a KMS key-policy statement with `kms:RecipientAttestation:*`
/// conditions (see the crate README for the mapping).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicy {
    /// The principals (SigV4 credentials) allowed to call Decrypt, GenerateDataKey and
    /// GenerateRandom with this key.
    pub allowed_credentials: Vec<CredentialConfig>,
    /// Refuse calls without a `Recipient` (the attestation condition is then "not met").
    #[serde(default = "yes")]
    pub require_recipient: bool,
    /// `kms:RecipientAttestation:PCR<n>`: PCR index -> hex value; all must match.
    #[serde(default)]
    pub allowed_pcrs: BTreeMap<u8, String>,
    /// `kms:RecipientAttestation:ImageSha384` (= PCR0), hex.
    #[serde(default)]
    pub allowed_image_sha384: Option<String>,
    /// Accept documents under the public sigil test root (simulated NSM). Never in production.
    #[serde(default)]
    pub trust_test_root: bool,
    /// Accept debug-mode documents (PCR0..2 zero).
    #[serde(default)]
    pub allow_debug: bool,
}

fn yes() -> bool {
    true
}

/// SigV4 credentials of one allowed principal.
#[derive(Clone, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    #[zeroize(skip)]
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for CredentialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// A configuration the development KMS refuses ([`crate::DevKms::new`]).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("region must match [a-z0-9-]{{1,64}}")]
    Region,
    #[error("account_id must be 12 digits")]
    AccountId,
    #[error("need 1..={MAX_KEYS} keys")]
    KeyCount,
    #[error("key_id {0:?} must be 1-64 of [A-Za-z0-9_-]")]
    KeyId(String),
    #[error("key name {0:?} is used twice")]
    DuplicateName(String),
    #[error("key {0}: bad master_key_hex")]
    MasterKeyHex(String),
    #[error("key {0}: master key must be 32 bytes")]
    MasterKeyLength(String),
    #[error("random master key")]
    Random,
    #[error("key {0}: need 1..=64 allowed_credentials")]
    CredentialCount(String),
    #[error(transparent)]
    SigningTime(sigil_kms::sigv4::SigV4Error),
    #[error("key {key}: credential {access_key_id}: {source}")]
    Credential {
        key: String,
        access_key_id: String,
        #[source]
        source: sigil_kms::sigv4::SigV4Error,
    },
    #[error("key {key}: PCR index {index} out of range")]
    PcrIndex { key: String, index: u8 },
    #[error("{what}: bad hex: {source}")]
    PcrHex {
        what: String,
        #[source]
        source: hex::FromHexError,
    },
    #[error("{what}: expected 48 bytes (SHA-384), got {len}")]
    PcrLength { what: String, len: usize },
    #[error("key {0}: allowed_image_sha384 and allowed_pcrs[0] differ (both are PCR0)")]
    ImageMismatch(String),
    #[error("config exceeds {MAX_CONFIG_BYTES} bytes")]
    TooLarge,
    #[error("config: {0}")]
    Json(#[source] serde_json::Error),
}

impl Config {
    /// Parses a JSON config.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge);
        }
        serde_json::from_slice(bytes).map_err(ConfigError::Json)
    }
}
