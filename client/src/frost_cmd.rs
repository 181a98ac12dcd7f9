//! `sigil frost`: this CLI as the coordinator of a FROST group across enclaves. Every result
//! it prints is checked first (members agree on the group; signatures verify under the
//! output key it computes itself).

use std::time::Instant;

use clap::Subcommand;
use sigil_client::frost::{self, Member};
use sigil_client::{AttestedEnclave, Client, OwnerKey};
use sigil_protocol::frost::GroupView;

use super::{Failure, Trust, client_failure, connect};

#[derive(Subcommand)]
pub enum FrostCmd {
    /// Generate a group key across the enclaves (t of n, the first --endpoint is participant
    /// 1): each seals its share; the members' answers are checked to agree.
    Dkg {
        /// A member's API (repeat, in participant order).
        #[arg(long = "endpoint", required = true)]
        endpoints: Vec<String>,
        /// Signers needed.
        #[arg(long)]
        threshold: u16,
        /// The group's owner key file: its signature approves every signing session.
        #[arg(long)]
        owner_key: String,
        #[command(flatten)]
        trust: Trust,
    },
    /// Sign with at least t members: each checks the owner's approval, the signature is
    /// verified before it is printed.
    Sign {
        /// A signing member's API (repeat; any t or more of the group).
        #[arg(long = "endpoint", required = true)]
        endpoints: Vec<String>,
        /// The group id (its x-only key, as `frost dkg` printed it).
        #[arg(long)]
        group: String,
        /// A 32-byte message in hex, for example a sighash (repeat to sign a batch).
        #[arg(long = "message", required = true)]
        messages: Vec<String>,
        /// The Taproot script tree's root (hex); without it, the key path only (BIP-86).
        #[arg(long)]
        merkle_root: Option<String>,
        #[arg(long)]
        owner_key: String,
        #[command(flatten)]
        trust: Trust,
    },
    /// Rebuild a lost member's share for a new enclave (whose state never held it) with at
    /// least t helpers; the group key does not change.
    Repair {
        /// A helper's API (repeat; at least t of the other members).
        #[arg(long = "endpoint", required = true)]
        endpoints: Vec<String>,
        /// The new holder's API.
        #[arg(long)]
        new_member: String,
        #[arg(long)]
        group: String,
        /// The participant number whose share is lost.
        #[arg(long)]
        lost: u16,
        #[arg(long)]
        owner_key: String,
        #[command(flatten)]
        trust: Trust,
    },
    /// Refresh every member's share (all members, in participant order): the group key does
    /// not change, old shares stop working.
    Refresh {
        /// A member's API (repeat, every member, in participant order).
        #[arg(long = "endpoint", required = true)]
        endpoints: Vec<String>,
        #[arg(long)]
        group: String,
        #[arg(long)]
        owner_key: String,
        #[command(flatten)]
        trust: Trust,
    },
    /// Put a refresh's pending generation into use at every member (when `frost refresh`
    /// stopped between its finish and commit steps; members sign with their old shares until
    /// then).
    Commit {
        /// A member's API (repeat, every member, in participant order).
        #[arg(long = "endpoint", required = true)]
        endpoints: Vec<String>,
        #[arg(long)]
        group: String,
        /// The pending generation (as `frost group` prints it).
        #[arg(long)]
        generation: String,
        #[arg(long)]
        owner_key: String,
        #[command(flatten)]
        trust: Trust,
    },
    /// A group as one member holds it.
    Group {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        group: String,
        #[command(flatten)]
        trust: Trust,
    },
}

fn hex32(what: &str, s: &str) -> Result<[u8; 32], Failure> {
    hex::decode(s.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Failure::Usage(format!("{what} must be 64 hex digits")))
}

fn connect_all(
    endpoints: &[String],
    trust: &Trust,
) -> Result<Vec<(Client, AttestedEnclave)>, Failure> {
    endpoints.iter().map(|e| connect(e, trust, 300)).collect()
}

fn view_json(v: &GroupView, endpoints: &[String]) -> serde_json::Value {
    serde_json::json!({
        "group": v.group,
        "generation": v.generation,
        "pending": v.pending,
        "verifying_key": v.verifying_key,
        "output_key": v.output_key,
        "threshold": v.threshold,
        "owner": v.owner,
        "members": v.members.iter().enumerate().map(|(i, node)| serde_json::json!({
            "participant": i + 1,
            "node": node,
            "endpoint": endpoints.get(i),
            "verifying_share": v.verifying_shares.get(i),
        })).collect::<Vec<_>>(),
    })
}

/// Each connection's member of `group` with its participant number, in increasing order,
/// and the group as they all describe it (refused unless they agree).
fn members_of<'a>(
    conns: &'a [(Client, AttestedEnclave)],
    group: &[u8; 32],
) -> Result<(Vec<(u16, Member<'a>)>, GroupView), Failure> {
    let mut members = Vec::new();
    let mut first: Option<GroupView> = None;
    for (client, enclave) in conns {
        let m = Member { client, enclave };
        let v = frost::group(&m, group).map_err(client_failure)?;
        if let Some(f) = &first {
            let mut same = v.clone();
            same.participant = f.participant;
            if same != *f {
                return Err(Failure::Check(
                    "the members describe the group differently".into(),
                ));
            }
        }
        members.push((v.participant, m));
        first.get_or_insert(v);
    }
    let view = first.ok_or_else(|| Failure::Usage("no --endpoint".into()))?;
    members.sort_by_key(|(n, _)| *n);
    if members.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(Failure::Usage(
            "two --endpoint values are the same member".into(),
        ));
    }
    Ok((members, view))
}

