//! Benchmark: loading a 2^23-point CRS (512 MiB, the size TEE-Rex pins) from the parent into
//! the enclave, with its SHA-256 checked, next to the floors measured in the same run.
//!
//! A real local-mode deployment: the release `sigil-shim` imports a generated insecure CRS
//! (`sigil-insecure-crs`, tau = 2) into its file blob store (`--crs`), and the release
//! `sigil-enclave` with a `prover` configuration pinning that CRS's SHA-256 fetches the chunks,
//! hashes them and writes the file into tmpfs (`TMPDIR` on `/dev/shm`, as `/run` is a tmpfs
//! in the image). Measured:
//!
//! - the shim's import of the file into an empty store, and again into a store that already
//!   holds it (a restart);
//! - the enclave: from its start to `crs.state == "ready"` in `/v1/health` (polled every
//!   10 ms), and its own breakdown from its log (`CRS ready: ... (fetch, hash, write)`: each
//!   stage's busy time; stages overlap when the loader pipelines);
//! - the floors: reading the file (page cache), SHA-256 of 512 MiB in memory (ring, the
//!   enclave's hash), writing 512 MiB into tmpfs, and fetching every chunk from the shim with
//!   one request at a time and nothing else done with them (the blob transport).
//!
//! Needs release binaries and bb (the prover section needs it, though nothing is proved):
//! `scripts/fetch-bb`, `cargo build --release -p sigil-enclave -p sigil-shim`, then
//! `cargo bench -p sigil-e2e --bench crs`. `SIGIL_BENCH_CRS_POINTS` changes the size
//! (default 2^23); `SIGIL_BENCH_RUNS` the enclave loads measured (default 3). Every file it
//! makes (the CRS, the store, the tmpfs copies) is removed at the end.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ring::digest::{SHA256, digest};
use sigil_enclave::seal::BlobClient;

mod release;
use release::{bb_bin, enclave_bin, env_count, load_average, profile_dir, shim_bin};
use sigil_e2e::deployment;

const CHUNK: usize = 1 << 20;

/// Removes the bench's directories however it ends.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn mib_s(bytes: u64, d: Duration) -> String {
    format!(
        "{:.0} MiB/s",
        bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
    )
}

/// Starts the shim serving a blob store in `dir/state` with `--crs crs`; returns it once its
/// socket exists (the import runs before it listens) and how long that took.
fn start_shim(shim: &Path, dir: &Path, crs: &Path) -> (Proc, Duration) {
    let sock = dir.join("blobs.sock");
    let _ = std::fs::remove_file(&sock);
    let log = std::fs::File::create(dir.join("shim.log")).unwrap();
    let started = Instant::now();
    let mut child = Command::new(shim)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--blob-listen")
        .arg(format!("unix:{}", sock.display()))
        .arg("--crs")
        .arg(crs)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start sigil-shim");
    while !sock.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "sigil-shim exited ({status}): {}",
                std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the shim did not listen"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (Proc(child), started.elapsed())
}

struct Load {
    /// Enclave start to `ready` in health.
    total: Duration,
    /// The enclave's own line: `CRS ready: ...`.
    line: String,
    /// The enclave's peak resident memory, kB (VmHWM).
    peak_rss_kb: Option<u64>,
}

/// One enclave start with the CRS pinned, until the CRS is ready.
fn enclave_load(enclave: &Path, config: &Path, sock: &Path, bb: &Path, tmp: &Path) -> Load {
    let _ = std::fs::remove_dir_all(tmp);
    std::fs::create_dir_all(tmp).unwrap();
    let started = Instant::now();
    let mut child = Command::new(enclave)
        .args(["--listen", "tcp:127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--blob-store")
        .arg(format!("unix:{}", sock.display()))
        .arg("--bb")
        .arg(bb)
        // The local enclave keeps its state, and so the CRS, in TMPDIR.
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sigil-enclave");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening tcp:")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let stderr = child.stderr.take().unwrap();
    let pid = child.id();
    let proc = Proc(child);
    // The log, read on the side so the enclave never blocks on a full pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("CRS") {
                let _ = tx.send(line);
            }
        }
    });
    let total = loop {
        let health = deployment::health(&format!("http://{addr}"));
        if let Some(h) = &health
            && h["crs"]["state"] == "ready"
        {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the CRS did not load: {health:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| "(no CRS line in the log)".into());
    let peak_rss_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        });
    drop(proc);
    let _ = std::fs::remove_dir_all(tmp);
    Load {
        total,
        line,
        peak_rss_kb,
    }
}

/// Every chunk fetched with one request at a time, nothing done with the data.
fn fetch_all(sock: &Path, chunks: u64) -> Duration {
    let addr: sigil_sys::Addr = format!("unix:{}", sock.display()).parse().unwrap();
    let mut c = BlobClient::connect(&addr, Duration::from_secs(30)).expect("connect to the shim");
    let started = Instant::now();
    let mut bytes = 0;
    for i in 0..chunks {
        let (_, d) = c.get(&format!("crs/bn254_g1/{i:05}")).expect("get a chunk");
        bytes += d.len();
    }
    let took = started.elapsed();
    assert!(bytes > 0);
    took
}

