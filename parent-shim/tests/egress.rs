//! The egress proxy: allow-listed destinations are reached, others refused before any
//! connection attempt.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use common::serve_once;
use sigil_shim::{egress, relay};

fn proxy(allow: Vec<String>) -> String {
    let bound = relay::spawn_service(
        "egress",
        &"tcp:127.0.0.1:0".parse().unwrap(),
        8,
        move |s, _| egress::handle(s, &allow, &[], Duration::from_secs(30)),
    )
    .unwrap();
    bound.to_string().trim_start_matches("tcp:").to_string()
}

fn ask(proxy: &str, line: &[u8]) -> (TcpStream, String) {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(line).unwrap();
    // A byte at a time: a buffered reader could swallow relayed bytes behind the answer.
    let mut answer = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap() == 1 {
        answer.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    (s, String::from_utf8(answer).unwrap())
}

#[test]
fn allowed_destination_is_connected_and_bytes_flow() {
    let port = serve_once(|mut s| {
        let mut r = s.try_clone().unwrap();
        std::io::copy(&mut r, &mut s).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
    })
    .port();
    let p = proxy(vec![format!("127.0.0.1:{port}")]);
    // "localhost" would also resolve to 127.0.0.1, but is not on the list: names are compared,
    // never addresses, so the list means exactly what it says.
    let (_, no) = ask(&p, format!("localhost:{port}\n").as_bytes());
    assert!(no.starts_with("ERR not_allowed"), "{no}");
    // The first application bytes may follow the request line at once; none may be lost.
    let (mut s, ok) = ask(&p, format!("127.0.0.1:{port}\nhello").as_bytes());
    assert_eq!(ok, "OK\n");
    s.shutdown(Shutdown::Write).unwrap();
    let mut echoed = String::new();
    s.read_to_string(&mut echoed).unwrap();
    assert_eq!(echoed, "hello");
}

#[test]
fn refused_destination_gets_a_clear_error_and_no_connection() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let p = proxy(vec!["kms.eu-west-1.amazonaws.com:443".into()]);
    let (_, e) = ask(&p, format!("127.0.0.1:{port}\n").as_bytes());
    assert_eq!(
        e,
        format!("ERR not_allowed 127.0.0.1:{port} is not on the egress allow-list\n")
    );
    thread::sleep(Duration::from_millis(200));
    assert!(
        matches!(l.accept(), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the refused destination must never see a connection"
    );
    for (line, want) in [
        (&b"no-port\n"[..], "ERR bad_request"),
        (b"a b:443\n", "ERR bad_request"),
        (b"\xff\xfe:1\n", "ERR bad_request"),
    ] {
        let (_, e) = ask(&p, line);
        assert!(e.starts_with(want), "{line:?}: {e}");
    }
    // 301 bytes and no newline: refused once the 301st byte arrives (every byte sent has been
    // read, so the close cannot turn into a reset that hides the answer).
    let (_, e) = ask(&p, &[b'a'; 301]);
    assert!(e.contains("longer than 300"), "{e}");
}

#[test]
fn allowed_but_unreachable_is_connect_failed() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = proxy(vec![format!("127.0.0.1:{port}")]);
    let (_, e) = ask(&p, format!("127.0.0.1:{port}\n").as_bytes());
    assert!(e.starts_with("ERR connect_failed"), "{e}");
}