pub fn run(cmd: FrostCmd) -> Result<serde_json::Value, Failure> {
    match cmd {
        FrostCmd::Dkg {
            endpoints,
            threshold,
            owner_key,
            trust,
        } => {
            let owner = OwnerKey::load(&owner_key).map_err(client_failure)?;
            let conns = connect_all(&endpoints, &trust)?;
            let members: Vec<Member<'_>> = conns
                .iter()
                .map(|(client, enclave)| Member { client, enclave })
                .collect();
            let t = Instant::now();
            let views = frost::dkg(&members, threshold, &owner).map_err(client_failure)?;
            let mut out = view_json(&views[0], &endpoints);
            out["members_agree"] = true.into();
            out["dkg_ms"] = (t.elapsed().as_secs_f64() * 1e3).into();
            Ok(out)
        }
        FrostCmd::Sign {
            endpoints,
            group,
            messages,
            merkle_root,
            owner_key,
            trust,
        } => {
            let owner = OwnerKey::load(&owner_key).map_err(client_failure)?;
            let group = hex32("--group", &group)?;
            let messages = messages
                .iter()
                .map(|m| hex32("--message", m))
                .collect::<Result<Vec<_>, _>>()?;
            let merkle_root = merkle_root
                .map(|r| hex32("--merkle-root", &r))
                .transpose()?;
            let conns = connect_all(&endpoints, &trust)?;
            let (signers, view) = members_of(&conns, &group)?;
            let numbers: Vec<u16> = signers.iter().map(|(n, _)| *n).collect();
            let t = Instant::now();
            let sigs = frost::sign(&signers, &view, &messages, merkle_root, &owner)
                .map_err(client_failure)?;
            Ok(serde_json::json!({
                "group": view.group,
                "output_key": sigs.output_key,
                "signers": numbers,
                "signatures": sigs.signatures,
                "verified": true,
                "sign_ms": t.elapsed().as_secs_f64() * 1e3,
            }))
        }
        FrostCmd::Repair {
            endpoints,
            new_member,
            group,
            lost,
            owner_key,
            trust,
        } => {
            let owner = OwnerKey::load(&owner_key).map_err(client_failure)?;
            let group = hex32("--group", &group)?;
            let conns = connect_all(&endpoints, &trust)?;
            let (new_client, new_enclave) = connect(&new_member, &trust, 300)?;
            let (helpers, view) = members_of(&conns, &group)?;
            let t = Instant::now();
            let repaired = frost::repair(
                &helpers,
                &Member {
                    client: &new_client,
                    enclave: &new_enclave,
                },
                &view,
                lost,
                &owner,
            )
            .map_err(client_failure)?;
            let mut out = view_json(&repaired, &[]);
            out["participant"] = repaired.participant.into();
            out["group_key_unchanged"] = (repaired.verifying_key == view.verifying_key).into();
            out["repair_ms"] = (t.elapsed().as_secs_f64() * 1e3).into();
            Ok(out)
        }
        FrostCmd::Refresh {
            endpoints,
            group,
            owner_key,
            trust,
        } => {
            let owner = OwnerKey::load(&owner_key).map_err(client_failure)?;
            let group = hex32("--group", &group)?;
            let conns = connect_all(&endpoints, &trust)?;
            let (members, view) = members_of(&conns, &group)?;
            if members.len() != view.members.len()
                || members
                    .iter()
                    .enumerate()
                    .any(|(i, (n, _))| *n as usize != i + 1)
            {
                return Err(Failure::Usage(
                    "a refresh takes every member, one --endpoint each".into(),
                ));
            }
            let members: Vec<Member<'_>> = members.into_iter().map(|(_, m)| m).collect();
            let t = Instant::now();
            let views = frost::refresh(&members, &view, &owner).map_err(client_failure)?;
            let mut out = view_json(&views[0], &endpoints);
            out["group_key_unchanged"] = true.into();
            out["shares_changed"] = views[0]
                .verifying_shares
                .iter()
                .zip(&view.verifying_shares)
                .all(|(a, b)| a != b)
                .into();
            out["refresh_ms"] = (t.elapsed().as_secs_f64() * 1e3).into();
            Ok(out)
        }
        FrostCmd::Commit {
            endpoints,
            group,
            generation,
            owner_key,
            trust,
        } => {
            let owner = OwnerKey::load(&owner_key).map_err(client_failure)?;
            let group = hex32("--group", &group)?;
            let generation = hex32("--generation", &generation)?;
            let conns = connect_all(&endpoints, &trust)?;
            let members: Vec<Member<'_>> = conns
                .iter()
                .map(|(client, enclave)| Member { client, enclave })
                .collect();
            let view = frost::group(&members[0], &group).map_err(client_failure)?;
            let views =
                frost::commit(&members, &view, &generation, &owner).map_err(client_failure)?;
            let mut out = view_json(&views[0], &endpoints);
            out["generation"] = hex::encode(generation).into();
            Ok(out)
        }
        FrostCmd::Group {
            endpoint,
            group,
            trust,
        } => {
            let group = hex32("--group", &group)?;
            let (client, enclave) = connect(&endpoint, &trust, 300)?;
            let v = frost::group(
                &Member {
                    client: &client,
                    enclave: &enclave,
                },
                &group,
            )
            .map_err(client_failure)?;
            let mut out = view_json(&v, &[]);
            out["participant"] = v.participant.into();
            Ok(out)
        }
    }
}
