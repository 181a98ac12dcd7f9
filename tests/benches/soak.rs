//! Soak benchmark: the local deployment (development KMS, `sigil-shim`, `sigil-enclave` with a
//! prover) under a mixed load for a long time, with junk and slow clients mixed in, and the
//! enclave and the shim killed (SIGKILL) and restarted at the midpoint.
//!
//! `cargo bench -p sigil-e2e --bench soak -- --seconds N --clients C` (defaults: 600 s, 8
//! well-behaved clients). Needs `cargo build --workspace --bins` (or the release binaries) and
//! `scripts/fetch-bb`.
//!
//! Every client goes through the shim's ingress, as on a parent instance. Well-behaved clients
//! cycle through attest, ping, vault put and get (their own entries) and MuSig2 sessions (two
//! keys held by the enclave, owners approve, one external signer) from start to verified
//! signature; one more proves the `tiny` fixture every so often and checks the proof with the
//! host's bb. Junk clients send random bytes, malformed HTTP, an oversized Content-Length and
//! encapsulated garbage; slow clients send a byte a second or never read their answer. Each
//! junk and slow client uses its own loopback address (127.0.0.N), as distinct clients would,
//! so the shim's per-source limit applies to them and not to the well-behaved ones.
//!
//! Checks (the exit status is non-zero if one fails): no error for well-behaved clients
//! outside the restart window (errors inside it are counted apart); every vault write
//! acknowledged before the kill reads back afterwards at its version or later, with its value;
//! MuSig2 keys made before the kill sign after it; a proof is made after the restart; both
//! processes are alive at the end; the enclave's and the shim's resident memory, threads and
//! open descriptors stay flat after warm-up (sampled from /proc).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sigil_client::musig2::{AggregateSpec, ExpectedSession, SessionSpec, verify_bip340};
use sigil_client::{AttestedEnclave, Client, ClientError, OwnerKey, SignerKey};
use sigil_e2e::deployment::{Deployment, Options, Prover};
use sigil_e2e::fixture;
use sigil_protocol::musig2::{
    AggregateView, KeyOrder, MessageView, ParticipantSpec, SessionView, TweakKind, TweakSpec,
};
use sigil_protocol::wire::{Hex, HexBytes};

mod release;
use release::{missing, profile_dir, workspace_target};

// ---------------------------------------------------------------------------------------------
// Settings.

/// Vault entries per well-behaved client, written in turn.
const ENTRIES: usize = 4;
/// A proof of the `tiny` fixture this often.
const PROVE_EVERY: Duration = Duration::from_secs(20);
/// Resource samples: every second in short runs, every two in long ones.
fn sample_every(run: Duration) -> Duration {
    if run >= Duration::from_secs(120) {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(1)
    }
}
/// Fewest samples after warm-up that the flatness check judges.
const MIN_SAMPLES: usize = 6;
/// Slow clients: this many sending a byte a second, this many never reading.
const SLOWLORIS: usize = 3;
const NON_READERS: usize = 2;
/// Junk clients, each sending one kind of junk after another.
const JUNK: usize = 2;
/// Well-behaved clients share one source address (127.0.0.1), and the shim lets one source
/// hold 16 connections; with the prover and the checker, 12 clients leave room.
const MAX_CLIENTS: usize = 12;
/// The prover pins this many points of the shared CRS (the `tiny` circuit needs fewer).
const CRS_POINTS: usize = 32_769;

struct Args {
    seconds: u64,
    clients: usize,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 600,
        clients: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&format!("{name} needs a number")))
        };
        match arg.as_str() {
            "--seconds" => a.seconds = num("--seconds"),
            "--clients" => a.clients = num("--clients") as usize,
            // cargo bench passes --bench to harness-less benches.
            "--bench" => {}
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    if a.seconds < 20 {
        usage("--seconds must be at least 20 (the restart happens at the midpoint)");
    }
    if a.clients == 0 || a.clients > MAX_CLIENTS {
        usage(&format!(
            "--clients must be 1 to {MAX_CLIENTS}: they share 127.0.0.1, and the shim allows \
             16 connections per source"
        ));
    }
    a
}

fn usage(why: &str) -> ! {
    eprintln!(
        "soak: {why}\nusage: cargo bench -p sigil-e2e --bench soak -- [--seconds N] [--clients C]"
    );
    std::process::exit(2);
}

// ---------------------------------------------------------------------------------------------
// Binaries and inputs.

fn newest(paths: &[PathBuf]) -> Option<PathBuf> {
    paths
        .iter()
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p.clone())
}

/// The static product build when present (as the tests use it), else the newest of this
/// profile's build and the debug build.
fn binary(name: &str) -> PathBuf {
    let target = workspace_target();
    if name == "sigil-enclave"
        && let Some(t) = &target
    {
        let s = t.join("reproducible/x86_64-unknown-linux-gnu/release/sigil-enclave");
        if s.exists() {
            return s;
        }
    }
    let mut builds = vec![profile_dir().join(name)];
    builds.extend(target.map(|t| t.join("debug").join(name)));
    newest(&builds).unwrap_or_else(|| {
        missing(
            name,
            &builds,
            "build the binaries first: cargo build --workspace --bins",
        )
    })
}

fn bb_bin() -> PathBuf {
    let p = workspace_target()
        .map(|t| t.join("bb/bb"))
        .unwrap_or_default();
    if !p.exists() {
        missing("bb", &[p], "fetch it first: scripts/fetch-bb");
    }
    p
}

fn shared_crs() -> PathBuf {
    let p = sigil_e2e::workspace().join("../shared/crs/bn254_g1.dat");
    if !p.exists() {
        missing(
            "CRS",
            &[p],
            "the shared BN254 CRS belongs beside the checkout (shared/crs/bn254_g1.dat)",
        );
    }
    p
}

/// A free TCP port on 127.0.0.1 (free when asked; the deployment binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// What the run records.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Attest,
    Ping,
    VaultPut,
    VaultGet,
    Session,
    Prove,
}

