//! Benchmark: the quorum root and the registry through the enclave's HTTP API, next to the
//! in-process sharing steps of `sigil_quorum`.
//!
//! The service side is real local-mode deployments whose only root is a quorum of three
//! administrators, k = 2 (no `kms` section; the shim's blob store holds the sealed state),
//! whose peer policy accepts their own image and which run a registry (simulated instance
//! documents trusted). This process plays the administrators, the coordinator and the
//! instances, with `sigil_client`:
//! - genesis approved by one administrator (`quorum_genesis`: status + genesis), each run on a
//!   fresh deployment, to the answer and to the health's `ready`;
//! - each administrator's share fetched and checked (`quorum_share_fetch`: status + share,
//!   then HPKE open and a Feldman check against the commitments), and the check alone;
//! - unlock after a restart into the locked state: two administrators post their shares, timed
//!   from the first post to the health's `ready`, with the administrators' clients
//!   (`quorum_unlock`: status, open and check, post) and with bare posts of opened shares;
//! - key forwarding from the unlocked enclave A to a second enclave B on the same store
//!   (`start_another_enclave`, locked): `sigil_client::quorum::forward` (a fresh document of
//!   each, forward at A, receive at B) until B is `ready`;
//! - registry changes approved by two administrators (`registry_change`: log + status +
//!   change) and registrations of a simulated Nitro instance (challenge + register +
//!   `open_provision`; the instance's document is made in between and not counted).
//!
//! The in-process side runs `sigil_quorum::split` (2 of 3), `verify` of one share and
//! `combine` of two (each share verified, the result checked against the root's public key)
//! in this thread: the floors of genesis, of an administrator's check and of unlock.
//!
//! It also reports the sizes of what administrators, coordinators and instances carry.
//!
//! Needs release binaries of the same target directory as this bench:
//! `cargo build --release -p sigil-enclave -p sigil-shim`, then
//! `cargo bench -p sigil-e2e --bench quorum`. Runs: `SIGIL_BENCH_GENESIS` (fresh deployments,
//! default 5), `SIGIL_BENCH_FETCHES` (rounds of three fetches, 5), `SIGIL_BENCH_UNLOCKS`
//! (restarts per unlock variant, 5), `SIGIL_BENCH_FORWARDS` (5), `SIGIL_BENCH_CHANGES` (10),
//! `SIGIL_BENCH_REGISTRATIONS` (10), `SIGIL_BENCH_QUORUM_LOCAL` (in-process runs, 500).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sigil_attestation::simulator::SimulatedIssuer;
use sigil_client::quorum::{AdminKey, ShareFile, open_share};
use sigil_client::registry::open_provision;
use sigil_client::{AttestedEnclave, Client};
use sigil_e2e::deployment::Deployment;
use sigil_protocol::encap::ServerKey;
use sigil_protocol::endpoint as ep;
use sigil_protocol::quorum::{ForwardRequest, ReceiveRequest};
use sigil_protocol::registry::Change;
use sigil_protocol::wire::{Base64Bytes, Hex, SecretBase64};
use sigil_quorum::{Commitments, Share};
use zeroize::Zeroizing;

mod release;
use release::{attest, enclave_bin, profile_dir, shim_bin};

const NAMES: [&str; 3] = ["alice", "bob", "carol"];
const THRESHOLD: u8 = 2;
/// The pairs of administrators (indices into `NAMES`) that unlock, in turn.
const PAIRS: [[usize; 2]; 3] = [[0, 1], [1, 2], [0, 2]];
/// The instance's measurements the registry allows.
const PCR1: u8 = 0x11;
const PCR2: u8 = 0x22;

// ---------------------------------------------------------------------------------------------
// The deployments.

/// The release binaries and the administrators every deployment of the run shares.
struct Setup {
    enclave: PathBuf,
    shim: PathBuf,
    dir: PathBuf,
    keys: Vec<AdminKey>,
    quorum: String,
}

