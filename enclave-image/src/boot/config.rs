//! The deployment's configuration as PID 1 reads it: a file in the image's second ramdisk,
//! so it is measured into PCR2 (and PCR0). The parent can supply nothing that changes trust:
//! there is no other source of configuration in the enclave.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use sigil_protocol::ports;

use crate::api::owner::Admission;
use crate::boot::args::LimitFlags;
use crate::http::Limits;

/// Where the second ramdisk puts the configuration.
pub const PATH: &str = "/etc/sigil/enclave.json";
/// Larger files are refused before parsing.
pub const MAX_BYTES: u64 = 64 * 1024;

/// Why the measured configuration was refused; every message starts with the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes; the limit is {MAX_BYTES}")]
    TooLarge { path: String, size: u64 },
    /// Not JSON, an unknown field, a missing one or a wrong type.
    #[error("{src}: {source}")]
    Json {
        src: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{src}: {field} must be positive")]
    NotPositive { src: String, field: &'static str },
    #[error("{src}: {field} {value} exceeds {max}")]
    Exceeds {
        src: String,
        field: &'static str,
        value: u64,
        max: u64,
    },
    #[error("{src}: api_port {port} out of range")]
    ApiPort { src: String, port: u32 },
    #[error("{src}: prover.crs_sha256 must be 64 hex digits")]
    CrsSha256 { src: String },
    #[error("{src}: prover.bb_versions: {message}")]
    BbVersions { src: String, message: String },
    #[error("{src}: prover.{field} must be 1..={max}")]
    ProverRange {
        src: String,
        field: &'static str,
        max: u64,
    },
    #[error("{src}: kms.region {region:?} is not a region name like eu-west-1")]
    Region { src: String, region: String },
    #[error("{src}: kms.key_id must be 1..2048 characters")]
    KeyId { src: String },
    #[error("{src}: kms.encryption_context has more than 8 pairs")]
    EncryptionContext { src: String },
    #[error("{src}: owners.admit: {reason}")]
    Owners { src: String, reason: String },
    #[error("{src}: peers: {reason}")]
    Peers { src: String, reason: String },
    #[error("{src}: quorum: {reason}")]
    Quorum { src: String, reason: String },
    #[error("{src}: cors: {reason}")]
    Cors { src: String, reason: String },
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
// An unknown field is a typo or a newer format: refuse to boot rather than ignore it.
#[serde(deny_unknown_fields)]
pub struct MeasuredConfig {
    #[serde(default = "default_api_port")]
    pub api_port: u32,
    #[serde(default = "default_log_port")]
    pub log_port: u32,
    #[serde(default)]
    pub max_connections: Option<usize>,
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Request body bytes held at once across connections (default 64 MiB).
    #[serde(default)]
    pub max_body_bytes_in_flight: Option<usize>,
    #[serde(default)]
    pub request_timeout_secs: Option<u64>,
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// Sealed state through KMS. Absent: the enclave keeps no state across restarts.
    #[serde(default)]
    pub kms: Option<KmsConfig>,
    /// Delegated proving. Absent: no prover.
    #[serde(default)]
    pub prover: Option<ProverConfig>,
    /// Who may own vault entries, keys and aggregates. Absent: any key.
    #[serde(default, deserialize_with = "present")]
    pub owners: Option<OwnersConfig>,
    /// Which other enclaves this one accepts as peers. Absent: none.
    #[serde(default, deserialize_with = "present_peers")]
    pub peers: Option<PeersConfig>,
    /// A second root of the sealed state, split among administrators (see
    /// `seal::quorum`). Absent: KMS is the only root.
    #[serde(default, deserialize_with = "present_quorum")]
    pub quorum: Option<QuorumConfig>,
    /// This enclave provisions others (see `crate::registry`); needs a quorum, whose
    /// administrators approve every change. Absent: no registry.
    #[serde(default, deserialize_with = "present_registry")]
    pub registry: Option<RegistryConfig>,
    /// Which web origins' pages may read the API's answers in a browser (see
    /// `crate::http::cors`). Absent: none, and no CORS header is ever sent.
    #[serde(default, deserialize_with = "present_cors")]
    pub cors: Option<CorsConfig>,
}

fn present_cors<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<CorsConfig>, D::Error> {
    CorsConfig::deserialize(d).map(Some)
}

/// `{"origins": ["https://wallet.example", ...]}`: exact origins (scheme, host, port as
/// browsers send them), 1..=32 of them; no wildcard.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    pub origins: Vec<String>,
}

impl CorsConfig {
    /// The policy this section describes.
    pub fn policy(&self) -> Result<crate::http::cors::Cors, String> {
        if self.origins.is_empty() {
            return Err("origins is empty; leave the section out to allow none".into());
        }
        crate::http::cors::Cors::new(&self.origins)
    }
}

fn present_registry<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<RegistryConfig>, D::Error> {
    RegistryConfig::deserialize(d).map(Some)
}

/// `{"trust_test_root"?: bool, "max_age_secs"?: n}`: which instance documents the registry
/// accepts (the sigil test root only for local mode and the harness; refused on Nitro
/// hardware) and how old (default 300 s).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    #[serde(default)]
    pub trust_test_root: bool,
    #[serde(default)]
    pub max_age_secs: Option<u64>,
}