const KINDS: [Kind; 6] = [
    Kind::Attest,
    Kind::Ping,
    Kind::VaultPut,
    Kind::VaultGet,
    Kind::Session,
    Kind::Prove,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Attest => "attest",
            Kind::Ping => "ping",
            Kind::VaultPut => "vault put",
            Kind::VaultGet => "vault get",
            Kind::Session => "musig2 session",
            Kind::Prove => "prove tiny",
        }
    }
}

#[derive(Default)]
struct KindStats {
    ok: u64,
    /// Errors outside the restart window: each one fails the run.
    errors: u64,
    /// Errors of operations that overlapped the restart window.
    window_errors: u64,
    latencies: Vec<Duration>,
    /// The first few errors, for the report.
    examples: Vec<String>,
}

#[derive(Default)]
struct JunkStats {
    connections: u64,
    /// Answers by HTTP status.
    statuses: HashMap<u16, u64>,
    /// Closed (or reset) without an answer.
    closed: u64,
    /// No answer and no close within the read timeout.
    timeouts: u64,
    connect_failures: u64,
    /// Of those, while the shim was down (the restart window).
    connect_failures_in_window: u64,
}

struct Shared {
    base: Instant,
    /// The shim's ingress: every client's endpoint.
    endpoint: String,
    stop: AtomicBool,
    /// Incremented when the restarted deployment is ready: clients attest again.
    generation: AtomicU64,
    /// The restart window, in ms since `base` (`u64::MAX`: not yet / still open).
    window_start: AtomicU64,
    window_end: AtomicU64,
    kinds: Vec<Mutex<KindStats>>,
    /// Last acknowledged version of each vault entry, by (client, entry).
    acked: Mutex<HashMap<(usize, usize), u64>>,
    /// Entries that read back below their acknowledged version (or with another value).
    lost: Mutex<Vec<String>>,
    /// Sessions completed after the restart, by client (their keys were made before it).
    sessions_after: Vec<AtomicU64>,
    proofs_after: AtomicU64,
    junk: Mutex<HashMap<&'static str, JunkStats>>,
    /// How long the slow clients' connections were held before the deployment cut them.
    slow_held: Mutex<Vec<Duration>>,
    /// The processes' ids (0 while down), for the sampler.
    enclave_pid: AtomicU32,
    shim_pid: AtomicU32,
}

impl Shared {
    fn ms(&self, t: Instant) -> u64 {
        t.duration_since(self.base).as_millis() as u64
    }

    fn restarted(&self) -> bool {
        self.generation.load(SeqCst) > 0
    }

    /// Whether an operation from `start` to `end` overlapped the restart window.
    fn in_window(&self, start: Instant, end: Instant) -> bool {
        let (ws, we) = (self.window_start.load(SeqCst), self.window_end.load(SeqCst));
        ws != u64::MAX && self.ms(start) <= we && self.ms(end) >= ws
    }

    /// Records one operation; returns whether it failed inside the restart window.
    fn record(&self, kind: Kind, start: Instant, r: &Result<(), String>) -> bool {
        let end = Instant::now();
        let mut k = self.kinds[kind as usize].lock().unwrap();
        match r {
            Ok(()) => {
                k.ok += 1;
                k.latencies.push(end - start);
                false
            }
            Err(e) => {
                let window = self.in_window(start, end);
                if window {
                    k.window_errors += 1;
                } else {
                    k.errors += 1;
                }
                // The errors that count, and the first one of the restart window.
                if (!window && k.examples.len() < 4) || (window && k.window_errors == 1) {
                    let when = if window {
                        "in the window"
                    } else {
                        "OUTSIDE the window"
                    };
                    k.examples
                        .push(format!("t={:.1}s {when}: {e}", self.ms(end) as f64 / 1e3));
                }
                window
            }
        }
    }

    fn junk(&self, kind: &'static str, f: impl FnOnce(&mut JunkStats)) {
        f(self.junk.lock().unwrap().entry(kind).or_default());
    }

    /// A junk or slow client could not connect.
    fn refused(&self, kind: &'static str) {
        let t = Instant::now();
        let window = self.in_window(t, t);
        self.junk(kind, |j| {
            j.connect_failures += 1;
            j.connect_failures_in_window += u64::from(window);
        });
    }

    fn running(&self) -> bool {
        !self.stop.load(SeqCst)
    }
}

fn err(e: ClientError) -> String {
    e.to_string()
}

fn attest(endpoint: &str) -> Result<(Client, AttestedEnclave), String> {
    let client = Client::new(endpoint).map_err(err)?;
    let mut policy = sigil_attestation::Policy::at(now());
    policy.trust_test_root = true;
    policy.allow_debug = true;
    policy.max_age_seconds = Some(300);
    let enclave = client.attest(policy).map_err(err)?;
    Ok((client, enclave))
}

// ---------------------------------------------------------------------------------------------
// Well-behaved clients.

/// A client's MuSig2 parties and aggregate (made before the kill, used throughout).
struct Signing {
    alice: OwnerKey,
    bob: OwnerKey,
    external: SignerKey,
    aggregate: AggregateView,
}

fn setup_signing(c: &Client, e: &AttestedEnclave, alice: OwnerKey) -> Result<Signing, String> {
    let bob = OwnerKey::generate().map_err(err)?;
    let external = SignerKey::generate().map_err(err)?;
    let k1 = c.musig2_generate_key(e, &alice).map_err(err)?;
    let k2 = c.musig2_generate_key(e, &bob).map_err(err)?;
    let aggregate = c
        .musig2_create_aggregate(
            e,
            &alice,
            &AggregateSpec {
                participants: vec![
                    ParticipantSpec::Held(k1.id),
                    ParticipantSpec::Held(k2.id),
                    ParticipantSpec::External(Hex(external.public_key())),
                ],
                order: KeyOrder::AsGiven,
                tweaks: vec![TweakSpec {
                    kind: TweakKind::TaprootUnspendable,
                    value: None,
                }],
            },
        )
        .map_err(err)?;
    Ok(Signing {
        alice,
        bob,
        external,
        aggregate,
    })
}

