//! Benchmark: delegated proving through the enclave service (local mode), next to bare `bb`.
//!
//! The bare side runs the host's `bb` (`target/bb/bb`, from `scripts/fetch-bb`) exactly as the
//! enclave's worker runs it: `bb prove --scheme ultra_honk -b target.json -w witness.gz -o OUT
//! -t noir-recursive --write_vk -c CRSDIR`, then `bb verify` (and `bb gates`, which the worker
//! also runs first), with a cleared environment, on the fixtures `tiny` and `large`.
//!
//! The service side is a real local-mode deployment: the real `sigil-shim` serving the shared
//! CRS from its blob store (`--crs`) and the `sigil-enclave` process with a `prover`
//! configuration pinning that CRS and `--bb` pointing at the same binary. A job is: the inputs
//! sealed to the attested enclave (`POST /v1/prove`), status polls (`GET /v1/prove/{id}`)
//! until the sealed result is there, the result opened and checked by the client. Each job's
//! own `prove_ms` (bb gates + prove + verify inside the enclave, measured by the enclave) is
//! reported next to the end-to-end time. The first proof of each fixture is also checked on
//! the host with `bb verify`.
//!
//! The end-to-end time is given twice: with the client library's `prove_wait` (what the
//! `sigil` CLI sees: long-polls, `GET /v1/prove/{id}?wait=20`, which the enclave answers when
//! the job ends), and with status polls every 10 ms (what the service itself costs). Both are
//! compared with bare `bb prove` for each fixture, and the summary at the end puts the CLI's
//! (library's) ratios for tiny and large side by side.
//!
//! Needs release binaries of the same target directory as this bench and bb:
//! `scripts/fetch-bb`, `cargo build --release -p sigil-enclave -p sigil-shim`, then
//! `cargo bench -p sigil-e2e --bench prove`. `SIGIL_BENCH_RUNS` sets the measured runs per
//! fixture and side (default 5 for tiny, 3 for large), `SIGIL_BENCH_SUBMISSIONS` the number of
//! measured tiny submissions for the job API latencies (default 20): a brief run (CI) is
//! `SIGIL_BENCH_RUNS=1 SIGIL_BENCH_SUBMISSIONS=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sigil_client::prove::{Job, Proof};
use sigil_client::{AttestedEnclave, Client};
use sigil_e2e::deployment::{LocalEnclave, health};
use sigil_e2e::shim::{Shim, ShimSetup};

mod release;
use release::{
    attest, bb_bin, enclave_bin, env_count, load_average, missing, profile_dir, shim_bin,
};
use sigil_e2e::{fixture, workspace};

/// Measured runs per fixture (after one warm-up run each), unless `SIGIL_BENCH_RUNS` says.
const FIXTURES: &[(&str, usize)] = &[("tiny", 5), ("large", 3)];
/// Status poll interval of the "tight" end-to-end measurement.
const POLL: Duration = Duration::from_millis(10);
/// Status polls of a finished job per submission, for the poll latency.
const DONE_POLLS: usize = 5;
/// The verifier target, for bare bb and the jobs alike.
const TARGET: &str = "noir-recursive";

// ---------------------------------------------------------------------------------------------
// Locating the binaries and files.

fn shared_crs() -> PathBuf {
    let p = workspace().join("../shared/crs/bn254_g1.dat");
    if !p.exists() {
        missing(
            "CRS",
            std::slice::from_ref(&p),
            "the shared CRS is not there",
        );
    }
    p
}

// ---------------------------------------------------------------------------------------------
// Bare bb on the host.

struct Bare {
    bb: PathBuf,
    /// Our own CRS directory: bb writes `crs.lock` into it, so it holds a link to the shared
    /// file rather than being the shared directory.
    crs_dir: PathBuf,
    dir: PathBuf,
}

#[derive(Default)]
struct BareTimes {
    gates: Vec<Duration>,
    prove: Vec<Duration>,
    verify: Vec<Duration>,
}

