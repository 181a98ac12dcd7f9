//! `scripts/fetch-crs` against a local CRS host: the shared Ignition prefix served compressed
//! (as Aztec's host serves `g1_compressed.dat`) or flat, over HTTP with range requests. The
//! script must write exactly the shared points, pin the right hash, and refuse tampered,
//! off-curve, short or unreachable sources without leaving a file behind.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// Serves `body` at every path; honours `Range: bytes=0-N` unless `ignore_range`.
struct Host {
    url: String,
}

impl Host {
    fn start(body: Vec<u8>, ignore_range: bool) -> Host {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/g1_compressed.dat",
            listener.local_addr().unwrap()
        );
        let body = Arc::new(body);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let body = body.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut end = None;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=0-") {
                            end = r.parse::<usize>().ok();
                        }
                    }
                    let (status, slice) = match end {
                        Some(e) if !ignore_range => {
                            ("206 Partial Content", &body[..(e + 1).min(body.len())])
                        }
                        _ => ("200 OK", &body[..]),
                    };
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        slice.len()
                    );
                    let _ = conn.write_all(slice);
                });
            }
        });
        Host { url }
    }
}

fn shared_points() -> Vec<u8> {
    std::fs::read(common::shared_crs()).unwrap()
}

/// bb's compressed form: x big-endian with the top bit set when y is odd.
fn compress(flat: &[u8]) -> Vec<u8> {
    flat.chunks(64)
        .flat_map(|p| {
            let mut x = p[..32].to_vec();
            if p[63] & 1 == 1 {
                x[0] |= 0x80;
            }
            x
        })
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    common::fresh_dir("test-fetch-crs", name)
}

fn fetch(out: &Path, points: usize, extra: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-crs");
    Command::new(script)
        .arg("--points")
        .arg(points.to_string())
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("run scripts/fetch-crs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The pin the script printed.
fn pin(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn the_compressed_prefix_is_expanded_checked_and_pinned() {
    let flat = shared_points();
    let host = Host::start(compress(&flat), false);
    let dir = scratch("compressed");

    let out = dir.join("full.dat");
    let p = pin(&fetch(&out, 32_769, &["--url", &host.url]));
    assert_eq!(std::fs::read(&out).unwrap(), flat);
    assert_eq!(p["crs_points"], 32_769);
    assert_eq!(p["crs_sha256"], common::sha256_of_crs_points(32_769));

    // A smaller pin still checks the whole known prefix, then keeps only what was asked.
    let out = dir.join("small.dat");
    let p = pin(&fetch(&out, 1025, &["--url", &host.url]));
    assert_eq!(std::fs::read(&out).unwrap(), flat[..1025 * 64]);
    assert_eq!(p["crs_sha256"], common::sha256_of_crs_points(1025));
}

#[test]
fn a_flat_source_and_a_server_that_ignores_ranges_both_work() {
    let flat = shared_points();
    let host = Host::start(flat.clone(), true);
    let dir = scratch("flat");
    let out = dir.join("g1.dat");
    let p = pin(&fetch(
        &out,
        4097,
        &["--url", &host.url, "--format", "flat"],
    ));
    assert_eq!(std::fs::read(&out).unwrap(), flat[..4097 * 64]);
    assert_eq!(p["crs_sha256"], common::sha256_of_crs_points(4097));
}

#[test]
fn the_next_mirror_is_tried_when_one_is_down() {
    let host = Host::start(compress(&shared_points()), false);
    // A port nobody listens on: bind, note it, close.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/g1_compressed.dat", l.local_addr().unwrap())
    };
    let dir = scratch("mirror");
    let out = dir.join("g1.dat");
    let o = fetch(&out, 2048, &["--url", &dead, "--url", &host.url]);
    pin(&o);
    assert!(stderr(&o).contains(&dead), "{}", stderr(&o));
}

#[test]
fn bad_sources_are_refused_and_leave_nothing_behind() {
    let flat = shared_points();
    let dir = scratch("bad");
    let out = dir.join("g1.dat");
    let refused = |body: Vec<u8>, format: &str, want: &str| {
        let host = Host::start(body, false);
        let o = fetch(&out, 32_769, &["--url", &host.url, "--format", format]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(want), "want {want:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
        assert!(!out.exists());
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    };

    // A valid curve point in the wrong place: the 2nd point replaced by the generator (1, 2).
    let mut other = flat.clone();
    other[64..128].copy_from_slice(&flat[..64]);
    refused(other.clone(), "flat", "do not match the known CRS prefix");
    refused(
        compress(&other),
        "compressed",
        "do not match the known CRS prefix",
    );

    // A byte flipped in an x coordinate: off the curve (or a different point).
    let mut flipped = compress(&flat);
    flipped[32 * 100 + 31] ^= 1;
    let host = Host::start(flipped, false);
    let o = fetch(&out, 32_769, &["--url", &host.url]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("point 100 is not on the curve") || e.contains("known CRS prefix"),
        "{e}"
    );
    assert!(!out.exists());

    // A y coordinate changed in the flat form: off the curve.
    let mut off = flat.clone();
    off[64 * 7 + 63] ^= 1;
    refused(off, "flat", "point 7 is not on the curve");

    // A short file.
    refused(
        compress(&flat[..1000 * 64]),
        "compressed",
        "1048608 are needed",
    );

    // Nobody at all.
    let o = fetch(&out, 2048, &["--url", "http://127.0.0.1:9/g1.dat"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("download failed"), "{}", stderr(&o));
    assert!(!out.exists());

    // Nonsense arguments.
    let o = fetch(&out, 1, &["--url", "http://127.0.0.1:9/g1.dat"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--points must be"), "{}", stderr(&o));
}
