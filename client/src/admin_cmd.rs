//! `sigil admin-key` and `sigil admin`: a quorum administrator's key, and what it does with
//! an enclave (approve genesis, fetch and check its share, post it to unlock, read the
//! status). Every call goes to an enclave attested first, its PCRs pinned by `--pcrs`.

use std::time::Instant;

use clap::Subcommand;
use sigil_client::quorum::{AdminKey, ShareFile};

use super::{Failure, Trust, client_failure, connect, json};

#[derive(Subcommand)]
pub enum AdminKeyCmd {
    /// Make a new administrator key file (mode 0600, never overwritten) and print the entry
    /// for the measured configuration's `quorum.admins`.
    New {
        /// The administrator's name in the configuration (`[a-z0-9_-]`, up to 32).
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: String,
    },
    /// Print a key file's configuration entry.
    Show {
        #[arg(long)]
        name: String,
        #[arg(long)]
        key: String,
    },
}

#[derive(Subcommand)]
pub enum AdminCmd {
    /// The enclave's quorum: its state, genesis, administrators and whose shares it holds.
    Status,
    /// Approve genesis: the enclave draws the root, splits it among the administrators and
    /// wraps its state's data key under it.
    Genesis {
        #[arg(long)]
        key: String,
    },
    /// Approve a re-share as one administrator: prints the approval (for this boot of the
    /// enclave) for whoever submits the re-share.
    ApproveReshare {
        /// The new quorum: `{"threshold": k, "admins": [...]}` (as `admin-key new` prints
        /// each entry).
        #[arg(long)]
        quorum: String,
        #[arg(long)]
        key: String,
    },
    /// Re-share to a new set of administrators or a new threshold: a new root is split among
    /// them and the old shares stop working. Needs k approvals of the current
    /// administrators: `--key` for keys at hand, `--approval` for ones made elsewhere.
    Reshare {
        #[arg(long)]
        quorum: String,
        #[arg(long = "key")]
        keys: Vec<String>,
        /// `INDEX:SIGNATURE` as `approve-reshare` printed it (repeatable).
        #[arg(long = "approval")]
        approvals: Vec<String>,
    },
    /// Forward the quorum root from this enclave (unlocked) to another enclave of the same
    /// image (`--to`), which opens the same state: no administrator needed.
    Forward {
        /// The receiving enclave's API.
        #[arg(long)]
        to: String,
    },
    /// This administrator's share.
    Share {
        #[command(subcommand)]
        cmd: ShareCmd,
    },
}

#[derive(Subcommand)]
pub enum ShareCmd {
    /// Fetch this administrator's share, check it against the genesis commitments, and keep
    /// it (as sealed to this key, with the genesis pinned) in --out.
    Fetch {
        #[arg(long)]
        key: String,
        #[arg(long)]
        out: String,
    },
    /// Post the share to unlock the enclave (refused when the enclave shows another genesis
    /// than the share file pinned).
    #[command(alias = "unlock")]
    Post {
        #[arg(long)]
        key: String,
        #[arg(long)]
        share: String,
    },
}

/// The new quorum file of `reshare` and `approve-reshare`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewQuorum {
    threshold: u16,
    admins: Vec<sigil_protocol::quorum::Admin>,
}

fn new_quorum(path: &str) -> Result<NewQuorum, Failure> {
    let text = std::fs::read(path).map_err(|e| Failure::Usage(format!("--quorum {path}: {e}")))?;
    let q: NewQuorum = serde_json::from_slice(&text)
        .map_err(|e| Failure::Usage(format!("--quorum {path}: {e}")))?;
    sigil_protocol::quorum::check_admins(q.threshold, &q.admins)
        .map_err(|e| Failure::Usage(format!("--quorum {path}: {e}")))?;
    Ok(q)
}

fn parse_approval(s: &str) -> Result<sigil_protocol::quorum::Approval, Failure> {
    let bad = || {
        Failure::Usage(format!(
            "--approval {s:?}: expected INDEX:SIGNATURE (128 hex)"
        ))
    };
    let (i, sig) = s.split_once(':').ok_or_else(bad)?;
    Ok(sigil_protocol::quorum::Approval {
        admin: i.parse().map_err(|_| bad())?,
        signature: sigil_protocol::wire::Hex::parse(sig).map_err(|_| bad())?,
    })
}

