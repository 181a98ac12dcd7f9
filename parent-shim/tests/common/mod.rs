#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sigil_shim::{blobs, relay, store, wire};
use sigil_sys::Addr;

/// xorshift64*: distinct, reproducible payloads without a rand dependency.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A TCP echo server that copies until EOF and then half-closes, like a well-behaved peer.
pub fn echo_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
                let _ = s.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sigil-shim-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Sends all of `data`, half-closes, and returns everything read back until EOF.
pub fn round_trip(addr: &str, data: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    let mut w = s.try_clone()?;
    let t = thread::spawn(move || -> std::io::Result<()> {
        w.write_all(&data)?;
        w.shutdown(Shutdown::Write)
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got)?;
    t.join().unwrap()?;
    Ok(got)
}

/// The blob service in this process: a store of at most `max_blobs` in `state`, served on the
/// Unix socket `sock` (up to 4 connections, each closed after `idle`).
pub fn serve_blobs(state: &Path, sock: &Path, max_blobs: usize, idle: Duration) {
    let st = Arc::new(
        store::Store::open(
            state,
            store::Limits {
                max_blob_bytes: wire::MAX_DATA,
                max_blobs,
            },
        )
        .unwrap(),
    );
    relay::spawn_service("blobs", &Addr::Unix(sock.to_path_buf()), 4, move |s, _| {
        blobs::serve_conn(&st, s, idle)
    })
    .unwrap();
}

/// A TCP server on 127.0.0.1 that runs `handle` on its first connection; returns its address.
pub fn serve_once(handle: impl FnOnce(TcpStream) + Send + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = l.local_addr().unwrap();
    thread::spawn(move || handle(l.accept().unwrap().0));
    at
}
