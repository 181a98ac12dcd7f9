//! End-to-end latency and throughput of an in-process 3-party MuSig2 session (2 held keys with
//! different owners + 1 external signer), from `create_session` to the verified signature.
//!
//! Run: `cargo bench -p sigil-signing --bench engine` (prints numbers; no harness). Set
//! `SIGIL_BENCH_SESSIONS` to change the number of measured sessions (default 500).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use musig2::secp::{Point, Scalar};
use musig2::{AggNonce, KeyAggContext, PartialSignature, SecNonce};
use sigil_signing::{
    AggregateInfo, AggregateSpec, Engine, KeyOrder, MemoryRecords, ParticipantSpec, SessionState,
    verify_bip340,
};

struct Timing {
    total: Duration,
    engine: Duration,
    /// Engine time per phase: create, approvals, nonce exchange, partial signature + finish.
    phases: [Duration; 4],
}

fn setup() -> (Engine<MemoryRecords>, [Owner; 2], External, AggregateInfo) {
    let engine = common::engine(2024);
    let owners = [Owner::new(1), Owner::new(2)];
    let ext = External::new(3);
    let k1 = engine.generate_key(owners[0].xonly(), NOW).unwrap().id;
    let k2 = engine.generate_key(owners[1].xonly(), NOW).unwrap().id;
    let agg = engine
        .create_aggregate(
            &AggregateSpec {
                participants: vec![
                    ParticipantSpec::Held(k1),
                    ParticipantSpec::Held(k2),
                    ParticipantSpec::External(ext.pubkey),
                ],
                order: KeyOrder::Sorted,
                tweaks: vec![sigil_signing::Tweak::TaprootUnspendable],
            },
            &owners[0].xonly(),
            NOW,
        )
        .unwrap();
    (engine, owners, ext, agg)
}

/// One session; `engine` counts only time spent inside engine calls (the owners' approvals and
/// the external signer's work are client-side costs).
fn one(
    engine: &Engine<MemoryRecords>,
    owners: &[Owner; 2],
    ext: &mut External,
    agg: &AggregateInfo,
    i: u64,
) -> Timing {
    let start = Instant::now();
    let mut phases = [Duration::ZERO; 4];
    let mut timed = |phase: usize, f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        phases[phase] += t.elapsed();
    };
    let msgs = vec![bytes32("bench-sighash", i).to_vec()];
    let ext_index = index_of(agg, ext);

    let mut session = None;
    timed(0, &mut || {
        session = Some(
            engine
                .create_session(
                    &plain_request(agg.id, &msgs, NOW + 60),
                    &owners[0].xonly(),
                    NOW,
                )
                .unwrap(),
        )
    });
    let session = session.unwrap();
    for o in owners {
        let sig = o.approve(&session.digest);
        timed(1, &mut || {
            engine.approve(&session.id, &o.xonly(), &sig, NOW).unwrap();
        });
    }
    let nonces = ext.nonces(&msgs);
    let mut round = None;
    timed(2, &mut || {
        engine.public_nonces(&session.id, NOW).unwrap();
        engine
            .submit_nonces(&session.id, ext_index, &nonces, NOW)
            .unwrap();
        round = Some(engine.nonce_round(&session.id, NOW).unwrap());
    });
    let round = round.unwrap();
    let psigs = ext.sign(&contexts(agg, &[None]), &round.aggregated, &msgs, None);
    let mut status = None;
    timed(3, &mut || {
        status = Some(
            engine
                .submit_partial_signatures(&session.id, &round.round_id, ext_index, &psigs, NOW)
                .unwrap(),
        );
    });
    let total = start.elapsed();
    assert!(matches!(
        status.unwrap().state,
        SessionState::Completed { .. }
    ));
    Timing {
        total,
        engine: phases.iter().sum(),
        phases,
    }
}

/// The curve work one session cannot avoid, done directly with the engine's own libraries
/// (musig2 on secp256k1, k256 for BIP-340) and nothing else: no records, no session table, no
/// digests or encodings. What the engine must do per session: aggregate the three keys and
/// apply the taproot tweak (create), verify the two owners' BIP-340 approvals, generate a
/// nonce pair for each held key (BIP-327 NonceGen, two base-point multiplications each), sum
/// the three public nonces, sign for each held key (the musig2 crate verifies each partial
/// signature it makes), verify the external participant's partial signature, aggregate and
/// verify the final BIP-340 signature. The external signer's own work is outside the timing.
struct Floor {
    held: [Scalar; 2],
    points: Vec<Point>,
    owners: [Owner; 2],
    ext: Scalar,
}

impl Floor {
    fn new() -> Floor {
        let held = [
            Scalar::try_from(bytes32("floor-held", 1)).unwrap(),
            Scalar::try_from(bytes32("floor-held", 2)).unwrap(),
        ];
        let ext = Scalar::try_from(bytes32("floor-ext", 3)).unwrap();
        let points = vec![
            held[0].base_point_mul(),
            held[1].base_point_mul(),
            ext.base_point_mul(),
        ];
        Floor {
            held,
            points,
            owners: [Owner::new(11), Owner::new(12)],
            ext,
        }
    }