impl RegistryConfig {
    pub fn max_age(&self) -> u64 {
        self.max_age_secs.unwrap_or(300)
    }
}

fn present_quorum<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<QuorumConfig>, D::Error> {
    QuorumConfig::deserialize(d).map(Some)
}

/// `{"threshold": k, "admins": [{"name", "sign": x-only hex, "hpke": X25519 hex}, ...]}`:
/// the administrators of the quorum root, in share order (the first holds share 1).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QuorumConfig {
    pub threshold: u16,
    pub admins: Vec<sigil_protocol::quorum::Admin>,
}

impl QuorumConfig {
    fn check(&self, src: &str) -> Result<(), ConfigError> {
        let fail = |reason: String| ConfigError::Quorum {
            src: src.into(),
            reason,
        };
        sigil_protocol::quorum::check_admins(self.threshold, &self.admins).map_err(fail)?;
        for a in &self.admins {
            // A signing key off the curve could never approve anything: refuse it at boot.
            k256::schnorr::VerifyingKey::from_bytes(&a.sign.0).map_err(|_| {
                fail(format!(
                    "administrator {:?}: sign is not a BIP-340 public key",
                    a.name
                ))
            })?;
        }
        Ok(())
    }

    /// [`sigil_protocol::quorum::config_digest`] of this configuration.
    pub fn digest(&self) -> [u8; 32] {
        sigil_protocol::quorum::config_digest(self.threshold, &self.admins)
    }
}

fn present_peers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PeersConfig>, D::Error> {
    PeersConfig::deserialize(d).map(Some)
}

/// The most images a peer allow-list names.
pub const MAX_PEER_IMAGES: usize = 64;
/// The longest a peer's document may be trusted after it was made, seconds.
pub const MAX_PEER_AGE_SECS: u64 = 3600;

/// `{"images": ["self" | {"pcr1": hex, "pcr2": hex, "pcr0"?, "pcr3"?, "pcr4"?}, ...],
/// "max_age_secs"?: n (default 300), "trust_test_root"?: bool}`. PCR values are 48 bytes
/// (SHA-384), in hex.
///
/// `"self"` is this enclave's own image (its PCR0, PCR1 and PCR2, read from the NSM at boot):
/// enclaves of one image and configuration, the usual threshold group, cannot name each
/// other's PCR2 in the configuration that PCR2 measures (it would have to contain its own
/// hash).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeersConfig {
    pub images: Vec<PeerImageSpec>,
    #[serde(default)]
    pub max_age_secs: Option<u64>,
    /// Accept documents under the sigil test root (local mode and the harness only).
    #[serde(default)]
    pub trust_test_root: bool,
}

/// `"self"`, or an image named by its PCRs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerImageSpec {
    /// Only `"self"` is accepted (`parse` checks).
    Word(String),
    Pcrs(PeerImage),
}

// By hand rather than `untagged`: an object with a mistake is reported as the object's own
// error (a missing or unknown field), not as "no variant matched".
impl<'de> Deserialize<'de> for PeerImageSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(w) => Ok(PeerImageSpec::Word(w)),
            v => PeerImage::deserialize(v)
                .map(PeerImageSpec::Pcrs)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// One allowed image: PCR1 (kernel and ramdisk 1: the code) and PCR2 (ramdisk 2: the
/// configuration) always; PCR0 (the whole image), PCR3 (the parent's IAM role) and PCR4 (the
/// parent instance) when a deployment pins them.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerImage {
    #[serde(default)]
    pub pcr0: Option<String>,
    pub pcr1: String,
    pub pcr2: String,
    #[serde(default)]
    pub pcr3: Option<String>,
    #[serde(default)]
    pub pcr4: Option<String>,
}

