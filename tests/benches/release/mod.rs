//! Shared by the benches that run a local deployment: locating the release binaries of this
//! bench's target directory and bb, attesting the local enclave, and describing the machine.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sigil_client::{AttestedEnclave, Client};

/// How the benches name themselves in their messages.
const BENCH: &str = env!("CARGO_CRATE_NAME");

pub const BUILD_HINT: &str = "build the release binaries first, with the same CARGO_TARGET_DIR \
                              as the bench:\n  cargo build --release -p sigil-enclave -p sigil-shim";

/// `<target>/release`: the bench runs from `<target>/release/deps/`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("the bench runs from <target>/<profile>/deps")
}

/// The nearest directory named `target` above this bench (the workspace's, also when
/// `CARGO_TARGET_DIR` is a directory inside it).
pub fn workspace_target() -> Option<PathBuf> {
    profile_dir()
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(Path::to_path_buf)
}

/// Ends the bench: `what` was not found at any of `looked`; `hint` says how to get it.
pub fn missing(what: &str, looked: &[PathBuf], hint: &str) -> ! {
    eprintln!("{BENCH} bench: no {what} found; looked at:");
    for p in looked {
        eprintln!("  {}", p.display());
    }
    eprintln!("{hint}");
    std::process::exit(1);
}

/// The enclave binary: this target directory's release build (always the current source)
/// when present, else the static reproducible build (which may be older than the source).
pub fn enclave_bin() -> (PathBuf, &'static str) {
    let profile = profile_dir();
    let release = profile.join("sigil-enclave");
    if release.exists() {
        return (release, "release build");
    }
    let rel = "reproducible/x86_64-unknown-linux-gnu/release/sigil-enclave";
    let mut looked = vec![release];
    // The target directory of this bench, and the nearest one named `target` above it.
    for root in profile
        .parent()
        .map(Path::to_path_buf)
        .into_iter()
        .chain(workspace_target())
    {
        let p = root.join(rel);
        if p.exists() {
            return (p, "static reproducible build, may be stale");
        }
        looked.push(p);
    }
    missing("sigil-enclave binary", &looked, BUILD_HINT)
}

pub fn shim_bin() -> PathBuf {
    let p = profile_dir().join("sigil-shim");
    if !p.exists() {
        missing("sigil-shim binary", &[p], BUILD_HINT);
    }
    p
}

/// `target/bb/bb`, as `scripts/fetch-bb` installs it: under the nearest directory named
/// `target` above this bench, else the workspace's.
pub fn bb_bin() -> PathBuf {
    let mut looked = Vec::new();
    for root in workspace_target()
        .into_iter()
        .chain([sigil_e2e::workspace().join("target")])
    {
        let p = root.join("bb/bb");
        if p.exists() {
            return p;
        }
        looked.push(p);
    }
    missing("bb", &looked, "fetch it first: scripts/fetch-bb")
}

/// The positive number in the environment variable `name`, else `default`.
pub fn env_count<T: std::str::FromStr + PartialOrd + Default>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > T::default())
        .unwrap_or(default)
}

/// The machine's 1-minute load average (`?` where there is no `/proc/loadavg`).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// A client of the local enclave at `endpoint`, attested against the test root (debug
/// allowed).
pub fn attest(endpoint: &str) -> (Client, AttestedEnclave) {
    let client = Client::new(endpoint).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut policy = sigil_attestation::Policy::at(now);
    policy.trust_test_root = true;
    policy.allow_debug = true;
    let enclave = client.attest(policy).expect("attest the local enclave");
    (client, enclave)
}

/// Reports a ratio measured in this run for `scripts/bench`'s table: one line
/// `ratio<TAB>VALUE<TAB>TARGET<TAB>WHAT` (TARGET `-` when none was set).
pub fn ratio(value: f64, target: Option<f64>, what: &str) {
    let target = target.map_or("-".to_string(), |t| format!("<=x{t}"));
    println!("ratio\t{value:.2}\t{target}\t{what}");
}
