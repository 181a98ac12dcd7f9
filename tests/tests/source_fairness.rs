//! One greedy client cannot take the whole proving queue: the local deployment (development
//! KMS, the real `sigil-shim` with its ingress, the enclave process with a prover), clients
//! connecting through the shim from their own loopback addresses (Linux routes all of
//! 127/8 to lo), so the shim's PROXY header tells the enclave who each one is.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::{profile_bin, shared_crs, target_dir, test_root_policy};
use sigil_client::{AttestedEnclave, Client};
use sigil_e2e::deployment::{Deployment, Options, Prover};
use sigil_e2e::fixture;
use sigil_protocol::api::ENCAPSULATED_CONTENT_TYPE;
use sigil_protocol::endpoint::{Endpoint, ProveSubmit};
use sigil_protocol::parent::source;
use sigil_protocol::prove::{ProveRequest, Scheme, Submitted, Target};
use sigil_protocol::wire::SecretBase64;

/// The enclave's per-source share (`MAX_JOBS_PER_SOURCE`).
const SHARE: usize = 4;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The deployment with its ingress on `127.0.0.1:<port>` (returned), one prover worker and a
/// queue of 8 (so the greedy client's share, not the queue's bound, is what stops it).
fn deployment(name: &str, time_limit_secs: u64) -> (Deployment, SocketAddrV4) {
    let group = target_dir().join("test-fairness");
    let dir = group.join(format!("{name}-{}", std::process::id()));
    // Beside the deployment's directory, which the deployment empties when it starts.
    let bb_dir = group.join(format!("{name}-bb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&bb_dir);
    let (enclave_port, ingress_port) = (free_port(), free_port());
    let options = Options {
        enclave_listen: Some(format!("tcp:127.0.0.1:{enclave_port}")),
        ingress_listen: Some(format!("tcp:127.0.0.1:{ingress_port}")),
        prover: Some(Prover {
            // Stalls on `large` until the job's time limit stops it, so the greedy client's jobs
            // stay queued or running as long as the test needs, whatever the machine's speed.
            bb: common::stalling_bb(&bb_dir, "600"),
            crs: shared_crs(),
            config: format!(
                r#"{{"crs_sha256": "{}", "crs_points": 32769, "workers": 1, "max_queue": 8,
                    "time_limit_secs": {time_limit_secs}}}"#,
                common::sha256_of_crs_points(32_769)
            ),
        }),
        blob_s3: None,
    };
    let mut d = Deployment::with_options(
        dir,
        profile_bin("sigil-enclave"),
        profile_bin("sigil-shim"),
        None,
        options,
    );
    d.start_enclave();
    let start = Instant::now();
    while d.health()["crs"]["state"] != "ready" {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "CRS: {}",
            d.health()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (
        d,
        SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, ingress_port),
    )
}

