//! The registry (`/v1/registry/...`): a sigil enclave that provisions other enclaves (sigil
//! images in other roles, or any Nitro application that can fetch an attestation document).
//!
//! - **Changes** (`registry/change`): the allow-list (measurements → application and role),
//!   application configurations (JSON templates) and secrets change only with the approvals
//!   of k of the quorum's current administrators ([`change_digest`], bound to the log head and
//!   to the enclave's boot), and every change is appended to a hash-chained log
//!   ([`entry_hash`]) whose head is in the registry's attestation `user_data` (key `log`).
//!   Secret values never enter the log, nor anything that would confirm a guess of one: a
//!   secret change is hashed with a random salt its approvers see and the log does not.
//! - **Registration** (`registry/challenge`, then `registry/register`): the instance sends a
//!   fresh attestation document carrying the challenge nonce and its X25519 public key; the
//!   registry verifies chain, freshness and nonce, maps its PCRs to an application and role,
//!   and answers [`Provision`] sealed to that key ([`provision_info`]): the application's
//!   resolved configuration (`{"$config": sha256}` is replaced by that stored configuration,
//!   `{"$secret": name}` by a secret the role may have), the role's secrets, and a TLS key
//!   with an X.509 certificate signed by the application's CA (held by the registry), naming
//!   the instance's attested key, for mutual TLS between instances.
//! - **Log** (`registry/log`): anyone can fetch it and check the chain against the head an
//!   attestation document carries (`sigil registry log --verify`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::quorum::Approval;
use crate::wire::{Base64Bytes, Hex, Hex32, SecretBase64, tagged_digest};

/// Most allow-list entries, applications, configurations, secrets and log entries.
pub const MAX_ALLOWED: usize = 64;
pub const MAX_APPS: usize = 16;
pub const MAX_SECRETS: usize = 64;
pub const MAX_LOG: usize = 1024;
/// Largest configuration template (JSON text) and secret value.
pub const MAX_CONFIG: usize = 16 * 1024;
pub const MAX_SECRET: usize = 4 * 1024;
/// Longest application, role or secret name.
pub const MAX_NAME: usize = 64;

/// One change of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// Instances whose PCRs match are of `app` in `role` (PCR1 and PCR2 always; PCR0 if
    /// given). An application's CA is made at the first change that names it.
    Allow {
        app: String,
        role: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pcr0: Option<Hex<48>>,
        pcr1: Hex<48>,
        pcr2: Hex<48>,
    },
    /// Removes the entry with these PCR1 and PCR2.
    Revoke { pcr1: Hex<48>, pcr2: Hex<48> },
    /// Sets the application's configuration template (JSON); it is stored by its SHA-256 and
    /// other templates may reference it as `{"$config": "<sha256>"}`.
    Config {
        app: String,
        template: serde_json::Value,
    },
    /// Stores a secret for the application, given to the roles named.
    Secret {
        app: String,
        name: String,
        roles: Vec<String>,
        value: SecretBase64,
        /// 32 random bytes chosen with the change: the hash the log keeps covers
        /// SHA-256(salt || value), so the log cannot confirm a guessed value.
        salt: Hex32,
    },
}

impl Change {
    /// What the log records of the change: a secret's value and salt are left out (its
    /// name and roles stay; the value is never copied into it), and a configuration by the
    /// SHA-256 of its template (`template_sha256`: the template itself is stored, by that
    /// hash, and a whole template per entry would grow the log without bound).
    pub fn logged(&self) -> serde_json::Value {
        match self {
            Change::Secret {
                app, name, roles, ..
            } => serde_json::json!({
                "kind": "secret", "app": app, "name": name, "roles": roles,
            }),
            Change::Config { app, template } => {
                let text = serde_json::to_vec(template).unwrap_or_default();
                serde_json::json!({
                    "kind": "config", "app": app,
                    "template_sha256": hex::encode(Sha256::digest(&text)),
                })
            }
            other => serde_json::to_value(other).unwrap_or_default(),
        }
    }

    /// The SHA-256 of the change as approved: its logged form, and for a secret
    /// SHA-256(salt || value), so an approval names the exact value while the hash (which the
    /// log keeps) confirms no guess of it.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&self.logged()).unwrap_or_default());
        if let Change::Secret { value, salt, .. } = self {
            let mut c = Sha256::new();
            c.update(salt.0);
            c.update(value.expose());
            h.update(c.finalize());
        }
        h.finalize().into()
    }
}

/// Checks a name: `[a-z0-9_-]`, 1..=[`MAX_NAME`].
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("{what} {name:?}: 1..={MAX_NAME} of [a-z0-9_-]"))
    }
}