impl Bare {
    fn new(bb: PathBuf, dir: &Path) -> Bare {
        let crs_dir = dir.join("host-crs");
        std::fs::create_dir_all(&crs_dir).unwrap();
        std::os::unix::fs::symlink(shared_crs(), crs_dir.join("bn254_g1.dat")).unwrap();
        Bare {
            bb,
            crs_dir,
            dir: dir.to_path_buf(),
        }
    }

    /// Runs bb as the enclave's worker does (cleared environment, HOME in a scratch
    /// directory); returns the wall time, panics if it fails.
    fn run(&self, args: &[&std::ffi::OsStr]) -> Duration {
        let mut cmd = Command::new(&self.bb);
        cmd.args(args)
            .env_clear()
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let out = cmd.output().expect("run bb");
        let elapsed = start.elapsed();
        assert!(
            out.status.success(),
            "bb {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        elapsed
    }

    fn gates(&self, name: &str) -> Duration {
        let b = fixture(name, "target.json");
        self.run(&[
            "gates".as_ref(),
            "--scheme".as_ref(),
            "ultra_honk".as_ref(),
            "-b".as_ref(),
            b.as_os_str(),
        ])
    }

    fn prove(&self, name: &str, out: &Path) -> Duration {
        let (b, w) = (fixture(name, "target.json"), fixture(name, "witness.gz"));
        self.run(&[
            "prove".as_ref(),
            "--scheme".as_ref(),
            "ultra_honk".as_ref(),
            "-b".as_ref(),
            b.as_os_str(),
            "-w".as_ref(),
            w.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "-t".as_ref(),
            TARGET.as_ref(),
            "--write_vk".as_ref(),
            "-c".as_ref(),
            self.crs_dir.as_os_str(),
        ])
    }

    fn verify(&self, out: &Path) -> Duration {
        let (p, i, k) = (out.join("proof"), out.join("public_inputs"), out.join("vk"));
        self.run(&[
            "verify".as_ref(),
            "--scheme".as_ref(),
            "ultra_honk".as_ref(),
            "-t".as_ref(),
            TARGET.as_ref(),
            "-p".as_ref(),
            p.as_os_str(),
            "-i".as_ref(),
            i.as_os_str(),
            "-k".as_ref(),
            k.as_os_str(),
            "-c".as_ref(),
            self.crs_dir.as_os_str(),
        ])
    }

    /// One bare run (gates, prove, verify) into a fresh output directory.
    fn once(&self, name: &str, tag: usize, t: &mut BareTimes) {
        let out = self.dir.join(format!("bare-{name}-{tag}"));
        let _ = std::fs::remove_dir_all(&out);
        t.gates.push(self.gates(name));
        t.prove.push(self.prove(name, &out));
        t.verify.push(self.verify(&out));
    }

    /// Host check of a proof that came out of the enclave.
    fn check(&self, name: &str, p: &Proof) {
        let out = self.dir.join(format!("service-{name}"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("proof"), &p.proof).unwrap();
        std::fs::write(out.join("public_inputs"), &p.public_inputs).unwrap();
        std::fs::write(out.join("vk"), &p.vk).unwrap();
        self.verify(&out);
    }
}

// ---------------------------------------------------------------------------------------------
// The deployment: sigil-shim (blob store with the CRS) + sigil-enclave with a prover, in local
// mode.

struct Deployment {
    // Dropped in this order: the enclave first, then the shim.
    enclave: LocalEnclave,
    _shim: Shim,
}

impl Deployment {
    fn start(dir: &Path, enclave_bin: &Path, shim_bin: PathBuf, bb: &Path) -> Deployment {
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let crs = shared_crs();
        let setup = ShimSetup::in_dir(shim_bin, dir, Some(crs.clone()));
        let shim = Shim::start(&setup).expect("start sigil-shim");
        let (blobs, bb) = (setup.blob_listen, bb.display().to_string());
        // The enclave pins the whole shared file (32,769 points: enough for `--write_vk` on
        // the large fixture).
        let bytes = std::fs::read(&crs).unwrap();
        let points = bytes.len() / 64;
        let sha = hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            &bytes[..points * 64],
        ));
        let config = dir.join("enclave.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"prover": {{"crs_sha256": "{sha}", "crs_points": {points},
                    "time_limit_secs": 300}}}}"#
            ),
        )
        .unwrap();
        let config = config.display().to_string();
        let enclave = LocalEnclave::start(
            enclave_bin,
            &["--config", &config, "--blob-store", &blobs, "--bb", &bb],
        );
        let d = Deployment {
            enclave,
            _shim: shim,
        };
        d.wait_crs_ready();
        d
    }

    fn endpoint(&self) -> String {
        self.enclave.endpoint()
    }

    fn wait_crs_ready(&self) {
        let start = Instant::now();
        loop {
            let h = health(&self.endpoint());
            if let Some(h) = &h
                && h["crs"]["state"] == "ready"
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the CRS did not become ready: {h:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs through the API.

struct Inputs {
    circuit: Vec<u8>,
    witness: Vec<u8>,
}

impl Inputs {
    fn read(name: &str) -> Inputs {
        Inputs {
            circuit: std::fs::read(fixture(name, "target.json")).unwrap(),
            witness: std::fs::read(fixture(name, "witness.gz")).unwrap(),
        }
    }
}

/// One job, timed.
struct JobTiming {
    /// Submission start to result opened.
    total: Duration,
    /// The `POST /v1/prove` call: request sealed, sent, `Submitted` received and opened.
    submit: Duration,
    /// Every `GET /v1/prove/{id}` while the job was queued or running (tight polling only).
    polls: Vec<Duration>,
    prove_ms: u64,
    queued_ms: u64,
    proof: Proof,
}

fn submit(c: &Client, e: &AttestedEnclave, inputs: &Inputs) -> (Job, Duration) {
    let start = Instant::now();
    let job = c
        .prove_submit(e, &inputs.circuit, &inputs.witness, TARGET)
        .expect("submit a job");
    (job, start.elapsed())
}

fn finish(
    c: &Client,
    job: &Job,
    start: Instant,
    submit: Duration,
    polls: Vec<Duration>,
) -> JobTiming {
    let proof = c
        .prove_wait(job, Duration::from_secs(600), |_| {})
        .expect("the job proves");
    let total = start.elapsed();
    JobTiming {
        total,
        submit,
        polls,
        prove_ms: proof.result.prove_ms,
        queued_ms: proof.result.queued_ms,
        proof,
    }
}

/// A job as the client library (and so the CLI) runs it: submit, `prove_wait` (long-polls),
/// open.
fn job_client_wait(c: &Client, e: &AttestedEnclave, inputs: &Inputs) -> JobTiming {
    let start = Instant::now();
    let (job, submit) = submit(c, e, inputs);
    finish(c, &job, start, submit, Vec::new())
}

/// A job with a status poll every [`POLL`]; `prove_wait` then opens the result (its first
/// poll already finds it).
fn job_tight(c: &Client, e: &AttestedEnclave, inputs: &Inputs) -> JobTiming {
    let start = Instant::now();
    let (job, submit) = submit(c, e, inputs);
    let mut polls = Vec::new();
    loop {
        let t = Instant::now();
        let s = c.prove_status(&job.submitted.id).expect("job status");
        if s.sealed.is_some() {
            break;
        }
        polls.push(t.elapsed());
        std::thread::sleep(POLL);
    }
    finish(c, &job, start, submit, polls)
}

// ---------------------------------------------------------------------------------------------
// Reporting.

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2
    }
}

fn min(v: &[Duration]) -> Duration {
    v.iter().copied().min().unwrap_or_default()
}

/// Nearest-rank percentile.
fn pct(v: &[Duration], q: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[((s.len() as f64 - 1.0) * q).round() as usize]
}

fn from_ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn row_med(what: &str, v: &[Duration]) {
    println!(
        "  {what:<52} {:>10.1} {:>10.1}   (n={})",
        ms(median(v)),
        ms(min(v)),
        v.len()
    );
}

fn row_pct(what: &str, v: &[Duration]) {
    println!(
        "  {what:<52} {:>10.2} {:>10.2} {:>10.2}   (n={})",
        ms(pct(v, 0.50)),
        ms(pct(v, 0.99)),
        ms(min(v)),
        v.len()
    );
}

struct FixtureResult {
    name: &'static str,
    bare: BareTimes,
    wait: Vec<JobTiming>,
    tight: Vec<JobTiming>,
}

fn main() {
    let submissions: usize = env_count("SIGIL_BENCH_SUBMISSIONS", 20);
    let runs_override: usize = env_count("SIGIL_BENCH_RUNS", 0);
    let (enclave_bin, enclave_kind) = enclave_bin();
    let shim_bin = shim_bin();
    let bb = bb_bin();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = load_average();

    let dir = profile_dir()
        .join("bench-prove")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    println!("== sigil delegated proving: enclave service (local mode) vs bare bb ==");
    println!(
        "machine: {cores} CPU(s) visible, shared with other work (load average {load} at the \
         start); bb uses every CPU, so the numbers vary from run to run: compare within one run"
    );
    println!(
        "not measured here: the QEMU harness / TCG (an emulated CPU is not comparable with \
         either side)"
    );
    println!("enclave: {} ({enclave_kind})", enclave_bin.display());
    println!("shim:    {}", shim_bin.display());
    println!("bb:      {}", bb.display());
    println!(
        "bare:    bb prove --scheme ultra_honk -b target.json -w witness.gz -o OUT -t {TARGET} \
         --write_vk -c CRSDIR, then bb verify (cleared environment, like the enclave's worker)"
    );
    println!(
        "service: sigil-shim (CRS in its blob store) + sigil-enclave --bb; HPKE-sealed POST \
         /v1/prove, GET /v1/prove/{{id}} polls (10 ms) or long-polls (prove_wait, as the CLI), \
         result opened;\n         prove_ms is the \
         enclave's own time for bb gates + prove + verify;\n         one warm-up run per \
         fixture and side, then the sides take turns in each round"
    );
    println!();

    let bare = Bare::new(bb.clone(), &dir);
    let setup_start = Instant::now();
    let deployment = Deployment::start(&dir.join("deploy"), &enclave_bin, shim_bin, &bb);
    let (client, enclave) = attest(&deployment.endpoint());
    let setup_time = setup_start.elapsed();

    let mut results = Vec::new();
    for &(name, runs) in FIXTURES {
        let runs = if runs_override > 0 {
            runs_override
        } else {
            runs
        };
        let inputs = Inputs::read(name);
        // Warm-up of both sides (CRS in the page cache), the service's proof checked on the
        // host.
        bare.once(name, 0, &mut BareTimes::default());
        let warm = job_tight(&client, &enclave, &inputs);
        bare.check(name, &warm.proof);
        // The sides take turns in every round, so that load from other work on the machine
        // falls on both alike.
        let mut bare_times = BareTimes::default();
        let (mut wait, mut tight) = (Vec::new(), Vec::new());
        for i in 1..=runs {
            bare.once(name, i, &mut bare_times);
            tight.push(job_tight(&client, &enclave, &inputs));
            wait.push(job_client_wait(&client, &enclave, &inputs));
        }
        results.push(FixtureResult {
            name,
            bare: bare_times,
            wait,
            tight,
        });
    }

    // Job API latency: tiny submissions, each finished before the next.
    let tiny = Inputs::read("tiny");
    let mut submit_lat = Vec::new();
    let mut running_polls = Vec::new();
    let mut done_polls = Vec::new();
    let mut sealed_len = 0;
    for _ in 0..submissions {
        let j = job_tight(&client, &enclave, &tiny);
        submit_lat.push(j.submit);
        running_polls.extend(j.polls);
        for _ in 0..DONE_POLLS {
            let t = Instant::now();
            let s = client.prove_status(&j.proof.result.id).expect("job status");
            done_polls.push(t.elapsed());
            // The length on the wire: base64 of the sealed bytes.
            sealed_len = s.sealed.map_or(0, |s| s.0.len().div_ceil(3) * 4);
        }
    }

    println!(
        "(deployment start + CRS ready + attestation: {:.2} s, not counted)",
        setup_time.as_secs_f64()
    );
    println!();
    for r in &results {
        let circuit_size = r.tight[0].proof.result.circuit_size.unwrap_or(0);
        println!(
            "-- {} (circuit_size {circuit_size}, proof {} B) --",
            r.name,
            r.tight[0].proof.proof.len()
        );
        println!("  {:<52} {:>10} {:>10}", "wall time [ms]", "median", "min");
        row_med("bare bb prove --write_vk", &r.bare.prove);
        row_med("bare bb verify", &r.bare.verify);
        row_med("bare bb gates", &r.bare.gates);
        let bare_all: Vec<Duration> = (0..r.bare.prove.len())
            .map(|i| r.bare.gates[i] + r.bare.prove[i] + r.bare.verify[i])
            .collect();
        row_med("bare gates + prove + verify (the worker's work)", &bare_all);
        let prove_ms: Vec<Duration> = r
            .wait
            .iter()
            .chain(&r.tight)
            .map(|j| from_ms(j.prove_ms))
            .collect();
        row_med("service: job prove_ms (in the enclave)", &prove_ms);
        let queued: Vec<Duration> = r
            .wait
            .iter()
            .chain(&r.tight)
            .map(|j| from_ms(j.queued_ms))
            .collect();
        row_med("service: job queued_ms", &queued);
        let tight: Vec<Duration> = r.tight.iter().map(|j| j.total).collect();
        row_med("service end to end, polls every 10 ms", &tight);
        let wait: Vec<Duration> = r.wait.iter().map(|j| j.total).collect();
        row_med("service end to end, client prove_wait (long-poll)", &wait);
        let bare_p = ms(median(&r.bare.prove));
        println!(
            "  ratio service / bare prove (medians): x{:.2} with 10 ms polls, x{:.2} with \
             prove_wait; prove_ms / bare gates+prove+verify: x{:.2}",
            ms(median(&tight)) / bare_p,
            ms(median(&wait)) / bare_p,
            ms(median(&prove_ms)) / ms(median(&bare_all)),
        );
        println!(
            "  service overhead over bare prove (medians): {:+.1} ms with 10 ms polls",
            ms(median(&tight)) - bare_p
        );
        println!();
    }

    // The issue's row compares the CLI with what the worker must run anyway (bb gates, prove
    // and verify); bare prove alone is shown beside it, with no target.
    println!(
        "-- summary: proving through the CLI (client library prove_wait, long-poll) vs bare bb, \
         medians --"
    );
    for r in &results {
        let wait: Vec<Duration> = r.wait.iter().map(|j| j.total).collect();
        let bare_all: Vec<Duration> = (0..r.bare.prove.len())
            .map(|i| r.bare.gates[i] + r.bare.prove[i] + r.bare.verify[i])
            .collect();
        let (cli, all, prove) = (
            ms(median(&wait)),
            ms(median(&bare_all)),
            ms(median(&r.bare.prove)),
        );
        println!(
            "  {:<6} CLI {cli:>9.1} ms   bare gates+prove+verify {all:>9.1} ms   x{:.2}   \
             bare prove {prove:>9.1} ms   x{:.2}",
            r.name,
            cli / all,
            cli / prove
        );
        let target = if r.name == "tiny" { 1.3 } else { 1.05 };
        release::ratio(
            cli / all,
            Some(target),
            &format!(
                "proving {} through the CLI / bare bb gates + prove + verify (medians)",
                r.name
            ),
        );
        release::ratio(
            cli / prove,
            None,
            &format!(
                "proving {} through the CLI / bare bb prove alone (medians)",
                r.name
            ),
        );
    }
    println!();

    println!("-- job API latency (tiny; each job finished before the next submission) --");
    println!(
        "  {:<52} {:>10} {:>10} {:>10}",
        "latency [ms]", "p50", "p99", "min"
    );
    row_pct(
        "POST /v1/prove until the sealed Submitted is opened",
        &submit_lat,
    );
    row_pct("GET /v1/prove/{id}, job queued or running", &running_polls);
    row_pct(
        &format!("GET /v1/prove/{{id}}, job done ({sealed_len} B sealed b64)"),
        &done_polls,
    );
    println!(
        "  (POST: client seals ~{} KiB of base64 inputs with HPKE, one connection per request)",
        (tiny.circuit.len() + tiny.witness.len()) * 4 / 3 / 1024
    );

    drop(deployment);
    let _ = std::fs::remove_dir_all(&dir);
}