/// One session, from creation to a verified BIP-340 signature.
fn session(c: &Client, e: &AttestedEnclave, s: &Signing, msg: [u8; 32]) -> Result<(), String> {
    let request = SessionSpec {
        aggregate: s.aggregate.id,
        messages: vec![MessageView {
            message: HexBytes(msg.to_vec()),
            tweak: None,
        }],
        adaptor_point: None,
        expires_at: now() + 120,
    };
    let view: SessionView = c
        .musig2_create_session(e, &s.alice, &request)
        .map_err(err)?;
    let mut part = s.external.join(&view).map_err(err)?;
    c.musig2_submit_nonces(e, &view.id, part.index(), &part.public_nonces())
        .map_err(err)?;
    let expected = ExpectedSession::of_request(view.id, &s.aggregate, &request);
    for owner in [&s.alice, &s.bob] {
        c.musig2_approve(e, owner, &view, &expected).map_err(err)?;
    }
    let round = c.musig2_round(e, &view.id).map_err(err)?;
    part.check_round(&round.nonces, &round).map_err(err)?;
    let psigs = part.sign(&round).map_err(err)?;
    let st = c
        .musig2_submit_partial_signatures(e, &view.id, &round.round_id, part.index(), &psigs)
        .map_err(err)?;
    if st.state != "completed" {
        return Err(format!("session state {} after every signature", st.state));
    }
    let done = c.musig2_session(e, &view.id).map_err(err)?;
    let sig = done
        .status
        .signatures
        .first()
        .ok_or("no signature in a completed session")?;
    if sig.output_key != s.aggregate.output_xonly {
        return Err("the signature is for another output key".into());
    }
    let bytes = sig.signature.ok_or("not a BIP-340 signature")?.0;
    if !verify_bip340(&sig.output_key.0, &msg, &bytes) {
        return Err("the final signature does not verify".into());
    }
    Ok(())
}

fn entry_name(client: usize, entry: usize) -> String {
    format!("soak-{client}-{entry}")
}

fn entry_value(client: usize, entry: usize, version: u64) -> Vec<u8> {
    format!("soak/{client}/{entry}/v{version}").into_bytes()
}

/// Reads an entry: its version and whether the value is the one written at that version
/// (0 when it does not exist).
fn read_entry(
    c: &Client,
    e: &AttestedEnclave,
    owner: &OwnerKey,
    client: usize,
    entry: usize,
) -> Result<u64, String> {
    match c.vault_get(e, owner, &entry_name(client, entry)) {
        Ok((value, version)) => {
            if *value != entry_value(client, entry, version) {
                return Err(format!(
                    "{} at version {version} holds another value",
                    entry_name(client, entry)
                ));
            }
            Ok(version)
        }
        Err(e) if e.code().is_some_and(|c| *c == "not_found") => Ok(0),
        Err(e) => Err(err(e)),
    }
}

struct WellBehaved {
    id: usize,
    shared: Arc<Shared>,
    signing: Signing,
    /// The version each entry is at, as this client knows it.
    known: [u64; ENTRIES],
}

