//! The registry: attestation-gated provisioning of other enclaves (see
//! `sigil_protocol::registry` for the protocol).
//!
//! State, all in the sealed store: the registry record (`config`/`registry`: the allow-list,
//! each application's CA, configuration and secret references, the change log),
//! content-addressed configuration templates (`config`/`registry-object-<sha256>`, checked
//! against their hash when read) and secret values under random names
//! (`config`/`registry-secret-<random>`). Threat: a secret named by its hash would let the
//! parent, which sees every blob name, confirm guesses of its value.
//!
//! Threats and where they are met:
//! - An instance that is not on the allow-list (another image, a debug enclave, a simulator
//!   outside tests): its document must verify to the AWS root (the sigil test root only where
//!   the measured `registry.trust_test_root` allows it, never on Nitro hardware), be fresh,
//!   carry a live single-use challenge of this registry (a replayed registration fails), and
//!   its PCR1 and PCR2 (and PCR0 if listed) must match an entry. Its provision is sealed to
//!   the key its document binds, so whoever relays the answer cannot read it.
//! - A change nobody approved (the parent, one rogue administrator): it needs k approvals of
//!   the quorum's current administrators over the change and the log head, for this boot.
//! - A rewritten history: every change is appended to a hash chain whose head every
//!   attestation document of the registry carries; a tampered or dropped entry breaks the
//!   chain a client checks against it.
//! - A secret leaking through the log: the log records a secret's name and roles, never its
//!   value; a role receives only the secrets it is given.

pub mod ca;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sigil_protocol::quorum::Approval;
use sigil_protocol::registry::{
    Change, GENESIS_HEAD, LogEntry, MAX_ALLOWED, MAX_APPS, MAX_CONFIG, MAX_LOG, MAX_SECRET,
    MAX_SECRETS, Provision, check_name, entry_hash,
};
use sigil_protocol::wire::{Hex, Hex32, SecretBase64};
use zeroize::Zeroizing;

use crate::seal::{Kind, SealedStore, SealedStoreError};

/// The sealed record's id.
const STATE_ID: &str = "registry";
/// Most registrations remembered (their challenges used, until they expire), and how long a
/// challenge lives.
const MAX_USED_CHALLENGES: usize = 65_536;
pub const CHALLENGE_SECS: u64 = 120;
/// How deep `$config` references may nest.
const MAX_DEPTH: usize = 4;

/// An allow-list entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowed {
    pub app: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcr0: Option<Hex<48>>,
    pub pcr1: Hex<48>,
    pub pcr2: Hex<48>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRef {
    /// The random id of the sealed blob holding the value.
    object: Hex<16>,
    roles: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct App {
    /// The CA's key (PKCS#8 PEM): the state is sealed, and wiped when dropped.
    ca_key_pem: SecretBase64,
    ca_cert_pem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<Hex32>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretRef>,
}

/// The sealed registry record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    allow: Vec<Allowed>,
    apps: BTreeMap<String, App>,
    /// Hashes of the stored configurations (what `$config` may name).
    configs: BTreeSet<Hex32>,
    log: Vec<LogEntry>,
}

impl State {
    pub fn head(&self) -> [u8; 32] {
        self.log.last().map_or(GENESIS_HEAD, |e| e.hash.0)
    }

    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }

    /// The application and role of an instance with these PCRs.
    pub fn lookup(&self, pcrs: &BTreeMap<u8, Vec<u8>>) -> Option<&Allowed> {
        let has = |i: u8, v: &Hex<48>| pcrs.get(&i).map(Vec::as_slice) == Some(&v.0[..]);
        self.allow.iter().find(|a| {
            has(1, &a.pcr1) && has(2, &a.pcr2) && a.pcr0.as_ref().is_none_or(|p| has(0, p))
        })
    }
}

/// Why a registry step failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    BadChange(String),
    /// The change was approved at another log head.
    #[error("{0}")]
    Stale(String),
    #[error("{0}")]
    Approvals(String),
    #[error("the instance's PCRs match no entry of the registry's allow-list")]
    NotAllowed,
    /// A table is full (registrations in the last minutes).
    #[error("{0}")]
    Busy(String),
    /// A registration's nonce is no live challenge.
    #[error("{0}")]
    Challenge(String),
    #[error(transparent)]
    Store(#[from] SealedStoreError),
    #[error("{0}")]
    Internal(String),
}