fn main() {
    let points: u64 = std::env::var("SIGIL_BENCH_CRS_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 23);
    let runs: usize = env_count("SIGIL_BENCH_RUNS", 3);
    let (enclave, enclave_kind) = enclave_bin();
    let shim = shim_bin();
    let bb = bb_bin();
    let bytes = points * 64;
    let chunks = bytes.div_ceil(CHUNK as u64);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = load_average();

    let dir = profile_dir()
        .join("bench-crs")
        .join(std::process::id().to_string());
    // tmpfs, as the enclave's /run is; the temporary directory where there is none.
    let shm = Path::new("/dev/shm");
    let tmp_root = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let tmp = tmp_root.join(format!("sigil-bench-crs-{}", std::process::id()));
    let _cleanup = Cleanup(vec![dir.clone(), tmp.clone()]);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state")).unwrap();

    println!(
        "== sigil CRS load: {points} points ({} MiB) from the parent into the enclave ==",
        bytes >> 20
    );
    println!(
        "machine: {cores} CPU(s) visible, shared with other work (load average {load} at the \
         start): compare within one run"
    );
    println!("enclave: {} ({enclave_kind})", enclave.display());
    println!("enclave tmpfs: {}", tmp_root.display());

    let file = dir.join("bn254_g1.dat");
    let t = Instant::now();
    let sha = sigil_insecure_crs::write_file(points, &file).expect("generate the CRS");
    let generated = t.elapsed();
    println!("generated (insecure, tau = 2): {} ({sha})", ms(generated));

    // Floors.
    let t = Instant::now();
    let mut f = std::fs::File::open(&file).unwrap();
    let mut buf = vec![0u8; CHUNK];
    while f.read(&mut buf).unwrap() > 0 {}
    let read_floor = t.elapsed();
    let all = std::fs::read(&file).unwrap();
    let t = Instant::now();
    let found = hex::encode(digest(&SHA256, &all).as_ref());
    let hash_floor = t.elapsed();
    assert_eq!(found, sha);
    let floor_file = tmp.join("floor.dat");
    std::fs::create_dir_all(&tmp).unwrap();
    let t = Instant::now();
    let mut w = std::fs::File::create(&floor_file).unwrap();
    for c in all.chunks(CHUNK) {
        w.write_all(c).unwrap();
    }
    drop(w);
    let write_floor = t.elapsed();
    drop(all);
    let _ = std::fs::remove_dir_all(&tmp);

    // The shim's import: into an empty store, then as a restart finds it.
    let (shim_proc, import_fresh) = start_shim(&shim, &dir, &file);
    drop(shim_proc);
    let (_shim_proc, import_again) = start_shim(&shim, &dir, &file);
    let sock = dir.join("blobs.sock");

    let fetch_floor = fetch_all(&sock, chunks);

    let config = dir.join("enclave.json");
    std::fs::write(
        &config,
        format!(r#"{{"prover": {{"crs_sha256": "{sha}", "crs_points": {points}}}}}"#),
    )
    .unwrap();
    let mut loads: Vec<Load> = (0..runs)
        .map(|_| enclave_load(&enclave, &config, &sock, &bb, &tmp))
        .collect();
    loads.sort_by_key(|l| l.total);
    let median = &loads[loads.len() / 2];

    println!();
    println!("floors (same run):");
    println!(
        "  read the file (page cache)      {:>8}  {}",
        ms(read_floor),
        mib_s(bytes, read_floor)
    );
    println!(
        "  SHA-256 in memory (ring)        {:>8}  {}",
        ms(hash_floor),
        mib_s(bytes, hash_floor)
    );
    println!(
        "  write into tmpfs                {:>8}  {}",
        ms(write_floor),
        mib_s(bytes, write_floor)
    );
    println!(
        "  fetch {chunks} chunks, one at a time  {:>8}  {}",
        ms(fetch_floor),
        mib_s(bytes, fetch_floor)
    );
    println!("shim import (--crs):");
    println!(
        "  into an empty store             {:>8}  {}",
        ms(import_fresh),
        mib_s(bytes, import_fresh)
    );
    println!(
        "  already stored (restart)        {:>8}  {}",
        ms(import_again),
        mib_s(bytes, import_again)
    );
    println!("enclave start -> CRS ready in /v1/health ({runs} runs):");
    for l in &loads {
        println!("  {:>8}  {}", ms(l.total), mib_s(bytes, l.total));
    }
    println!("  enclave log (median run): {}", median.line);
    if let Some(kb) = median.peak_rss_kb {
        println!("  enclave peak resident memory: {} MiB", kb >> 10);
    }
    let floor = hash_floor + write_floor;
    println!("ratios (median load):");
    println!(
        "  / SHA-256 floor                 {:>6.2}",
        median.total.as_secs_f64() / hash_floor.as_secs_f64()
    );
    release::ratio(
        median.total.as_secs_f64() / hash_floor.as_secs_f64(),
        None,
        "CRS from the shim into the enclave, to ready / SHA-256 of it",
    );
    println!(
        "  / SHA-256 + tmpfs write floors  {:>6.2}",
        median.total.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "  / read the file                 {:>6.2}",
        median.total.as_secs_f64() / read_floor.as_secs_f64()
    );
    println!(
        "  / sequential fetch floor        {:>6.2}",
        median.total.as_secs_f64() / fetch_floor.as_secs_f64()
    );
}
