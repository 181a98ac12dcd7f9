//! The blob service over a Unix socket (vsock's local stand-in), and its crash safety with the
//! real binary SIGKILLed mid-stream.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{random_bytes, serve_blobs, temp_dir};
use sigil_shim::store;
use sigil_shim::wire::{self, Op, Request, Response};

fn call(s: &mut UnixStream, r: &Request) -> std::io::Result<Response> {
    wire::write_frame(s, &wire::encode_request(r))?;
    raw_reply(s)
}

fn raw_reply(s: &mut UnixStream) -> std::io::Result<Response> {
    let body = wire::read_frame(s).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    wire::decode_response(&body).map_err(|e| std::io::Error::other(e.0))
}

fn put(name: &str, ev: u64, data: Vec<u8>) -> Request {
    Request {
        op: Op::Put,
        name: Some(name.into()),
        expected_version: Some(ev),
        data: Some(data),
        prefix: None,
    }
}
fn get(name: &str) -> Request {
    Request {
        op: Op::Get,
        name: Some(name.into()),
        expected_version: None,
        data: None,
        prefix: None,
    }
}

fn in_process(name: &str) -> (PathBuf, PathBuf) {
    let d = temp_dir(name);
    let sock = d.join("b.sock");
    serve_blobs(&d.join("state"), &sock, 100, Duration::from_secs(5));
    (d, sock)
}

#[test]
fn put_get_over_the_socket_and_malformed_frames_get_error_frames() {
    let (d, sock) = in_process("frames");
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let big = random_bytes(7, wire::MAX_DATA);
    assert_eq!(
        call(&mut s, &put("seal/state", 0, big.clone()))
            .unwrap()
            .version,
        Some(1)
    );
    let g = call(&mut s, &get("seal/state")).unwrap();
    assert!(g.ok && g.data.as_deref() == Some(&big[..]));
    // Garbage that frames correctly: an error reply, and the connection goes on.
    for body in [
        &b""[..],
        b"\xff\xff\xff",
        b"\xa1\x61v\x01",
        b"\xa2\x61v\x01\x62op\x63cat",
    ] {
        wire::write_frame(&mut s, body).unwrap();
        let r = raw_reply(&mut s).unwrap();
        assert!(!r.ok);
        assert_eq!(r.error.unwrap().code, "bad_request");
    }
    assert!(
        call(&mut s, &get("seal/state")).unwrap().ok,
        "connection still usable"
    );
    // A length prefix above the limit: a too_large reply, then the stream is closed (it
    // cannot be resynchronised), and nothing was allocated for the claimed size.
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let r = raw_reply(&mut s).unwrap();
    assert_eq!(r.error.unwrap().code, "too_large");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
    // The service is still up for others.
    let mut s2 = UnixStream::connect(&sock).unwrap();
    assert!(call(&mut s2, &get("seal/state")).unwrap().ok);
    let _ = std::fs::remove_dir_all(d);
}

fn start_child(sock: &Path, state: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_sigil-shim"))
        .arg("--blob-listen")
        .arg(format!("unix:{}", sock.display()))
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while UnixStream::connect(sock).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "shim did not start");
        thread::sleep(Duration::from_millis(10));
    }
    child
}

/// Every file in the state directory is a complete blob; no temp file survived the restart.
fn audit(state: &Path) {
    for e in std::fs::read_dir(state).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        assert!(
            !name.starts_with("t_"),
            "temp file {name} left after restart"
        );
        store::read_blob_file(&e.path(), wire::MAX_DATA)
            .unwrap_or_else(|e| panic!("half-written blob: {e}"));
    }
}

#[test]
fn acknowledged_puts_survive_sigkill_mid_stream() {
    const ROUNDS: u64 = 20;
    const KEYS: u64 = 12;
    let d = temp_dir("crash");
    let sock = d.join("b.sock");
    let state = d.join("state");
    // key -> (version, seed of its data) as last acknowledged.
    let mut acked: HashMap<String, (u64, u64)> = HashMap::new();
    let mut op = 0u64;
    let mut uncertain = 0;
    let mut total_acked = 0;
    let mut temp_left = 0;
    for round in 0..ROUNDS {
        let mut child = start_child(&sock, &state);
        audit(&state);
        let mut s = UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Resolve the one put that was in flight when the last child died: it must have
        // happened entirely or not at all.
        for (k, &(v, seed)) in acked.clone().iter() {
            let r = call(&mut s, &get(k)).unwrap();
            let got = (r.version.unwrap(), r.data.unwrap());
            assert_eq!(got.0, v, "{k}: acknowledged version lost");
            assert!(
                got.1 == random_bytes(seed, size(seed)),
                "{k} v{v}: acknowledged data damaged"
            );
        }
        // The killer: SIGKILL after a random delay, while puts stream in.
        let delay = Duration::from_millis(20 + random_bytes(round + 99, 1)[0] as u64);
        let killer = thread::spawn(move || {
            thread::sleep(delay);
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        });
        loop {
            op += 1;
            let key = format!("k/{}", op % KEYS);
            let ev = acked.get(&key).map_or(0, |a| a.0);
            match call(&mut s, &put(&key, ev, random_bytes(op, size(op)))) {
                Ok(r) => {
                    assert!(r.ok, "put {key}: {:?}", r.error);
                    assert_eq!(r.version, Some(ev + 1));
                    acked.insert(key, (ev + 1, op));
                    total_acked += 1;
                }
                Err(_) => {
                    // Killed mid-put: learn the outcome after restart.
                    killer.join().unwrap();
                    let torn = std::fs::read_dir(&state)
                        .unwrap()
                        .filter(|e| {
                            e.as_ref()
                                .unwrap()
                                .file_name()
                                .to_string_lossy()
                                .starts_with("t_")
                        })
                        .count();
                    temp_left += torn;
                    let mut child = start_child(&sock, &state);
                    audit(&state);
                    let mut s2 = UnixStream::connect(&sock).unwrap();
                    let r = call(&mut s2, &get(&key)).unwrap();
                    let data = random_bytes(op, size(op));
                    if r.version == Some(ev + 1) {
                        assert!(
                            r.data.as_deref() == Some(&data[..]),
                            "{key}: applied put damaged"
                        );
                        acked.insert(key, (ev + 1, op));
                        uncertain += 1;
                    } else if ev > 0 {
                        assert_eq!(r.version, Some(ev), "{key}: neither old nor new version");
                    } else {
                        assert!(!r.ok, "{key}: unexpected blob");
                    }
                    child.kill().unwrap();
                    child.wait().unwrap();
                    break;
                }
            }
        }
    }
    // Final check: everything acknowledged reads back intact.
    let mut child = start_child(&sock, &state);
    audit(&state);
    let mut s = UnixStream::connect(&sock).unwrap();
    for (k, &(v, seed)) in &acked {
        let r = call(&mut s, &get(k)).unwrap();
        assert_eq!(r.version, Some(v), "{k}");
        assert!(r.data.unwrap() == random_bytes(seed, size(seed)), "{k}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!(
        "{ROUNDS} kills, {total_acked} acknowledged puts, {uncertain} in-flight puts found applied, \
         {temp_left} temp files left by kills (all removed at restart)"
    );
    let _ = std::fs::remove_dir_all(d);
}

/// Blob sizes from 1 byte to ~256 KiB, so kills land in writes of every size.
fn size(seed: u64) -> usize {
    1 + (seed.wrapping_mul(2_654_435_761) % (256 * 1024)) as usize
}