pub fn run_key(cmd: AdminKeyCmd) -> Result<serde_json::Value, Failure> {
    let (name, key) = match cmd {
        AdminKeyCmd::New { name, out } => (name, AdminKey::create(&out).map_err(client_failure)?),
        AdminKeyCmd::Show { name, key } => (name, AdminKey::load(&key).map_err(client_failure)?),
    };
    serde_json::to_value(key.admin(&name)).map_err(|e| Failure::Check(e.to_string()))
}

pub fn run(endpoint: &str, trust: &Trust, cmd: AdminCmd) -> Result<serde_json::Value, Failure> {
    let (client, enclave) = connect(endpoint, trust, 300)?;
    match cmd {
        AdminCmd::Status => json(&client.quorum_status(&enclave).map_err(client_failure)?),
        AdminCmd::Genesis { key } => {
            let key = AdminKey::load(&key).map_err(client_failure)?;
            let t = Instant::now();
            let mut out = json(
                &client
                    .quorum_genesis(&enclave, &key)
                    .map_err(client_failure)?,
            )?;
            out["genesis_ms"] = (t.elapsed().as_secs_f64() * 1e3).into();
            Ok(out)
        }
        AdminCmd::Forward { to } => {
            let (to_client, to_enclave) = connect(&to, trust, 300)?;
            let t = Instant::now();
            let mut out = json(
                &sigil_client::quorum::forward((&client, &enclave), (&to_client, &to_enclave))
                    .map_err(client_failure)?,
            )?;
            out["forward_ms"] = (t.elapsed().as_secs_f64() * 1e3).into();
            Ok(out)
        }
        AdminCmd::ApproveReshare { quorum, key } => {
            let q = new_quorum(&quorum)?;
            let key = AdminKey::load(&key).map_err(client_failure)?;
            let view = client.quorum_status(&enclave).map_err(client_failure)?;
            let a = key
                .approve_reshare(&enclave, &view, q.threshold, &q.admins)
                .map_err(client_failure)?;
            Ok(serde_json::json!({
                "approval": format!("{}:{}", a.admin, hex::encode(a.signature.0)),
                "genesis": view.genesis,
            }))
        }
        AdminCmd::Reshare {
            quorum,
            keys,
            approvals,
        } => {
            let q = new_quorum(&quorum)?;
            let view = client.quorum_status(&enclave).map_err(client_failure)?;
            let mut all = approvals
                .iter()
                .map(|a| parse_approval(a))
                .collect::<Result<Vec<_>, _>>()?;
            for k in &keys {
                let key = AdminKey::load(k).map_err(client_failure)?;
                all.push(
                    key.approve_reshare(&enclave, &view, q.threshold, &q.admins)
                        .map_err(client_failure)?,
                );
            }
            let t = Instant::now();
            let mut out = json(
                &client
                    .quorum_reshare(&enclave, q.threshold, q.admins, all)
                    .map_err(client_failure)?,
            )?;
            out["reshare_ms"] = (t.elapsed().as_secs_f64() * 1e3).into();
            Ok(out)
        }
        AdminCmd::Share {
            cmd: ShareCmd::Fetch { key, out },
        } => {
            let key = AdminKey::load(&key).map_err(client_failure)?;
            let file = client
                .quorum_share_fetch(&enclave, &key)
                .map_err(client_failure)?;
            file.save(&out).map_err(client_failure)?;
            Ok(serde_json::json!({
                "genesis": file.share.genesis,
                "index": file.share.index,
                "admin": file.share.admin,
                "threshold": file.share.threshold,
                "verified": true,
                "out": out,
            }))
        }
        AdminCmd::Share {
            cmd: ShareCmd::Post { key, share },
        } => {
            let key = AdminKey::load(&key).map_err(client_failure)?;
            let file = ShareFile::load(&share).map_err(client_failure)?;
            json(
                &client
                    .quorum_unlock(&enclave, &key, &file)
                    .map_err(client_failure)?,
            )
        }
    }
}
