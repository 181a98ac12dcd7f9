//! Benchmark: FROST 2-of-3 threshold signing across three enclaves through their HTTP API,
//! next to the same FROST steps run in-process through `sigil_signing::frost`.
//!
//! The service side is three real local-mode deployments (each its own development KMS,
//! `sigil-shim` and `sigil-enclave`, sealed state open), whose peer policy accepts their own
//! image. This process is the untrusted coordinator, with `sigil_client::frost`:
//! - key generation: `dkg/start`, `dkg/round2`, `dkg/finish` at each member (9 requests),
//!   round-1 and round-2 packages sealed between the enclaves, every member's view checked;
//! - signing by members 1 and 2: `sign/commit` and `sign/share` at each (the owner approves
//!   each with a BIP-340 signature the enclave checks), `sign/aggregate` at member 1 (shares
//!   and signatures verified there), then every signature verified again by the client with
//!   k256 (5 requests a session).
//!
//! The in-process side runs the same FROST steps in this thread, packages passed by value: no
//! sealing, no attestation documents, no owner approvals, no storage, no second check of the
//! signatures. The ratio of the two is what the service costs on top of the FROST work.
//!
//! It also runs one key generation and one signing session step by step to report the sizes
//! of what the coordinator carries.
//!
//! Needs release binaries of the same target directory as this bench:
//! `cargo build --release -p sigil-enclave -p sigil-shim`, then
//! `cargo bench -p sigil-e2e --bench frost`. `SIGIL_BENCH_DKGS` sets the number of key
//! generations through the API (default 5), `SIGIL_BENCH_FROST_SESSIONS` the number of signing
//! sessions through the API (default 50).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sigil_client::frost::{self as coordinator, Member};
use sigil_client::{AttestedEnclave, Client, OwnerKey};
use sigil_e2e::deployment::Deployment;
use sigil_protocol::endpoint as ep;
use sigil_protocol::frost::{
    DkgContinue, DkgStart, GroupView, SignCommit, SignShare, dkg_digest, sign_digest,
};
use sigil_protocol::peers::PeerMessage;
use sigil_protocol::wire::{Base64Bytes, Hex};
use sigil_signing::frost::{self, Dkg, Generated};

mod release;
use release::{attest, enclave_bin, profile_dir, shim_bin};

const MEMBERS: u16 = 3;
const THRESHOLD: u16 = 2;
/// Members 1 and 2 sign every session.
const SIGNERS: [u16; 2] = [1, 2];
/// The largest batch a session takes (`sigil_protocol::frost::MAX_BATCH`).
const BATCH: usize = sigil_protocol::frost::MAX_BATCH;

// ---------------------------------------------------------------------------------------------
// The deployments: three of development KMS + sigil-shim + sigil-enclave, in local mode.

/// The three members, started with sealed state ready; their directory goes when they end.
struct Members {
    dir: PathBuf,
    deployments: Vec<Deployment>,
}

