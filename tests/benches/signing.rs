//! Benchmark: a 3-party MuSig2 session through the enclave's HTTP API, next to the same session
//! run in-process through `sigil_signing::Engine`.
//!
//! The service side is a real local-mode deployment: the development KMS (in this process),
//! the real `sigil-shim` and the `sigil-enclave` process, with sealed state. Each session has
//! two keys held by the enclave (their owners approve) and one external participant driven
//! here with the client library: create → external nonces → 2 approvals → round + engine
//! nonces (checked) → partial signatures → final signature fetched and verified (BIP-340).
//!
//! The in-process side runs the same session shape on an `Engine<MemoryRecords>` in this
//! process, with the same owner keys and the external participant signing with the musig2
//! crate directly. The ratio of the two is what the service costs on top of the MuSig2 work:
//! HPKE-encapsulated requests over loopback HTTP (one kept-alive connection per client), JSON, the
//! attested client's checks.
//!
//! Beside them, the transport floor of the same run: the p50 of the cheapest HPKE-sealed
//! request the API has (`POST /v1/ping`, which opens, decodes, echoes and seals, with no
//! sealed state), sent by the same client over its kept-alive connection to the enclave's
//! own listener, as the sessions are; and the same ping through the shim's ingress (the
//! parent's public port, which relays to that listener), to show what the shim's hop adds.
//! The floor a session cannot go below under the design's per-request HPKE is the
//! in-process session plus six such requests.
//!
//! Needs release binaries of the same target directory as this bench:
//! `cargo build --release -p sigil-enclave -p sigil-shim`, then
//! `cargo bench -p sigil-e2e --bench signing`. `SIGIL_BENCH_SESSIONS` sets the number of
//! measured sessions per run (default 100).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use musig2::secp::{MaybeScalar, Point, Scalar};
use musig2::{AggNonce, BinaryEncoding, KeyAggContext, PubNonce, SecNonce};
use sigil_client::musig2::{ExpectedSession, verify_bip340};
use sigil_client::{AttestedEnclave, Client, OwnerKey, SignerKey};
use sigil_e2e::deployment::{Deployment, Options};
use sigil_protocol::musig2::{
    AggregateView, MessageView, ParticipantSpec, SessionView, TweakKind, TweakSpec,
};
use sigil_protocol::wire::{Hex, HexBytes};
use sigil_signing::{
    AggregateInfo, AggregateSpec, DigestInput, Engine, EntropyError, KeyOrder, MemoryRecords,
    MessageSpec, SessionRequest, SessionState, SignatureValue, Tweak, session_digest,
};

mod release;
use release::{attest, enclave_bin, env_count, profile_dir, shim_bin};

/// Sessions through the API live this long (seconds, so 2 to 3 s). A completed session frees
/// its slot at once (the enclave keeps at most `MAX_FINISHED_SESSIONS` results), so the wait
/// between phases only keeps one phase's leftovers out of the next one's numbers.
const SESSION_TTL: u64 = 3;

/// Waits until every API session created so far has expired (the enclave prunes them on the
/// next session creation).
fn drain_sessions() {
    let until = now() + SESSION_TTL;
    while now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// The deployment: development KMS + sigil-shim + sigil-enclave, in local mode.

/// The shared fixture, started with sealed state ready; its directory goes when it ends.
/// The sessions are sent to the enclave's own listener; the shim's ingress relays to it too
/// (only the floor's pings use it).
struct BenchDeployment(Deployment, String);

/// Two distinct free TCP ports on 127.0.0.1 (free when asked; the deployment binds them
/// right after).
fn free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let (a, b) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().expect("its address").port();
    (port(&a), port(&b))
}

