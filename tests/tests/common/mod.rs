//! Shared fixtures: locating the built binaries and running a local enclave.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The workspace's target directory (tests run from target/<profile>/deps/).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(Path::to_path_buf)
        .expect("tests run inside the target directory")
}

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("profile dir")
}

/// The statically linked enclave binary that goes into the image, as
/// `reproducible-build/build` (run by `scripts/test`) builds it.
pub fn static_enclave() -> PathBuf {
    target_dir().join("reproducible/x86_64-unknown-linux-gnu/release/sigil-enclave")
}

fn require(p: PathBuf) -> PathBuf {
    assert!(
        p.exists(),
        "{} is missing: run the tests with scripts/test, which builds the binaries first",
        p.display()
    );
    p
}

/// The enclave binary under test: `SIGIL_TEST_ENCLAVE` when set (to test a change before the
/// static build is redone), else the static product build when present.
pub fn enclave_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SIGIL_TEST_ENCLAVE") {
        return require(PathBuf::from(p));
    }
    let s = static_enclave();
    if s.exists() {
        s
    } else {
        require(profile_dir().join("sigil-enclave"))
    }
}

pub fn sigil_bin() -> PathBuf {
    require(profile_dir().join("sigil"))
}

pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel)
}

/// A local-mode enclave process of [`enclave_bin`], killed when dropped.
pub struct Enclave {
    inner: sigil_e2e::deployment::LocalEnclave,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Enclave {
    pub fn start(extra: &[&str]) -> Enclave {
        let inner = sigil_e2e::deployment::LocalEnclave::start(&enclave_bin(), extra);
        let addr = inner.addr().to_string();
        Enclave { inner, addr }
    }

    pub fn endpoint(&self) -> String {
        self.inner.endpoint()
    }

    /// Sends raw bytes, optionally half-closes, and returns whatever comes back.
    pub fn raw(&self, bytes: &[u8], half_close: bool) -> Vec<u8> {
        let mut s = TcpStream::connect(&self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // The server may answer and close before taking every byte; that is its right.
        let _ = s.write_all(bytes);
        if half_close {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.inner.is_running()
    }
}

/// Runs the sigil CLI.
pub fn sigil(args: &[&str]) -> Output {
    Command::new(sigil_bin())
        .args(args)
        .output()
        .expect("run sigil")
}

/// Runs the `sigil` CLI, which must succeed, and parses the JSON it prints.
pub fn sigil_json(args: &[&str]) -> serde_json::Value {
    let out = sigil(args);
    assert!(
        out.status.success(),
        "sigil {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Splits a raw HTTP response into (head, status, body); panics if it is not one.
pub fn split_response(raw: &[u8]) -> (String, u16, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (head.to_string(), status, body.to_string())
}

/// Splits a raw HTTP response into (status, body as JSON).
pub fn parse_response(raw: &[u8]) -> (u16, serde_json::Value) {
    let (head, status, body) = split_response(raw);
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("body of {head:?}: {e}"));
    (status, json)
}

/// The error code of an error response.
pub fn error_code(v: &serde_json::Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
}

/// A binary of this workspace's current profile (built by `cargo build --workspace --bins`).
pub fn profile_bin(name: &str) -> PathBuf {
    require(profile_dir().join(name))
}

/// Accepts simulated documents (the sigil test root, debug PCRs), fresh within 5 minutes.
pub fn test_root_policy() -> sigil_attestation::Policy {
    let mut p = sigil_attestation::Policy::at(now());
    p.trust_test_root = true;
    p.allow_debug = true;
    p.max_age_seconds = Some(300);
    p
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A client of the local enclave at `endpoint`, attested against the test root (debug
/// allowed, no age limit).
pub fn attest_local(endpoint: &str) -> (sigil_client::Client, sigil_client::AttestedEnclave) {
    let client = sigil_client::Client::new(endpoint).unwrap();
    let mut policy = sigil_attestation::Policy::at(now());
    policy.trust_test_root = true;
    policy.allow_debug = true;
    let enclave = client.attest(policy).expect("attest the local enclave");
    (client, enclave)
}

/// The status, code and message of an API error (any other error fails the test).
pub fn api_error(e: sigil_client::ClientError) -> (u16, String, String) {
    match e {
        sigil_client::ClientError::Api {
            status,
            code,
            message,
        } => (status, code.to_string(), message),
        other => panic!("expected an API error, got {other}"),
    }
}

/// Polls `GET /v1/health` until the sealing is ready; `context` explains a timeout.
pub fn wait_sealing_ready(endpoint: &str, context: impl Fn() -> String) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let h = sigil_e2e::deployment::health(endpoint);
        if let Some(h) = &h
            && h["sealing"]["state"] == "ready"
        {
            return h["sealing"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "sealing not ready: {h:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An owner key's secret bytes, to give a writer thread its own copy (through the key file
/// format, so the test uses only the client's public API).
pub fn owner_secret(o: &sigil_client::OwnerKey) -> Vec<u8> {
    let dir = target_dir().join("test-sealed");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!(
        "owner-{}-{}",
        std::process::id(),
        hex::encode(o.x_only())
    ));
    let _ = std::fs::remove_file(&p);
    o.save(p.to_str().unwrap()).unwrap();
    let hex_text = std::fs::read_to_string(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    hex::decode(hex_text.trim()).unwrap()
}

/// The shared BN254 CRS prefix (32,769 points).
pub fn shared_crs() -> PathBuf {
    let p = shared("crs/bn254_g1.dat");
    assert!(
        p.exists(),
        "{} is missing (../shared beside the checkout)",
        p.display()
    );
    p
}

/// SHA-256 (hex) of the first `points` points of the shared CRS: the pin a prover
/// configuration names.
pub fn sha256_of_crs_points(points: usize) -> String {
    let bytes = std::fs::read(shared_crs()).unwrap();
    hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes[..points * 64]).as_ref())
}

/// A fresh directory `target/<group>/<name>-<pid>` holding a real shim that serves the shared
/// CRS from its blob store (`<dir>/blobs.sock`).
pub fn crs_shim(group: &str, name: &str) -> (PathBuf, sigil_e2e::shim::Shim) {
    crs_shim_with(group, name, shared_crs())
}

/// As [`crs_shim`], serving the points in `crs`.
pub fn crs_shim_with(group: &str, name: &str, crs: PathBuf) -> (PathBuf, sigil_e2e::shim::Shim) {
    let dir = fresh_dir(group, name);
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let setup = sigil_e2e::shim::ShimSetup::in_dir(profile_bin("sigil-shim"), &dir, Some(crs));
    let shim = sigil_e2e::shim::Shim::start(&setup).expect("start sigil-shim");
    (dir, shim)
}

/// A fresh, empty directory `target/<group>/<name>-<pid>`.
pub fn fresh_dir(group: &str, name: &str) -> PathBuf {
    let dir = target_dir()
        .join(group)
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The local enclave with a prover: its configuration file `config`, the blob store of the
/// shim in `shim_dir` (see [`crs_shim`]) and the host binary `bb`.
pub fn prover_enclave(config: &Path, shim_dir: &Path, bb: &Path) -> Enclave {
    let blobs = format!("unix:{}", shim_dir.join("blobs.sock").display());
    Enclave::start(&[
        "--config",
        config.to_str().unwrap(),
        "--blob-store",
        &blobs,
        "--bb",
        bb.to_str().unwrap(),
    ])
}

/// `target/bb/bb`, as `scripts/fetch-bb` installs it.
pub fn bb() -> PathBuf {
    let p = target_dir().join("bb/bb");
    assert!(
        p.exists(),
        "{} is missing: scripts/setup fetches it (scripts/fetch-bb)",
        p.display()
    );
    p
}

/// Whether the host's bb verifies the proof, public inputs and vk in `out` (as `sigil prove`
/// writes them), with the CRS in `crs_dir`.
pub fn bb_verifies(out: &Path, crs_dir: &Path) -> bool {
    Command::new(bb())
        .args(["verify", "--scheme", "ultra_honk", "-t", "noir-recursive"])
        .arg("-p")
        .arg(out.join("proof"))
        .arg("-i")
        .arg(out.join("public_inputs"))
        .arg("-k")
        .arg(out.join("vk"))
        .arg("-c")
        .arg(crs_dir)
        .output()
        .expect("run bb verify")
        .status
        .success()
}

/// After a restart, the vault entry `name` (written as `value-<version>`) holds the last
/// acknowledged write (`acked`) or the one in flight; returns its version.
pub fn vault_version_after_restart(
    c: &sigil_client::Client,
    e: &sigil_client::AttestedEnclave,
    owner: &sigil_client::OwnerKey,
    name: &str,
    acked: u64,
) -> u64 {
    let (value, version) = c.vault_get(e, owner, name).unwrap();
    assert!(
        version == acked || version == acked + 1,
        "version {version} after {acked} acknowledged writes"
    );
    assert_eq!(*value, format!("value-{version}").into_bytes());
    version
}

/// The hostile prover (`src/bin/hostile-bb.rs`), as cargo builds it for these tests.
pub fn hostile_bb() -> PathBuf {
    std::fs::canonicalize(profile_bin("hostile-bb")).unwrap()
}

/// Checks the hostile prover's report: every door it tried is shut, its job directory was
/// writable, and each door in `must_try` (a prefix of a door's name) was tried.
pub fn assert_doors_shut(report: &[u8], must_try: &[&str]) {
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(report)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let name = |l: &serde_json::Value| l["door"].as_str().unwrap_or_default().to_string();
    for want in must_try {
        assert!(
            lines.iter().any(|l| name(l).starts_with(want)),
            "the hostile prover did not try {want}: {lines:?}"
        );
    }
    let open: Vec<_> = lines
        .iter()
        .filter(|l| l["open"] == true && name(l) != "job directory writable")
        .collect();
    assert!(open.is_empty(), "doors left open: {open:#?}");
    assert!(
        lines
            .iter()
            .any(|l| name(l) == "job directory writable" && l["open"] == true),
        "the allowed work failed: {lines:?}"
    );
}

/// The doors every run of the hostile prover must have tried.
pub const DOORS: &[&str] = &[
    "root",
    "groups",
    "setuid 0",
    "socket AF_INET",
    "socket AF_UNIX",
    "socket AF_VSOCK",
    "read /dev/nsm",
    "signal pid 1",
    "read /proc/1/environ",
    "ptrace pid",
    "write in /",
    "write in /tmp",
    "write the CRS",
    "see other jobs",
    "inherited descriptors",
    "mount",
    "unshare a user namespace",
];

/// A stand-in for bb under `dir/bin`: it stalls (`sleep stall`) when asked to prove the
/// `large` fixture, and is the real bb for everything else. The sandbox shows bb's own
/// directory (read-only) and nothing else of the host but the system directories, so the
/// wrapper, the real bb and the circuit it stalls on sit together.
pub fn stalling_bb(dir: &Path, stall: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = bin.join("bb");
    if std::fs::hard_link(bb(), &real).is_err() {
        std::fs::copy(bb(), &real).unwrap();
    }
    std::fs::copy(
        sigil_e2e::fixture("large", "target.json"),
        bin.join("large.json"),
    )
    .unwrap();
    let wrapper = bin.join("stalling-bb");
    std::fs::write(
        &wrapper,
        format!(
            // Shell built-ins only: the sandbox lets nothing fork.
            "#!/bin/sh\nif [ \"$1\" = prove ]; then\n  read -r a < \"$5\"; read -r b < '{large}'\n  [ \"$a\" = \"$b\" ] && exec /bin/sleep {stall}\nfi\nexec '{bb}' \"$@\"\n",
            large = bin.join("large.json").display(),
            bb = real.display(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

/// Quorum administrators' keys (files in `dir`, one per name) and the measured `quorum`
/// member naming them with threshold 2.
pub fn quorum_admins(dir: &Path, names: &[&str]) -> (Vec<sigil_client::quorum::AdminKey>, String) {
    std::fs::create_dir_all(dir).unwrap();
    let keys: Vec<_> = names
        .iter()
        .map(|n| {
            let path = dir.join(format!("{n}.key"));
            let _ = std::fs::remove_file(&path);
            sigil_client::quorum::AdminKey::create(path.to_str().unwrap()).unwrap()
        })
        .collect();
    let entries: Vec<_> = keys.iter().zip(names).map(|(k, n)| k.admin(n)).collect();
    let json = serde_json::json!({"threshold": 2, "admins": entries}).to_string();
    (keys, json)
}
