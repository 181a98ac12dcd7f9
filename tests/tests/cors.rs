//! CORS in local mode: the origins of the measured configuration and of `--cors-origin` get
//! preflights and readable answers (errors too); any other origin, and every origin by
//! default, gets no CORS header; preflights keep the HTTP layer's limits.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sigil_e2e::deployment::LocalEnclave;

const PAGE: &str = "http://127.0.0.1:8080";
const WALLET: &str = "https://wallet.example";

/// The enclave under test; `SIGIL_TEST_ENCLAVE` names another build (one being worked on,
/// before `reproducible-build/build` has made the static one).
fn enclave_bin() -> PathBuf {
    std::env::var_os("SIGIL_TEST_ENCLAVE")
        .map(PathBuf::from)
        .unwrap_or_else(common::enclave_bin)
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    /// The value of header `name` (lowercase), if present once.
    fn header(&self, name: &str) -> Option<String> {
        let mut found = self.head.lines().skip(1).filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        });
        let v = found.next();
        assert!(found.next().is_none(), "{name} twice in {}", self.head);
        v
    }

    fn has_no_cors(&self) -> bool {
        !self.head.to_ascii_lowercase().contains("access-control-")
    }
}

fn send(addr: &str, request: &str) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let (head, status, body) = common::split_response(&raw);
    Answer { status, head, body }
}

fn preflight(addr: &str, path: &str, origin: &str, method: &str) -> Answer {
    send(
        addr,
        &format!(
            "OPTIONS {path} HTTP/1.1\r\nhost: x\r\norigin: {origin}\r\n\
             access-control-request-method: {method}\r\n\
             access-control-request-headers: content-type\r\n\r\n"
        ),
    )
}

fn get(addr: &str, path: &str, origin: &str) -> Answer {
    send(
        addr,
        &format!("GET {path} HTTP/1.1\r\nhost: x\r\norigin: {origin}\r\n\r\n"),
    )
}

#[test]
fn no_cors_header_by_default() {
    let e = LocalEnclave::start(&enclave_bin(), &[]);
    let a = get(e.addr(), "/v1/health", PAGE);
    assert_eq!(a.status, 200, "{}", a.head);
    assert!(a.has_no_cors(), "{}", a.head);
    // A preflight gets what any OPTIONS gets: 405, which the browser takes as a refusal.
    let a = preflight(e.addr(), "/v1/ping", PAGE, "POST");
    assert_eq!(a.status, 405, "{}", a.head);
    assert!(a.has_no_cors(), "{}", a.head);
}

#[test]
fn configured_and_flagged_origins_are_served_others_are_not() {
    let dir = common::fresh_dir("cors", "origins");
    let config = dir.join("enclave.json");
    std::fs::write(
        &config,
        format!(r#"{{"cors": {{"origins": ["{WALLET}"]}}}}"#),
    )
    .unwrap();
    let config = config.display().to_string();
    let e = LocalEnclave::start(
        &enclave_bin(),
        &["--config", &config, "--cors-origin", PAGE],
    );
    let addr = e.addr();

    // Preflights from either origin (the file's and the flag's), for routes only.
    for origin in [PAGE, WALLET] {
        let a = preflight(addr, "/v1/ping", origin, "POST");
        assert_eq!(a.status, 204, "{}", a.head);
        assert_eq!(a.header("access-control-allow-origin").unwrap(), origin);
        assert_eq!(a.header("access-control-allow-methods").unwrap(), "POST");
        assert_eq!(
            a.header("access-control-allow-headers").unwrap(),
            "content-type"
        );
        assert_eq!(a.header("access-control-max-age").unwrap(), "600");
        assert_eq!(a.header("vary").unwrap(), "origin");
        assert!(a.body.is_empty());
    }
    let id = "0".repeat(32);
    let a = preflight(addr, &format!("/v1/prove/{id}"), PAGE, "GET");
    assert_eq!(a.status, 204, "{}", a.head);
    assert_eq!(a.header("access-control-allow-methods").unwrap(), "GET");
    let a = preflight(addr, "/v1/no-such-route", PAGE, "POST");
    assert_eq!(a.status, 404, "{}", a.head);

    // Another origin: no CORS header on the preflight or on the answer.
    for evil in [
        "https://evil.example",
        "http://127.0.0.1:8081",
        "http://127.0.0.1:8080/",
        "null",
    ] {
        let a = preflight(addr, "/v1/ping", evil, "POST");
        assert_eq!(a.status, 405, "{evil}: {}", a.head);
        assert!(a.has_no_cors(), "{evil}: {}", a.head);
        let a = get(addr, "/v1/health", evil);
        assert_eq!(a.status, 200);
        assert!(a.has_no_cors(), "{evil}: {}", a.head);
    }

    // Answers, errors included, are readable by the allowed origin.
    let a = get(addr, "/v1/health", PAGE);
    assert_eq!(a.status, 200, "{}", a.head);
    assert_eq!(a.header("access-control-allow-origin").unwrap(), PAGE);
    assert_eq!(a.header("vary").unwrap(), "origin");
    assert!(a.header("access-control-allow-credentials").is_none());
    let a = get(addr, "/v1/attestation?nonce=zz", WALLET);
    assert_eq!(a.status, 400, "{}", a.head);
    assert_eq!(a.header("access-control-allow-origin").unwrap(), WALLET);
    let a = send(
        addr,
        &format!(
            "POST /v1/ping HTTP/1.1\r\nhost: x\r\norigin: {PAGE}\r\n\
             content-type: application/sigil-encapsulated\r\ncontent-length: 3\r\n\r\nabc"
        ),
    );
    assert!((400..500).contains(&a.status), "{}", a.head);
    assert_eq!(a.header("access-control-allow-origin").unwrap(), PAGE);

    // The HTTP layer's limits hold for preflights: no body, bounded head.
    let a = send(
        addr,
        &format!(
            "OPTIONS /v1/ping HTTP/1.1\r\nhost: x\r\norigin: {PAGE}\r\n\
             access-control-request-method: POST\r\ncontent-length: 5\r\n\r\nhello"
        ),
    );
    assert_eq!(a.status, 413, "{}", a.head);
    let a = send(
        addr,
        &format!(
            "OPTIONS /v1/ping HTTP/1.1\r\nhost: x\r\norigin: {PAGE}\r\n\
             access-control-request-method: POST\r\nx-pad: {}\r\n\r\n",
            "a".repeat(20_000)
        ),
    );
    assert_eq!(a.status, 431, "{}", a.head);
}

#[test]
fn a_bad_origin_is_refused_at_start() {
    for (bad, why) in [
        ("*", "exact origins"),
        ("https://a.example:443", "default port"),
    ] {
        let out = Command::new(enclave_bin())
            .args(["--listen", "tcp:127.0.0.1:0", "--cors-origin", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{bad}: {err}");
    }
}
