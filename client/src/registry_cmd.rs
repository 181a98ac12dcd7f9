//! `sigil registry`: change a registry (with administrators' keys), fetch and verify its log,
//! and register an instance (a challenge, then its attestation document).

use std::time::Instant;

use clap::Subcommand;
use sigil_client::quorum::AdminKey;
use sigil_client::registry::open_provision;
use sigil_protocol::encap::ServerKey;
use sigil_protocol::registry::Change;

use super::{Failure, Trust, client_failure, connect, json};

#[derive(Subcommand)]
pub enum RegistryCmd {
    /// The change log; with --verify, its hash chain is checked and its head compared with
    /// the head a fresh attestation document of the registry carries.
    Log {
        #[arg(long)]
        verify: bool,
        /// A file remembering the log's length and head: the log must extend it (a rollback of
        /// the registry across a restart is refused), and it is updated to the new head.
        #[arg(long, requires = "verify")]
        pin: Option<String>,
    },
    /// Apply a change (JSON: {"kind": "allow"|"revoke"|"config"|"secret", ...}) approved by
    /// the administrators whose keys are given (at least the quorum's threshold).
    Change {
        /// The change, as a JSON file.
        #[arg(long)]
        change: String,
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
    },
    /// A single-use nonce for an instance's attestation document.
    Challenge,
    /// Register an instance with its attestation document (carrying the challenge's nonce
    /// and its X25519 public key), open the provision with its key and write it into --out:
    /// config.json, secrets/NAME, tls.key, tls.crt, ca.crt.
    Register {
        #[arg(long)]
        document: String,
        /// The challenge nonce (hex), as `registry challenge` printed it.
        #[arg(long)]
        nonce: String,
        /// The instance's X25519 key seed (64 hex characters) whose public key the document
        /// carries.
        #[arg(long)]
        instance_key: String,
        #[arg(long)]
        out: String,
    },
}

fn read(path: &str, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::Usage(format!("{what} {path}: {e}")))
}

pub fn run(endpoint: &str, trust: &Trust, cmd: RegistryCmd) -> Result<serde_json::Value, Failure> {
    let (client, enclave) = connect(endpoint, trust, 300)?;
    match cmd {
        RegistryCmd::Log { verify, pin } => {
            let log = if verify {
                let mut policy = trust.policy(super::now()).map_err(Failure::Usage)?;
                policy.max_age_seconds = Some(300);
                client
                    .registry_log_verified(&enclave, policy)
                    .map_err(client_failure)?
            } else {
                client.registry_log(&enclave).map_err(client_failure)?
            };
            if let Some(pin) = &pin {
                let pinned = match std::fs::read(pin) {
                    Ok(b) => {
                        let v: serde_json::Value = serde_json::from_slice(&b)
                            .map_err(|e| Failure::Usage(format!("--pin {pin}: {e}")))?;
                        let head: [u8; 32] = v["head"]
                            .as_str()
                            .and_then(|h| hex::decode(h).ok())
                            .and_then(|b| b.try_into().ok())
                            .ok_or_else(|| Failure::Usage(format!("--pin {pin}: no head")))?;
                        let entries = v["entries"].as_u64().ok_or_else(|| {
                            Failure::Usage(format!("--pin {pin}: no entry count"))
                        })?;
                        Some((entries, head))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(Failure::Usage(format!("--pin {pin}: {e}"))),
                };
                sigil_client::registry::check_log_extends(&log, pinned).map_err(client_failure)?;
                let now = serde_json::json!({"entries": log.total, "head": log.head});
                std::fs::write(pin, now.to_string())
                    .map_err(|e| Failure::Check(format!("--pin {pin}: {e}")))?;
            }
            let mut out = json(&log)?;
            out["verified"] = verify.into();
            Ok(out)
        }
        RegistryCmd::Change { change, keys } => {
            let mut value: serde_json::Value = serde_json::from_slice(&read(&change, "--change")?)
                .map_err(|e| Failure::Usage(format!("--change: {e}")))?;
            // A secret change gets a fresh random salt unless the file has one (the log keeps
            // a hash that covers the value only through it).
            if value["kind"] == "secret" && value.get("salt").is_none() {
                let mut salt = [0u8; 32];
                getrandom::fill(&mut salt)
                    .map_err(|e| Failure::Check(format!("no randomness: {e}")))?;
                value["salt"] = hex::encode(salt).into();
            }
            let change: Change = serde_json::from_value(value)
                .map_err(|e| Failure::Usage(format!("--change: {e}")))?;
            let keys = keys
                .iter()
                .map(|k| AdminKey::load(k).map_err(client_failure))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&AdminKey> = keys.iter().collect();
            let t = Instant::now();
            let log = client
                .registry_change(&enclave, change, &refs)
                .map_err(client_failure)?;
            Ok(serde_json::json!({
                "head": log.head,
                "entries": log.total,
                "change_ms": t.elapsed().as_secs_f64() * 1e3,
            }))
        }
        RegistryCmd::Challenge => json(
            &client
                .registry_challenge(&enclave)
                .map_err(client_failure)?,
        ),
        RegistryCmd::Register {
            document,
            nonce,
            instance_key,
            out,
        } => {
            let nonce: [u8; 32] = hex::decode(nonce.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Failure::Usage("--nonce must be 64 hex digits".into()))?;
            let seed = zeroize::Zeroizing::new(
                hex::decode(
                    String::from_utf8_lossy(&read(&instance_key, "--instance-key")?).trim(),
                )
                .map_err(|_| Failure::Usage("--instance-key: not hex".into()))?,
            );
            let key = ServerKey::from_seed(&seed)
                .map_err(|e| Failure::Usage(format!("--instance-key: {e}")))?;
            let provisioned = client
                .registry_register(&enclave, read(&document, "--document")?)
                .map_err(client_failure)?;
            let p = open_provision(&key, &enclave.public_key, &nonce, &provisioned)
                .map_err(client_failure)?;
            write_provision(&out, &p)?;
            Ok(serde_json::json!({
                "app": p.app,
                "role": p.role,
                "secrets": p.secrets.keys().collect::<Vec<_>>(),
                "out": out,
            }))
        }
    }
}

/// Writes a provision into `dir` (created; secret files with mode 0600).
fn write_provision(dir: &str, p: &sigil_protocol::registry::Provision) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| Failure::Check(format!("--out {dir}: {e}"));
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir.join("secrets")).map_err(fail)?;
    let write = |name: &std::path::Path, bytes: &[u8], secret: bool| -> Result<(), Failure> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(if secret { 0o600 } else { 0o644 })
            .open(name)
            .map_err(fail)?;
        f.write_all(bytes).map_err(fail)
    };
    let config = serde_json::to_vec_pretty(&p.config).map_err(|e| Failure::Check(e.to_string()))?;
    // The resolved configuration may hold secrets it references.
    write(&dir.join("config.json"), &config, true)?;
    for (name, value) in &p.secrets {
        write(&dir.join("secrets").join(name), value.expose(), true)?;
    }
    write(&dir.join("tls.key"), p.tls_key_pem.as_bytes(), true)?;
    write(&dir.join("tls.crt"), p.tls_cert_pem.as_bytes(), false)?;
    write(&dir.join("ca.crt"), p.ca_cert_pem.as_bytes(), false)
}
