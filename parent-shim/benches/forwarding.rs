//! Benchmark: what the parent shim costs. `cargo bench -p sigil-shim` prints one table.
//!
//! The ingress runs in-process exactly as `sigil-shim --ingress-listen tcp:... --enclave-api
//! tcp:...|unix:...` runs it (`relay::spawn_service` + `relay::forward`), in front of an echo
//! server that stands in for the enclave (TCP, or a Unix socket as vsock's local stand-in).
//! Every number is compared with a direct connection to the same echo server.
//!
//! (a) bulk throughput: 256 MiB in total, over 1 and over 16 parallel connections; each
//!     client writes its share and reads it back at the same time (a full-duplex echo), and
//!     MB/s counts the payload once (bytes written by the clients / wall time). Each shim row
//!     also gives its percentage of the direct row of the same run, and the CPU time the
//!     whole process (clients, echo server and shim) spent per GB: where all of them share
//!     few cores the throughput ratio follows the CPU ratio, and the CPU figure depends much
//!     less than MB/s on what else the machine is doing.
//! (b) latency of a 64-byte request/response: on a persistent connection, and as
//!     connect + request/response + orderly close per request.
//! (c) the blob store over its Unix socket (`blobs::serve_conn`, as the tests run it):
//!     put (replacing an existing blob, compare-and-swap), get and list for 1 KiB and 64 KiB
//!     values. Put includes both fsyncs (the file and the directory) before the reply.
//!
//! Set `SIGIL_BENCH_DIR` to put the blob store elsewhere (default: cargo's target tmp dir, so
//! the fsyncs hit a real disk rather than a tmpfs `/tmp`). `SIGIL_BENCH_QUICK=1` runs every
//! part briefly (16 MiB per bulk run, one run, a tenth of the round trips and blob
//! operations: a smoke run for CI, numbers not meant to be compared); `SIGIL_BENCH_BULK_MIB`
//! and `SIGIL_BENCH_BULK_REPS` set the bulk total and its number of runs (median) either way.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sigil_shim::relay;
use sigil_shim::wire::{self, Op, Request, Response};
use sigil_sys::Addr;

#[path = "../tests/common/mod.rs"]
mod common;

use common::{random_bytes, serve_blobs};

const MIB: usize = 1024 * 1024;
const CHUNK: usize = 64 * 1024;
const SMALL: usize = 64;

/// How much each part runs (see the module comment for the environment variables).
struct Sizes {
    bulk_total: usize,
    bulk_reps: usize,
    persistent_n: usize,
    connect_n: usize,
    blobs_per_size: usize,
    put_n: usize,
    get_n: usize,
    list_n: usize,
}

fn env_count(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
}

impl Sizes {
    fn from_env() -> Sizes {
        let quick = std::env::var("SIGIL_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let full = Sizes {
            bulk_total: 256 * MIB,
            bulk_reps: 3,
            persistent_n: 20_000,
            connect_n: 2_000,
            blobs_per_size: 200,
            put_n: 400,
            get_n: 2_000,
            list_n: 500,
        };
        let mut s = if quick {
            Sizes {
                bulk_total: 16 * MIB,
                bulk_reps: 1,
                persistent_n: full.persistent_n / 10,
                connect_n: full.connect_n / 10,
                blobs_per_size: full.blobs_per_size / 10,
                put_n: full.put_n / 10,
                get_n: full.get_n / 10,
                list_n: full.list_n / 10,
            }
        } else {
            full
        };
        if let Some(mib) = env_count("SIGIL_BENCH_BULK_MIB") {
            s.bulk_total = mib * MIB;
        }
        if let Some(reps) = env_count("SIGIL_BENCH_BULK_REPS") {
            s.bulk_reps = reps;
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// The echo servers (the enclave's stand-in) and the shim in front of them.

fn echo<S: Read + Write>(mut r: S, mut w: S, done: impl FnOnce(&S)) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    done(&w);
}

/// TCP echo: copies until EOF, then half-closes (a well-behaved peer).
fn tcp_echo() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            s.set_nodelay(true).unwrap();
            let r = s.try_clone().unwrap();
            thread::spawn(move || {
                echo(r, s, |w| {
                    let _ = w.shutdown(Shutdown::Write);
                })
            });
        }
    });
    addr
}