/// A TCP connection to `to` from the loopback address `127.0.0.<from>`.
fn connect_from(from: u8, to: SocketAddrV4) -> TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, from, 0)).unwrap();
    connect(fd.as_raw_fd(), &SockaddrIn::from(to)).unwrap();
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Sends `prefix` and then one HTTP request (`POST path` with `body`) on `s`; returns the
/// answer's status, content type and body.
fn exchange(
    mut s: TcpStream,
    prefix: &[u8],
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut req = prefix.to_vec();
    req.extend_from_slice(
        format!(
            "POST {path} HTTP/1.1\r\nhost: sigil\r\ncontent-type: {content_type}\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    req.extend_from_slice(body);
    s.write_all(&req).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head[9..12].parse().unwrap();
    let ct = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (status, ct, raw[end + 4..].to_vec())
}

/// A proving submission of the fixture `name` from `127.0.0.<from>` through the shim, sealed
/// to the attested enclave: the job, or the sealed error's (status, code).
fn submit_from(
    from: u8,
    ingress: SocketAddrV4,
    e: &AttestedEnclave,
    name: &str,
) -> Result<Submitted, (u16, String)> {
    let read = |f: &str| std::fs::read(fixture(name, f)).unwrap();
    let req = ProveRequest {
        scheme: Scheme::UltraHonk.into(),
        circuit: SecretBase64::copy_of(&read("target.json")),
        witness: SecretBase64::copy_of(&read("witness.gz")),
        ivc_inputs: None,
        target: Target::Default.into(),
        bb_version: None,
        result_key: SecretBase64::copy_of(&[7u8; 32]),
    };
    let plain = sigil_protocol::wire::to_json_secret(&req).unwrap();
    let (body, opener) =
        sigil_protocol::encap::seal_request(&e.public_key, ProveSubmit::ROUTE, &plain).unwrap();
    let (http_status, ct, answer) = exchange(
        connect_from(from, ingress),
        b"",
        ProveSubmit::PATH,
        ENCAPSULATED_CONTENT_TYPE,
        &body,
    );
    assert_eq!(
        (http_status, ct.as_str()),
        (200, ENCAPSULATED_CONTENT_TYPE),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let (status, plain) = opener.open(ProveSubmit::ROUTE, &answer).unwrap();
    if status == 202 {
        return Ok(serde_json::from_slice(&plain).unwrap());
    }
    let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    Err((
        status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
    ))
}

fn state(c: &Client, job: &Submitted) -> String {
    c.prove_status(&job.id).unwrap().state.to_string()
}

#[test]
fn a_greedy_client_fills_its_share_and_another_client_still_gets_its_proof() {
    // Each stalled job holds the worker for 3 s before its time limit stops it.
    let (d, ingress) = deployment("greedy", 3);
    let c = Client::new(&d.endpoint()).unwrap();
    let e = c.attest(test_root_policy()).unwrap();

    // 127.0.0.2 submits jobs that stall, as many as it is let.
    let greedy: Vec<Submitted> = (0..SHARE)
        .map(|i| {
            submit_from(2, ingress, &e, "large")
                .unwrap_or_else(|err| panic!("greedy job {i} within its share: {err:?}"))
        })
        .collect();
    assert_eq!(
        submit_from(2, ingress, &e, "large").unwrap_err(),
        (429, "source_quota".to_string()),
        "past its share"
    );
    // Its jobs are untouched by the refusal: one running, the rest waiting.
    assert!(greedy.iter().all(|j| state(&c, j) != "ended"));

    // Another client, from another address, is queued and proved.
    let other = submit_from(3, ingress, &e, "tiny").expect("another client is queued");
    let start = Instant::now();
    while state(&c, &other) != "ended" {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the other client's job never ran"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = c.prove_status(&other.id).unwrap();
    let sealed = status.sealed.expect("a sealed result").0;
    let plain =
        sigil_protocol::prove::open_result(&[7u8; 32], &other.id.to_string(), &sealed).unwrap();
    let result: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(result["state"], "done", "{result}");
    assert!(result["proof"].as_str().is_some_and(|p| !p.is_empty()));
    // As jobs end, the greedy client gets places back.
    let start = Instant::now();
    while state(&c, &greedy[0]) != "ended" {
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(100));
    }
    submit_from(2, ingress, &e, "tiny").expect("a place freed by an ended job");
}

/// Bytes of the client's own that look like a PROXY header come after the shim's header: the
/// enclave does not take them as the client's source (the request is not HTTP, and refused),
/// so a client over its share cannot pose as another. A direct connection without any header
/// is served as before.
#[test]
fn a_client_cannot_choose_its_source_and_direct_connections_still_work() {
    let (d, ingress) = deployment("forged", 3);
    let c = Client::new(&d.endpoint()).unwrap();
    let e = c.attest(test_root_policy()).unwrap();
    for _ in 0..SHARE {
        submit_from(2, ingress, &e, "large").unwrap();
    }
    assert_eq!(
        submit_from(2, ingress, &e, "large").unwrap_err().1,
        "source_quota"
    );
    // The same client, claiming 127.0.0.3 in a header of its own in front of its request.
    let forged = source::encode(Some("127.0.0.3:4242".parse().unwrap())).unwrap();
    let (body, _opener) =
        sigil_protocol::encap::seal_request(&e.public_key, ProveSubmit::ROUTE, b"{}").unwrap();
    let (status, ct, answer) = exchange(
        connect_from(2, ingress),
        &forged,
        ProveSubmit::PATH,
        ENCAPSULATED_CONTENT_TYPE,
        &body,
    );
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert_eq!((status, ct.as_str()), (400, "application/json"), "{answer}");
    assert!(answer.contains("malformed_request"), "{answer}");

    // Direct connections (no shim, no header) are served: attestation above, and a proof.
    let direct = c
        .prove_submit(
            &e,
            &std::fs::read(fixture("tiny", "target.json")).unwrap(),
            &std::fs::read(fixture("tiny", "witness.gz")).unwrap(),
            "default",
        )
        .expect("a direct client's job");
    // It waits behind the stalled jobs; being queued is what this test needs of it.
    assert_eq!(state(&c, &direct.submitted), "queued");
}

/// The result of an ended job, opened with the test's result key.
fn result_of(c: &Client, job: &Submitted) -> serde_json::Value {
    let sealed = c
        .prove_status(&job.id)
        .unwrap()
        .sealed
        .expect("a sealed result")
        .0;
    let plain =
        sigil_protocol::prove::open_result(&[7u8; 32], &job.id.to_string(), &sealed).unwrap();
    serde_json::from_slice(&plain).unwrap()
}

/// One client with three addresses fills the whole queue (8) within each address's share; a
/// fourth client is still admitted, by displacing the biggest holder's newest job (which
/// ends, sealed to its client, as `displaced`), and takes its turn before the backlog: the
/// worker serves one job per address in turn.
#[test]
fn a_client_with_many_addresses_cannot_keep_another_out() {
    let (d, ingress) = deployment("many", 8);
    let c = Client::new(&d.endpoint()).unwrap();
    let e = c.attest(test_root_policy()).unwrap();
    let mut greedy = Vec::new();
    // 127.0.0.2: one running and two waiting; 127.0.0.3 and 127.0.0.4: three waiting each.
    for (from, n) in [(2, 3), (3, 3), (4, 3)] {
        for _ in 0..n {
            greedy.push(submit_from(from, ingress, &e, "large").expect("within its share"));
        }
    }
    let start = Instant::now();
    while state(&c, &greedy[0]) != "running" {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Full: 127.0.0.2 (two waiting, within its share) gets no place: against three it would
    // only trade places.
    assert_eq!(
        submit_from(2, ingress, &e, "large").unwrap_err(),
        (503, "queue_full".to_string())
    );
    let other = submit_from(5, ingress, &e, "tiny").expect("a newcomer displaces the biggest");
    // The displaced job is the newest of the biggest holders' (127.0.0.4's third), ended and
    // told why.
    let displaced = &greedy[8];
    assert_eq!(state(&c, displaced), "ended");
    let r = result_of(&c, displaced);
    assert_eq!(r["error"]["code"], "displaced", "{r}");
    // Turns: 127.0.0.2's running job, then one each of 127.0.0.3 and 127.0.0.4 (each stalls
    // until its time limit), then the newcomer, before the rest of anyone's backlog.
    let start = Instant::now();
    while state(&c, &other) != "ended" {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the newcomer's job never ran"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(result_of(&c, &other)["state"], "done");
    for j in [1, 2, 4, 5, 7] {
        assert_ne!(
            state(&c, &greedy[j]),
            "ended",
            "backlog job {j} ran before the newcomer's"
        );
    }
}