impl WellBehaved {
    fn run(mut self) {
        let sh = self.shared.clone();
        let mut conn: Option<(Client, AttestedEnclave, u64)> = None;
        // After an error in the restart window a write may have landed unacknowledged: the
        // entries are read back before the next write.
        let mut resync = false;
        let mut step = 0u64;
        while sh.running() {
            let start = Instant::now();
            let generation = sh.generation.load(SeqCst);
            if conn.as_ref().is_none_or(|c| c.2 != generation) {
                // A new enclave (or none yet): a new client and agent, so no connection of
                // the old shim is reused, and a fresh attestation of the new per-boot key.
                resync |= conn.is_some();
                let r = attest(&sh.endpoint);
                let ok = r.as_ref().map(|_| ()).map_err(Clone::clone);
                if sh.record(Kind::Attest, start, &ok) {
                    std::thread::sleep(Duration::from_millis(250));
                }
                conn = r.ok().map(|(c, e)| (c, e, generation));
                continue;
            }
            let (c, e, _) = conn.as_ref().unwrap();
            if resync {
                let r = self.resync(c, e);
                let window = sh.record(Kind::VaultGet, start, &r);
                resync = r.is_err();
                if window {
                    std::thread::sleep(Duration::from_millis(250));
                }
                continue;
            }
            let (kind, r) = match step % 6 {
                0 => (Kind::Attest, self.attest_again(c)),
                1 | 4 => (Kind::Ping, self.ping(c, e, step)),
                2 => (Kind::VaultPut, self.put(c, e, step)),
                3 => (Kind::VaultGet, self.get(c, e, step)),
                _ => (Kind::Session, self.session(c, e, step)),
            };
            step += 1;
            if sh.record(kind, start, &r) {
                resync |= kind == Kind::VaultPut;
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }

    fn attest_again(&self, c: &Client) -> Result<(), String> {
        let mut policy = sigil_attestation::Policy::at(now());
        policy.trust_test_root = true;
        policy.allow_debug = true;
        policy.max_age_seconds = Some(300);
        c.attest(policy).map(|_| ()).map_err(err)
    }

    fn ping(&self, c: &Client, e: &AttestedEnclave, step: u64) -> Result<(), String> {
        c.ping(e, &format!("soak client {} step {step}", self.id))
            .map(|_| ())
            .map_err(err)
    }

    fn put(&mut self, c: &Client, e: &AttestedEnclave, step: u64) -> Result<(), String> {
        let entry = (step / 6) as usize % ENTRIES;
        let next = self.known[entry] + 1;
        let w = c
            .vault_put(
                e,
                &self.signing.alice,
                &entry_name(self.id, entry),
                &entry_value(self.id, entry, next),
                self.known[entry],
            )
            .map_err(err)?;
        if w.version != next {
            return Err(format!("acknowledged version {} for {next}", w.version));
        }
        self.known[entry] = next;
        self.shared
            .acked
            .lock()
            .unwrap()
            .insert((self.id, entry), next);
        Ok(())
    }

    fn get(&self, c: &Client, e: &AttestedEnclave, step: u64) -> Result<(), String> {
        let entry = (step / 6) as usize % ENTRIES;
        let v = read_entry(c, e, &self.signing.alice, self.id, entry)?;
        if v != self.known[entry] {
            return Err(format!(
                "{} at version {v}, last written {}",
                entry_name(self.id, entry),
                self.known[entry]
            ));
        }
        Ok(())
    }

    /// Reads every entry back after the restart: none may be below its acknowledged
    /// version; a write in flight at the kill may have landed.
    fn resync(&mut self, c: &Client, e: &AttestedEnclave) -> Result<(), String> {
        for entry in 0..ENTRIES {
            let v = read_entry(c, e, &self.signing.alice, self.id, entry)?;
            if v < self.known[entry] {
                self.shared.lost.lock().unwrap().push(format!(
                    "{} read back at version {v} after {} was acknowledged",
                    entry_name(self.id, entry),
                    self.known[entry]
                ));
            }
            self.known[entry] = v;
        }
        Ok(())
    }

    fn session(&self, c: &Client, e: &AttestedEnclave, step: u64) -> Result<(), String> {
        let mut msg = [0x5au8; 32];
        msg[..8].copy_from_slice(&(self.id as u64).to_be_bytes());
        msg[8..16].copy_from_slice(&step.to_be_bytes());
        session(c, e, &self.signing, msg)?;
        if self.shared.restarted() {
            self.shared.sessions_after[self.id].fetch_add(1, SeqCst);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The prover client.

fn prove_loop(sh: Arc<Shared>, run_dir: PathBuf) {
    let circuit = std::fs::read(fixture("tiny", "target.json")).expect("tiny circuit");
    let witness = std::fs::read(fixture("tiny", "witness.gz")).expect("tiny witness");
    // bb writes a lock file into its CRS directory: one of our own, linking the shared file.
    let crs_dir = run_dir.join("host-crs");
    std::fs::create_dir_all(&crs_dir).unwrap();
    let _ = std::os::unix::fs::symlink(shared_crs(), crs_dir.join("bn254_g1.dat"));
    let mut conn: Option<(Client, AttestedEnclave, u64)> = None;
    let mut n = 0u64;
    while sh.running() {
        let start = Instant::now();
        let generation = sh.generation.load(SeqCst);
        if conn.as_ref().is_none_or(|c| c.2 != generation) {
            let r = attest(&sh.endpoint);
            let ok = r.as_ref().map(|_| ()).map_err(Clone::clone);
            if sh.record(Kind::Attest, start, &ok) {
                std::thread::sleep(Duration::from_millis(250));
            }
            conn = r.ok().map(|(c, e)| (c, e, generation));
            continue;
        }
        let (c, e, _) = conn.as_ref().unwrap();
        let out = run_dir.join(format!("proof-{n}"));
        n += 1;
        let r = prove_once(c, e, &circuit, &witness, &out, &crs_dir);
        let _ = std::fs::remove_dir_all(&out);
        let window = sh.record(Kind::Prove, start, &r);
        if r.is_ok() && sh.restarted() {
            sh.proofs_after.fetch_add(1, SeqCst);
        }
        let pause = if window {
            Duration::from_millis(250)
        } else {
            PROVE_EVERY.saturating_sub(start.elapsed())
        };
        let until = Instant::now() + pause;
        while sh.running() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn prove_once(
    c: &Client,
    e: &AttestedEnclave,
    circuit: &[u8],
    witness: &[u8],
    out: &Path,
    crs_dir: &Path,
) -> Result<(), String> {
    let job = c
        .prove_submit(e, circuit, witness, "default")
        .map_err(err)?;
    let proof = c
        .prove_wait(&job, Duration::from_secs(120), |_| {})
        .map_err(err)?;
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    for (name, bytes) in [
        ("proof", &proof.proof),
        ("public_inputs", &proof.public_inputs),
        ("vk", &proof.vk),
    ] {
        std::fs::write(out.join(name), bytes).map_err(|e| e.to_string())?;
    }
    let verified = std::process::Command::new(bb_bin())
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
        .map_err(|e| format!("run bb verify: {e}"))?;
    if !verified.status.success() {
        return Err("the host's bb does not verify the proof".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Junk and slow clients, each from its own loopback address.

/// A TCP connection to `to` from `127.0.0.<source>`.
fn connect_from(source: u8, to: SocketAddrV4) -> std::io::Result<TcpStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, source, 0))?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(to))?;
    Ok(TcpStream::from(fd))
}

fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).unwrap();
    b
}

/// Sends `bytes`, then reads what comes back until the server closes (or 15 s pass).
fn junk_exchange(sh: &Shared, kind: &'static str, source: u8, to: SocketAddrV4, bytes: &[u8]) {
    let mut s = match connect_from(source, to) {
        Ok(s) => s,
        Err(_) => return sh.refused(kind),
    };
    sh.junk(kind, |j| j.connections += 1);
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The server may answer and close before taking every byte: its right.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let r = s.read_to_end(&mut out);
    let status = std::str::from_utf8(out.get(..12).unwrap_or_default())
        .ok()
        .and_then(|h| h.strip_prefix("HTTP/1.1 "))
        .and_then(|c| c.parse::<u16>().ok());
    match (status, r) {
        (Some(code), _) => sh.junk(kind, |j| *j.statuses.entry(code).or_default() += 1),
        (None, Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
            sh.junk(kind, |j| j.timeouts += 1)
        }
        (None, _) => sh.junk(kind, |j| j.closed += 1),
    }
}

fn junk_loop(sh: Arc<Shared>, k: usize, to: SocketAddrV4) {
    let mut i = k * 3;
    while sh.running() {
        // Sources 127.0.0.10 to 127.0.0.189: many distinct junk clients.
        let source = 10 + (k * 90 + i % 90) as u8;
        match i % 5 {
            0 => junk_exchange(&sh, "random bytes", source, to, &random(1 + i % 4096)),
            1 => {
                let heads: [&[u8]; 4] = [
                    b"GET\r\n\r\n",
                    b"POST /v1/ping HTTP/1.1\r\nHost x\r\nContent-Length: 5\r\n\r\nhello",
                    b"GET /v1/health HTTP/9.9\r\nHost: \x00\xff\r\n\r\n",
                    b"POST /v1/ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n",
                ];
                junk_exchange(&sh, "malformed HTTP", source, to, heads[(i / 5) % 4]);
            }
            2 => junk_exchange(
                &sh,
                "oversized Content-Length",
                source,
                to,
                b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/sigil-encapsulated\r\nContent-Length: 99999999999\r\n\r\nAAAA",
            ),
            3 => {
                let body = random(64 + i % 2048);
                let mut req = format!(
                    "POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
                    sigil_protocol::api::ENCAPSULATED_CONTENT_TYPE,
                    body.len()
                )
                .into_bytes();
                req.extend_from_slice(&body);
                junk_exchange(&sh, "encapsulated garbage", source, to, &req);
            }
            _ => {
                // A head that promises more body than it sends, then half-closes.
                let mut s = match connect_from(source, to) {
                    Ok(s) => s,
                    Err(_) => {
                        sh.refused("truncated body");
                        i += 1;
                        continue;
                    }
                };
                sh.junk("truncated body", |j| j.connections += 1);
                let _ = s.write_all(
                    b"POST /v1/vault/get HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc",
                );
                let _ = s.shutdown(std::net::Shutdown::Write);
                s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out);
                sh.junk("truncated body", |j| j.closed += 1);
            }
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends a request head a byte a second, for as long as the deployment lets it.
fn slowloris(sh: Arc<Shared>, k: usize, to: SocketAddrV4) {
    let head = b"POST /v1/ping HTTP/1.1\r\nHost: soak\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    while sh.running() {
        let Ok(mut s) = connect_from(200 + k as u8, to) else {
            sh.refused("slowloris");
            std::thread::sleep(Duration::from_secs(1));
            continue;
        };
        sh.junk("slowloris", |j| j.connections += 1);
        let start = Instant::now();
        let mut cut = false;
        for b in head.iter().cycle() {
            if !sh.running() {
                break;
            }
            if s.write_all(&[*b]).is_err() {
                cut = true;
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        if cut {
            sh.slow_held.lock().unwrap().push(start.elapsed());
            sh.junk("slowloris", |j| j.closed += 1);
        }
    }
}

/// Sends complete requests and never reads the answers, holding the connection a minute.
fn non_reader(sh: Arc<Shared>, k: usize, to: SocketAddrV4) {
    let mut req = Vec::new();
    for _ in 0..64 {
        req.extend_from_slice(
            b"GET /v1/attestation?nonce=00112233445566778899aabbccddeeff HTTP/1.1\r\nHost: soak\r\n\r\n",
        );
    }
    while sh.running() {
        let Ok(mut s) = connect_from(220 + k as u8, to) else {
            sh.refused("never reads");
            std::thread::sleep(Duration::from_secs(1));
            continue;
        };
        sh.junk("never reads", |j| j.connections += 1);
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&req);
        let until = Instant::now() + Duration::from_secs(60);
        while sh.running() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resources, from /proc.

#[derive(Clone, Copy, Debug)]
struct Sample {
    t: Duration,
    rss_kib: u64,
    threads: u64,
    fds: u64,
}

fn sample(pid: u32, t: Duration) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        t,
        rss_kib: field("VmRSS:")?,
        threads: field("Threads:")?,
        fds,
    })
}

/// Samples by process: ("enclave" | "shim", pid) in the order they ran.
type Samples = Vec<((&'static str, u32), Vec<Sample>)>;

fn sampler(sh: Arc<Shared>, out: Arc<Mutex<Samples>>, every: Duration) {
    while sh.running() {
        let t = sh.base.elapsed();
        for (name, pid) in [
            ("enclave", sh.enclave_pid.load(SeqCst)),
            ("shim", sh.shim_pid.load(SeqCst)),
        ] {
            if pid == 0 {
                continue;
            }
            if let Some(s) = sample(pid, t) {
                let mut all = out.lock().unwrap();
                match all.iter_mut().find(|(k, _)| *k == (name, pid)) {
                    Some((_, v)) => v.push(s),
                    None => all.push(((name, pid), vec![s])),
                }
            }
        }
        std::thread::sleep(every);
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Whether a process's figures stayed flat from `from` on: the median of the last quarter of
/// the samples is within the limits above the largest value of the first quarter. Medians,
/// because connections in flight come and go (a thread and a descriptor or two each).
fn flat(samples: &[Sample], from: Duration) -> Result<(), String> {
    let s: Vec<&Sample> = samples.iter().filter(|s| s.t >= from).collect();
    if s.len() < MIN_SAMPLES {
        return Err(format!("only {} samples after warm-up", s.len()));
    }
    let q = s.len() / 4;
    let (first, last) = (&s[..q], &s[s.len() - q..]);
    let check = |what: &str, f: fn(&Sample) -> u64, slack: u64, ratio: f64| {
        let before = first.iter().map(|x| f(x)).max().unwrap();
        let after = median(last.iter().map(|x| f(x)).collect());
        let limit = (before as f64 * ratio) as u64 + slack;
        if after > limit {
            Err(format!(
                "{what}: median {after} in the last quarter, above {limit} (max {before} in the first)"
            ))
        } else {
            Ok(())
        }
    };
    check("RSS KiB", |x| x.rss_kib, 8 * 1024, 1.2)?;
    check("threads", |x| x.threads, 8, 1.0)?;
    check("fds", |x| x.fds, 8, 1.0)
}

// ---------------------------------------------------------------------------------------------
// The deployment and the restart.

fn crs_sha256() -> String {
    let bytes = std::fs::read(shared_crs()).expect("read the CRS");
    let d = ring::digest::digest(&ring::digest::SHA256, &bytes[..CRS_POINTS * 64]);
    hex::encode(d.as_ref())
}

/// Starts the enclave and waits until its sealing and its CRS are ready.
fn start_enclave(d: &mut Deployment) -> Result<(), String> {
    d.start_enclave();
    d.wait_sealing(true);
    let start = Instant::now();
    loop {
        if d.health()["crs"]["state"] == "ready" {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err(format!("CRS not ready: {}", d.health()["crs"]));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn set_pids(sh: &Shared, d: &Deployment) {
    sh.enclave_pid.store(d.enclave().pid(), SeqCst);
    sh.shim_pid.store(d.shim_pid().unwrap_or(0), SeqCst);
}

/// The checker's own pre-kill material: an aggregate, and every client's vault owner.
struct Checker {
    signing: Signing,
    owners: Vec<OwnerKey>,
}

/// Kills (SIGKILL) the enclave and the shim, restarts both, and checks that nothing
/// acknowledged was lost (its checks are returned).
fn kill_and_restart(sh: &Shared, d: &mut Deployment, checker: &Checker) -> Vec<Check> {
    let mut checks = Vec::new();
    sh.window_start.store(sh.ms(Instant::now()), SeqCst);
    sh.enclave_pid.store(0, SeqCst);
    sh.shim_pid.store(0, SeqCst);
    d.kill_enclave();
    d.kill_shim();
    // Taken after both kills: every acknowledgement a client got was sent before them.
    let acked: Vec<((usize, usize), u64)> = {
        let mut v: Vec<_> = sh
            .acked
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        v.sort();
        v
    };
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    d.start_shim();
    let restarted = start_enclave(d);
    set_pids(sh, d);
    let back = down.elapsed();
    sh.generation.fetch_add(1, SeqCst);
    sh.window_end.store(sh.ms(Instant::now()), SeqCst);
    let window = Duration::from_millis(sh.window_end.load(SeqCst) - sh.window_start.load(SeqCst));
    println!(
        "[{:>5.1}s] enclave and shim killed and restarted: back in {:.2} s (window {:.2} s)",
        sh.base.elapsed().as_secs_f64(),
        back.as_secs_f64(),
        window.as_secs_f64()
    );
    checks.push(Check::new(
        "restart: enclave and shim back (sealing and CRS ready)",
        restarted.map(|()| format!("in {:.2} s", back.as_secs_f64())),
    ));

    // Every acknowledged write reads back at its version or later, with its value.
    let vault = (|| -> Result<String, String> {
        let (c, e) = attest(&sh.endpoint)?;
        let mut later = 0;
        for ((client, entry), version) in &acked {
            let v = read_entry(&c, &e, &checker.owners[*client], *client, *entry)?;
            if v < *version {
                return Err(format!(
                    "{} at version {v}, {version} was acknowledged before the kill",
                    entry_name(*client, *entry)
                ));
            }
            later += u64::from(v > *version);
        }
        Ok(format!(
            "{} entries read back at their acknowledged version ({} at a later one: a write in \
             flight landed), values match",
            acked.len(),
            later
        ))
    })();
    checks.push(Check::new(
        "vault: writes acknowledged before the kill read back after it",
        vault,
    ));

    let signed = (|| -> Result<String, String> {
        let (c, e) = attest(&sh.endpoint)?;
        session(&c, &e, &checker.signing, [0xc4; 32])?;
        Ok("a session on an aggregate of pre-kill keys completed and verified".into())
    })();
    checks.push(Check::new(
        "musig2: keys generated before the kill sign after it",
        signed,
    ));
    checks
}

// ---------------------------------------------------------------------------------------------
// Reporting.

struct Check {
    what: String,
    result: Result<String, String>,
}

impl Check {
    fn new(what: &str, result: Result<String, String>) -> Check {
        Check {
            what: what.into(),
            result,
        }
    }
}

fn pct(v: &mut [Duration], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3
}

fn kib(k: u64) -> String {
    format!("{:.1}M", k as f64 / 1024.0)
}

fn progress(sh: &Shared, samples: &Samples) {
    let t = sh.base.elapsed().as_secs_f64();
    let mut line = format!("[{t:>5.1}s]");
    for k in KINDS {
        let s = sh.kinds[k as usize].lock().unwrap();
        line += &format!(
            " {} {}/{}e",
            k.name().replace(' ', "_"),
            s.ok,
            s.errors + s.window_errors
        );
    }
    for (name, pid) in [
        ("enclave", sh.enclave_pid.load(SeqCst)),
        ("shim", sh.shim_pid.load(SeqCst)),
    ] {
        if let Some((_, v)) = samples.iter().find(|(k, _)| *k == (name, pid))
            && let Some(s) = v.last()
        {
            line += &format!(
                " | {name} rss {} thr {} fd {}",
                kib(s.rss_kib),
                s.threads,
                s.fds
            );
        }
    }
    println!("{line}");
}

fn main() {
    let a = args();
    let run = Duration::from_secs(a.seconds);
    let warm_up = Duration::from_secs((a.seconds / 10).clamp(5, 60));
    let enclave_bin = binary("sigil-enclave");
    let shim_bin = binary("sigil-shim");
    let bb = bb_bin();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("== sigil soak: mixed load, junk and slow clients, kill and restart midway ==");
    println!(
        "machine: {cores} CPU(s) visible, shared with other work; latencies are what they are"
    );
    println!("enclave: {}", enclave_bin.display());
    println!("shim:    {}", shim_bin.display());
    println!("bb:      {}", bb.display());
    println!(
        "run: {} s, {} well-behaved clients + 1 prover (tiny, every {} s), junk: {JUNK} \
         sequential clients, slow: {SLOWLORIS} slowloris + {NON_READERS} never reading",
        a.seconds,
        a.clients,
        PROVE_EVERY.as_secs()
    );

    let dir = profile_dir()
        .join("bench-soak")
        .join(std::process::id().to_string());
    let (enclave_port, ingress_port) = (free_port(), free_port());
    let options = Options {
        enclave_listen: Some(format!("tcp:127.0.0.1:{enclave_port}")),
        ingress_listen: Some(format!("tcp:127.0.0.1:{ingress_port}")),
        prover: Some(Prover {
            bb,
            crs: shared_crs(),
            config: format!(
                r#"{{"crs_sha256": "{}", "crs_points": {CRS_POINTS}, "time_limit_secs": 120}}"#,
                crs_sha256()
            ),
        }),
        blob_s3: None,
    };
    let mut d = Deployment::with_options(dir.clone(), enclave_bin, shim_bin, None, options);
    start_enclave(&mut d).expect("the deployment starts");
    let ingress = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, ingress_port);

    let sh = Arc::new(Shared {
        base: Instant::now(),
        endpoint: format!("http://127.0.0.1:{ingress_port}"),
        stop: AtomicBool::new(false),
        generation: AtomicU64::new(0),
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        kinds: KINDS.iter().map(|_| Mutex::default()).collect(),
        acked: Mutex::default(),
        lost: Mutex::default(),
        sessions_after: (0..a.clients).map(|_| AtomicU64::new(0)).collect(),
        proofs_after: AtomicU64::new(0),
        junk: Mutex::default(),
        slow_held: Mutex::default(),
        enclave_pid: AtomicU32::new(0),
        shim_pid: AtomicU32::new(0),
    });
    set_pids(&sh, &d);

    // Each client's keys and aggregate, made before the load starts (and before the kill).
    let setup = Instant::now();
    let (c, e) = attest(&sh.endpoint).expect("attest through the ingress");
    let mut owners = Vec::new();
    let mut clients = Vec::new();
    for id in 0..a.clients {
        let secret = random(32);
        owners.push(OwnerKey::from_bytes(&secret).unwrap());
        let signing = setup_signing(&c, &e, OwnerKey::from_bytes(&secret).unwrap())
            .expect("keys and aggregate");
        clients.push(WellBehaved {
            id,
            shared: sh.clone(),
            signing,
            known: [0; ENTRIES],
        });
    }
    let checker = Checker {
        signing: setup_signing(&c, &e, OwnerKey::generate().unwrap()).expect("checker keys"),
        owners,
    };
    drop((c, e));
    println!(
        "(deployment ready; {} key pairs and aggregates made in {:.2} s)",
        a.clients + 1,
        setup.elapsed().as_secs_f64()
    );

    let samples: Arc<Mutex<Samples>> = Arc::default();
    let mut threads = Vec::new();
    for c in clients {
        threads.push(std::thread::spawn(move || c.run()));
    }
    {
        let (sh, dir) = (sh.clone(), dir.clone());
        threads.push(std::thread::spawn(move || prove_loop(sh, dir)));
    }
    for k in 0..JUNK {
        let sh = sh.clone();
        threads.push(std::thread::spawn(move || junk_loop(sh, k, ingress)));
    }
    for k in 0..SLOWLORIS {
        let sh = sh.clone();
        threads.push(std::thread::spawn(move || slowloris(sh, k, ingress)));
    }
    for k in 0..NON_READERS {
        let sh = sh.clone();
        threads.push(std::thread::spawn(move || non_reader(sh, k, ingress)));
    }
    {
        let (sh, samples) = (sh.clone(), samples.clone());
        let every = sample_every(run);
        threads.push(std::thread::spawn(move || sampler(sh, samples, every)));
    }

    let mut checks = Vec::new();
    let mut next_progress = Duration::from_secs(10);
    let mut restarted = false;
    while sh.base.elapsed() < run {
        std::thread::sleep(Duration::from_millis(200));
        if !restarted && sh.base.elapsed() >= run / 2 {
            restarted = true;
            checks.extend(kill_and_restart(&sh, &mut d, &checker));
        }
        if sh.base.elapsed() >= next_progress {
            progress(&sh, &samples.lock().unwrap());
            next_progress += Duration::from_secs(10);
        }
    }
    sh.stop.store(true, SeqCst);
    for t in threads {
        t.join().expect("a load thread panicked");
    }
    let elapsed = sh.base.elapsed();

    // The end: both processes alive, and every entry at its last acknowledged version.
    let alive = (d.enclave_running(), d.shim_running());
    checks.push(Check::new(
        "enclave and shim alive at the end",
        if alive == (true, true) {
            Ok("both running".into())
        } else {
            Err(format!(
                "enclave running {}, shim running {}",
                alive.0, alive.1
            ))
        },
    ));
    let final_vault = (|| -> Result<String, String> {
        let (c, e) = attest(&sh.endpoint)?;
        let acked = sh.acked.lock().unwrap().clone();
        for ((client, entry), version) in &acked {
            let v = read_entry(&c, &e, &checker.owners[*client], *client, *entry)?;
            if v < *version {
                return Err(format!(
                    "{} at {v} < {version}",
                    entry_name(*client, *entry)
                ));
            }
        }
        Ok(format!(
            "{} entries at their last acknowledged version or later",
            acked.len()
        ))
    })();
    checks.push(Check::new("vault at the end", final_vault));
    let lost = sh.lost.lock().unwrap().clone();
    checks.push(Check::new(
        "vault: clients read their own entries back after the restart",
        if lost.is_empty() {
            Ok("no entry below its acknowledged version".into())
        } else {
            Err(lost.join("; "))
        },
    ));
    let after: Vec<u64> = sh.sessions_after.iter().map(|n| n.load(SeqCst)).collect();
    checks.push(Check::new(
        "musig2: every client's pre-kill aggregate signed after the restart",
        if after.iter().all(|&n| n > 0) {
            Ok(format!("sessions after the restart by client: {after:?}"))
        } else {
            Err(format!("sessions after the restart by client: {after:?}"))
        },
    ));
    let proofs_after = sh.proofs_after.load(SeqCst);
    checks.push(Check::new(
        "prove: proofs after the restart",
        if proofs_after > 0 {
            Ok(format!("{proofs_after} verified"))
        } else {
            Err("none".into())
        },
    ));

    // --- the table ---
    let window_s = (sh.window_end.load(SeqCst) - sh.window_start.load(SeqCst)) as f64 / 1e3;
    println!();
    println!(
        "== results: {:.0} s, {} well-behaved clients; restart window {window_s:.2} s ==",
        elapsed.as_secs_f64(),
        a.clients
    );
    println!(
        "{:<16} {:>8} {:>7} {:>8} {:>11} {:>11}",
        "operation", "ok", "errors", "window", "p50 ms", "p99 ms"
    );
    let mut outside = 0;
    for k in KINDS {
        let mut s = sh.kinds[k as usize].lock().unwrap();
        outside += s.errors;
        let ok = s.ok;
        let (errors, window) = (s.errors, s.window_errors);
        let (p50, p99) = (pct(&mut s.latencies, 0.5), pct(&mut s.latencies, 0.99));
        println!(
            "{:<16} {ok:>8} {errors:>7} {window:>8} {p50:>11.1} {p99:>11.1}",
            k.name()
        );
        for x in &s.examples {
            println!("    {x}");
        }
        if ok == 0 {
            checks.push(Check::new(
                &format!("{}: some succeeded", k.name()),
                Err("none".into()),
            ));
        }
    }
    checks.push(Check::new(
        "no error for well-behaved clients outside the restart window",
        if outside == 0 {
            Ok("none".into())
        } else {
            Err(format!("{outside} errors"))
        },
    ));
    println!("(errors: outside the restart window; window: operations that overlapped it)");

    println!();
    println!(
        "{:<24} {:>6} {:>7} {:>7} {:>5} {:>5} {:>6} {:>6} {:>8}",
        "junk / slow client", "conns", "4xx", "5xx", "2xx", "other", "closed", "t/o", "refused"
    );
    let junk = sh.junk.lock().unwrap();
    let mut names: Vec<_> = junk.keys().copied().collect();
    names.sort();
    for n in names {
        let j = &junk[n];
        let count = |r: std::ops::Range<u16>| -> u64 {
            j.statuses
                .iter()
                .filter(|(c, _)| r.contains(c))
                .map(|(_, n)| n)
                .sum()
        };
        let (c2, c4, c5) = (count(200..300), count(400..500), count(500..600));
        let other = j.statuses.values().sum::<u64>() - c2 - c4 - c5;
        println!(
            "{n:<24} {:>6} {c4:>7} {c5:>7} {c2:>5} {other:>5} {:>6} {:>6} {:>8}",
            j.connections,
            j.closed,
            j.timeouts,
            format!("{}/{}", j.connect_failures, j.connect_failures_in_window)
        );
    }
    println!(
        "(4xx..other: answers by status; closed: closed without an answer; t/o: no answer in \
         15 s; refused: could not connect / of which in the restart window)"
    );
    let held = sh.slow_held.lock().unwrap();
    if let Some(max) = held.iter().max() {
        println!(
            "slowloris connections cut by the deployment after at most {:.0} s ({} cut)",
            max.as_secs_f64(),
            held.len()
        );
    }

    println!();
    println!(
        "{:<22} {:>4} {:>22} {:>22} {:>22}",
        "process", "n", "RSS first/min/max/last", "threads f/min/max/last", "fds f/min/max/last"
    );
    let samples = samples.lock().unwrap();
    println!(
        "(from /proc every {} s, after a warm-up of {} s per process)",
        sample_every(run).as_secs(),
        warm_up.as_secs()
    );
    for ((name, pid), all) in samples.iter() {
        let s: Vec<&Sample> = all.iter().filter(|s| s.t >= all[0].t + warm_up).collect();
        if s.is_empty() {
            continue;
        }
        let fmt = |f: &dyn Fn(&Sample) -> u64, show: &dyn Fn(u64) -> String| {
            let v: Vec<u64> = s.iter().map(|x| f(x)).collect();
            format!(
                "{}/{}/{}/{}",
                show(v[0]),
                show(*v.iter().min().unwrap()),
                show(*v.iter().max().unwrap()),
                show(*v.last().unwrap())
            )
        };
        println!(
            "{:<22} {:>4} {:>22} {:>22} {:>22}",
            format!("{name} pid {pid}"),
            s.len(),
            fmt(&|x| x.rss_kib, &kib),
            fmt(&|x| x.threads, &|n| n.to_string()),
            fmt(&|x| x.fds, &|n| n.to_string()),
        );
        let from = all[0].t + warm_up;
        checks.push(Check::new(
            &format!("{name} pid {pid}: RSS, threads and fds flat"),
            flat(all, from).map(|()| {
                format!(
                    "{} samples from {:.0} s to {:.0} s",
                    s.len(),
                    from.as_secs_f64(),
                    s.last().unwrap().t.as_secs_f64()
                )
            }),
        ));
    }

    println!();
    let mut failed = 0;
    for c in &checks {
        match &c.result {
            Ok(m) => println!("PASS  {}: {m}", c.what),
            Err(m) => {
                failed += 1;
                println!("FAIL  {}: {m}", c.what)
            }
        }
    }
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
    if failed > 0 {
        println!("{failed} check(s) failed");
        std::process::exit(1);
    }
    println!("all {} checks passed", checks.len());
}