impl PeersConfig {
    fn check(&self, src: &str) -> Result<(), ConfigError> {
        let bad = |reason: String| ConfigError::Peers {
            src: src.into(),
            reason,
        };
        if self.images.is_empty() || self.images.len() > MAX_PEER_IMAGES {
            return Err(bad(format!(
                "images lists {}; it takes 1..={MAX_PEER_IMAGES}",
                self.images.len()
            )));
        }
        if let Some(a) = self.max_age_secs
            && (a == 0 || a > MAX_PEER_AGE_SECS)
        {
            return Err(bad(format!("max_age_secs must be 1..={MAX_PEER_AGE_SECS}")));
        }
        for (i, spec) in self.images.iter().enumerate() {
            let image = match spec {
                PeerImageSpec::Word(w) if w == "self" => continue,
                PeerImageSpec::Word(w) => {
                    return Err(bad(format!(
                        "images[{i}] is {w:?}: an entry is \"self\" or an object of PCRs"
                    )));
                }
                PeerImageSpec::Pcrs(image) => image,
            };
            for (name, value) in image.pcrs() {
                if value.len() != 96 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(format!(
                        "images[{i}].pcr{name} must be 96 hex digits (48 bytes)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Each image as PCR index -> value (checked by `parse`); `"self"` is `own`'s PCR0, PCR1
    /// and PCR2.
    pub fn pcr_sets(&self, own: &BTreeMap<u8, Vec<u8>>) -> Vec<BTreeMap<u8, Vec<u8>>> {
        self.images
            .iter()
            .map(|spec| match spec {
                PeerImageSpec::Pcrs(image) => image
                    .pcrs()
                    .into_iter()
                    .map(|(i, v)| (i, hex::decode(v).unwrap_or_default()))
                    .collect(),
                // `parse` let no other word through.
                PeerImageSpec::Word(_) => (0u8..3)
                    .filter_map(|i| own.get(&i).map(|v| (i, v.clone())))
                    .collect(),
            })
            .collect()
    }

    /// Whether an entry is `"self"` (so the enclave's own PCRs are needed).
    pub fn names_self(&self) -> bool {
        self.images
            .iter()
            .any(|s| matches!(s, PeerImageSpec::Word(_)))
    }

    pub fn max_age(&self) -> u64 {
        self.max_age_secs.unwrap_or(300)
    }
}

impl PeerImage {
    fn pcrs(&self) -> Vec<(u8, &str)> {
        let mut v = vec![(1, self.pcr1.as_str()), (2, self.pcr2.as_str())];
        for (i, p) in [(0, &self.pcr0), (3, &self.pcr3), (4, &self.pcr4)] {
            if let Some(p) = p {
                v.push((i, p.as_str()));
            }
        }
        v.sort();
        v
    }
}

/// A section that is there must be an object: `null` could be read as "nobody" but would
/// mean "any key" (absent), so it is refused.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<OwnersConfig>, D::Error> {
    OwnersConfig::deserialize(d).map(Some)
}

/// The most owner keys an allow-list names (the whole file is at most 64 KiB anyway).
pub const MAX_ADMITTED_OWNERS: usize = 512;

/// `{"admit": "any"}` or `{"admit": ["<64 hex digits: an x-only key>", ...]}`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OwnersConfig {
    pub admit: AdmitSpec,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum AdmitSpec {
    /// Only `"any"` is accepted.
    Word(String),
    Keys(Vec<String>),
}

impl OwnersConfig {
    /// The admission this section describes; every key must be a valid x-only key, once.
    pub fn admission(&self, src: &str) -> Result<Admission, ConfigError> {
        let bad = |reason: String| ConfigError::Owners {
            src: src.into(),
            reason,
        };
        let keys = match &self.admit {
            AdmitSpec::Word(w) if w == "any" => return Ok(Admission::Any),
            AdmitSpec::Word(w) => {
                return Err(bad(format!("{w:?} is neither \"any\" nor a list of keys")));
            }
            AdmitSpec::Keys(keys) => keys,
        };
        if keys.is_empty() || keys.len() > MAX_ADMITTED_OWNERS {
            return Err(bad(format!(
                "lists {} keys; it takes 1..={MAX_ADMITTED_OWNERS} (or \"any\")",
                keys.len()
            )));
        }
        let mut set = BTreeSet::new();
        for (i, k) in keys.iter().enumerate() {
            let mut key = [0u8; 32];
            let parsed = hex::decode_to_slice(k, &mut key).is_ok()
                && k256::schnorr::VerifyingKey::from_bytes(&key).is_ok();
            if !parsed {
                return Err(bad(format!(
                    "entry {i} is not an x-only secp256k1 key in 64 hex digits"
                )));
            }
            if !set.insert(key) {
                return Err(bad(format!("entry {i} repeats an earlier key")));
            }
        }
        Ok(Admission::Only(set))
    }
}

/// The prover's pinned inputs.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProverConfig {
    /// SHA-256 (hex) of the first `crs_points` points of `bn254_g1.dat`.
    pub crs_sha256: String,
    /// How many 64-byte points the enclave loads (a circuit of n gates needs about n + 1).
    pub crs_points: u64,
    /// The `bb` binary (in the image: `/usr/lib/sigil/bb`).
    #[serde(default = "default_bb_path")]
    pub bb_path: String,
    /// Jobs proved at once (default 1).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Jobs waiting at most (default 8).
    #[serde(default)]
    pub max_queue: Option<usize>,
    /// Longest one job may run, seconds (default 600).
    #[serde(default)]
    pub time_limit_secs: Option<u64>,
    /// Address-space limit of bb, MiB (default 8192).
    #[serde(default)]
    pub memory_limit_mib: Option<u64>,
    /// SHA-256 (hex) the `bb_path` binary must have; a different one stops the prover at
    /// start. Absent: not pinned here (the image's PCRs still measure it).
    #[serde(default)]
    pub bb_sha256: Option<String>,
    /// SHA-256 (hex) the file list of the `bb_path` binary's runtime must have (see
    /// [`BbVersionConfig::runtime_sha256`]). Required when that directory holds a runtime
    /// (`ld-linux-x86-64.so.2`): the prover does not start with an unpinned one.
    #[serde(default)]
    pub bb_runtime_sha256: Option<String>,
    /// The name requests use for the `bb_path` binary, the default version (e.g. "5.0.0");
    /// absent: what its `bb --version` prints, up to the first `-`.
    #[serde(default)]
    pub bb_version: Option<String>,
    /// What the `bb_path` binary's `bb --version` prints. With it, a name and the binary's
    /// pins (and those of every further version), the prover is checked after the service is
    /// ready instead of before ([`crate::prover::start`]).
    #[serde(default)]
    pub bb_version_output: Option<String>,
    /// Further bb versions the image serves, chosen per request by name.
    #[serde(default)]
    pub bb_versions: Vec<BbVersionConfig>,
}

/// One more bb version. A bb whose directory holds `ld-linux-x86-64.so.2` brings its own
/// C/C++ runtime (every `*.so*` file of that directory) and is started through that loader.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BbVersionConfig {
    /// The name requests use (`bb_version`), e.g. "4.1.2".
    pub version: String,
    /// The binary (in the image: `/usr/lib/sigil/bb-<version>/bb`).
    pub path: String,
    /// SHA-256 (hex) the binary must have; a different one stops the prover at start.
    pub sha256: String,
    /// SHA-256 (hex) its runtime's file list must have (see `sigil_protocol::user_data`).
    /// Required when the binary's directory holds a runtime: the prover does not start with
    /// an unpinned one.
    #[serde(default)]
    pub runtime_sha256: Option<String>,
    /// What its `bb --version` prints (see [`ProverConfig::bb_version_output`]).
    #[serde(default)]
    pub version_output: Option<String>,
}

/// Most bb versions one image serves (the attestation's user_data lists them all).
pub const MAX_BB_VERSIONS: usize = sigil_protocol::user_data::MAX_BB_SERVED;

fn default_bb_path() -> String {
    "/usr/lib/sigil/bb".into()
}

/// The largest CRS the enclave loads: 2^24 points, 1 GiB (it lives in memory).
pub const MAX_CRS_POINTS: u64 = 1 << 24;

impl ProverConfig {
    fn check(&self, src: &str) -> Result<(), ConfigError> {
        if self.crs_sha256.len() != 64 || !self.crs_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ConfigError::CrsSha256 { src: src.into() });
        }
        let bounded = |field: &'static str, v: Option<u64>, max: u64| match v {
            Some(n) if n == 0 || n > max => Err(ConfigError::ProverRange {
                src: src.into(),
                field,
                max,
            }),
            _ => Ok(()),
        };
        bounded("workers", self.workers.map(|v| v as u64), 16)?;
        bounded("max_queue", self.max_queue.map(|v| v as u64), 1024)?;
        bounded("time_limit_secs", self.time_limit_secs, 24 * 3600)?;
        bounded("memory_limit_mib", self.memory_limit_mib, 1 << 20)?;
        if self.crs_points == 0 || self.crs_points > MAX_CRS_POINTS {
            return Err(ConfigError::ProverRange {
                src: src.into(),
                field: "crs_points",
                max: MAX_CRS_POINTS,
            });
        }
        self.check_bb_versions(src)
    }

    fn check_bb_versions(&self, src: &str) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::BbVersions {
            src: src.into(),
            message,
        };
        if self.bb_versions.len() + 1 > MAX_BB_VERSIONS {
            return Err(bad(format!("at most {MAX_BB_VERSIONS} versions in all")));
        }
        let names = self
            .bb_version
            .iter()
            .chain(self.bb_versions.iter().map(|v| &v.version));
        let mut seen = std::collections::BTreeSet::new();
        for name in names {
            if !valid_bb_name(name) {
                return Err(bad(format!(
                    "{name:?} is not a version name (1 to 64 of A-Z a-z 0-9 . - _ +)"
                )));
            }
            if !seen.insert(name) {
                return Err(bad(format!("{name:?} is named twice")));
            }
        }
        let is_hex = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        for (field, h) in [
            ("bb_sha256", &self.bb_sha256),
            ("bb_runtime_sha256", &self.bb_runtime_sha256),
        ] {
            if let Some(h) = h
                && !is_hex(h)
            {
                return Err(bad(format!("{field} is not 64 hex digits")));
            }
        }
        let outputs = std::iter::once(("bb_version_output", &self.bb_version_output)).chain(
            self.bb_versions
                .iter()
                .map(|v| ("version_output", &v.version_output)),
        );
        for (field, out) in outputs {
            // Attested as user_data text, like what an unpinned bb prints (cut to this length).
            if let Some(o) = out
                && (o.is_empty()
                    || o.len() > sigil_protocol::user_data::MAX_STRING_LEN
                    || o.trim() != o
                    || o.chars().any(char::is_control))
            {
                return Err(bad(format!(
                    "{field} {o:?} is not a --version line (1 to {} characters, trimmed, no \
                     control characters)",
                    sigil_protocol::user_data::MAX_STRING_LEN
                )));
            }
        }
        for v in &self.bb_versions {
            let pins = [Some(&v.sha256), v.runtime_sha256.as_ref()];
            for (field, h) in ["sha256", "runtime_sha256"].into_iter().zip(pins) {
                if let Some(h) = h
                    && !is_hex(h)
                {
                    return Err(bad(format!("{}: {field} is not 64 hex digits", v.version)));
                }
            }
        }
        crate::boot::check_user_data_room(self.worst_case_served()).map_err(bad)
    }

    /// The largest `bbs` list this configuration can put in user_data, as far as it says:
    /// its names (an unnamed default as long as a name may be), a runtime for every version,
    /// each `--version` string as long as its name. The prover checks again with the strings
    /// its binaries print ([`crate::prover::start`]).
    fn worst_case_served(&self) -> Vec<sigil_protocol::user_data::ServedBb> {
        let longest = "x".repeat(sigil_protocol::user_data::MAX_STRING_LEN);
        let default = self.bb_version.clone().unwrap_or(longest);
        std::iter::once(default)
            .chain(self.bb_versions.iter().map(|v| v.version.clone()))
            .map(|name| sigil_protocol::user_data::ServedBb {
                version: name.clone(),
                name,
                sha256: "f".repeat(64),
                runtime: Some("f".repeat(64)),
            })
            .collect()
    }
}

