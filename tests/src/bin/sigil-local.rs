//! `sigil-local`: one local-mode deployment (the enclave binary as an ordinary process, its
//! own sigil-shim and a development KMS), with sealed state and a node identity, serving the
//! enclave's API until interrupted. For demos and tests that need several enclaves (threshold
//! signing) on one machine.

use std::process::ExitCode;

use sigil_e2e::deployment::{Deployment, Options, Prover};
use sigil_sys::signals::{self, SignalSet};

const USAGE: &str = "\
usage: sigil-local --dir DIR [--enclave BIN] [--peers JSON] [--simulated-pcrs MANIFEST]
                   [--prover-crs CRS [--bb BIN] [--prover-crs-points N] [--bb-version NAME=BIN]...]
                   [--cors-origin ORIGIN]...

Starts a development KMS, the real sigil-shim (its blobs in DIR) and the enclave binary in
local mode (default: sigil-enclave next to this binary), waits until the enclave's sealed
state is open, and prints `ready http://HOST:PORT`. Stops everything on SIGINT/SIGTERM. DIR is
emptied first: each run is a new node.

--peers JSON is the measured configuration's peers section; the default accepts enclaves that
attest this one's own PCRs under the sigil test root (local enclaves and the QEMU harness):
{\"images\": [\"self\"], \"trust_test_root\": true}. --simulated-pcrs makes the simulated
attestation claim a manifest's PCRs. --prover-crs gives the enclave a prover: the shim serves
the CRS file (bn254 G1 points, e.g. ../shared/crs/bn254_g1.dat), the enclave pins its first
32769 points by hash (enough for the tiny fixture) and runs BIN (default: target/bb/bb, as
scripts/fetch-bb installs it). --prover-crs-points pins the first N points instead (the Chonk
test stacks need 131072, e.g. of scripts/insecure-test-crs). --bb-version (repeatable) serves
one more bb version, chosen by requests that name it (e.g. 4.1.2=target/bb/4.1.2/bb).
--cors-origin (repeatable) puts the origin in the measured
configuration's cors.origins, so pages of that origin may read the answers in a browser.
Development only: nothing here is secret.";

/// CRS points the prover pins: 2^15 + 1, what the test fixtures need.
const PROVER_POINTS: usize = 32_769;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut dir, mut enclave, mut peers, mut pcrs) = (None, None, None, None);
    let (mut crs, mut bb, mut crs_points) = (None, None, None);
    let (mut cors, mut bb_versions) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let val = it.next().cloned();
        if a == "--cors-origin" || a == "--bb-version" {
            let Some(v) = val else {
                eprintln!("sigil-local: {a} needs a value\n\n{USAGE}");
                return ExitCode::from(2);
            };
            if a == "--cors-origin" {
                cors.push(v);
            } else {
                bb_versions.push(v);
            }
            continue;
        }
        let slot = match a.as_str() {
            "--dir" => &mut dir,
            "--enclave" => &mut enclave,
            "--peers" => &mut peers,
            "--simulated-pcrs" => &mut pcrs,
            "--prover-crs" => &mut crs,
            "--bb" => &mut bb,
            "--prover-crs-points" => &mut crs_points,
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("sigil-local: unknown argument {other:?}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        };
        match val {
            Some(v) => *slot = Some(v),
            None => {
                eprintln!("sigil-local: {a} needs a value\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("sigil-local: --dir DIR is required\n\n{USAGE}");
        return ExitCode::from(2);
    };
    let here = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sigil-local: {e}");
            return ExitCode::FAILURE;
        }
    };
    let enclave = enclave
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| here.with_file_name("sigil-enclave"));
    let shim = here.with_file_name("sigil-shim");
    for bin in [&enclave, &shim] {
        if !bin.exists() {
            eprintln!(
                "sigil-local: {} is missing (cargo build -p sigil-enclave -p sigil-shim)",
                bin.display()
            );
            return ExitCode::FAILURE;
        }
    }
    // Before any thread starts; the main thread waits for them.
    let set = match SignalSet::block(&[signals::SIGINT, signals::SIGTERM]) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("sigil-local: cannot block signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let prover = match crs {
        None => None,
        Some(crs) => match prover(&here, &crs, bb, crs_points, &bb_versions) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("sigil-local: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let options = Options {
        prover,
        ..Options::default()
    };
    let mut d = Deployment::with_options(dir.into(), enclave, shim, None, options);
    d.peers = Some(
        peers.unwrap_or_else(|| r#"{"images": ["self"], "trust_test_root": true}"#.to_string()),
    );
    d.simulated_pcrs = pcrs.map(Into::into);
    if !cors.is_empty() {
        d.cors = Some(serde_json::json!({ "origins": cors }).to_string());
    }
    d.start_enclave();
    d.wait_sealing(true);
    println!("ready {}", d.endpoint());
    let _ = set.wait();
    eprintln!("sigil-local: stopping");
    drop(d);
    ExitCode::SUCCESS
}

/// The prover of `--prover-crs`: bb (default `target/bb/bb` beside this binary's profile
/// directory), the CRS with its first `points` (default [`PROVER_POINTS`]) pinned by hash, and
/// the further versions of `--bb-version` (the configuration's `bb_versions`).
fn prover(
    here: &std::path::Path,
    crs: &str,
    bb: Option<String>,
    points: Option<String>,
    versions: &[String],
) -> Result<Prover, String> {
    let points = match points {
        None => PROVER_POINTS,
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("--prover-crs-points {p:?} is not a point count"))?,
    };
    let mut served = Vec::new();
    for v in versions {
        let (name, path) = v
            .split_once('=')
            .ok_or_else(|| format!("--bb-version {v:?} is not NAME=BIN"))?;
        let path = std::path::absolute(path).map_err(|e| format!("{path}: {e}"))?;
        if !path.exists() {
            return Err(format!("{} is missing", path.display()));
        }
        // The configuration pins every further version (the enclave refuses one unpinned):
        // the binary, and the runtime beside it when it brings one.
        let mut entry = serde_json::json!({
            "version": name,
            "path": path,
            "sha256": sha256_file(&path)?,
        });
        let dir = path.parent().ok_or("a bb path has a directory")?;
        if dir.join("ld-linux-x86-64.so.2").exists() {
            entry["runtime_sha256"] = runtime_sha256(dir)?.into();
        }
        served.push(entry);
    }
    let bb = match bb {
        Some(b) => std::path::PathBuf::from(b),
        None => here
            .parent()
            .and_then(|profile| profile.parent())
            .map(|target| target.join("bb/bb"))
            .ok_or("cannot locate target/bb/bb")?,
    };
    if !bb.exists() {
        return Err(format!(
            "{} is missing (scripts/fetch-bb installs it)",
            bb.display()
        ));
    }
    let bytes = std::fs::read(crs).map_err(|e| format!("CRS {crs}: {e}"))?;
    let pinned = bytes
        .get(..points * 64)
        .ok_or_else(|| format!("CRS {crs} holds fewer than {points} points"))?;
    let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, pinned).as_ref());
    Ok(Prover {
        bb,
        crs: crs.into(),
        config: serde_json::json!({
            "crs_sha256": sha,
            "crs_points": points,
            "bb_versions": served,
        })
        .to_string(),
    })
}

fn sha256_file(path: &std::path::Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(hex::encode(
        ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref(),
    ))
}

/// The runtime's digest as the enclave computes it: sha256 of the lines
/// `"<file> <sha256 hex>\n"` of the directory's `*.so*` files, sorted by name.
fn runtime_sha256(dir: &std::path::Path) -> Result<String, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names = Vec::new();
    for e in entries {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".so") {
            names.push(name);
        }
    }
    names.sort();
    let mut list = String::new();
    for n in &names {
        list.push_str(&format!("{n} {}\n", sha256_file(&dir.join(n))?));
    }
    Ok(hex::encode(
        ring::digest::digest(&ring::digest::SHA256, list.as_bytes()).as_ref(),
    ))
}
