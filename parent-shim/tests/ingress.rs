//! Ingress forwarding through the real relay, with TCP standing in for vsock.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{echo_server, random_bytes, round_trip, serve_once};
use sigil_shim::relay;
use sigil_sys::Addr;

fn shim(upstream: &str, max: usize, idle: Duration) -> String {
    let up: Addr = format!("tcp:{upstream}").parse().unwrap();
    let bound = relay::spawn_service(
        "ingress",
        &"tcp:127.0.0.1:0".parse().unwrap(),
        max,
        move |s, _| relay::forward(s, &up, idle),
    )
    .unwrap();
    bound.to_string().trim_start_matches("tcp:").to_string()
}

#[test]
fn two_hundred_concurrent_clients_get_exactly_their_own_bytes() {
    const CLIENTS: usize = 200;
    const SIZE: usize = 64 * 1024;
    let addr = shim(&echo_server(), 256, Duration::from_secs(30));
    let start = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let addr = addr.clone();
            thread::spawn(move || {
                let data = random_bytes(i as u64 + 1, SIZE);
                let got = round_trip(&addr, data.clone()).expect("round trip");
                assert_eq!(got.len(), SIZE, "client {i}: length");
                assert!(got == data, "client {i}: bytes differ (loss or mixing)");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    eprintln!(
        "{CLIENTS} clients x {} KiB echoed in {:?}",
        SIZE / 1024,
        start.elapsed()
    );
}

#[test]
fn half_close_is_propagated_both_ways() {
    // The server reads until EOF (which it only sees if the shim propagates the client's
    // shutdown(Write)), then answers and half-closes in turn.
    let up = serve_once(|mut s| {
        let mut req = Vec::new();
        s.read_to_end(&mut req).unwrap();
        s.write_all(format!("got {} bytes", req.len()).as_bytes())
            .unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        // The client can still send after our half-close.
        let mut late = Vec::new();
        s.read_to_end(&mut late).unwrap();
        assert!(late.is_empty());
    })
    .to_string();
    let addr = shim(&up, 4, Duration::from_secs(30));
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"hello").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "got 5 bytes");
}

fn is_closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

#[test]
fn connections_past_the_limit_are_closed_at_once() {
    // An upstream that holds every connection open and silent.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for s in l.incoming() {
            tx.send(s.unwrap()).unwrap();
        }
    });
    let addr = shim(&up, 2, Duration::from_secs(30));
    let mut held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let upstreams: Vec<TcpStream> = (0..2)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
        .collect();
    let t = Instant::now();
    let mut third = TcpStream::connect(&addr).unwrap();
    assert!(is_closed(&mut third), "third connection must be closed");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "closed at once, not after a timeout"
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "no upstream connection for it"
    );
    // The held ones still work. The upstream side accepted them in whatever order the shim's
    // threads connected, so each held client sends and every upstream must receive.
    for h in held.iter_mut() {
        h.write_all(b"x").unwrap();
    }
    for mut u in &upstreams {
        u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 1];
        u.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    }
    // Freeing a slot lets a new client in.
    drop(held.pop());
    drop(upstreams);
    thread::sleep(Duration::from_millis(300));
    let _fourth = TcpStream::connect(&addr).unwrap();
    assert!(
        rx.recv_timeout(Duration::from_secs(5)).is_ok(),
        "a freed slot is reused"
    );
}

#[test]
fn idle_connections_are_closed() {
    let addr = shim(&echo_server(), 4, Duration::from_secs(1));
    let mut c = TcpStream::connect(&addr).unwrap();
    c.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.read_exact(&mut b).unwrap();
    let t = Instant::now();
    assert!(is_closed(&mut c));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[test]
fn unreachable_enclave_closes_the_client() {
    // A port with nobody listening.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let addr = shim(&dead, 4, Duration::from_secs(30));
    let mut c = TcpStream::connect(&addr).unwrap();
    assert!(is_closed(&mut c));
}

/// A connection to `addr` from the loopback source address `from` (127.0.0.x).
fn connect_from(from: &str, addr: &str) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let src: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&src.into()).unwrap();
    let dst: std::net::SocketAddr = addr.parse().unwrap();
    s.connect(&dst.into()).unwrap();
    s.into()
}

/// One greedy client (one address) holding every connection it can does not lock out a
/// second client: it gets at most its per-source share. With the share equal to the total
/// (no per-source limit), the same greed does lock the other out, so the check can fail.
#[test]
fn a_greedy_client_cannot_take_every_connection() {
    for (per_source, other_served) in [(8, false), (4, true)] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let up = l.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for s in l.incoming() {
                if tx.send(s.unwrap()).is_err() {
                    return;
                }
            }
        });
        let upstream: Addr = format!("tcp:{up}").parse().unwrap();
        let bound = relay::spawn_service_per_source(
            "ingress",
            &"tcp:127.0.0.1:0".parse().unwrap(),
            8,
            per_source,
            move |s, _| relay::forward(s, &upstream, Duration::from_secs(30)),
        )
        .unwrap();
        let addr = bound.to_string().trim_start_matches("tcp:").to_string();
        // The greedy client opens twice its share and holds what it gets.
        let greedy: Vec<TcpStream> = (0..16).map(|_| connect_from("127.0.0.1", &addr)).collect();
        let mut upstreams = Vec::new();
        while let Ok(u) = rx.recv_timeout(Duration::from_millis(500)) {
            upstreams.push(u);
        }
        assert_eq!(upstreams.len(), per_source, "the greedy client's share");
        let refused = greedy.iter().filter(|s| is_closed_now(s)).count();
        assert_eq!(refused, 16 - per_source);
        // Another client, from another address.
        let mut other = connect_from("127.0.0.2", &addr);
        let served = rx.recv_timeout(Duration::from_secs(2)).is_ok();
        assert_eq!(served, other_served, "per-source limit {per_source}");
        if !other_served {
            assert!(is_closed(&mut other));
        }
    }
}

/// Whether the relay closed `s` (without waiting long for a live one).
fn is_closed_now(s: &TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut b = [0u8; 1];
    let mut r = s;
    match r.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

/// With the PROXY header on, the enclave's side of each connection starts with one header
/// carrying the client's address, and then exactly the client's bytes: bytes of the client's
/// that look like a header (a forged source) come after the shim's, untouched.
#[test]
fn the_enclave_is_told_the_clients_address_before_its_bytes() {
    use sigil_protocol::parent::source::{self, Parsed};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up: Addr = format!("tcp:{}", l.local_addr().unwrap()).parse().unwrap();
    let bound = relay::spawn_service(
        "ingress",
        &"tcp:127.0.0.1:0".parse().unwrap(),
        4,
        move |s, peer| relay::forward_with_source(s, peer, &up, Duration::from_secs(30)),
    )
    .unwrap();
    let addr = bound.to_string().trim_start_matches("tcp:").to_string();
    let mut c = connect_from("127.0.0.2", &addr);
    let forged = source::encode(Some("10.9.8.7:1".parse().unwrap())).unwrap();
    let mut sent = forged.clone();
    sent.extend_from_slice(b"GET /v1/health HTTP/1.1\r\n\r\n");
    c.write_all(&sent).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (mut u, _) = l.accept().unwrap();
    u.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    u.read_to_end(&mut got).unwrap();
    let Ok(Parsed::Header { peer, len }) = source::parse(&got) else {
        panic!("no header first: {:?}", &got[..got.len().min(32)]);
    };
    assert_eq!(
        peer,
        Some(c.local_addr().unwrap()),
        "the client's own address"
    );
    assert_eq!(&got[len..], &sent[..], "then exactly the client's bytes");
}