/// A name a request may give as `bb_version`.
pub fn valid_bb_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_+".contains(&b))
}

/// Which KMS key seals the enclave's state. Measured, so the parent cannot point the enclave
/// at a key (or a KMS) of its choosing.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KmsConfig {
    /// AWS region, e.g. `eu-west-1`; the endpoint is `kms.<region>.amazonaws.com:443`.
    pub region: String,
    /// The key's ARN (or id / alias) that GenerateDataKey uses.
    pub key_id: String,
    /// Bound to the data key by KMS: Decrypt fails unless the same context is given.
    #[serde(default)]
    pub encryption_context: BTreeMap<String, String>,
    /// Whose certificates the TLS connection to KMS accepts.
    #[serde(default)]
    pub trust: KmsTrust,
    /// Whether this image may start a new state when the parent's store has none.
    #[serde(default)]
    pub first_boot: FirstBoot,
}

/// What an enclave that finds no data-key record does. Threat: "first boot" is otherwise the
/// parent's word (an empty store), so a parent could hide the state, have the enclave mint a
/// new data key, and run two divergent states (one per store) of the same image. Measured, so
/// only the image's builder decides: deployments run genesis with an image that may generate,
/// then serve with one that refuses (a new image, so a KMS key policy that names it).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FirstBoot {
    /// Make a new data key (and so a new, empty state).
    #[default]
    Generate,
    /// Refuse: only the existing state may be recovered.
    Refuse,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KmsTrust {
    /// The Amazon Trust Services roots (real KMS).
    #[default]
    Amazon,
    /// The committed development CA of `sigil-devkms`, whose key is public: accepted only in
    /// the harness and local mode, never on Nitro hardware (see `sealing`).
    Development,
}