impl Setup {
    /// A fresh quorum-only deployment in `dir/name`, its enclave started (not yet waited for).
    fn deployment(&self, name: &str) -> Deployment {
        let mut d = Deployment::new(
            self.dir.join(name),
            self.enclave.clone(),
            self.shim.clone(),
            None,
        );
        d.quorum = Some(self.quorum.clone());
        d.without_kms = true;
        // Key forwarding: other boots of this image, under the simulated attestation's root.
        d.peers = Some(r#"{"images": ["self"], "trust_test_root": true}"#.into());
        d.registry = Some(r#"{"trust_test_root": true}"#.into());
        d.start_enclave();
        d
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three administrators' keys (in memory) and the `quorum` member for k = 2 of them.
fn admins() -> (Vec<AdminKey>, String) {
    let keys: Vec<AdminKey> = NAMES
        .iter()
        .map(|_| AdminKey::generate().expect("an administrator key").0)
        .collect();
    let entries: Vec<_> = keys.iter().zip(NAMES).map(|(k, n)| k.admin(n)).collect();
    let quorum = serde_json::json!({"threshold": THRESHOLD, "admins": entries}).to_string();
    (keys, quorum)
}

/// The sealing state `/v1/health` reports ("" while the enclave does not answer).
fn sealing_state(endpoint: &str) -> String {
    ureq::get(format!("{endpoint}/v1/health"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|h| h["sealing"]["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Polls (every millisecond) until the sealing state is `state`.
fn wait_state(endpoint: &str, state: &str) {
    let start = Instant::now();
    loop {
        let now = sealing_state(endpoint);
        if now == state {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{endpoint}: sealing never became {state} (it is {now:?})"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting.

struct Stats {
    n: usize,
    p50: Duration,
    min: Duration,
    max: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    Stats {
        n: samples.len(),
        p50: samples[(samples.len() - 1) / 2],
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn header(what: &str) {
    println!(
        "{what:<58} {:>4} {:>10} {:>9} {:>9}",
        "runs", "median[ms]", "min[ms]", "max[ms]"
    );
}

fn row(name: &str, s: &Stats) {
    println!(
        "{name:<58} {:>4} {:>10.2} {:>9.2} {:>9.2}",
        s.n,
        ms(s.p50),
        ms(s.min),
        ms(s.max)
    );
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// The serialized JSON length of a value (a macro: this crate does not depend on serde).
macro_rules! json_len {
    ($v:expr) => {
        serde_json::to_vec($v).unwrap().len()
    };
}

// ---------------------------------------------------------------------------------------------
// In-process, through `sigil_quorum`.

fn random_secret() -> Zeroizing<[u8; 32]> {
    let mut s = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut s[..]).unwrap();
    // Below the group order whatever was drawn.
    s[0] &= 0x7f;
    s
}

struct Local {
    split: Stats,
    verify: Stats,
    combine: Stats,
}

fn local(n: usize) -> Local {
    let (mut split, mut verify, mut combine) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let secret = random_secret();
        let t = Instant::now();
        let (commitments, shares): (Commitments, Vec<Share>) =
            sigil_quorum::split(&secret, THRESHOLD, NAMES.len() as u8).unwrap();
        split.push(t.elapsed());
        let t = Instant::now();
        sigil_quorum::verify(&shares[i % 3], &commitments).unwrap();
        verify.push(t.elapsed());
        let pair = PAIRS[i % 3];
        let two = [shares[pair[0]].clone(), shares[pair[1]].clone()];
        let t = Instant::now();
        let root = sigil_quorum::combine(&two, &commitments).unwrap();
        combine.push(t.elapsed());
        assert_eq!(*root, *secret);
    }
    Local {
        split: stats(split),
        verify: stats(verify),
        combine: stats(combine),
    }
}

// ---------------------------------------------------------------------------------------------
// Through the HTTP API.

/// Genesis runs, each on a fresh deployment; the last one is kept (unlocked, root in memory).
struct Genesis {
    answer: Stats,
    ready: Stats,
    boot: Stats,
    view_json: usize,
    kept: Deployment,
}

fn genesis(setup: &Setup, runs: usize) -> Genesis {
    let (mut answer, mut ready, mut boot) = (Vec::new(), Vec::new(), Vec::new());
    let mut view_json = 0;
    let mut kept = None;
    for i in 0..runs {
        let t = Instant::now();
        let d = setup.deployment(&format!("g{i}"));
        wait_state(&d.endpoint(), "awaiting_genesis");
        boot.push(t.elapsed());
        let (c, e) = attest(&d.endpoint());
        let t = Instant::now();
        let view = c.quorum_genesis(&e, &setup.keys[i % 3]).expect("genesis");
        answer.push(t.elapsed());
        wait_state(&d.endpoint(), "ready");
        ready.push(t.elapsed());
        assert_eq!(view.state, "unlocked");
        assert_eq!(view.commitments.len(), usize::from(THRESHOLD));
        view_json = json_len!(&view);
        // The previous one ends here (killed, its directory left to the setup's).
        kept = Some(d);
    }
    Genesis {
        answer: stats(answer),
        ready: stats(ready),
        boot: stats(boot),
        view_json,
        kept: kept.expect("a genesis run"),
    }
}

struct Baseline {
    status: Stats,
    document: Stats,
}

/// `n` encapsulated requests that do nothing but answer (`quorum_status`), and `n` documents.
fn baseline(d: &Deployment, n: usize) -> Baseline {
    let (c, e) = attest(&d.endpoint());
    let (mut status, mut document) = (Vec::new(), Vec::new());
    for i in 0..n {
        let t = Instant::now();
        c.quorum_status(&e).expect("quorum status");
        status.push(t.elapsed());
        let mut nonce = [0u8; 32];
        nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let t = Instant::now();
        c.attestation_document(&nonce).expect("a document");
        document.push(t.elapsed());
    }
    Baseline {
        status: stats(status),
        document: stats(document),
    }
}

struct Fetches {
    per_admin: Vec<Stats>,
    all: Stats,
    check: Stats,
    files: Vec<ShareFile>,
}

/// `rounds` times, each administrator fetches and checks its share.
fn fetches(d: &Deployment, keys: &[AdminKey], rounds: usize) -> Fetches {
    let (c, e) = attest(&d.endpoint());
    let mut per_admin = vec![Vec::new(); keys.len()];
    let mut check = Vec::new();
    let mut files = Vec::new();
    for round in 0..rounds {
        for (i, k) in keys.iter().enumerate() {
            let t = Instant::now();
            let f = c
                .quorum_share_fetch(&e, k)
                .expect("fetch and check a share");
            per_admin[i].push(t.elapsed());
            let t = Instant::now();
            let share = open_share(k, &f).expect("the share opens and verifies");
            check.push(t.elapsed());
            assert_eq!(usize::from(share[0]), i + 1);
            assert_eq!(f.share.admin, NAMES[i]);
            if round == 0 {
                files.push(f);
            }
        }
    }
    let all = stats(per_admin.iter().flatten().copied().collect());
    Fetches {
        per_admin: per_admin.into_iter().map(stats).collect(),
        all,
        check: stats(check),
        files,
    }
}

struct Unlocks {
    restart: Stats,
    first: Stats,
    second: Stats,
    answer: Stats,
    ready: Stats,
    bare_answer: Stats,
    bare_ready: Stats,
}

/// Restarts `d` into the locked state; returns how long it took and the attested enclave.
fn restart_locked(d: &mut Deployment) -> (Duration, Client, AttestedEnclave) {
    d.kill_enclave();
    let t = Instant::now();
    d.start_enclave();
    wait_state(&d.endpoint(), "locked");
    let took = t.elapsed();
    let (c, e) = attest(&d.endpoint());
    (took, c, e)
}

/// `runs` unlocks with the administrators' clients, then `runs` with bare posts.
fn unlocks(d: &mut Deployment, keys: &[AdminKey], files: &[ShareFile], runs: usize) -> Unlocks {
    let (mut restart, mut first, mut second, mut answer, mut ready) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let (took, c, e) = restart_locked(d);
        restart.push(took);
        let [a, b] = PAIRS[i % 3];
        let t = Instant::now();
        let one = c.quorum_unlock(&e, &keys[a], &files[a]).expect("unlock 1");
        let t1 = t.elapsed();
        let two = c.quorum_unlock(&e, &keys[b], &files[b]).expect("unlock 2");
        let t2 = t.elapsed();
        wait_state(&d.endpoint(), "ready");
        ready.push(t.elapsed());
        assert_eq!(
            (one.state.as_str(), two.state.as_str()),
            ("locked", "unlocked")
        );
        first.push(t1);
        second.push(t2 - t1);
        answer.push(t2);
    }
    // The shares opened beforehand, as an administrator's tool holding them would.
    let opened: Vec<_> = keys
        .iter()
        .zip(files)
        .map(|(k, f)| open_share(k, f).unwrap())
        .collect();
    let genesis = files[0].share.genesis.0;
    let (mut bare_answer, mut bare_ready) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let (took, c, e) = restart_locked(d);
        restart.push(took);
        let [a, b] = PAIRS[i % 3];
        let t = Instant::now();
        c.quorum_post_share(&e, &keys[a], genesis, &opened[a])
            .expect("post 1");
        let two = c
            .quorum_post_share(&e, &keys[b], genesis, &opened[b])
            .expect("post 2");
        bare_answer.push(t.elapsed());
        wait_state(&d.endpoint(), "ready");
        bare_ready.push(t.elapsed());
        assert_eq!(two.state, "unlocked");
    }
    Unlocks {
        restart: stats(restart),
        first: stats(first),
        second: stats(second),
        answer: stats(answer),
        ready: stats(ready),
        bare_answer: stats(bare_answer),
        bare_ready: stats(bare_ready),
    }
}

struct Registry {
    first_change: Duration,
    changes: Stats,
    challenge: Stats,
    register: Stats,
    open: Stats,
    registration: Stats,
    document: Stats,
    document_len: usize,
    provisioned_ct: usize,
    provisioned_json: usize,
    entry_allow: usize,
    entry_config: usize,
    entry_secret: usize,
    log_entries: usize,
    log_json: usize,
}

/// Builds the registry of the test (`db` configuration, a secret, `web` configuration with
/// references, `web/server` allowed), then `n_changes` more configuration changes and
/// `n_registrations` registrations.
fn registry(d: &Deployment, keys: &[AdminKey], n_changes: usize, n_regs: usize) -> Registry {
    let (c, e) = attest(&d.endpoint());
    let approvers = |i: usize| {
        let [a, b] = PAIRS[i % 3];
        [&keys[a], &keys[b]]
    };
    let db = serde_json::json!({"host": "db.internal", "port": 5432});
    let db_hash = {
        use ring::digest::{SHA256, digest};
        hex::encode(digest(&SHA256, &serde_json::to_vec(&db).unwrap()))
    };
    let web = |rev: usize| {
        serde_json::json!({
            "db": {"$config": db_hash},
            "password": {"$secret": "db-password"},
            "mode": "production",
            "rev": rev,
        })
    };
    // The first change of an application also makes its CA.
    let t = Instant::now();
    c.registry_change(
        &e,
        Change::Config {
            app: "db".into(),
            template: db,
        },
        &approvers(0),
    )
    .expect("the db configuration");
    let first_change = t.elapsed();
    let mut changes = Vec::new();
    let setup_changes = [
        Change::Secret {
            app: "web".into(),
            name: "db-password".into(),
            roles: vec!["server".into()],
            value: SecretBase64::copy_of(b"hunter2"),
            salt: Hex([7; 32]),
        },
        Change::Config {
            app: "web".into(),
            template: web(0),
        },
        Change::Allow {
            app: "web".into(),
            role: "server".into(),
            pcr0: None,
            pcr1: Hex([PCR1; 48]),
            pcr2: Hex([PCR2; 48]),
        },
    ];
    let mut log = None;
    for (i, change) in setup_changes.into_iter().enumerate() {
        log = Some(
            c.registry_change(&e, change, &approvers(i + 1))
                .expect("a setup change"),
        );
    }
    // The whole log (a change answers only its own entry).
    let _ = log;
    let log = c.registry_log(&e).expect("the log");
    let size_of = |kind: &str| {
        log.entries
            .iter()
            .rev()
            .find(|en| en.change["kind"] == kind)
            .map_or(0, |en| json_len!(en))
    };
    let (entry_allow, entry_config, entry_secret) =
        (size_of("allow"), size_of("config"), size_of("secret"));
    let mut last = None;
    for i in 0..n_changes {
        let t = Instant::now();
        let l = c
            .registry_change(
                &e,
                Change::Config {
                    app: "web".into(),
                    template: web(i + 1),
                },
                &approvers(i),
            )
            .expect("a configuration change");
        changes.push(t.elapsed());
        last = Some(l);
    }
    let log = last.unwrap_or(log);

    let issuer = SimulatedIssuer::new().unwrap();
    let (mut challenge, mut register, mut open, mut registration, mut document) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut document_len, mut provisioned_ct, mut provisioned_json) = (0, 0, 0);
    for _ in 0..n_regs {
        let instance = ServerKey::generate().unwrap();
        let t = Instant::now();
        let nonce = c.registry_challenge(&e).expect("a challenge").nonce.0;
        let t_challenge = t.elapsed();
        // The instance's document (the NSM's work on Nitro): not counted.
        let td = Instant::now();
        let mut doc = issuer
            .document(Some(&instance.public_key()), None, Some(&nonce))
            .unwrap();
        doc.pcrs.insert(1, vec![PCR1; 48]);
        doc.pcrs.insert(2, vec![PCR2; 48]);
        let doc = issuer.sign_document(&doc).unwrap();
        let t_document = td.elapsed();
        document_len = doc.len();
        let t = Instant::now();
        let provisioned = c.registry_register(&e, doc).expect("registered");
        let t_register = t.elapsed();
        let t = Instant::now();
        let p = open_provision(&instance, &e.public_key, &nonce, &provisioned)
            .expect("the provision opens");
        let t_open = t.elapsed();
        assert_eq!((p.app.as_str(), p.role.as_str()), ("web", "server"));
        assert_eq!(p.config["password"], "hunter2");
        provisioned_ct = provisioned.ciphertext.0.len();
        provisioned_json = json_len!(&provisioned);
        challenge.push(t_challenge);
        register.push(t_register);
        open.push(t_open);
        registration.push(t_challenge + t_register + t_open);
        document.push(t_document);
    }
    Registry {
        first_change,
        changes: stats(changes),
        challenge: stats(challenge),
        register: stats(register),
        open: stats(open),
        registration: stats(registration),
        document: stats(document),
        document_len,
        provisioned_ct,
        provisioned_json,
        entry_allow,
        entry_config,
        entry_secret,
        log_entries: log.entries.len(),
        log_json: json_len!(&c.registry_log(&e).expect("the log")),
    }
}

struct Forwards {
    boot: Stats,
    answer: Stats,
    ready: Stats,
    forwarded_json: usize,
    forwarded_ct: usize,
    receive_json: usize,
}

/// One forwarding step by step (for the sizes), then `runs` through the client, each to a
/// new second enclave on `d`'s store.
fn forwards(d: &Deployment, runs: usize) -> Forwards {
    let (c, e) = attest(&d.endpoint());
    let fresh = |c: &Client| {
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce).unwrap();
        c.attestation_document(&nonce).unwrap()
    };
    let (forwarded_json, forwarded_ct, receive_json) = {
        let b = d.start_another_enclave(None);
        wait_state(&b.endpoint(), "locked");
        let (cb, eb) = attest(&b.endpoint());
        let forwarded = c
            .call::<ep::QuorumForward>(
                &e,
                &ForwardRequest {
                    document: Base64Bytes(fresh(&cb)),
                },
            )
            .expect("forward");
        let sizes = (json_len!(&forwarded), forwarded.ciphertext.0.len());
        let request = ReceiveRequest {
            document: Base64Bytes(fresh(&c)),
            forwarded,
        };
        let receive_json = json_len!(&request);
        let view = cb
            .call::<ep::QuorumReceive>(&eb, &request)
            .expect("receive");
        assert_eq!(view.state, "unlocked");
        (sizes.0, sizes.1, receive_json)
    };
    let (mut boot, mut answer, mut ready) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let b = d.start_another_enclave(None);
        wait_state(&b.endpoint(), "locked");
        boot.push(t.elapsed());
        let (cb, eb) = attest(&b.endpoint());
        let t = Instant::now();
        let view = sigil_client::quorum::forward((&c, &e), (&cb, &eb)).expect("forwarding");
        answer.push(t.elapsed());
        wait_state(&b.endpoint(), "ready");
        ready.push(t.elapsed());
        assert_eq!(view.state, "unlocked");
    }
    Forwards {
        boot: stats(boot),
        answer: stats(answer),
        ready: stats(ready),
        forwarded_json,
        forwarded_ct,
        receive_json,
    }
}

fn main() {
    let n_genesis = env_count("SIGIL_BENCH_GENESIS", 5);
    let n_fetch = env_count("SIGIL_BENCH_FETCHES", 5);
    let n_unlock = env_count("SIGIL_BENCH_UNLOCKS", 5);
    let n_forward = env_count("SIGIL_BENCH_FORWARDS", 5);
    let n_changes = env_count("SIGIL_BENCH_CHANGES", 10);
    let n_regs = env_count("SIGIL_BENCH_REGISTRATIONS", 10);
    let n_local = env_count("SIGIL_BENCH_QUORUM_LOCAL", 500);
    let (enclave, enclave_kind) = enclave_bin();
    let shim = shim_bin();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    println!(
        "== sigil quorum root (3 administrators, k = 2) and registry: HTTP API vs in-process =="
    );
    println!(
        "machine: numbers are from this machine, {cores} CPU(s) visible, shared with other work \
         (builds may run concurrently) and by the deployment's processes; they vary from run to \
         run (compare within one run)"
    );
    println!("enclave: {} ({enclave_kind})", enclave.display());
    println!("shim:    {}", shim.display());
    println!(
        "service: quorum-only local deployments (sigil-shim blob store + sigil-enclave, no KMS \
         section), peers = this image,\n         registry trusting simulated documents; \
         HPKE-sealed requests over loopback HTTP, one connection per request;\n         \
         \"ready\" = the first /v1/health poll (every 1 ms) that shows sealing state ready"
    );
    println!(
        "in-proc: sigil_quorum (Feldman VSS over secp256k1) in this thread: split, verify one \
         share, combine two (each verified,\n         the root checked against its public key)"
    );
    println!();

    let (keys, quorum) = admins();
    let setup = Setup {
        enclave,
        shim,
        dir: profile_dir()
            .join("bench-quorum")
            .join(std::process::id().to_string()),
        keys,
        quorum,
    };
    let keys = &setup.keys;

    // In-process first: the floors, before any enclave runs.
    let floors = local(n_local);

    // --- genesis ---
    let g = genesis(&setup, n_genesis);
    let mut d = g.kept;
    println!(
        "-- genesis (one approval; root drawn, split 2 of 3, 3 shares sealed, data key wrapped, \
         record stored, state opened) --"
    );
    header("time per genesis, each on a fresh deployment");
    row(
        "API quorum_genesis (status + genesis), to the answer",
        &g.answer,
    );
    row("API, to health ready", &g.ready);
    row(
        "(not counted: deployment start to awaiting_genesis)",
        &g.boot,
    );
    println!(
        "in-process split 2 of 3: median {:.1} us (min {:.1}) over {}; ratio API genesis / split \
         (median): x{:.0}",
        us(floors.split.p50),
        us(floors.split.min),
        floors.split.n,
        ms(g.answer.p50) / ms(floors.split.p50)
    );

    // --- one request, for scale ---
    let base = baseline(&d, 3 * n_fetch + 5);
    println!();
    println!("-- one request, for scale (the kept genesis deployment, ready) --");
    header("time per request");
    row("encapsulated round trip (quorum_status)", &base.status);
    row(
        "attestation document (plain GET, a fresh nonce)",
        &base.document,
    );

    // --- share fetch ---
    let f = fetches(&d, keys, n_fetch);
    println!();
    println!("-- share fetch + client-side check (status + share; HPKE open; Feldman verify) --");
    header("time per administrator");
    for (name, s) in NAMES.iter().zip(&f.per_admin) {
        row(&format!("API quorum_share_fetch, {name}"), s);
    }
    row("API quorum_share_fetch, all three", &f.all);
    row(
        "client-side check alone (open_share: HPKE open + verify)",
        &f.check,
    );
    println!(
        "in-process verify of one share: median {:.1} us (min {:.1}) over {}; ratio fetch / \
         verify (median): x{:.0}; check / verify: x{:.1}",
        us(floors.verify.p50),
        us(floors.verify.min),
        floors.verify.n,
        ms(f.all.p50) / ms(floors.verify.p50),
        ms(f.check.p50) / ms(floors.verify.p50)
    );

    // --- unlock ---
    let u = unlocks(&mut d, keys, &f.files, n_unlock);
    println!();
    println!(
        "-- unlock after a restart into the locked state: 2 shares posted (pairs alice+bob, \
         bob+carol, alice+carol in turn) --"
    );
    header("time");
    row("clients (2 x quorum_unlock), to the 2nd answer", &u.answer);
    row("  1st quorum_unlock (status, open + check, post)", &u.first);
    row(
        "  2nd quorum_unlock (... root rebuilt, state opened)",
        &u.second,
    );
    row("clients, from the 1st call to health ready", &u.ready);
    row(
        "bare posts of opened shares (2 posts), to the 2nd answer",
        &u.bare_answer,
    );
    row(
        "bare posts, from the 1st post to health ready",
        &u.bare_ready,
    );
    row("(not counted: restart to locked)", &u.restart);
    println!(
        "in-process combine of 2: median {:.1} us (min {:.1}) over {}; ratio unlock / combine \
         (median, to ready): x{:.0} with the clients, x{:.0} bare",
        us(floors.combine.p50),
        us(floors.combine.min),
        floors.combine.n,
        ms(u.ready.p50) / ms(floors.combine.p50),
        ms(u.bare_ready.p50) / ms(floors.combine.p50)
    );

    // --- registry ---
    let r = registry(&d, keys, n_changes, n_regs);
    println!();
    println!(
        "-- registry (changes approved by 2 of 3; registrations of a simulated Nitro instance) --"
    );
    header("time");
    println!(
        "{:<58} {:>4} {:>10.2}",
        "first change (new application: its CA made)",
        1,
        ms(r.first_change)
    );
    row(
        "registry_change (log + status + change), configuration",
        &r.changes,
    );
    row("registration: challenge", &r.challenge);
    row(
        "registration: register (document checked, cert issued)",
        &r.register,
    );
    row("registration: open_provision (instance side)", &r.open);
    row(
        "registration: challenge + register + open_provision",
        &r.registration,
    );
    row(
        "(not counted: the instance's simulated document)",
        &r.document,
    );

    // --- forwarding ---
    let fw = forwards(&d, n_forward);
    println!();
    println!(
        "-- key forwarding A -> B (B a second enclave on A's store, locked; a fresh document of \
         each, forward at A, receive at B) --"
    );
    header("time");
    row("sigil_client::quorum::forward, to B's answer", &fw.answer);
    row("forward, to B's health ready", &fw.ready);
    row("(not counted: B's start to locked)", &fw.boot);
    println!(
        "(no in-process floor: the work is two attestation documents made and verified, an \
         HPKE auth seal and open)"
    );

    // --- sizes ---
    let file = &f.files[0];
    println!();
    println!(
        "-- sizes (bytes; JSON as the client sees it, inside the HPKE seal of the request) --"
    );
    println!(
        "share file (ShareFile)       JSON {} compact, {} as `sigil admin share fetch` saves it \
         (pretty)",
        json_len!(file),
        serde_json::to_vec_pretty(file).unwrap().len()
    );
    println!(
        "sealed share                 ciphertext {} = share {} + {} (AEAD tag); enc {}; {} \
         commitments of 33",
        file.share.ciphertext.0.len(),
        sigil_protocol::quorum::SHARE_LEN,
        file.share.ciphertext.0.len() as i64 - sigil_protocol::quorum::SHARE_LEN as i64,
        file.share.enc.0.len(),
        file.share.commitments.len()
    );
    println!("genesis answer (QuorumView)  JSON {}", g.view_json);
    println!(
        "Forwarded (A's answer)       JSON {}, ciphertext {} = root 32 + {}; receive request \
         (with A's document) JSON {}",
        fw.forwarded_json,
        fw.forwarded_ct,
        fw.forwarded_ct as i64 - 32,
        fw.receive_json
    );
    println!(
        "Provisioned (register)       ciphertext {} (Provision JSON {} + 16), answer JSON {}; \
         instance document {}",
        r.provisioned_ct,
        r.provisioned_ct.saturating_sub(16),
        r.provisioned_json,
        r.document_len
    );
    println!(
        "log entry                    JSON {} (allow), {} (config), {} (secret); the log of {} \
         entries JSON {}",
        r.entry_allow, r.entry_config, r.entry_secret, r.log_entries, r.log_json
    );
    drop(d);
}