fn unix_echo(path: PathBuf) {
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let r = s.try_clone().unwrap();
            thread::spawn(move || {
                echo(r, s, |w| {
                    let _ = w.shutdown(Shutdown::Write);
                })
            });
        }
    });
}

/// The shim's ingress in front of `upstream`; returns the `HOST:PORT` clients connect to.
fn shim(upstream: Addr) -> String {
    let bound = relay::spawn_service(
        "ingress",
        &"tcp:127.0.0.1:0".parse().unwrap(),
        1024,
        move |s, _| relay::forward(s, &upstream, Duration::from_secs(60)),
    )
    .unwrap();
    bound.to_string().trim_start_matches("tcp:").to_string()
}

// ---------------------------------------------------------------------------------------------
// Measurements.

/// CPU time (user + system) of this whole process so far, every thread counted, exited ones
/// too: fields 14 and 15 of `/proc/self/stat`, in USER_HZ (100 per second on Linux).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

/// One bulk run's payload rate and the process's CPU time per GB of payload.
struct Bulk {
    mbps: f64,
    cpu_per_gb: f64,
}

/// Each of `conns` clients writes `total / conns` bytes and reads them back concurrently.
/// Returns MB/s (10^6 bytes per second) of payload written, and CPU seconds per 10^9 bytes.
fn bulk(addr: &str, conns: usize, total: usize, data: &Arc<Vec<u8>>) -> Bulk {
    let per = total / conns;
    let cpu = process_cpu();
    let start = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let addr = addr.to_string();
            let data = data.clone();
            thread::spawn(move || {
                let s = TcpStream::connect(&addr).unwrap();
                s.set_nodelay(true).unwrap();
                let mut w = s.try_clone().unwrap();
                let writer = thread::spawn(move || {
                    let mut left = per;
                    while left > 0 {
                        let n = left.min(data.len());
                        w.write_all(&data[..n]).unwrap();
                        left -= n;
                    }
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let mut r = s;
                let mut buf = vec![0u8; CHUNK];
                let mut got = 0usize;
                loop {
                    let n = r.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                writer.join().unwrap();
                assert_eq!(got, per, "echo returned a different length");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = process_cpu().saturating_sub(cpu).as_secs_f64();
    Bulk {
        mbps: total as f64 / secs / 1e6,
        cpu_per_gb: cpu / (total as f64 / 1e9),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Stats {
    n: usize,
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn stats(mut t: Vec<Duration>) -> Stats {
    t.sort();
    let n = t.len();
    let at = |q: f64| t[((n as f64 * q).ceil() as usize).clamp(1, n) - 1];
    Stats {
        n,
        p50: at(0.50),
        p99: at(0.99),
        mean: t.iter().sum::<Duration>() / n as u32,
    }
}

/// Runs `f` `n` times after `n / 10` warm-up runs and returns the per-call times.
fn timed(n: usize, mut f: impl FnMut(usize)) -> Stats {
    for i in 0..n / 10 {
        f(i);
    }
    stats(
        (0..n)
            .map(|i| {
                let s = Instant::now();
                f(i);
                s.elapsed()
            })
            .collect(),
    )
}

fn persistent_rtt(addr: &str, n: usize) -> Stats {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let req = [0x5au8; SMALL];
    let mut resp = [0u8; SMALL];
    timed(n, |_| {
        s.write_all(&req).unwrap();
        s.read_exact(&mut resp).unwrap();
    })
}

/// connect, 64 B out, 64 B back, shutdown(Write), read to EOF: the whole life of a
/// one-request connection, including the shim's upstream connect and its teardown.
fn connect_rtt(addr: &str, n: usize) -> Stats {
    let req = [0xa5u8; SMALL];
    timed(n, |_| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(&req).unwrap();
        let mut resp = [0u8; SMALL];
        s.read_exact(&mut resp).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut rest = [0u8; 1];
        assert_eq!(s.read(&mut rest).unwrap(), 0, "echo sent more than it got");
    })
}

// ---------------------------------------------------------------------------------------------
// The blob store.

fn call(s: &mut UnixStream, r: &Request) -> Response {
    wire::write_frame(s, &wire::encode_request(r)).unwrap();
    let body = wire::read_frame(s).unwrap_or_else(|e| panic!("reply: {e:?}"));
    let resp = wire::decode_response(&body).unwrap();
    assert!(resp.ok, "{:?}: {:?}", r.op, resp.error);
    resp
}

fn req(op: Op, name: Option<String>, ev: Option<u64>, data: Option<Vec<u8>>) -> Request {
    Request {
        op,
        name,
        expected_version: ev,
        data,
        prefix: None,
    }
}

struct BlobRows {
    size: usize,
    put: Stats,
    get: Stats,
    list: Stats,
}

fn blob_bench(sock: &Path, size: usize, sz: &Sizes) -> BlobRows {
    let blobs_per_size = sz.blobs_per_size;
    let mut s = UnixStream::connect(sock).unwrap();
    let prefix = format!("bench/{}k/", size / 1024);
    let data = random_bytes(size as u64, size);
    let mut versions = vec![0u64; blobs_per_size];
    for (i, v) in versions.iter_mut().enumerate() {
        let r = call(
            &mut s,
            &req(
                Op::Put,
                Some(format!("{prefix}{i:04}")),
                Some(0),
                Some(data.clone()),
            ),
        );
        *v = r.version.unwrap();
    }
    // Put: replace an existing blob (the common case: sealed state is rewritten), round robin.
    let put = timed(sz.put_n, |i| {
        let k = i % blobs_per_size;
        let r = call(
            &mut s,
            &req(
                Op::Put,
                Some(format!("{prefix}{k:04}")),
                Some(versions[k]),
                Some(data.clone()),
            ),
        );
        versions[k] = r.version.unwrap();
    });
    let get = timed(sz.get_n, |i| {
        let k = (i * 7919) % blobs_per_size;
        let r = call(
            &mut s,
            &req(Op::Get, Some(format!("{prefix}{k:04}")), None, None),
        );
        assert_eq!(r.data.as_ref().map(Vec::len), Some(size));
    });
    let list = timed(sz.list_n, |_| {
        let mut r = req(Op::List, None, None, None);
        r.prefix = Some(prefix.clone());
        let r = call(&mut s, &r);
        assert_eq!(r.names.map(|n| n.len()), Some(blobs_per_size));
    });
    BlobRows {
        size,
        put,
        get,
        list,
    }
}

/// The file system a path lives on (longest mount-point prefix in /proc/self/mounts), so the
/// reader knows whether an fsync reached a disk.
fn fs_type(p: &Path) -> String {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return "unknown".into();
    };
    let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, at, ty) = (f.next()?, f.next()?, f.next()?);
            p.starts_with(at)
                .then(|| (at.len(), format!("{ty} ({dev})")))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, t)| t)
        .unwrap_or_else(|| "unknown".into())
}

// ---------------------------------------------------------------------------------------------

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let started = Instant::now();
    let sz = Sizes::from_env();
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("sigil-shim forwarding benchmark");
    println!(
        "machine: {cpus} CPU(s) visible, load average {} at start. CAVEAT: on the reference \
         machine these are 2 cores shared with other engineers' builds; the shim, the echo \
         server and the clients all run on them, so absolute numbers are noisy and low. \
         Compare the shim column with the direct column of the same run.",
        load.join(" ")
    );
    println!(
        "ingress: in-process relay::spawn_service + relay::forward (TCP listen), echo server \
         upstream over TCP or a Unix socket (vsock's local stand-in); loopback only."
    );

    let dir = std::env::var_os("SIGIL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
        .join(format!("sigil-shim-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let tcp_up = tcp_echo();
    let unix_up = dir.join("echo.sock");
    unix_echo(unix_up.clone());
    let routes = [
        ("direct (client -> echo, TCP)", tcp_up.clone()),
        (
            "shim TCP -> TCP echo",
            shim(format!("tcp:{tcp_up}").parse().unwrap()),
        ),
        ("shim TCP -> Unix echo", shim(Addr::Unix(unix_up.clone()))),
    ];

    // (a) Throughput. The routes take turns within each round, so a change in the machine's
    // load hits them alike; each shim run's ratio is to the direct run of the same round.
    let data = Arc::new(random_bytes(1, 4 * MIB));
    println!();
    println!(
        "(a) bulk echo throughput, {} MiB total per run, median of {} runs (MB/s = 10^6 payload \
         bytes/s, each byte also comes back); % of direct = median over the rounds of shim / \
         direct in the same round; CPU = CPU seconds of the whole process (clients, echo server \
         and shim) per GB of payload",
        sz.bulk_total / MIB,
        sz.bulk_reps
    );
    println!(
        "{:<30} {:>9} {:>9} {:>7}   {:>9} {:>9} {:>7}",
        "path", "1 conn", "% direct", "CPU s/GB", "16 conns", "% direct", "CPU s/GB"
    );
    let mut cells = vec![Vec::new(); routes.len()];
    for conns in [1, 16] {
        let rounds: Vec<Vec<Bulk>> = (0..sz.bulk_reps)
            .map(|_| {
                routes
                    .iter()
                    .map(|(_, addr)| bulk(addr, conns, sz.bulk_total, &data))
                    .collect()
            })
            .collect();
        for (r, cell) in cells.iter_mut().enumerate() {
            let rate = median(rounds.iter().map(|round| round[r].mbps).collect());
            let ratio = median(
                rounds
                    .iter()
                    .map(|round| round[r].mbps / round[0].mbps)
                    .collect(),
            );
            let cpu = median(rounds.iter().map(|round| round[r].cpu_per_gb).collect());
            cell.push((rate, ratio, cpu));
        }
    }
    for (r, ((name, _), cell)) in routes.iter().zip(&cells).enumerate() {
        let mut line = format!("{name:<30}");
        for &(rate, ratio, cpu) in cell {
            // The first route is the direct one, the reference.
            let pct = if r == 0 {
                String::new()
            } else {
                format!("{:.0} %", ratio * 100.0)
            };
            line += &format!(" {rate:>4.0} MB/s {pct:>9} {cpu:>8.2}  ");
        }
        println!("{}", line.trim_end());
    }
    // For scripts/bench's table (lower is better there: direct / shim; 90 % of direct is x1.11).
    for ((name, _), cell) in routes.iter().zip(&cells).skip(1) {
        for (&(_, ratio, _), conns) in cell.iter().zip([1, 16]) {
            println!(
                "ratio\t{:.2}\t<=x1.11\tbulk throughput, direct / {name}, {conns} conn(s)",
                1.0 / ratio
            );
        }
    }

    // (b) Latency.
    println!();
    println!(
        "(b) 64-byte request/response latency in microseconds (persistent: n={} on one \
         connection; per-connection: n={} x connect, round trip, close)",
        sz.persistent_n, sz.connect_n
    );
    println!(
        "{:<32} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9}",
        "path", "pers p50", "p99", "mean", "conn p50", "p99", "mean"
    );
    for (name, addr) in &routes {
        let p = persistent_rtt(addr, sz.persistent_n);
        let c = connect_rtt(addr, sz.connect_n);
        println!(
            "{name:<32} {:>9.1} {:>9.1} {:>9.1}   {:>9.1} {:>9.1} {:>9.1}",
            us(p.p50),
            us(p.p99),
            us(p.mean),
            us(c.p50),
            us(c.p99),
            us(c.mean)
        );
    }

    // (c) Blob store.
    let state = dir.join("state");
    let sock = dir.join("blobs.sock");
    serve_blobs(&state, &sock, 10_000, Duration::from_secs(60));
    println!();
    println!(
        "(c) blob store over its Unix socket, latency in microseconds, one client; put replaces \
         an existing blob and INCLUDES fsync of the file and of the directory; list returns \
         {} names; state dir on {}",
        sz.blobs_per_size,
        fs_type(&state)
    );
    println!(
        "{:<10} {:<5} {:>6} {:>10} {:>10} {:>10}",
        "value", "op", "n", "p50", "p99", "mean"
    );
    for size in [1024, 64 * 1024] {
        let rows = blob_bench(&sock, size, &sz);
        for (op, s) in [("put", &rows.put), ("get", &rows.get), ("list", &rows.list)] {
            println!(
                "{:<10} {op:<5} {:>6} {:>10.1} {:>10.1} {:>10.1}",
                format!("{} KiB", rows.size / 1024),
                s.n,
                us(s.p50),
                us(s.p99),
                us(s.mean)
            );
        }
    }

    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!("total bench time {:.1} s", started.elapsed().as_secs_f64());
}