impl Members {
    fn start(enclave_bin: &Path, shim_bin: &Path) -> Members {
        let dir = profile_dir()
            .join("bench-frost")
            .join(std::process::id().to_string());
        let mut deployments: Vec<Deployment> = ["a", "b", "c"]
            .iter()
            .map(|name| {
                let mut d = Deployment::new(
                    dir.join(name),
                    enclave_bin.to_path_buf(),
                    shim_bin.to_path_buf(),
                    None,
                );
                // Peers are other boots of this image, under the simulated attestation's root.
                d.peers = Some(r#"{"images": ["self"], "trust_test_root": true}"#.into());
                d
            })
            .collect();
        // All three fetch their data keys at once: the wait is for the slowest, not the sum.
        for d in &mut deployments {
            d.start_enclave();
        }
        for d in &deployments {
            d.wait_sealing(true);
        }
        Members { dir, deployments }
    }

    fn endpoints(&self) -> Vec<String> {
        self.deployments.iter().map(Deployment::endpoint).collect()
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        for d in &mut self.deployments {
            d.kill_enclave();
            d.kill_shim();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Shared by both sides.

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

/// A distinct 32-byte "sighash" per message.
fn message(stream: u64, i: u64) -> [u8; 32] {
    let mut m = [0xf5u8; 32];
    m[..8].copy_from_slice(&stream.to_be_bytes());
    m[8..16].copy_from_slice(&i.to_be_bytes());
    m
}

fn batch(stream: u64, i: u64) -> Vec<[u8; 32]> {
    (0..BATCH as u64)
        .map(|j| message(stream, i * BATCH as u64 + j))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Through the HTTP API.

/// One coordinator's attested clients of the three members (participant i at i - 1).
type Conns = Vec<(Client, AttestedEnclave)>;

fn connect(endpoints: &[String]) -> Conns {
    endpoints.iter().map(|e| attest(e)).collect()
}

fn members(conns: &Conns) -> Vec<Member<'_>> {
    conns
        .iter()
        .map(|(client, enclave)| Member { client, enclave })
        .collect()
}

/// One key generation through the API; returns its time and the group.
fn api_dkg(conns: &Conns, owner: &OwnerKey) -> (Duration, GroupView) {
    let start = Instant::now();
    let views = coordinator::dkg(&members(conns), THRESHOLD, owner).expect("key generation");
    (start.elapsed(), views.into_iter().next().expect("a view"))
}

/// One signing session by members 1 and 2 through the API, to signatures checked by the
/// client; returns its latency.
fn api_sign(conns: &Conns, group: &GroupView, owner: &OwnerKey, msgs: &[[u8; 32]]) -> Duration {
    let signers: Vec<(u16, Member<'_>)> = SIGNERS
        .iter()
        .map(|n| {
            let (client, enclave) = &conns[*n as usize - 1];
            (*n, Member { client, enclave })
        })
        .collect();
    let start = Instant::now();
    let out = coordinator::sign(&signers, group, msgs, None, owner).expect("signing session");
    let elapsed = start.elapsed();
    assert_eq!(out.output_key, group.output_key);
    assert_eq!(out.signatures.len(), msgs.len());
    elapsed
}

/// The messages of `all` addressed to member `i`.
fn addressed(all: &[PeerMessage], conns: &Conns, i: usize) -> Vec<PeerMessage> {
    let node = conns[i].1.image.node.expect("a node identity");
    all.iter()
        .filter(|m| m.recipient.0 == node)
        .cloned()
        .collect()
}

/// The serialized JSON length of a value (a macro: this crate does not depend on serde).
macro_rules! json_len {
    ($v:expr) => {
        serde_json::to_vec($v).unwrap().len()
    };
}

/// What the coordinator carries, in bytes.
struct Sizes {
    start_request: usize,
    round1: usize,
    round1_ct: usize,
    round1_count: usize,
    round2: usize,
    round2_ct: usize,
    round2_count: usize,
    view: usize,
    commitment: usize,
    commit_answer: usize,
    share: usize,
    share_answer: usize,
    share_request: usize,
}

/// One key generation and one signing session step by step (the coordinator's calls made
/// here), recording sizes.
fn api_sizes(conns: &Conns, owner: &OwnerKey) -> Sizes {
    let session = random32();
    let docs: Vec<Base64Bytes> = conns
        .iter()
        .map(|(_, e)| Base64Bytes(e.raw.clone()))
        .collect();
    let nodes: Vec<[u8; 32]> = conns
        .iter()
        .map(|(_, e)| e.image.node.expect("a node identity"))
        .collect();
    let not_after = now() + 120;
    let digest = dkg_digest(&session, THRESHOLD, &nodes, &owner.x_only(), not_after);
    let mut start_request = 0;
    let mut round1 = Vec::new();
    for (c, e) in conns {
        let req = DkgStart {
            session: Hex(session),
            threshold: THRESHOLD,
            members: docs.clone(),
            owner: Hex(owner.x_only()),
            not_after,
            signature: owner.sign_for(e, &digest).unwrap(),
        };
        start_request = json_len!(&req);
        round1.extend(
            c.call::<ep::FrostDkgStart>(e, &req)
                .expect("dkg/start")
                .messages,
        );
    }
    let mut round2 = Vec::new();
    for (i, (c, e)) in conns.iter().enumerate() {
        let req = DkgContinue {
            session: Hex(session),
            messages: addressed(&round1, conns, i),
        };
        round2.extend(
            c.call::<ep::FrostDkgRound2>(e, &req)
                .expect("dkg/round2")
                .messages,
        );
    }
    let mut views = Vec::new();
    for (i, (c, e)) in conns.iter().enumerate() {
        let req = DkgContinue {
            session: Hex(session),
            messages: addressed(&round2, conns, i),
        };
        views.push(c.call::<ep::FrostDkgFinish>(e, &req).expect("dkg/finish"));
    }
    coordinator::check_views(&views, &nodes, THRESHOLD, &owner.x_only()).expect("views agree");
    let group = &views[0];

    let session = random32();
    let msgs = [message(u64::MAX, 0)];
    let not_after = now() + 120;
    let digest = sign_digest(&session, &group.group.0, &SIGNERS, &msgs, None, not_after);
    let mut commitments = Vec::new();
    for n in SIGNERS {
        let (c, e) = &conns[n as usize - 1];
        let req = SignCommit {
            session: Hex(session),
            group: group.group,
            signers: SIGNERS.to_vec(),
            messages: msgs.iter().map(|m| Hex(*m)).collect(),
            merkle_root: None,
            not_after,
            signature: owner.sign_for(e, &digest).unwrap(),
        };
        commitments.push(c.call::<ep::FrostSignCommit>(e, &req).expect("sign/commit"));
    }
    let share_req = SignShare {
        session: Hex(session),
        commitments: commitments.clone(),
    };
    let mut shares = Vec::new();
    for n in SIGNERS {
        let (c, e) = &conns[n as usize - 1];
        shares.push(
            c.call::<ep::FrostSignShare>(e, &share_req)
                .expect("sign/share"),
        );
    }
    let sizes = Sizes {
        start_request,
        round1: json_len!(&round1[0]),
        round1_ct: round1[0].ct.0.len(),
        round1_count: round1.len(),
        round2: json_len!(&round2[0]),
        round2_ct: round2[0].ct.0.len(),
        round2_count: round2.len(),
        view: json_len!(group),
        commitment: commitments[0].items[0].0.len(),
        commit_answer: json_len!(&commitments[0]),
        share: shares[0].items[0].0.len(),
        share_answer: json_len!(&shares[0]),
        share_request: json_len!(&share_req),
    };
    let (c, e) = &conns[0];
    let at = Member {
        client: c,
        enclave: e,
    };
    coordinator::aggregate(&at, group, &msgs, None, commitments, shares).expect("aggregate");
    sizes
}

// ---------------------------------------------------------------------------------------------
// In-process, through `sigil_signing::frost`.

/// A key generation's outcome in-process, with the sizes of participant 1's packages.
struct LocalDkg {
    time: Duration,
    keys: BTreeMap<u16, Generated>,
    round1_len: usize,
    round2_len: usize,
}

/// The three parts for every participant, packages carried faithfully.
fn local_dkg() -> LocalDkg {
    let start = Instant::now();
    let mut parts: BTreeMap<u16, Dkg> = BTreeMap::new();
    let mut round1: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    for p in 1..=MEMBERS {
        let (d, pkg) = Dkg::start(p, MEMBERS, THRESHOLD).unwrap();
        parts.insert(p, d);
        round1.insert(p, pkg);
    }
    let mut to: BTreeMap<u16, BTreeMap<u16, Vec<u8>>> = BTreeMap::new();
    let mut digests: BTreeMap<u16, [u8; 32]> = BTreeMap::new();
    for (p, d) in parts.iter_mut() {
        let others = round1
            .iter()
            .filter(|(k, _)| *k != p)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let (out, digest) = d.round2(&others).unwrap();
        digests.insert(*p, digest);
        for (recipient, pkg) in out {
            to.entry(recipient).or_default().insert(*p, pkg);
        }
    }
    let keys: BTreeMap<u16, Generated> = parts
        .iter_mut()
        .map(|(p, d)| {
            let others = digests
                .iter()
                .filter(|(k, _)| *k != p)
                .map(|(k, v)| (*k, *v))
                .collect();
            (*p, d.finish(&to[p], &others).unwrap())
        })
        .collect();
    let time = start.elapsed();
    LocalDkg {
        time,
        keys,
        round1_len: round1[&1].len(),
        round2_len: to[&2][&1].len(),
    }
}

/// A session by members 1 and 2 in-process: commitments, shares and an aggregate (shares
/// verified) per message; returns its latency and the commitment and share sizes.
fn local_sign(keys: &BTreeMap<u16, Generated>, msgs: &[[u8; 32]]) -> (Duration, usize, usize) {
    let start = Instant::now();
    let mut nonces: BTreeMap<u16, Vec<frost::Nonces>> = BTreeMap::new();
    let mut commitments: Vec<BTreeMap<u16, Vec<u8>>> = vec![BTreeMap::new(); msgs.len()];
    for s in SIGNERS {
        for c in commitments.iter_mut() {
            let (n, bytes) = frost::commit(&keys[&s].key_package).unwrap();
            nonces.entry(s).or_default().push(n);
            c.insert(s, bytes);
        }
    }
    let packages: Vec<frost::SigningPackage> = commitments
        .iter()
        .zip(msgs)
        .map(|(c, m)| frost::signing_package(c, m).unwrap())
        .collect();
    let mut shares: Vec<BTreeMap<u16, Vec<u8>>> = vec![BTreeMap::new(); msgs.len()];
    for (s, ns) in nonces {
        for ((n, package), sh) in ns.into_iter().zip(&packages).zip(shares.iter_mut()) {
            sh.insert(
                s,
                frost::sign(n, &keys[&s].key_package, package, None).unwrap(),
            );
        }
    }
    let public = &keys[&SIGNERS[0]].public;
    for (package, sh) in packages.iter().zip(&shares) {
        frost::aggregate(package, sh, public, None).expect("aggregate");
    }
    (
        start.elapsed(),
        commitments[0][&SIGNERS[0]].len(),
        shares[0][&SIGNERS[0]].len(),
    )
}

// ---------------------------------------------------------------------------------------------
// Reporting.

struct Stats {
    p50: Duration,
    p99: Duration,
    min: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        min: samples[0],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `per_thread` sessions on each of `threads` threads; returns every latency and the
/// throughput over the wall time.
fn concurrent<S: Sync>(
    threads: u64,
    per_thread: u64,
    state: impl Fn(u64) -> S + Sync,
    one: impl Fn(&S, u64, u64) -> Duration + Sync,
) -> (Vec<Duration>, f64) {
    let start = Instant::now();
    let all: Vec<Duration> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (state, one) = (&state, &one);
                sc.spawn(move || {
                    let s = state(t);
                    (0..per_thread).map(|i| one(&s, t, i)).collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("bench thread"))
            .collect()
    });
    let n = all.len() as f64;
    (all, n / start.elapsed().as_secs_f64())
}

fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn main() {
    let n_dkg = env_count("SIGIL_BENCH_DKGS", 5);
    let n_sign = env_count("SIGIL_BENCH_FROST_SESSIONS", 50);
    // In-process runs are cheap; more of them make their numbers steadier.
    let n_local_dkg = (n_dkg * 4).max(20);
    let n_local_sign = n_sign * 5;
    let n_batch = (n_sign / 5).max(3);
    let n_local_batch = n_batch * 5;
    let (enclave_bin, enclave_kind) = enclave_bin();
    let shim_bin = shim_bin();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    println!(
        "== sigil FROST 2-of-3 across enclaves: HTTP API (3 local deployments) vs in-process =="
    );
    println!(
        "machine: numbers are from this machine, {cores} CPU(s) visible, shared with other work \
         and by the 3 deployments; they vary from run to run (compare within one run)"
    );
    println!("enclave: {} ({enclave_kind})", enclave_bin.display());
    println!("shim:    {}", shim_bin.display());
    println!(
        "service: 3 x (KMS (dev) + sigil-shim + sigil-enclave); HPKE-sealed requests over \
         loopback HTTP, one connection per request; the coordinator calls members one after \
         another"
    );
    println!(
        "API:     sigil_client::frost; DKG = 9 requests (packages sealed enclave to enclave, \
         views checked);\n         signing = commit + share at members 1 and 2 (owner approval \
         checked by each) + aggregate at member 1,\n         then every signature verified \
         again by the client with k256"
    );
    println!(
        "in-proc: sigil_signing::frost in this thread, the same FROST steps (shares verified at \
         aggregation); no sealing,\n         no documents, no approvals, no storage, no second \
         signature check"
    );
    println!();

    let setup = Instant::now();
    let deployments = Members::start(&enclave_bin, &shim_bin);
    let endpoints = deployments.endpoints();
    let conns = connect(&endpoints);
    println!(
        "(3 deployments started, sealing ready, attested: {:.2} s, not counted)",
        setup.elapsed().as_secs_f64()
    );
    let owner = OwnerKey::generate().unwrap();

    // One step-by-step run first: it also warms up the members.
    let sizes = api_sizes(&conns, &owner);

    // --- key generation ---
    let mut api_dkgs = Vec::new();
    let mut attests = Vec::new();
    let mut group = None;
    for _ in 0..n_dkg {
        // Fresh documents for each run, as a coordinator fetches them (the members check
        // their age); the attestation is not counted.
        let t = Instant::now();
        let fresh = connect(&endpoints);
        attests.push(t.elapsed());
        let (time, view) = api_dkg(&fresh, &owner);
        api_dkgs.push(time);
        group.get_or_insert(view);
    }
    let group = group.expect("a group");
    let local: Vec<LocalDkg> = (0..n_local_dkg).map(|_| local_dkg()).collect();
    let local_dkg_stats = stats(local.iter().map(|d| d.time).collect());
    let (round1_len, round2_len) = (local[0].round1_len, local[0].round2_len);
    let keys = local.into_iter().next().expect("a key generation").keys;
    let api_dkg_stats = stats(api_dkgs);
    let attest_stats = stats(attests);

    println!();
    println!("-- DKG, 2-of-3 (3 members) --");
    println!(
        "{:<46} {:>5} {:>11} {:>9}",
        "time per key generation", "runs", "median[ms]", "min[ms]"
    );
    println!(
        "{:<46} {:>5} {:>11.2} {:>9.2}",
        "HTTP API (coordinator: 9 requests)",
        n_dkg,
        ms(api_dkg_stats.p50),
        ms(api_dkg_stats.min)
    );
    println!(
        "{:<46} {:>5} {:>11.3} {:>9.3}",
        "in-process (3 x start, round2, finish)",
        n_local_dkg,
        ms(local_dkg_stats.p50),
        ms(local_dkg_stats.min)
    );
    println!(
        "ratio API / in-process (median): x{:.1}",
        ms(api_dkg_stats.p50) / ms(local_dkg_stats.p50)
    );
    release::ratio(
        ms(api_dkg_stats.p50) / ms(local_dkg_stats.p50),
        None,
        "FROST 2-of-3 key generation across 3 enclaves / in-process (median)",
    );
    println!(
        "(before each API run, fresh attestation of the 3 members: median {:.2} ms, not counted)",
        ms(attest_stats.p50)
    );

    // --- signing, one message ---
    for i in 0..5 {
        api_sign(&conns, &group, &owner, &[message(90, i)]);
        local_sign(&keys, &[message(91, i)]);
    }
    let start = Instant::now();
    let api_seq: Vec<Duration> = (0..n_sign)
        .map(|i| api_sign(&conns, &group, &owner, &[message(1, i)]))
        .collect();
    let api_tput1 = n_sign as f64 / start.elapsed().as_secs_f64();
    let api_seq = stats(api_seq);
    let per_thread = n_sign.div_ceil(2);
    let (api_par, api_tput2) = concurrent(
        2,
        per_thread,
        // Each coordinator thread has its own clients of the three members.
        |_| connect(&endpoints),
        |conns, t, i| api_sign(conns, &group, &owner, &[message(10 + t, i)]),
    );
    let api_par = stats(api_par);
    let start = Instant::now();
    let mut commitment_len = 0;
    let mut share_len = 0;
    let local_seq: Vec<Duration> = (0..n_local_sign)
        .map(|i| {
            let (t, c, s) = local_sign(&keys, &[message(2, i)]);
            (commitment_len, share_len) = (c, s);
            t
        })
        .collect();
    let local_tput = n_local_sign as f64 / start.elapsed().as_secs_f64();
    let local_seq = stats(local_seq);

    println!();
    println!("-- signing 2-of-3, 1 message (members 1 and 2) --");
    println!(
        "{:<46} {:>5} {:>9} {:>9} {:>11}",
        "latency per session", "n", "p50[ms]", "p99[ms]", "sessions/s"
    );
    let row = |name: &str, n: u64, s: &Stats, tput: f64| {
        println!(
            "{name:<46} {n:>5} {:>9.3} {:>9.3} {tput:>11.1}",
            ms(s.p50),
            ms(s.p99)
        );
    };
    row(
        "HTTP API, 1 coordinator thread (5 requests)",
        n_sign,
        &api_seq,
        api_tput1,
    );
    row(
        "HTTP API, 2 coordinator threads",
        2 * per_thread,
        &api_par,
        api_tput2,
    );
    row("in-process, 1 thread", n_local_sign, &local_seq, local_tput);
    println!(
        "ratio API / in-process: p50 latency x{:.1} (1 thread); throughput x{:.1} lower with 1 \
         coordinator thread, x{:.1} lower with 2",
        ms(api_seq.p50) / ms(local_seq.p50),
        local_tput / api_tput1,
        local_tput / api_tput2
    );
    release::ratio(
        ms(api_seq.p50) / ms(local_seq.p50),
        None,
        "FROST 2-of-3 signing across 3 enclaves / in-process (p50)",
    );

    // --- signing, a batch ---
    let api_batch: Vec<Duration> = (0..n_batch)
        .map(|i| api_sign(&conns, &group, &owner, &batch(3, i)))
        .collect();
    let local_batch: Vec<Duration> = (0..n_local_batch)
        .map(|i| local_sign(&keys, &batch(4, i)).0)
        .collect();
    let (api_batch, local_batch) = (stats(api_batch), stats(local_batch));

    println!();
    println!("-- signing 2-of-3, a batch of {BATCH} messages in one session --");
    println!(
        "{:<46} {:>5} {:>9} {:>9} {:>16}",
        "latency per session", "n", "p50[ms]", "min[ms]", "p50/signature[ms]"
    );
    for (name, n, s) in [
        ("HTTP API, 1 coordinator thread", n_batch, &api_batch),
        ("in-process, 1 thread", n_local_batch, &local_batch),
    ] {
        println!(
            "{name:<46} {n:>5} {:>9.3} {:>9.3} {:>16.3}",
            ms(s.p50),
            ms(s.min),
            ms(s.p50) / BATCH as f64
        );
    }
    println!(
        "ratio API / in-process (p50): x{:.1}; API batch of {BATCH} vs {BATCH} single sessions: \
         x{:.1} faster",
        ms(api_batch.p50) / ms(local_batch.p50),
        ms(api_seq.p50) * BATCH as f64 / ms(api_batch.p50)
    );

    // --- sizes ---
    println!();
    println!("-- message sizes (bytes; JSON as the coordinator sees it, inside the HPKE seal) --");
    // The sealing's overhead is what the ciphertext adds to the payload it carries.
    println!(
        "round-1 PeerMessage     JSON {:>5}, sealed ct {:>4} = package {round1_len} + {} (AEAD \
         tag); {} per DKG",
        sizes.round1,
        sizes.round1_ct,
        sizes.round1_ct as i64 - round1_len as i64,
        sizes.round1_count
    );
    println!(
        "round-2 PeerMessage     JSON {:>5}, sealed ct {:>4} = digest 32 + package {round2_len} \
         + {}; {} per DKG",
        sizes.round2,
        sizes.round2_ct,
        sizes.round2_ct as i64 - 32 - round2_len as i64,
        sizes.round2_count
    );
    println!(
        "dkg/start request       JSON {:>5} (3 attestation documents); dkg/finish answer \
         (GroupView) JSON {}",
        sizes.start_request, sizes.view
    );
    println!(
        "commitment              {:>4} (in-process {commitment_len}); sign/commit answer JSON {}",
        sizes.commitment, sizes.commit_answer
    );
    println!(
        "signature share         {:>4} (in-process {share_len}); sign/share answer JSON {}, \
         request JSON {}",
        sizes.share, sizes.share_answer, sizes.share_request
    );
    drop(deployments);
}