impl KmsConfig {
    fn check(&self, src: &str) -> Result<(), ConfigError> {
        let region_ok = !self.region.is_empty()
            && self.region.len() <= 32
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        // The region becomes part of a host name (threat: a crafted region redirecting TLS).
        if !region_ok {
            return Err(ConfigError::Region {
                src: src.into(),
                region: self.region.clone(),
            });
        }
        if self.key_id.is_empty() || self.key_id.len() > 2048 {
            return Err(ConfigError::KeyId { src: src.into() });
        }
        if self.encryption_context.len() > 8 {
            return Err(ConfigError::EncryptionContext { src: src.into() });
        }
        Ok(())
    }
}

fn default_api_port() -> u32 {
    ports::API
}

fn default_log_port() -> u32 {
    ports::LOGS
}

impl Default for MeasuredConfig {
    fn default() -> Self {
        MeasuredConfig {
            api_port: ports::API,
            log_port: ports::LOGS,
            max_connections: None,
            max_body_bytes: None,
            max_body_bytes_in_flight: None,
            request_timeout_secs: None,
            idle_timeout_secs: None,
            kms: None,
            prover: None,
            owners: None,
            peers: None,
            quorum: None,
            registry: None,
            cors: None,
        }
    }
}

impl MeasuredConfig {
    pub fn parse(text: &[u8]) -> Result<MeasuredConfig, ConfigError> {
        Self::parse_from(text, PATH)
    }