/// What the administrators sign to approve `change` at log head `head`; bound to the
/// registry's per-boot key with `wire::owner_message`. Binding the head makes each approval
/// good for one change at one point of the log (a replayed change is refused).
pub fn change_digest(head: &[u8; 32], change: &Change) -> [u8; 32] {
    tagged_digest("sigil/registry-change/v1", [&head[..], &change.hash()[..]])
}

/// The log's first `prev`.
pub const GENESIS_HEAD: [u8; 32] = [0; 32];

/// One entry of the hash-chained log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    pub seq: u64,
    pub prev: Hex32,
    /// The change as [`Change::logged`] shows it.
    pub change: serde_json::Value,
    /// SHA-256 of the change as approved (with a secret's value).
    pub change_hash: Hex32,
    pub approvals: Vec<Approval>,
    /// The per-boot key the approvals were made for.
    pub boot_key: Hex32,
    /// [`entry_hash`] of this entry: the next entry's `prev`, the head after it.
    pub hash: Hex32,
}

/// The hash of an entry: its sequence number, the previous hash, the logged change, the
/// approved change's hash, the approvals and the boot key.
pub fn entry_hash(e: &LogEntry) -> [u8; 32] {
    let logged = serde_json::to_vec(&e.change).unwrap_or_default();
    let logged: [u8; 32] = Sha256::digest(&logged).into();
    let approvals = serde_json::to_vec(&e.approvals).unwrap_or_default();
    let approvals: [u8; 32] = Sha256::digest(&approvals).into();
    tagged_digest(
        "sigil/registry-log/v1",
        [
            &e.seq.to_be_bytes()[..],
            &e.prev.0[..],
            &logged[..],
            &e.change_hash.0[..],
            &approvals[..],
            &e.boot_key.0[..],
        ],
    )
}

/// Checks a log: sequence numbers from 0, each `prev` the hash before it, each `hash` its
/// [`entry_hash`]. Returns the head (the last hash, or [`GENESIS_HEAD`]).
pub fn verify_log(entries: &[LogEntry]) -> Result<[u8; 32], String> {
    let mut head = GENESIS_HEAD;
    for (i, e) in entries.iter().enumerate() {
        if e.seq != i as u64 {
            return Err(format!("entry {i} has sequence number {}", e.seq));
        }
        if e.prev.0 != head {
            return Err(format!("entry {i} does not follow entry {}", i as i64 - 1));
        }
        if entry_hash(e) != e.hash.0 {
            return Err(format!("entry {i} was altered: its hash does not match"));
        }
        head = e.hash.0;
    }
    Ok(head)
}

/// `POST /v1/registry/change`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    pub change: Change,
    /// The log head the approvals were made at.
    pub head: Hex32,
    pub approvals: Vec<Approval>,
}

/// Most entries one `registry/log` answer carries.
pub const MAX_LOG_PAGE: usize = 256;

/// `POST /v1/registry/log`: the entries from `from` on, at most [`MAX_LOG_PAGE`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRequest {
    #[serde(default)]
    pub from: u64,
}

/// A page of the log (`registry/log`), or the entry a change appended (`registry/change`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogView {
    pub head: Hex32,
    /// Entries in the whole log.
    pub total: u64,
    pub entries: Vec<LogEntry>,
}

/// `POST /v1/registry/challenge`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    /// Put this in the attestation document's `nonce`; single use.
    pub nonce: Hex32,
    pub expires_in_secs: u64,
}

/// `POST /v1/registry/register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The instance's fresh attestation document: the challenge nonce, its X25519 key.
    pub document: Base64Bytes,
}

/// The answer: [`Provision`] sealed to the instance's attested key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provisioned {
    pub app: String,
    pub role: String,
    /// The HPKE encapsulated key (auth mode: sealed by the registry's per-boot key).
    pub enc: Hex32,
    /// [`Provision`] as JSON, sealed with [`provision_info`].
    pub ciphertext: Base64Bytes,
}

/// The HPKE `info` of a provision (auth mode, from the registry's attested per-boot key to the
/// instance's): bound to the challenge nonce, so it answers that registration only.
pub fn provision_info(nonce: &[u8; 32]) -> Vec<u8> {
    let mut info = b"sigil registry provision v1".to_vec();
    info.push(0);
    info.extend_from_slice(nonce);
    info
}

/// What an instance receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provision {
    pub app: String,
    pub role: String,
    /// The application's configuration with every reference resolved.
    pub config: serde_json::Value,
    /// The secrets the role may have, by name.
    pub secrets: std::collections::BTreeMap<String, SecretBase64>,
    /// The instance's TLS key (PKCS#8 PEM), its certificate and the application's CA (PEM).
    pub tls_key_pem: String,
    pub tls_cert_pem: String,
    pub ca_cert_pem: String,
}

impl Drop for Provision {
    /// The TLS key is secret: wiped when the provision goes (the secrets wipe themselves).
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.tls_key_pem);
    }
}