impl BenchDeployment {
    fn start(enclave_bin: &Path, shim_bin: PathBuf) -> BenchDeployment {
        let dir = profile_dir()
            .join("bench-signing")
            .join(std::process::id().to_string());
        let (enclave_port, ingress_port) = free_ports();
        let options = Options {
            enclave_listen: Some(format!("tcp:127.0.0.1:{enclave_port}")),
            ingress_listen: Some(format!("tcp:127.0.0.1:{ingress_port}")),
            ..Options::default()
        };
        let mut d =
            Deployment::with_options(dir, enclave_bin.to_path_buf(), shim_bin, None, options);
        d.start_enclave();
        d.wait_sealing(true);
        BenchDeployment(d, format!("http://127.0.0.1:{ingress_port}"))
    }

    /// The enclave's own listener.
    fn endpoint(&self) -> String {
        self.0.endpoint()
    }

    /// The shim's ingress, relaying to [`BenchDeployment::endpoint`].
    fn ingress(&self) -> &str {
        &self.1
    }
}

impl Drop for BenchDeployment {
    fn drop(&mut self) {
        self.0.kill_enclave();
        self.0.kill_shim();
        let _ = std::fs::remove_dir_all(&self.0.dir);
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

/// The parties: two owners of held keys and the external signer.
struct Parties {
    alice: OwnerKey,
    bob: OwnerKey,
    external: SignerKey,
}

/// A distinct 32-byte "sighash" per session.
fn message(stream: u64, i: u64) -> [u8; 32] {
    let mut m = [0x5au8; 32];
    m[..8].copy_from_slice(&stream.to_be_bytes());
    m[8..16].copy_from_slice(&i.to_be_bytes());
    m
}

// ---------------------------------------------------------------------------------------------
// Through the HTTP API.

fn setup_http(c: &Client, e: &AttestedEnclave, p: &Parties) -> AggregateView {
    let k1 = c.musig2_generate_key(e, &p.alice).expect("generate a key");
    let k2 = c.musig2_generate_key(e, &p.bob).expect("generate a key");
    c.musig2_create_aggregate(
        e,
        &p.alice,
        &sigil_client::musig2::AggregateSpec {
            participants: vec![
                ParticipantSpec::Held(k1.id),
                ParticipantSpec::Held(k2.id),
                ParticipantSpec::External(Hex(p.external.public_key())),
            ],
            order: sigil_protocol::musig2::KeyOrder::AsGiven,
            tweaks: vec![TweakSpec {
                kind: TweakKind::TaprootUnspendable,
                value: None,
            }],
        },
    )
    .expect("create the aggregate")
}

/// The requests of one session through the API, in order: each step's time is recorded.
const STEPS: [&str; 6] = [
    "create",
    "external nonces",
    "approve (1st)",
    "approve (2nd: engine nonces)",
    "round (with engine nonces)",
    "partial sig (-> final sig)",
];

/// One session through the API, start to verified signature: its latency and each request's.
fn http_session(
    c: &Client,
    e: &AttestedEnclave,
    p: &Parties,
    agg: &AggregateView,
    msg: [u8; 32],
) -> (Duration, [Duration; 6]) {
    let mut steps = [Duration::ZERO; 6];
    let mut step = 0;
    let mut last = Instant::now();
    let mut mark = || {
        let now = Instant::now();
        steps[step] = now - last;
        step += 1;
        last = now;
    };
    let msg_hex = HexBytes(msg.to_vec());
    let start = Instant::now();
    let request = sigil_client::musig2::SessionSpec {
        aggregate: agg.id,
        messages: vec![MessageView {
            message: msg_hex,
            tweak: None,
        }],
        adaptor_point: None,
        expires_at: now() + SESSION_TTL,
    };
    let s: SessionView = c
        .musig2_create_session(e, &p.alice, &request)
        .expect("create a session");
    mark();
    // The external signer joins (fresh nonces) and sends its nonces.
    let mut part = p.external.join(&s).expect("join");
    c.musig2_submit_nonces(e, &s.id, part.index(), &part.public_nonces())
        .expect("submit nonces");
    mark();
    // Each owner checks the session against what it asked for and approves (the digest is
    // computed client-side from that).
    let expected = ExpectedSession::of_request(s.id, agg, &request);
    for owner in [&p.alice, &p.bob] {
        c.musig2_approve(e, owner, &s, &expected).expect("approve");
        mark();
    }
    // The engine's nonces come with the round: checked against it and ours.
    let round = c.musig2_round(e, &s.id).expect("round");
    mark();
    part.check_round(&round.nonces, &round)
        .expect("round check");
    let psigs = part.sign(&round).expect("partial signatures");
    let st = c
        .musig2_submit_partial_signatures(e, &s.id, &round.round_id, part.index(), &psigs)
        .expect("submit partial signatures");
    assert_eq!(st.state, "completed", "{st:?}");
    mark();
    // The final signature comes with the last partial signature's answer: verified.
    let elapsed = start.elapsed();
    let s0 = &st.signatures[0];
    assert_eq!(s0.output_key, agg.output_xonly);
    let key = s0.output_key.0;
    let sig = s0.signature.expect("a BIP-340 signature").0;
    assert!(
        verify_bip340(&key, &msg, &sig),
        "the final signature verifies"
    );
    (elapsed, steps)
}

/// `n` encapsulated pings (the cheapest sealed request) by `c` over its kept-alive
/// connection, after a few unmeasured ones: each one's latency.
fn sealed_pings(c: &Client, e: &AttestedEnclave, n: u64) -> Vec<Duration> {
    for _ in 0..10 {
        c.ping(e, "floor").expect("ping");
    }
    (0..n)
        .map(|_| {
            let start = Instant::now();
            c.ping(e, "floor").expect("ping");
            start.elapsed()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// In-process, through `sigil_signing::Engine`.

fn os_entropy(out: &mut [u8]) -> Result<(), EntropyError> {
    getrandom::fill(out).map_err(|e| EntropyError(e.to_string()))
}

fn setup_local(p: &Parties) -> (Engine<MemoryRecords>, AggregateInfo) {
    let engine = Engine::new(MemoryRecords::new(), os_entropy);
    let k1 = engine.generate_key(p.alice.x_only(), now()).unwrap().id;
    let k2 = engine.generate_key(p.bob.x_only(), now()).unwrap().id;
    let agg = engine
        .create_aggregate(
            &AggregateSpec {
                participants: vec![
                    sigil_signing::ParticipantSpec::Held(k1),
                    sigil_signing::ParticipantSpec::Held(k2),
                    sigil_signing::ParticipantSpec::External(p.external.public_key()),
                ],
                order: KeyOrder::AsGiven,
                tweaks: vec![Tweak::TaprootUnspendable],
            },
            &p.alice.x_only(),
            now(),
        )
        .unwrap();
    (engine, agg)
}

fn apply(ctx: KeyAggContext, t: &Tweak) -> KeyAggContext {
    let scalar = |b: &[u8; 32]| MaybeScalar::try_from(*b).expect("tweak in range");
    match t {
        Tweak::Plain(b) => ctx.with_plain_tweak(scalar(b)),
        Tweak::XOnly(b) => ctx.with_xonly_tweak(scalar(b)),
        Tweak::Taproot(r) => ctx.with_taproot_tweak(r),
        Tweak::TaprootUnspendable => ctx.with_unspendable_taproot_tweak(),
    }
    .expect("tweak")
}

struct LocalTiming {
    total: Duration,
    engine: Duration,
}

/// The same session in-process: the same client-side work (key context rebuilt and checked,
/// fresh nonces, digest recomputed, owner signatures, round check, partial signature, final
/// check), with engine calls in place of HTTP requests.
fn local_session(
    engine: &Engine<MemoryRecords>,
    p: &Parties,
    ext_secret: Scalar,
    agg: &AggregateInfo,
    msg: [u8; 32],
) -> LocalTiming {
    let mut in_engine = Duration::ZERO;
    let start = Instant::now();
    macro_rules! eng {
        ($e:expr) => {{
            let s = Instant::now();
            let r = $e;
            in_engine += s.elapsed();
            r
        }};
    }
    let messages = vec![MessageSpec {
        message: msg.to_vec(),
        tweak: None,
    }];
    let t = now();
    let session = eng!(engine.create_session(
        &SessionRequest {
            aggregate: agg.id,
            messages: messages.clone(),
            adaptor_point: None,
            expires_at: t + 600,
        },
        &p.alice.x_only(),
        t,
    ))
    .expect("create a session");

    // The external signer joins: key context from the public description, checked against the
    // session's output key, and a fresh nonce (BIP-327 NonceGen with every input).
    let me = session
        .participants
        .iter()
        .find(|q| q.held.is_none())
        .expect("an external participant");
    let points: Vec<Point> = session
        .participants
        .iter()
        .map(|q| Point::try_from(&q.public_key).unwrap())
        .collect();
    let mut ctx = KeyAggContext::new(points).unwrap();
    for tw in &agg.tweaks {
        ctx = apply(ctx, tw);
    }
    let output: Point = ctx.aggregated_pubkey();
    assert_eq!(output.serialize_xonly(), session.output_keys[0]);
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let mut extra = session.id.0.to_vec();
    extra.extend_from_slice(&me.index.to_be_bytes());
    extra.extend_from_slice(&0u32.to_be_bytes());
    let secnonce = SecNonce::generate(seed, ext_secret, output, msg, &extra);
    let pubnonce = secnonce.public_nonce();
    eng!(engine.submit_nonces(&session.id, me.index, &[pubnonce.to_bytes()], now()))
        .expect("submit nonces");

    // The owners recompute the digest from the description and approve.
    let digest = session_digest(&DigestInput {
        session_id: &session.id,
        internal_key: &agg.keys.internal_key,
        tweaks: &agg.tweaks,
        messages: &messages,
        adaptor_point: None,
        expires_at: session.expires_at,
    });
    assert_eq!(digest, session.digest);
    for owner in [&p.alice, &p.bob] {
        let sig = owner.sign(&digest).unwrap().0;
        eng!(engine.approve(&session.id, &owner.x_only(), &sig, now())).expect("approve");
    }

    let round = eng!(engine.nonce_round(&session.id, now())).expect("round");
    let engine_nonces = eng!(engine.public_nonces(&session.id, now())).expect("engine nonces");
    let mut all = vec![pubnonce];
    for q in &engine_nonces {
        all.push(PubNonce::from_bytes(&q.nonces[0]).unwrap());
    }
    assert_eq!(AggNonce::sum(all).to_bytes(), round.aggregated[0]);
    let aggnonce = AggNonce::from_bytes(&round.aggregated[0]).unwrap();
    let psig: musig2::PartialSignature =
        musig2::sign_partial(&ctx, ext_secret, secnonce, &aggnonce, msg).expect("partial sign");
    let status = eng!(engine.submit_partial_signatures(
        &session.id,
        &round.round_id,
        me.index,
        &[psig.serialize()],
        now(),
    ))
    .expect("submit partial signatures");
    assert!(matches!(status.state, SessionState::Completed { .. }));

    let status = eng!(engine.session_status(&session.id, now())).expect("status");
    let total = start.elapsed();
    let SessionState::Completed { signatures } = status.state else {
        panic!("not completed: {:?}", status.state);
    };
    let SignatureValue::Schnorr(sig) = signatures[0].value else {
        panic!("not a BIP-340 signature");
    };
    assert_eq!(signatures[0].output_key, agg.keys.output_xonly);
    assert!(verify_bip340(&signatures[0].output_key, &msg, &sig));
    // Keep the engine's session table small (outside the timing; the enclave prunes at expiry).
    let _ = engine.remove_session(&session.id);
    LocalTiming {
        total,
        engine: in_engine,
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting.

struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        mean: samples.iter().sum::<Duration>() / samples.len() as u32,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn row(name: &str, s: &Stats, sessions_per_s: f64) {
    println!(
        "{name:<44} {:>9.3} {:>9.3} {:>9.3} {:>11.1}",
        ms(s.p50),
        ms(s.p99),
        ms(s.mean),
        sessions_per_s
    );
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
    let wall = start.elapsed();
    let n = all.len() as f64;
    (all, n / wall.as_secs_f64())
}

fn main() {
    let n: u64 = env_count("SIGIL_BENCH_SESSIONS", 100);
    let (enclave_bin, enclave_kind) = enclave_bin();
    let shim_bin = shim_bin();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    println!("== sigil MuSig2 signing: HTTP API (local mode) vs in-process engine ==");
    println!(
        "machine: {cores} CPU(s) visible, shared with other work; numbers vary from run to run \
         (compare within one run)"
    );
    println!("enclave: {} ({enclave_kind})", enclave_bin.display());
    println!("shim:    {}", shim_bin.display());
    println!(
        "session: 3-party MuSig2 (2 held keys, owners approve + 1 external signer), taproot \
         output, 1 message;\n         create -> ext nonces -> 2 approvals -> round (with engine \
         nonces) -> partial sig (answer holds the final sig, verified)"
    );
    println!(
        "service: KMS (dev) + sigil-shim + sigil-enclave, HPKE-sealed requests over loopback \
         HTTP, one kept-alive connection per client"
    );
    println!();

    let parties = Parties {
        alice: OwnerKey::generate().unwrap(),
        bob: OwnerKey::generate().unwrap(),
        external: SignerKey::generate().unwrap(),
    };
    let ext_secret = Scalar::try_from(*parties.external.secret_bytes()).unwrap();

    // --- in-process ---
    let (engine, local_agg) = setup_local(&parties);
    for i in 0..20 {
        local_session(&engine, &parties, ext_secret, &local_agg, message(99, i));
    }
    // More in-process sessions than HTTP ones: they are cheap and the numbers steadier.
    let n_local = n * 5;
    let start = Instant::now();
    let local: Vec<LocalTiming> = (0..n_local)
        .map(|i| local_session(&engine, &parties, ext_secret, &local_agg, message(0, i)))
        .collect();
    let local_seq_tput = n_local as f64 / start.elapsed().as_secs_f64();
    let local_total = stats(local.iter().map(|t| t.total).collect());
    let local_engine = stats(local.iter().map(|t| t.engine).collect());

    // --- through the API ---
    let setup_start = Instant::now();
    let deployment = BenchDeployment::start(&enclave_bin, shim_bin);
    let endpoint = deployment.endpoint();
    let (client, enclave) = attest(&endpoint);
    let agg = setup_http(&client, &enclave, &parties);
    let setup_time = setup_start.elapsed();
    // Every phase's sessions (warm-up included) must fit in the enclave's session table.
    let n_http = n.min(sigil_signing::MAX_SESSIONS as u64 * 3 / 4 - 10);
    for i in 0..10 {
        http_session(&client, &enclave, &parties, &agg, message(98, i));
    }
    let start = Instant::now();
    let (http, steps): (Vec<Duration>, Vec<[Duration; 6]>) = (0..n_http)
        .map(|i| http_session(&client, &enclave, &parties, &agg, message(1, i)))
        .unzip();
    let http_seq_tput = n_http as f64 / start.elapsed().as_secs_f64();
    let http_seq = stats(http);

    // --- the transport floor: the cheapest sealed request, same client and connection, and
    // through the shim's ingress (its own client, attested through the shim) ---
    let (via_shim, via_shim_enclave) = attest(deployment.ingress());
    let (mut direct_pings, mut shim_pings) = (Vec::new(), Vec::new());
    // Alternating blocks, so that both see the same load.
    for _ in 0..4 {
        direct_pings.extend(sealed_pings(&client, &enclave, n));
        shim_pings.extend(sealed_pings(&via_shim, &via_shim_enclave, n));
    }
    let ping_direct = stats(direct_pings);
    let ping_shim = stats(shim_pings);

    println!(
        "(deployment start + sealing ready + 2 key generations + aggregate: {:.2} s, not counted)",
        setup_time.as_secs_f64()
    );
    println!();
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>11}",
        "latency per session [ms]", "p50", "p99", "mean", "sessions/s"
    );
    println!("-- sequential (1 client) --");
    row(
        &format!("HTTP API, end to end (n={n_http})"),
        &http_seq,
        http_seq_tput,
    );
    row(
        &format!("in-process engine + clients (n={n_local})"),
        &local_total,
        local_seq_tput,
    );
    row(
        "  of which inside the engine",
        &local_engine,
        1.0 / local_engine.mean.as_secs_f64(),
    );

    println!("  per request (p50 ms; above the sealed ping's p50):");
    for (i, name) in STEPS.iter().enumerate() {
        let s = stats(steps.iter().map(|s| s[i]).collect());
        println!(
            "    {name:<40} {:>9.3} {:>+9.3}",
            ms(s.p50),
            ms(s.p50) - ms(ping_direct.p50)
        );
    }
    println!("-- the transport floor: encapsulated ping (latency per request) --");
    row(
        "sealed ping, enclave's listener (as above)",
        &ping_direct,
        1.0 / ping_direct.mean.as_secs_f64(),
    );
    row(
        "sealed ping, through the shim's ingress",
        &ping_shim,
        1.0 / ping_shim.mean.as_secs_f64(),
    );
    let floor = ms(local_total.p50) + 6.0 * ms(ping_direct.p50);
    println!(
        "floor: in-process + 6 x sealed request = {:.3} + 6 x {:.3} = {floor:.3} ms \
         (HTTP API p50 {:.3} ms: {:.3} ms above it; through the shim's ingress the floor \
         would be {:.3} ms)",
        ms(local_total.p50),
        ms(ping_direct.p50),
        ms(http_seq.p50),
        ms(http_seq.p50) - floor,
        ms(local_total.p50) + 6.0 * ms(ping_shim.p50),
    );

    let mut ratios = vec![(
        "1".to_string(),
        ms(http_seq.p50) / ms(local_total.p50),
        local_seq_tput / http_seq_tput,
    )];
    for threads in [2u64, 4, 8] {
        println!("-- {threads} concurrent clients --");
        drain_sessions();
        let per_thread = n_http / threads;
        let (lat, tput) = concurrent(
            threads,
            per_thread,
            |_| attest(&endpoint),
            |(c, e), t, i| http_session(c, e, &parties, &agg, message(10 * threads + t, i)).0,
        );
        let h = stats(lat);
        row(
            &format!("HTTP API, end to end (n={})", threads * per_thread),
            &h,
            tput,
        );
        let local_per_thread = n_local.div_ceil(threads);
        let (lat, ltput) = concurrent(
            threads,
            local_per_thread,
            |_| (),
            |_, t, i| {
                local_session(
                    &engine,
                    &parties,
                    ext_secret,
                    &local_agg,
                    message(100 * threads + t, i),
                )
                .total
            },
        );
        let l = stats(lat);
        row(
            &format!(
                "in-process engine + clients (n={})",
                threads * local_per_thread
            ),
            &l,
            ltput,
        );
        ratios.push((threads.to_string(), ms(h.p50) / ms(l.p50), ltput / tput));
    }

    println!();
    release::ratio(
        ms(http_seq.p50) / floor,
        None,
        "MuSig2 session p50, HTTP API / (in-process + 6 sealed requests), 1 client",
    );
    release::ratio(
        ms(ping_shim.p50) / ms(ping_direct.p50),
        None,
        "sealed ping p50, through the shim's ingress / to the enclave's listener",
    );
    for (clients, lat, tput) in &ratios {
        release::ratio(
            *lat,
            Some(1.3),
            &format!("MuSig2 session p50 latency, HTTP API / in-process, {clients} client(s)"),
        );
        release::ratio(
            *tput,
            Some(1.3),
            &format!("MuSig2 sessions/s, in-process / HTTP API, {clients} client(s)"),
        );
    }
    println!("service overhead (HTTP API / in-process):");
    for (clients, lat, tput) in &ratios {
        println!(
            "  {clients} client(s): p50 latency x{lat:.1}, throughput x{:.1} lower",
            tput
        );
    }
    println!(
        "  HTTP p50 minus in-process p50 (sequential): {:.3} ms per session (6 requests)",
        ms(http_seq.p50) - ms(local_total.p50)
    );
    drop(deployment);
}