    /// Parses `text`, naming `src` in errors.
    pub fn parse_from(text: &[u8], src: &str) -> Result<MeasuredConfig, ConfigError> {
        let c: MeasuredConfig =
            serde_json::from_slice(text).map_err(|source| ConfigError::Json {
                src: src.into(),
                source,
            })?;
        let check = |field: &'static str, v: Option<u64>, max: u64| match v {
            Some(0) => Err(ConfigError::NotPositive {
                src: src.into(),
                field,
            }),
            Some(value) if value > max => Err(ConfigError::Exceeds {
                src: src.into(),
                field,
                value,
                max,
            }),
            _ => Ok(()),
        };
        check("max_connections", c.max_connections.map(|v| v as u64), 4096)?;
        check(
            "max_body_bytes",
            c.max_body_bytes.map(|v| v as u64),
            64 << 20,
        )?;
        check(
            "max_body_bytes_in_flight",
            c.max_body_bytes_in_flight.map(|v| v as u64),
            1 << 30,
        )?;
        check("request_timeout_secs", c.request_timeout_secs, 3600)?;
        check("idle_timeout_secs", c.idle_timeout_secs, 3600)?;
        if c.api_port == 0 || c.api_port > u16::MAX as u32 {
            return Err(ConfigError::ApiPort {
                src: src.into(),
                port: c.api_port,
            });
        }
        if let Some(k) = &c.kms {
            k.check(src)?;
        }
        if let Some(p) = &c.prover {
            p.check(src)?;
        }
        if let Some(o) = &c.owners {
            o.admission(src)?;
        }
        if let Some(p) = &c.peers {
            p.check(src)?;
        }
        if let Some(q) = &c.quorum {
            q.check(src)?;
        }
        if let Some(cors) = &c.cors {
            cors.policy().map_err(|reason| ConfigError::Cors {
                src: src.into(),
                reason,
            })?;
        }
        if let Some(r) = &c.registry {
            if c.quorum.is_none() {
                return Err(ConfigError::Quorum {
                    src: src.into(),
                    reason: "a registry section needs a quorum section: its administrators \
                             approve every change"
                        .into(),
                });
            }
            if r.max_age_secs == Some(0) || r.max_age() > MAX_PEER_AGE_SECS {
                return Err(ConfigError::Quorum {
                    src: src.into(),
                    reason: format!("registry.max_age_secs must be 1..={MAX_PEER_AGE_SECS}"),
                });
            }
        }
        Ok(c)
    }

    /// The file if the image has one, else the defaults.
    pub fn load() -> Result<MeasuredConfig, ConfigError> {
        Self::load_from(PATH)
    }

    /// `path` if it exists, else the defaults. Larger files than [`MAX_BYTES`] are refused.
    pub fn load_from(path: &str) -> Result<MeasuredConfig, ConfigError> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(MeasuredConfig::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                });
            }
        };
        if meta.len() > MAX_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.into(),
                size: meta.len(),
            });
        }
        let text = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        MeasuredConfig::parse_from(&text, path)
    }

    /// Whose keys may own things here (checked by `parse`).
    pub fn admission(&self) -> Admission {
        match &self.owners {
            // `parse_from` refused a section that does not convert.
            Some(o) => o
                .admission(PATH)
                .unwrap_or(Admission::Only(BTreeSet::new())),
            None => Admission::Any,
        }
    }

    /// The default limits with the ones this file sets.
    pub fn limits(&self) -> Limits {
        LimitFlags {
            max_connections: self.max_connections,
            max_body_bytes: self.max_body_bytes,
            max_body_bytes_in_flight: self.max_body_bytes_in_flight,
            request_timeout: self.request_timeout_secs.map(Duration::from_secs),
            idle_timeout: self.idle_timeout_secs.map(Duration::from_secs),
        }
        .apply(Limits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = MeasuredConfig::parse(b"{}").unwrap();
        assert_eq!(c, MeasuredConfig::default());
        let c =
            MeasuredConfig::parse(br#"{"max_connections": 8, "request_timeout_secs": 5}"#).unwrap();
        assert_eq!(c.limits().max_connections, 8);
        assert_eq!(c.limits().request_timeout, Duration::from_secs(5));
        let c = MeasuredConfig::parse(
            br#"{"kms": {"region": "eu-west-1", "key_id": "alias/sigil", "trust": "development",
                "encryption_context": {"app": "sigil"}}}"#,
        )
        .unwrap();
        let k = c.kms.unwrap();
        assert_eq!(k.trust, KmsTrust::Development);
        assert_eq!(k.encryption_context["app"], "sigil");
        let c = MeasuredConfig::parse(br#"{"kms": {"region": "eu-west-1", "key_id": "k"}}"#);
        assert_eq!(c.unwrap().kms.unwrap().trust, KmsTrust::Amazon);
    }

    #[test]
    fn cors_origins() {
        assert_eq!(MeasuredConfig::parse(b"{}").unwrap().cors, None);
        let c = MeasuredConfig::parse(
            br#"{"cors": {"origins": ["https://wallet.example", "http://127.0.0.1:8080"]}}"#,
        )
        .unwrap();
        let policy = c.cors.unwrap().policy().unwrap();
        assert_eq!(
            policy.origins().collect::<Vec<_>>(),
            ["http://127.0.0.1:8080", "https://wallet.example"]
        );
    }

    #[test]
    fn owner_admission() {
        assert_eq!(
            MeasuredConfig::parse(b"{}").unwrap().admission(),
            Admission::Any
        );
        let c = MeasuredConfig::parse(br#"{"owners": {"admit": "any"}}"#).unwrap();
        assert_eq!(c.admission(), Admission::Any);
        // The generator point's x coordinate: a valid x-only key.
        let g = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
        let text = format!(r#"{{"owners": {{"admit": ["{g}"]}}}}"#);
        let c = MeasuredConfig::parse(text.as_bytes()).unwrap();
        let mut key = [0u8; 32];
        hex::decode_to_slice(g, &mut key).unwrap();
        assert_eq!(c.admission(), Admission::Only(BTreeSet::from([key])));
        let twice = format!(r#"{{"owners": {{"admit": ["{g}", "{g}"]}}}}"#);
        let e = MeasuredConfig::parse(twice.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("entry 1 repeats"), "{e}");
    }

    fn prover_with(extra: &str) -> Result<MeasuredConfig, ConfigError> {
        let zero = "0".repeat(64);
        let text = format!(r#"{{"prover": {{"crs_sha256": "{zero}", "crs_points": 1{extra}}}}}"#);
        MeasuredConfig::parse(text.as_bytes())
    }

    fn version_entry(name: &str, runtime: bool) -> String {
        let pin = "a".repeat(64);
        let runtime = if runtime {
            format!(r#", "runtime_sha256": "{pin}""#)
        } else {
            String::new()
        };
        format!(r#"{{"version": "{name}", "path": "/b/{name}/bb", "sha256": "{pin}"{runtime}}}"#)
    }

    #[test]
    fn every_further_bb_version_is_pinned() {
        let pin = "a".repeat(64);
        let entry = version_entry("4.1.2", true);
        let c = prover_with(&format!(
            r#", "bb_sha256": "{pin}", "bb_versions": [{entry}]"#
        ))
        .unwrap();
        let p = c.prover.unwrap();
        assert_eq!(p.bb_sha256.as_deref(), Some(pin.as_str()));
        assert_eq!(p.bb_versions[0].sha256, pin);
        assert_eq!(p.bb_runtime_sha256, None);
        let c = prover_with(&format!(r#", "bb_runtime_sha256": "{pin}""#)).unwrap();
        assert_eq!(c.prover.unwrap().bb_runtime_sha256, Some(pin.clone()));
        for (extra, why) in [
            (
                r#", "bb_versions": [{"version": "4.1.2", "path": "/b/bb"}]"#.to_string(),
                "missing field `sha256`",
            ),
            (
                r#", "bb_versions": [{"version": "4.1.2", "path": "/b/bb", "sha256": "ab"}]"#
                    .to_string(),
                "4.1.2: sha256 is not 64 hex",
            ),
            (
                r#", "bb_sha256": "xyz""#.to_string(),
                "bb_sha256 is not 64 hex",
            ),
            (
                r#", "bb_runtime_sha256": "ab""#.to_string(),
                "bb_runtime_sha256 is not 64 hex",
            ),
            (
                r#", "bb_version_output": "5.0.0\n""#.to_string(),
                "bb_version_output \"5.0.0\\n\" is not a --version line",
            ),
            (
                format!(r#", "bb_version_output": "{}""#, "5".repeat(65)),
                "is not a --version line (1 to 64 characters",
            ),
            (
                r#", "bb_versions": [{"version": "4.1.2", "path": "/b/bb", "sha256": "PIN", "version_output": ""}]"#
                    .replace("PIN", &pin),
                "version_output \"\" is not a --version line",
            ),
        ] {
            let e = prover_with(&extra).unwrap_err().to_string();
            assert!(e.contains(why), "{extra}: {e}");
        }
    }

    #[test]
    fn a_configuration_whose_user_data_would_overflow_is_refused() {
        // The image's own configuration fits, with room to spare for its node and log head.
        let image = include_bytes!("../../../reproducible-build/config/enclave.json");
        MeasuredConfig::parse(image).unwrap();
        // Eight versions are allowed by count, but with their runtimes, the node and the log
        // head, user_data would pass its 1024 bytes: refused when the configuration is read,
        // not when the first attestation after the sealed state opens fails.
        let entries = |n: usize| {
            (0..n)
                .map(|i| version_entry(&format!("4.1.{i}"), true))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let e = prover_with(&format!(
            r#", "bb_version": "5.0.0", "bb_versions": [{}]"#,
            entries(MAX_BB_VERSIONS - 1)
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("user_data would not fit"), "{e}");
        // The largest number that fits is accepted.
        let fits = (1..MAX_BB_VERSIONS)
            .rev()
            .find(|&n| {
                prover_with(&format!(
                    r#", "bb_version": "5.0.0", "bb_versions": [{}]"#,
                    entries(n)
                ))
                .is_ok()
            })
            .unwrap();
        assert!(fits >= 2, "{fits}");
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for (bad, why) in [
            (r#"{"max_conections": 8}"#.as_bytes(), "unknown field"),
            (br#"{"max_connections": 0}"#, "positive"),
            (br#"{"api_port": 70000}"#, "out of range"),
            (br#"{"request_timeout_secs": 99999}"#, "exceeds"),
            (br#"{"kms": {"region": "x/../y", "key_id": "k"}}"#, "region"),
            (br#"{"prover": {"crs_sha256": "ab", "crs_points": 1}}"#, "64 hex"),
            (
                br#"{"prover": {"crs_sha256": "0000000000000000000000000000000000000000000000000000000000000000", "crs_points": 0}}"#,
                "crs_points",
            ),
            (br#"{"kms": {"region": "eu-west-1"}}"#, "key_id"),
            (
                br#"{"kms": {"region": "eu-west-1", "key_id": "k", "trust": "any"}}"#,
                "unknown variant",
            ),
            (b"not json", "expected"),
            (br#"{"owners": {"admit": "all"}}"#, "neither"),
            (br#"{"owners": {"admit": []}}"#, "1..=512"),
            (br#"{"owners": {"admit": ["00"]}}"#, "entry 0 is not"),
            (
                br#"{"owners": {"admit": ["0000000000000000000000000000000000000000000000000000000000000000"]}}"#,
                "entry 0 is not",
            ),
            (br#"{"owners": {"allow": "any"}}"#, "unknown field"),
            (br#"{"owners": null}"#, "expected struct OwnersConfig"),
            (br#"{"peers": {"images": []}}"#, "1..=64"),
            (br#"{"peers": {"images": [{"pcr1": "00", "pcr2": "00"}]}}"#, "pcr1 must be 96 hex"),
            (br#"{"peers": {"images": [{"pcr2": "00"}]}}"#, "missing field"),
            (br#"{"peers": null}"#, "expected struct PeersConfig"),
            (br#"{"peers": {"images": ["me"]}}"#, "\"self\" or an object"),
            (br#"{"cors": null}"#, "expected struct CorsConfig"),
            (br#"{"cors": {"origins": []}}"#, "origins is empty"),
            (br#"{"cors": {"origins": ["*"]}}"#, "exact origins"),
            (br#"{"cors": {"origins": ["https://a.example/"]}}"#, "without path"),
            (br#"{"cors": {"origin": ["https://a.example"]}}"#, "unknown field"),
            (
                br#"{"cors": {"origins": ["http://wallet.example"]}}"#,
                "must be loopback",
            ),
        ] {
            let e = MeasuredConfig::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }
}