    fn session(&self, i: u64) -> Duration {
        let msg = bytes32("floor-sighash", i);
        let digest = bytes32("floor-digest", i);
        let approvals = [
            self.owners[0].approve(&digest),
            self.owners[1].approve(&digest),
        ];
        let owner_keys = [self.owners[0].xonly(), self.owners[1].xonly()];
        let mut timed = Duration::ZERO;

        let t = Instant::now();
        let ctx = KeyAggContext::new(self.points.clone())
            .unwrap()
            .with_unspendable_taproot_tweak()
            .unwrap();
        for (k, sig) in owner_keys.iter().zip(&approvals) {
            assert!(verify_bip340(k, &digest, sig));
        }
        let output: Point = ctx.aggregated_pubkey();
        let secnonces: Vec<SecNonce> = (0..2)
            .map(|j| {
                SecNonce::build_with_seckey(
                    bytes32("floor-nonce", i * 2 + j),
                    self.held[j as usize],
                )
                .with_aggregated_pubkey(output)
                .with_message(&msg)
                .build()
            })
            .collect();
        let mut pubnonces: Vec<_> = secnonces.iter().map(SecNonce::public_nonce).collect();
        timed += t.elapsed();

        // The external signer's nonce and partial signature (its own work, not timed).
        let ext_secnonce =
            SecNonce::build_with_seckey(bytes32("floor-ext-nonce", i), self.ext).build();
        let ext_pubnonce = ext_secnonce.public_nonce();
        pubnonces.push(ext_pubnonce.clone());
        let agg = AggNonce::sum(&pubnonces);
        let ext_psig: PartialSignature =
            musig2::sign_partial(&ctx, self.ext, ext_secnonce, &agg, msg).unwrap();

        let t = Instant::now();
        let agg = AggNonce::sum(&pubnonces);
        let mut psigs: Vec<PartialSignature> = secnonces
            .into_iter()
            .zip(&self.held)
            .map(|(n, k)| musig2::sign_partial(&ctx, *k, n, &agg, msg).unwrap())
            .collect();
        musig2::verify_partial(&ctx, ext_psig, &agg, self.points[2], &ext_pubnonce, msg).unwrap();
        psigs.push(ext_psig);
        let sig: [u8; 64] = musig2::aggregate_partial_signatures(&ctx, &agg, psigs, msg).unwrap();
        assert!(verify_bip340(&output.serialize_xonly(), &msg, &sig));
        timed + t.elapsed()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let sum: Duration = samples.iter().sum();
    let mean = sum / samples.len() as u32;
    println!(
        "{name:<36} p50 {:>8.3} ms  p99 {:>8.3} ms  mean {:>8.3} ms  => {:>7.1} sessions/s",
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
        1.0 / mean.as_secs_f64(),
    );
}

fn main() {
    let n: u64 = std::env::var("SIGIL_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let (engine, owners, mut ext, agg) = setup();
    for i in 0..20 {
        one(&engine, &owners, &mut ext, &agg, i);
    }
    let start = Instant::now();
    let timings: Vec<Timing> = (0..n)
        .map(|i| one(&engine, &owners, &mut ext, &agg, 1000 + i))
        .collect();
    let wall = start.elapsed();
    println!("3-party session (2 held + 1 external, taproot, 1 message), {n} sessions, 1 thread:");
    report(
        "end to end (engine + clients)",
        timings.iter().map(|t| t.total).collect(),
    );
    report(
        "inside the engine only",
        timings.iter().map(|t| t.engine).collect(),
    );
    for (i, name) in [
        "  create_session",
        "  2 approvals (+ nonce generation)",
        "  nonce exchange (+ engine signing)",
        "  partial sig (+ aggregate, verify)",
    ]
    .iter()
    .enumerate()
    {
        report(name, timings.iter().map(|t| t.phases[i]).collect());
    }
    println!(
        "sequential throughput: {:.1} sessions/s end to end",
        n as f64 / wall.as_secs_f64()
    );

    // The floor, measured in the same run: the curve operations alone.
    let floor = Floor::new();
    for i in 0..20 {
        floor.session(i);
    }
    let floors: Vec<Duration> = (0..n).map(|i| floor.session(1000 + i)).collect();
    let mut engine_only: Vec<Duration> = timings.iter().map(|t| t.engine).collect();
    engine_only.sort();
    let mut sorted_floor = floors.clone();
    sorted_floor.sort();
    report("floor: the curve operations alone", floors);
    let over_floor =
        percentile(&engine_only, 0.5).as_secs_f64() / percentile(&sorted_floor, 0.5).as_secs_f64();
    println!("engine / floor (p50): x{over_floor:.2}");
    // For scripts/bench's table.
    println!(
        "ratio\t{over_floor:.2}\t<=x1.5\tMuSig2 engine time per session / its curve operations (p50)"
    );

    // Two threads sharing one engine (the machine has 2 cores): sessions on different threads
    // only contend on the session map.
    let threads = 2;
    let per_thread = n / threads;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (engine, owners, agg) = (&engine, &owners, &agg);
            s.spawn(move || {
                let mut ext = External::with_stream(3, t + 1);
                for i in 0..per_thread {
                    one(engine, owners, &mut ext, agg, 100_000 * (t + 1) + i);
                }
            });
        }
    });
    let wall = start.elapsed();
    println!(
        "parallel throughput ({threads} threads): {:.1} sessions/s end to end",
        (per_thread * threads) as f64 / wall.as_secs_f64()
    );
    let _ = engine.prune_sessions(NOW + 3600);
}
