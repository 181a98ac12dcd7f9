//! The enclave as a local process, driven by the `sigil` CLI and the client library.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use common::{Enclave, error_code, now, parse_response, sigil};
use sigil_attestation::{Policy, TrustedRoot};
use sigil_client::{Client, ClientError};

fn test_root_policy() -> Policy {
    let mut p = Policy::at(now());
    p.trust_test_root = true;
    p.allow_debug = true;
    p.max_age_seconds = Some(300);
    p
}

#[test]
fn cli_attests_a_local_enclave_only_with_the_test_root_trusted() {
    let e = Enclave::start(&[]);
    let out = sigil(&["attest", "--endpoint", &e.endpoint(), "--trust-test-root"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "attest failed: {stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(v["root"], "sigil-test-root");
    assert!(v["module_id"].as_str().unwrap().contains("simulated"));
    assert_eq!(v["image"]["mode"], "local");
    assert_eq!(v["public_key"].as_str().unwrap().len(), 64);
    assert_eq!(v["nonce"].as_str().unwrap().len(), 64);
    assert!(
        v["warning"]
            .as_str()
            .unwrap()
            .contains("NOT FROM AWS HARDWARE")
    );
    assert!(stderr.contains("NOT FROM AWS HARDWARE"), "{stderr}");

    // The same enclave without --trust-test-root is refused, naming the root check.
    let out = sigil(&["attest", "--endpoint", &e.endpoint()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("root:"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn cli_encapsulated_ping_round_trip() {
    let e = Enclave::start(&[]);
    let v = common::sigil_json(&[
        "ping",
        "--endpoint",
        &e.endpoint(),
        "--trust-test-root",
        "--message",
        "sealed hello",
    ]);
    assert_eq!(v["message"], "sealed hello");
    assert!(v["enclave_time_ms"].as_u64().unwrap() > 1_600_000_000_000);

    let out = sigil(&["ping", "--endpoint", &e.endpoint()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "ping without trusting the test root"
    );
}

#[test]
fn a_saved_document_verifies_offline_with_its_nonce_and_not_later() {
    let e = Enclave::start(&[]);
    let dir = std::env::temp_dir().join(format!("sigil-e2e-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = dir.join("doc.cbor");
    let v = common::sigil_json(&[
        "attest",
        "--endpoint",
        &e.endpoint(),
        "--trust-test-root",
        "--save-document",
        doc.to_str().unwrap(),
    ]);
    let nonce = v["nonce"].as_str().unwrap();
    let doc = doc.to_str().unwrap();
    let verify_nonce = |nonce: &str| {
        sigil(&[
            "attestation",
            "verify",
            "--document",
            doc,
            "--trust-test-root",
            "--nonce",
            nonce,
        ])
    };
    let ok = verify_nonce(nonce);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let wrong = verify_nonce("00");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("nonce:"));
    // An hour later (the chain is still valid) the document is stale.
    let later = (now() + 3_600).to_string();
    let stale = sigil(&[
        "attestation",
        "verify",
        "--document",
        doc,
        "--trust-test-root",
        "--at",
        &later,
        "--max-age",
        "300",
    ]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("freshness:"));
    // Pinned PCRs that a simulated (all-zero) document cannot match.
    let pin = format!("0={}", "11".repeat(48));
    let pinned = sigil(&[
        "attestation",
        "verify",
        "--document",
        doc,
        "--trust-test-root",
        "--pcr",
        &pin,
    ]);
    assert_eq!(pinned.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&pinned.stderr).contains("pcr:"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn library_round_trip_and_each_boot_has_its_own_key() {
    let a = Enclave::start(&[]);
    let b = Enclave::start(&[]);
    let ca = Client::new(&a.endpoint()).unwrap();
    let cb = Client::new(&b.endpoint()).unwrap();
    let ea = ca.attest(test_root_policy()).unwrap();
    let eb = cb.attest(test_root_policy()).unwrap();
    assert!(matches!(ea.verified.root, TrustedRoot::SigilTestRoot));
    assert_ne!(ea.public_key, eb.public_key);
    assert_eq!(ca.ping(&ea, "to a").unwrap().message, "to a");
    // A request sealed to enclave A's key means nothing to enclave B.
    match cb.ping(&ea, "misdirected") {
        Err(ClientError::Api {
            status: 400, code, ..
        }) => {
            assert_eq!(code, "encap_decrypt_failed")
        }
        other => panic!("expected a decrypt failure, got {other:?}"),
    }
}

/// A relay in front of `upstream` for `conns` connections: each request goes up as sent, and
/// `rewrite` may change the answer (given the request) before it goes back down.
fn relay(
    upstream: String,
    conns: usize,
    rewrite: impl Fn(&[u8], &mut Vec<u8>) + Send + 'static,
) -> std::net::SocketAddr {
    let relay = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_addr = relay.local_addr().unwrap();
    thread::spawn(move || {
        for conn in relay.incoming().take(conns) {
            let mut down = conn.unwrap();
            let mut up = TcpStream::connect(&upstream).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 65536];
            // Read the request: head plus the declared body.
            loop {
                let n = down.read(&mut buf).unwrap();
                req.extend_from_slice(&buf[..n]);
                if let Some(p) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&req[..p]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map(|v| v.trim().parse::<usize>().unwrap())
                        .unwrap_or(0);
                    if req.len() >= p + 4 + len {
                        break;
                    }
                }
            }
            up.write_all(&req).unwrap();
            let mut resp = Vec::new();
            up.read_to_end(&mut resp).unwrap();
            rewrite(&req, &mut resp);
            down.write_all(&resp).unwrap();
        }
    });
    relay_addr
}

/// A parent in the middle that flips one byte of every response body: the client must notice
/// that the answer was not sealed by the attested enclave.
#[test]
fn a_tampering_relay_cannot_forge_an_answer() {
    let e = Enclave::start(&[]);
    let relay_addr = relay(e.addr.clone(), 2, |req, resp| {
        let is_ping = String::from_utf8_lossy(req).starts_with("POST /v1/ping");
        if is_ping && let Some(last) = resp.last_mut() {
            *last ^= 1;
        }
    });
    let client = Client::new(&format!("http://{relay_addr}")).unwrap();
    let enclave = client.attest(test_root_policy()).unwrap();
    match client.ping(&enclave, "tamper with me") {
        Err(ClientError::Encap(e)) => assert!(e.to_string().contains("decrypt"), "{e}"),
        other => panic!("a tampered answer was accepted: {other:?}"),
    }
}

/// A relay that rewrites the status line of sealed answers (success to failure and back)
/// changes nothing the client acts on: the outcome is inside the seal.
#[test]
fn a_relay_rewriting_the_status_changes_no_outcome() {
    let e = Enclave::start(&[]);
    let flip = |_: &[u8], resp: &mut Vec<u8>| {
        let line_end = resp.windows(2).position(|w| w == b"\r\n").unwrap();
        let line = String::from_utf8_lossy(&resp[..line_end]).to_string();
        let sealed = String::from_utf8_lossy(resp).contains("application/sigil-encapsulated");
        if sealed {
            // 200 becomes 404, anything else 200.
            let to: &[u8] = if line.contains(" 200 ") {
                b"HTTP/1.1 404 Not Found"
            } else {
                b"HTTP/1.1 200 OK"
            };
            resp.splice(..line_end, to.iter().copied());
        }
    };
    let relay_addr = relay(e.addr.clone(), 3, flip);
    let client = Client::new(&format!("http://{relay_addr}")).unwrap();
    let enclave = client.attest(test_root_policy()).unwrap();
    assert_eq!(
        client.ping(&enclave, "still a pong").unwrap().message,
        "still a pong"
    );
    match client.ping(&enclave, &"x".repeat(5000)) {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!(status, 400);
            assert_eq!(code.as_str(), "message_too_long");
        }
        other => panic!("a relayed failure was taken for {other:?}"),
    }
}

#[test]
fn bad_requests_get_json_errors_and_the_service_keeps_serving() {
    let mut e = Enclave::start(&["--max-body", "4096", "--request-timeout", "2"]);
    let cases: Vec<(&str, Vec<u8>, bool, u16, &str)> = vec![
        ("junk", b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n".to_vec(), false, 400, "malformed_request"),
        ("bad request line", b"GET\r\n\r\n".to_vec(), false, 400, "malformed_request"),
        (
            "oversized head",
            [b"GET /v1/health HTTP/1.1\r\nX-Pad: ".as_slice(), &vec![b'a'; 20_000], b"\r\n\r\n"].concat(),
            false,
            431,
            "headers_too_large",
        ),
        (
            "declared oversized body",
            b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/sigil-encapsulated\r\nContent-Length: 100000\r\n\r\n".to_vec(),
            false,
            413,
            "body_too_large",
        ),
        (
            "chunked oversized body",
            [
                b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/sigil-encapsulated\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
                b"2000\r\n",
                &vec![b'z'; 0x2000],
                b"\r\n0\r\n\r\n",
            ]
            .concat(),
            false,
            413,
            "body_too_large",
        ),
        (
            "garbage sealed body",
            b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/sigil-encapsulated\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            false,
            400,
            "encap_malformed",
        ),
        (
            // The client shuts its sending side after the body and waits for the answer.
            "garbage sealed body, then a half close",
            b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/sigil-encapsulated\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            true,
            400,
            "encap_malformed",
        ),
        (
            "wrong content type",
            b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
            false,
            415,
            "unsupported_media_type",
        ),
        ("unknown path", b"GET /v2/nothing HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), false, 404, "not_found"),
        ("wrong method", b"DELETE /v1/attestation HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), false, 405, "method_not_allowed"),
        ("bad nonce", b"GET /v1/attestation?nonce=xyz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), false, 400, "bad_nonce"),
        (
            "truncated body then silence",
            b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/sigil-encapsulated\r\nContent-Length: 50\r\n\r\nabc".to_vec(),
            false,
            408,
            "request_timeout",
        ),
        ("truncated head then silence", b"GET /v1/hea".to_vec(), false, 408, "request_timeout"),
    ];
    for (name, bytes, half_close, status, code) in cases {
        let raw = e.raw(&bytes, half_close);
        assert!(!raw.is_empty(), "{name}: no response");
        let (got, body) = parse_response(&raw);
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(error_code(&body), code, "{name}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
    // A head cut off by the client closing gets no answer (there is nobody to answer).
    assert!(e.raw(b"GET /v1/hea", true).is_empty());
    assert!(e.is_running());
    let (status, body) =
        parse_response(&e.raw(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", false));
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}

#[test]
fn connections_over_the_limit_get_busy_and_slots_come_back() {
    let e = Enclave::start(&["--max-connections", "2", "--idle-timeout", "30"]);
    let hold: Vec<TcpStream> = (0..2)
        .map(|_| {
            let s = TcpStream::connect(&e.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        })
        .collect();
    // Both slots are taken once the server has accepted them; retry until it has.
    let mut busy = None;
    for _ in 0..100 {
        let raw = e.raw(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", false);
        let (status, body) = parse_response(&raw);
        if status == 503 {
            busy = Some(body);
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let busy = busy.expect("a third connection was never refused");
    assert_eq!(error_code(&busy), "busy");
    drop(hold);
    let mut ok = false;
    for _ in 0..100 {
        let (status, _) =
            parse_response(&e.raw(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", false));
        if status == 200 {
            ok = true;
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(ok, "slots were not released after the clients left");
}

/// Errors found after the request was opened come back sealed, like answers: only the client
/// can read them and a relay cannot substitute its own.
#[test]
fn ping_errors_after_decryption_are_sealed() {
    use sigil_protocol::api::{ENCAPSULATED_CONTENT_TYPE, ErrorBody};
    use sigil_protocol::encap::seal_request;
    let e = Enclave::start(&[]);
    let c = Client::new(&e.endpoint()).unwrap();
    let attested = c.attest(test_root_policy()).unwrap();
    let long = format!(r#"{{"message": "{}"}}"#, "x".repeat(5000));
    for (plain, want) in [
        (b"not json".to_vec(), "malformed_json"),
        (long.into_bytes(), "message_too_long"),
    ] {
        let (body, opener) = seal_request(&attested.public_key, "POST /v1/ping", &plain).unwrap();
        let mut resp = ureq::post(format!("{}/v1/ping", e.endpoint()))
            .header("content-type", ENCAPSULATED_CONTENT_TYPE)
            .config()
            .http_status_as_error(false)
            .build()
            .send(&body[..])
            .unwrap();
        // The outcome is inside the seal: the status line says only that an answer came.
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers()
                .get("content-type")
                .unwrap()
                .to_str()
                .unwrap(),
            ENCAPSULATED_CONTENT_TYPE
        );
        let sealed = resp.body_mut().read_to_vec().unwrap();
        let (status, plain) = opener.open("POST /v1/ping", &sealed).unwrap();
        assert_eq!(status, 400);
        let err: ErrorBody = serde_json::from_slice(&plain).unwrap();
        assert_eq!(err.error.code, want);
    }
}

/// Body bytes are budgeted across connections: while one slow upload holds most of the
/// budget, another large one is told `busy` at once, small requests still pass, a body that
/// could never fit gets 413, and the budget comes back when the slow upload ends.
#[test]
fn request_bodies_in_flight_share_one_budget() {
    let e = Enclave::start(&["--max-body-in-flight", "20000"]);
    let head = |len: usize| {
        format!(
            "POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/sigil-encapsulated\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    // A slow upload declaring 15,000 bytes: it sends its head and a little, then waits.
    let mut slow = TcpStream::connect(&e.addr).unwrap();
    slow.write_all(head(15_000).as_bytes()).unwrap();
    slow.write_all(&[b'x'; 100]).unwrap();
    thread::sleep(Duration::from_millis(500));

    // 10,000 more do not fit now.
    let raw = e.raw(head(10_000).as_bytes(), true);
    let (status, v) = parse_response(&raw);
    assert_eq!((status, error_code(&v)), (503, "busy"), "{v}");
    // More than the whole budget never fits.
    let raw = e.raw(head(30_000).as_bytes(), true);
    let (status, v) = parse_response(&raw);
    assert_eq!((status, error_code(&v)), (413, "body_too_large"), "{v}");
    // A small request still does.
    let c = Client::new(&e.endpoint()).unwrap();
    let attested = c.attest(test_root_policy()).unwrap();
    assert_eq!(c.ping(&attested, "small").unwrap().message, "small");

    // The slow upload gives up; its bytes come back.
    drop(slow);
    let start = std::time::Instant::now();
    loop {
        let raw = e.raw(
            &[head(10_000).as_bytes(), &vec![b'y'; 10_000]].concat(),
            true,
        );
        let (status, v) = parse_response(&raw);
        if status != 503 {
            // Past the budget, the garbage body is refused for what it is.
            assert_eq!(status, 400, "{v}");
            assert!(error_code(&v).starts_with("encap_"), "{v}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "budget never came back"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Reads one HTTP response (head and `Content-Length` body) from `s`: (status, head, body).
fn read_one(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).expect("read a head"),
            1,
            "closed mid-head"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap().to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, head, body)
}

/// The connection is closed by the enclave: EOF, nothing more.
fn closed(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(s.read_to_end(&mut rest), Ok(0))
}

#[test]
fn keep_alive_serves_requests_in_turn_and_closes_when_it_must() {
    let e = Enclave::start(&["--max-body", "4096"]);
    let connect = || {
        let s = TcpStream::connect(&e.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    };
    const HEALTH: &[u8] = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n";
    const JUNK_PING: &[u8] = b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nContent-Type: application/sigil-encapsulated\r\nContent-Length: 5\r\n\r\nhello";

    // Asked for: one connection carries request after request, errors included, each
    // answered in order and told how long the connection is kept.
    let mut s = connect();
    for _ in 0..3 {
        s.write_all(HEALTH).unwrap();
        let (status, head, body) = read_one(&mut s);
        assert_eq!(status, 200);
        assert!(head.contains("keep-alive: timeout="), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("\"ok\""));
        s.write_all(JUNK_PING).unwrap();
        let (status, _, body) = read_one(&mut s);
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    }
    // Pipelined: three requests in one write get three answers, in order.
    s.write_all(&[HEALTH, JUNK_PING, HEALTH].concat()).unwrap();
    let statuses: Vec<u16> = (0..3).map(|_| read_one(&mut s).0).collect();
    assert_eq!(statuses, [200, 400, 200]);
    // A bad head on a kept connection: its error, then the connection ends.
    s.write_all(b"GET\r\n\r\n").unwrap();
    let (status, _, _) = read_one(&mut s);
    assert_eq!(status, 400);
    assert!(closed(&mut s));

    // Not asked for (a script reading to the end), or asked to close: one answer, then EOF.
    for head in [
        &b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n",
        b"GET /v1/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ] {
        let mut s = connect();
        s.write_all(head).unwrap();
        assert_eq!(read_one(&mut s).0, 200);
        assert!(closed(&mut s), "{}", String::from_utf8_lossy(head));
    }

    // A body refused before it was read leaves the connection out of step: after the 413
    // the enclave closes instead of reading the rest of the body as the next request.
    let mut s = connect();
    s.write_all(b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nContent-Type: application/sigil-encapsulated\r\nContent-Length: 100000\r\n\r\nGET /v1/health HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut s).0, 413);
    assert!(closed(&mut s));

    // The Rust client reuses its connection: many calls, all answered.
    let client = Client::new(&e.endpoint()).unwrap();
    let enclave = client.attest(test_root_policy()).unwrap();
    for i in 0..20 {
        let r = client.ping(&enclave, &format!("ping {i}")).unwrap();
        assert_eq!(r.message, format!("ping {i}"));
    }
}
