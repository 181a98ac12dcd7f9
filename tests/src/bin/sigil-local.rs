//! `sigil-local`: one local-mode deployment (the enclave binary as an ordinary process, its
//! own sigil-shim and a development KMS), with sealed state and a node identity, serving the
//! enclave's API until interrupted. For demos and tests that need several enclaves (threshold
//! signing) on one machine.

use std::process::ExitCode;

use sigil_e2e::deployment::Deployment;
use sigil_sys::signals::{self, SignalSet};

const USAGE: &str = "\
usage: sigil-local --dir DIR [--enclave BIN] [--peers JSON] [--simulated-pcrs MANIFEST]

Starts a development KMS, the real sigil-shim (its blobs in DIR) and the enclave binary in
local mode (default: sigil-enclave next to this binary), waits until the enclave's sealed
state is open, and prints `ready http://HOST:PORT`. Stops everything on SIGINT/SIGTERM. DIR is
emptied first: each run is a new node.

--peers JSON is the measured configuration's peers section; the default accepts enclaves that
attest this one's own PCRs under the sigil test root (local enclaves and the QEMU harness):
{\"images\": [\"self\"], \"trust_test_root\": true}. --simulated-pcrs makes the simulated
attestation claim a manifest's PCRs. Development only: nothing here is secret.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut dir, mut enclave, mut peers, mut pcrs) = (None, None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let val = it.next().cloned();
        let slot = match a.as_str() {
            "--dir" => &mut dir,
            "--enclave" => &mut enclave,
            "--peers" => &mut peers,
            "--simulated-pcrs" => &mut pcrs,
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
    let mut d = Deployment::new(dir.into(), enclave, shim, None);
    d.peers = Some(
        peers.unwrap_or_else(|| r#"{"images": ["self"], "trust_test_root": true}"#.to_string()),
    );
    d.simulated_pcrs = pcrs.map(Into::into);
    d.start_enclave();
    d.wait_sealing(true);
    println!("ready {}", d.endpoint());
    let _ = set.wait();
    eprintln!("sigil-local: stopping");
    drop(d);
    ExitCode::SUCCESS
}