fn bad(m: impl Into<String>) -> RegistryError {
    RegistryError::BadChange(m.into())
}

fn object_id(hash: &[u8; 32]) -> String {
    format!("registry-object-{}", hex::encode(hash))
}

fn secret_id(object: &[u8; 16]) -> String {
    format!("registry-secret-{}", hex::encode(object))
}

/// Reads the registry record (an empty one before the first change).
pub fn load(store: &mut SealedStore<sigil_sys::Stream>) -> Result<State, RegistryError> {
    load_versioned(store).map(|(_, s)| s)
}

/// The record and the version it was read at (0: none yet).
fn load_versioned(
    store: &mut SealedStore<sigil_sys::Stream>,
) -> Result<(u64, State), RegistryError> {
    match store.get_sealed(Kind::Config, STATE_ID) {
        Ok((v, bytes)) => serde_json::from_slice(&bytes)
            .map(|s| (v, s))
            .map_err(|e| RegistryError::Internal(format!("the registry record: {e}"))),
        Err(SealedStoreError::Store(crate::seal::StoreError::NotFound)) => {
            Ok((0, State::default()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes the record over the version it was read at. Threat: two registry enclaves on one
/// store (a cluster) each applying a change to the state it read; the later write would drop
/// the earlier change (a revocation undone). The compare-and-swap makes the later one fail
/// with a conflict instead, to be approved again at the new head.
fn save(
    store: &mut SealedStore<sigil_sys::Stream>,
    version: u64,
    state: &State,
) -> Result<(), RegistryError> {
    let bytes = sigil_protocol::wire::to_json_secret(state)
        .map_err(|e| RegistryError::Internal(e.to_string()))?;
    match store.put_sealed_at(Kind::Config, STATE_ID, version, &bytes) {
        Ok(_) => Ok(()),
        Err(SealedStoreError::Store(crate::seal::StoreError::VersionConflict { .. })) => {
            Err(RegistryError::Stale(
                "another enclave changed the registry meanwhile: approve the change again at \
                 the new head"
                    .into(),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Stores `bytes` by their SHA-256 (idempotent) and returns the hash.
fn put_object(
    store: &mut SealedStore<sigil_sys::Stream>,
    bytes: &[u8],
) -> Result<[u8; 32], RegistryError> {
    let hash: [u8; 32] = Sha256::digest(bytes).into();
    match store.get_sealed(Kind::Config, &object_id(&hash)) {
        Ok(_) => {}
        Err(SealedStoreError::Store(crate::seal::StoreError::NotFound)) => {
            store.put_sealed(Kind::Config, &object_id(&hash), bytes)?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(hash)
}

/// Reads an object and checks it against its hash (the seal already binds its name; the hash
/// check makes the content-addressing hold even so).
fn get_object(
    store: &mut SealedStore<sigil_sys::Stream>,
    hash: &[u8; 32],
) -> Result<Zeroizing<Vec<u8>>, RegistryError> {
    let (_, bytes) = store.get_sealed(Kind::Config, &object_id(hash))?;
    if <[u8; 32]>::from(Sha256::digest(&bytes[..])) != *hash {
        return Err(RegistryError::Internal(format!(
            "object {} does not match its hash",
            hex::encode(hash)
        )));
    }
    Ok(bytes)
}

/// Applies an approved change and appends it to the log. Returns the new state.
pub fn apply(
    store: &mut SealedStore<sigil_sys::Stream>,
    change: &Change,
    approvals: &[Approval],
    boot_key: &[u8; 32],
    now: u64,
) -> Result<State, RegistryError> {
    let (version, mut state) = load_versioned(store)?;
    // A secret's value replaced by this change: its blob goes once the new state is saved.
    let mut replaced: Option<[u8; 16]> = None;
    if state.log.len() >= MAX_LOG {
        return Err(bad(format!("the log holds {MAX_LOG} entries, its limit")));
    }
    let ensure_app = |state: &mut State, app: &str| -> Result<(), RegistryError> {
        check_name("application", app).map_err(bad)?;
        if state.apps.contains_key(app) {
            return Ok(());
        }
        if state.apps.len() >= MAX_APPS {
            return Err(bad(format!("the registry holds {MAX_APPS} applications")));
        }
        let (key, cert) = ca::new_ca(app, now).map_err(RegistryError::Internal)?;
        state.apps.insert(
            app.to_string(),
            App {
                ca_key_pem: SecretBase64::copy_of(key.as_bytes()),
                ca_cert_pem: cert,
                config: None,
                secrets: BTreeMap::new(),
            },
        );
        Ok(())
    };
    match change {
        Change::Allow {
            app,
            role,
            pcr0,
            pcr1,
            pcr2,
        } => {
            check_name("role", role).map_err(bad)?;
            ensure_app(&mut state, app)?;
            state
                .allow
                .retain(|a| !(a.pcr1 == *pcr1 && a.pcr2 == *pcr2));
            if state.allow.len() >= MAX_ALLOWED {
                return Err(bad(format!("the allow-list holds {MAX_ALLOWED} entries")));
            }
            state.allow.push(Allowed {
                app: app.clone(),
                role: role.clone(),
                pcr0: *pcr0,
                pcr1: *pcr1,
                pcr2: *pcr2,
            });
        }
        Change::Revoke { pcr1, pcr2 } => {
            let before = state.allow.len();
            state
                .allow
                .retain(|a| !(a.pcr1 == *pcr1 && a.pcr2 == *pcr2));
            if state.allow.len() == before {
                return Err(bad("no allow-list entry has these PCR1 and PCR2"));
            }
        }
        Change::Config { app, template } => {
            ensure_app(&mut state, app)?;
            let text = serde_json::to_vec(template).map_err(|e| bad(e.to_string()))?;
            if text.len() > MAX_CONFIG {
                return Err(bad(format!(
                    "the template is {} bytes; at most {MAX_CONFIG}",
                    text.len()
                )));
            }
            check_references(&state, template, 0)?;
            let hash = put_object(store, &text)?;
            state.configs.insert(Hex(hash));
            if let Some(a) = state.apps.get_mut(app) {
                a.config = Some(Hex(hash));
            }
        }
        Change::Secret {
            app,
            name,
            roles,
            value,
            ..
        } => {
            check_name("secret", name).map_err(bad)?;
            for r in roles {
                check_name("role", r).map_err(bad)?;
            }
            if value.len() > MAX_SECRET {
                return Err(bad(format!("the secret is over {MAX_SECRET} bytes")));
            }
            ensure_app(&mut state, app)?;
            let count: usize = state.apps.values().map(|a| a.secrets.len()).sum();
            let exists = state
                .apps
                .get(app)
                .is_some_and(|a| a.secrets.contains_key(name));
            if count >= MAX_SECRETS && !exists {
                return Err(bad(format!("the registry holds {MAX_SECRETS} secrets")));
            }
            let mut object = [0u8; 16];
            getrandom::fill(&mut object)
                .map_err(|e| RegistryError::Internal(format!("randomness: {e}")))?;
            store.put_sealed_at(Kind::Config, &secret_id(&object), 0, value.expose())?;
            if let Some(a) = state.apps.get_mut(app)
                && let Some(old) = a.secrets.insert(
                    name.clone(),
                    SecretRef {
                        object: Hex(object),
                        roles: roles.clone(),
                    },
                )
            {
                replaced = Some(old.object.0);
            }
        }
    }
    let mut entry = LogEntry {
        seq: state.log.len() as u64,
        prev: Hex(state.head()),
        change: change.logged(),
        change_hash: Hex(change.hash()),
        approvals: approvals.to_vec(),
        boot_key: Hex(*boot_key),
        hash: Hex([0; 32]),
    };
    entry.hash = Hex(entry_hash(&entry));
    state.log.push(entry);
    save(store, version, &state)?;
    if let Some(old) = replaced {
        // Best effort: a leftover blob is unreachable and holds nothing the state names.
        let _ = store.delete_sealed(Kind::Config, &secret_id(&old));
    }
    Ok(state)
}

/// `$config` references must name stored configurations (checked when a template is set, so
/// a registration never meets a dangling one), nesting bounded.
fn check_references(
    state: &State,
    v: &serde_json::Value,
    depth: usize,
) -> Result<(), RegistryError> {
    if depth > 32 {
        return Err(bad("the template nests too deeply"));
    }
    match v {
        serde_json::Value::Object(o) => {
            if let (1, Some(r)) = (o.len(), o.get("$config")) {
                let hash = r
                    .as_str()
                    .and_then(|h| Hex32::parse(h).ok())
                    .ok_or_else(|| bad("$config takes a SHA-256 in hex"))?;
                if !state.configs.contains(&hash) {
                    return Err(bad(format!("$config {} is no stored configuration", r)));
                }
                return Ok(());
            }
            if let (1, Some(r)) = (o.len(), o.get("$secret")) {
                r.as_str()
                    .ok_or_else(|| bad("$secret takes a secret's name"))
                    .and_then(|n| check_name("secret", n).map_err(bad))?;
                return Ok(());
            }
            o.values()
                .try_for_each(|v| check_references(state, v, depth + 1))
        }
        serde_json::Value::Array(a) => a
            .iter()
            .try_for_each(|v| check_references(state, v, depth + 1)),
        _ => Ok(()),
    }
}

/// The provision of an instance of `allowed` whose attested key is `instance_key`.
pub fn provision(
    store: &mut SealedStore<sigil_sys::Stream>,
    state: &State,
    allowed: &Allowed,
    instance_key: &[u8; 32],
    now: u64,
) -> Result<Provision, RegistryError> {
    let app = state
        .apps
        .get(&allowed.app)
        .ok_or_else(|| RegistryError::Internal(format!("no application {:?}", allowed.app)))?;
    let mut secrets = BTreeMap::new();
    for (name, s) in &app.secrets {
        if s.roles.contains(&allowed.role) {
            let (_, value) = store.get_sealed(Kind::Config, &secret_id(&s.object.0))?;
            secrets.insert(name.clone(), SecretBase64::new(value));
        }
    }
    let config = match &app.config {
        Some(h) => {
            let text = get_object(store, &h.0)?;
            let template: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| RegistryError::Internal(format!("a stored template: {e}")))?;
            resolve(store, &template, &secrets, &allowed.role, 0)?
        }
        None => serde_json::Value::Null,
    };
    let key_pem = Zeroizing::new(
        String::from_utf8(app.ca_key_pem.expose().to_vec())
            .map_err(|_| RegistryError::Internal("the CA key is not PEM".into()))?,
    );
    let (tls_key_pem, tls_cert_pem) = ca::issue(
        &key_pem,
        &app.ca_cert_pem,
        &allowed.app,
        &allowed.role,
        instance_key,
        now,
    )
    .map_err(RegistryError::Internal)?;
    Ok(Provision {
        app: allowed.app.clone(),
        role: allowed.role.clone(),
        config,
        secrets,
        tls_key_pem: tls_key_pem.to_string(),
        tls_cert_pem,
        ca_cert_pem: app.ca_cert_pem.clone(),
    })
}

/// A template with `{"$config": hash}` replaced by that configuration (resolved in turn) and
/// `{"$secret": name}` by the secret's value (UTF-8 text, else base64), if the role has it.
fn resolve(
    store: &mut SealedStore<sigil_sys::Stream>,
    v: &serde_json::Value,
    secrets: &BTreeMap<String, SecretBase64>,
    role: &str,
    depth: usize,
) -> Result<serde_json::Value, RegistryError> {
    use base64::Engine as _;
    Ok(match v {
        serde_json::Value::Object(o) if o.len() == 1 && o.contains_key("$config") => {
            if depth >= MAX_DEPTH {
                return Err(bad(format!(
                    "$config references nest deeper than {MAX_DEPTH}"
                )));
            }
            let hash = o["$config"]
                .as_str()
                .and_then(|h| Hex32::parse(h).ok())
                .ok_or_else(|| bad("$config takes a SHA-256 in hex"))?;
            let text = get_object(store, &hash.0)?;
            let inner: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| RegistryError::Internal(format!("a stored template: {e}")))?;
            resolve(store, &inner, secrets, role, depth + 1)?
        }
        serde_json::Value::Object(o) if o.len() == 1 && o.contains_key("$secret") => {
            let name = o["$secret"].as_str().unwrap_or_default();
            let value = secrets.get(name).ok_or_else(|| {
                bad(format!(
                    "the configuration references secret {name:?}, which role {role:?} may not have"
                ))
            })?;
            match std::str::from_utf8(value.expose()) {
                Ok(t) => serde_json::Value::String(t.to_string()),
                Err(_) => serde_json::Value::String(
                    base64::engine::general_purpose::STANDARD.encode(value.expose()),
                ),
            }
        }
        serde_json::Value::Object(o) => {
            let mut out = serde_json::Map::new();
            for (k, v) in o {
                out.insert(k.clone(), resolve(store, v, secrets, role, depth)?);
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(
            a.iter()
                .map(|v| resolve(store, v, secrets, role, depth))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// The registry's in-memory part: the key of its challenges, the challenges used, and the log
/// head for attestation.
///
/// Challenges are stateless: `random (16) || expiry (8, big-endian seconds) || HMAC-SHA256
/// (per-boot key, both)[..8]`. Threat: anyone may ask for challenges, so a table of issued
/// ones could be filled to refuse every registration. Only the challenges actually used are
/// kept (until they expire), and using one takes a document that verifies to the trusted root.
pub struct Registry {
    mac: ring::hmac::Key,
    used: Mutex<BTreeMap<[u8; 32], u64>>,
    head: Mutex<Option<[u8; 32]>>,
}

impl Registry {
    pub fn new() -> Result<Registry, RegistryError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut key[..])
            .map_err(|e| RegistryError::Internal(format!("randomness: {e}")))?;
        Ok(Registry {
            mac: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key[..]),
            used: Mutex::new(BTreeMap::new()),
            head: Mutex::new(None),
        })
    }

    fn tag(&self, body: &[u8]) -> [u8; 8] {
        let t = ring::hmac::sign(&self.mac, body);
        let mut out = [0u8; 8];
        out.copy_from_slice(&t.as_ref()[..8]);
        out
    }

    /// A fresh challenge, valid [`CHALLENGE_SECS`].
    pub fn challenge(&self, now: u64) -> Result<[u8; 32], RegistryError> {
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce[..16])
            .map_err(|e| RegistryError::Internal(format!("randomness: {e}")))?;
        nonce[16..24].copy_from_slice(&(now + CHALLENGE_SECS).to_be_bytes());
        let tag = self.tag(&nonce[..24]);
        nonce[24..].copy_from_slice(&tag);
        Ok(nonce)
    }

    /// Uses a challenge: Ok if this registry issued it, it has not expired and it was not
    /// used before.
    pub fn consume(&self, nonce: &[u8], now: u64) -> Result<(), RegistryError> {
        let unknown = || {
            RegistryError::Challenge(
                "the document's nonce is no live challenge of this registry (unknown, used or \
                 expired: ask registry/challenge)"
                    .into(),
            )
        };
        let nonce: [u8; 32] = nonce.try_into().map_err(|_| unknown())?;
        // The truncated tag compared without an early exit (no timing oracle to forge one).
        let t = self.tag(&nonce[..24]);
        let mac_ok = t
            .iter()
            .zip(&nonce[24..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        let expiry = u64::from_be_bytes(nonce[16..24].try_into().unwrap_or_default());
        if !mac_ok || expiry <= now || expiry > now + CHALLENGE_SECS {
            return Err(unknown());
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.retain(|_, exp| *exp > now);
        if used.contains_key(&nonce) {
            return Err(unknown());
        }
        if used.len() >= MAX_USED_CHALLENGES {
            return Err(RegistryError::Busy(format!(
                "{MAX_USED_CHALLENGES} registrations in the last {CHALLENGE_SECS} s; retry shortly"
            )));
        }
        used.insert(nonce, expiry);
        Ok(())
    }

    pub fn head(&self) -> Option<[u8; 32]> {
        *self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_head(&self, head: [u8; 32]) {
        *self.head.lock().unwrap_or_else(|p| p.into_inner()) = Some(head);
    }
}
