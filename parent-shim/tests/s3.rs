//! The S3 blob backend against a real S3 implementation: moto's server (`moto[server]`,
//! installed by scripts/setup), started by each test on a free loopback port. A missing moto
//! fails the tests; nothing is skipped.
//!
//! What moto can and cannot show: moto 5.2.1 honours `If-None-Match: *` and `If-Match` on
//! PutObject and `If-Match` on DeleteObject (412 PreconditionFailed), so a write based on a
//! stale read is refused. It checks and writes without a lock, so two *simultaneous* requests
//! are not ordered by moto (S3 orders them). The races below therefore let both shims read
//! before either writes (the store's race hook) and send the writes one after the other: the
//! loser's condition is stale, which is what the conditions are for.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{random_bytes, temp_dir};
use sigil_kms::SigningTime;
use sigil_shim::s3::{self, S3Config, S3Store};
use sigil_shim::store::{self, Limits, Store};
use sigil_shim::wire::{self, MAX_LIST, Op, Request, Response};
use sigil_shim::{creds, relay};
use sigil_sys::Addr;

/// Keep in step with scripts/setup (and kms/tests/moto.rs).
const MOTO_VERSION: &str = "5.2.1";
const REGION: &str = "eu-west-1";
const KEY_ID: &str = "AKIDMOTOTEST";
const SECRET: &str = "moto-accepts-anything";

/// A moto server on a free loopback port, killed when dropped (also when a test panics).
struct Moto {
    child: Child,
    addr: SocketAddr,
    log_path: std::path::PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !thread::panicking() {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

impl Moto {
    fn start() -> Moto {
        let probe = Command::new("python3")
            .args([
                "-c",
                "import moto.server, importlib.metadata as m; print(m.version('moto'))",
            ])
            .output();
        let version = match probe {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
            _ => panic!(
                "moto's S3 server is not installed (python3 -c 'import moto.server' fails): \
                 run scripts/setup, which installs moto[server]=={MOTO_VERSION}"
            ),
        };
        if version != MOTO_VERSION {
            eprintln!("note: moto {version} installed, scripts/setup pins {MOTO_VERSION}");
        }
        // A port that is free now; moto binds it a moment later (a clash only fails this run).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_path =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("moto-s3-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn python3 -m moto.server");
        let mut moto = Moto {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&moto.addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!(
                    "moto server exited ({status}): {}",
                    std::fs::read_to_string(&moto.log_path).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto server did not start in 60 s"
            );
            thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// One signed request outside the store (bucket setup, foreign objects, inspection):
    /// (status, body).
    fn raw(&self, method: &str, path: &str, query: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let hash = sha256_hex(body);
        let headers = s3::signed_headers(
            &sigil_kms::Credentials {
                access_key_id: KEY_ID.into(),
                secret_access_key: SECRET.into(),
                session_token: None,
            },
            REGION,
            SigningTime::from_unix(secs).unwrap(),
            method,
            &self.addr.to_string(),
            path,
            query,
            &[],
            &hash,
        )
        .unwrap();
        let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = format!("{}{path}?{}", self.endpoint(), q.join("&"));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let with = |mut rb: ureq::RequestBuilder<_>| {
            for (n, v) in &headers {
                rb = rb.header(n.as_str(), v.as_str());
            }
            rb
        };
        let mut resp = match method {
            "PUT" => {
                let mut rb = agent.put(&url);
                for (n, v) in &headers {
                    rb = rb.header(n.as_str(), v.as_str());
                }
                rb.send(body).unwrap()
            }
            "DELETE" => with(agent.delete(&url)).call().unwrap(),
            _ => with(agent.get(&url)).call().unwrap(),
        };
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .unwrap_or_default();
        (status, text)
    }

    fn create_bucket(&self, bucket: &str) {
        let conf = format!(
            "<CreateBucketConfiguration><LocationConstraint>{REGION}</LocationConstraint>\
             </CreateBucketConfiguration>"
        );
        let (status, body) = self.raw("PUT", &format!("/{bucket}"), &[], conf.as_bytes());
        assert_eq!(status, 200, "{body}");
    }

    /// Every key in the bucket (one page is enough for these tests).
    fn keys(&self, bucket: &str) -> Vec<String> {
        let (status, body) = self.raw("GET", &format!("/{bucket}"), &[("list-type", "2")], b"");
        assert_eq!(status, 200, "{body}");
        body.split("<Key>")
            .skip(1)
            .map(|k| k.split("</Key>").next().unwrap().to_string())
            .collect()
    }
}

impl Moto {
    /// One IAM query-API call (form-encoded POST), signed for `iam`; returns the XML answer.
    fn iam(&self, params: &[(&str, &str)]) -> String {
        let form: Vec<String> = params
            .iter()
            .chain([("Version", "2010-05-08")].iter())
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        let mut req = sigil_kms::sigv4::Request {
            method: "POST".into(),
            path: "/".into(),
            query: Vec::new(),
            headers: vec![
                ("Host".into(), self.addr.to_string()),
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded; charset=utf-8".into(),
                ),
            ],
            body: form.join("&").into_bytes(),
        };
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        sigil_kms::sigv4::sign(
            &mut req,
            &sigil_kms::Credentials {
                access_key_id: KEY_ID.into(),
                secret_access_key: SECRET.into(),
                session_token: None,
            },
            &sigil_kms::SigningParams::new(
                "us-east-1",
                "iam",
                SigningTime::from_unix(secs).unwrap(),
            ),
        )
        .unwrap();
        let mut rb = ureq::post(format!("{}/", self.endpoint()));
        for (n, v) in &req.headers {
            rb = rb.header(n.as_str(), v.as_str());
        }
        rb.send(&req.body[..])
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    }

    /// From now on moto checks every request's SigV4 signature (with botocore's S3 signer)
    /// against its IAM users' keys, and the user's policy against the request's S3 action.
    fn require_auth(&self) {
        let r = ureq::post(format!("{}/moto-api/reset-auth", self.endpoint()))
            .send("0")
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert!(r.contains("PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"), "{r}");
    }
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn xml_field(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {tag} in {xml}"))
        + open.len();
    let len = xml[start..].find(&format!("</{tag}>")).unwrap();
    xml[start..start + len].to_string()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}

fn fetch() -> s3::FetchCredentials {
    Box::new(|| {
        creds::from_env(|k| match k {
            "AWS_ACCESS_KEY_ID" => Some(KEY_ID.into()),
            "AWS_SECRET_ACCESS_KEY" => Some(SECRET.into()),
            _ => None,
        })
    })
}

fn config(moto: &Moto, bucket: &str, prefix: &str) -> S3Config {
    S3Config::new(&moto.endpoint(), bucket, REGION, prefix).unwrap()
}

fn open(moto: &Moto, bucket: &str, prefix: &str, limits: Limits) -> S3Store {
    S3Store::open(config(moto, bucket, prefix), limits, fetch()).unwrap()
}

const LIMITS: Limits = Limits {
    max_blob_bytes: 1024,
    max_blobs: 3,
};

fn put(name: &str, ev: u64, data: &[u8]) -> Request {
    Request {
        op: Op::Put,
        name: Some(name.into()),
        expected_version: Some(ev),
        data: Some(data.to_vec()),
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
fn del(name: &str, ev: u64) -> Request {
    Request {
        op: Op::Delete,
        name: Some(name.into()),
        expected_version: Some(ev),
        data: None,
        prefix: None,
    }
}
fn list(prefix: Option<&str>) -> Request {
    Request {
        op: Op::List,
        name: None,
        expected_version: None,
        data: None,
        prefix: prefix.map(Into::into),
    }
}
fn code(r: &Response) -> &str {
    r.error.as_ref().map(|e| e.code.as_str()).unwrap_or("ok")
}

/// The same script of requests against the file store and the S3 store gives the same
/// answers, field for field: versions, conflicts, limits, lists, names, errors.
#[test]
fn s3_answers_every_request_like_the_file_store() {
    let moto = Moto::start();
    moto.create_bucket("sigil-same");
    let s3 = open(&moto, "sigil-same", "cluster-1/", LIMITS);
    let d = temp_dir("s3-same");
    let file = Store::open(&d.join("state"), LIMITS).unwrap();
    let long = "x".repeat(128);
    let mut script = vec![
        put("k", 0, b"one"),
        put("k", 0, b"x"),
        put("k", 5, b"x"),
        put("k", 1, b"two"),
        get("k"),
        get("nope"),
        del("k", 1),
        del("k", 2),
        get("k"),
        del("k", 2),
        del("nope", 0),
        put("k", 0, b"again"),
        get("k"),
        put("big", 0, &[7; 1025]),
        put("a/1", 0, b""),
        get("a/1"),
        put("a/2", 0, b"x"),
        // The store holds 3 blobs: a fourth is refused, replacing one is not a new blob.
        put("c", 0, b"x"),
        put("a/2", 1, b"y"),
        put("max", 0, &[1; 1024]),
        list(Some("a/")),
        list(None),
        list(Some("zz")),
        list(Some("../")),
        list(Some("a/2")),
        del("a/1", 1),
        put(&long, 0, b"x"),
        get(&long),
        list(Some("x")),
    ];
    for n in [
        "",
        "../etc/passwd",
        "a/../b",
        "/abs",
        "sp ace",
        "a~b",
        "nul\0",
        "é",
        &"x".repeat(129),
        "a\\b",
    ] {
        script.push(put(n, 0, b"x"));
        script.push(get(n));
        script.push(del(n, 1));
    }
    script.push(Request {
        expected_version: None,
        ..put("n", 0, b"")
    });
    script.push(Request {
        data: None,
        ..put("n", 0, b"")
    });
    script.push(Request {
        expected_version: None,
        ..del("k", 1)
    });
    script.push(Request {
        name: None,
        ..get("k")
    });
    for (i, r) in script.into_iter().enumerate() {
        let from_file = file.handle(r.clone());
        let from_s3 = s3.handle(r.clone());
        assert_eq!(from_s3, from_file, "step {i}: {r:?}");
    }
    // What is in the bucket: one object per blob, under the prefix, the version in metadata.
    let mut keys = moto.keys("sigil-same");
    keys.sort();
    assert_eq!(
        keys,
        [
            "cluster-1/a/2".to_string(),
            "cluster-1/k".into(),
            format!("cluster-1/{long}")
        ]
    );
    let _ = std::fs::remove_dir_all(d);
}

/// A list stops at MAX_LIST names with `more`, like the file store, in the same order, and
/// skips what is under the prefix but not a sigil name; a foreign object is not served.
#[test]
fn lists_are_cut_at_max_list_and_foreign_objects_are_refused() {
    let moto = Moto::start();
    moto.create_bucket("sigil-list");
    let limits = Limits {
        max_blob_bytes: 64,
        max_blobs: 5000,
    };
    let s3 = Arc::new(open(&moto, "sigil-list", "p/", limits));
    let d = temp_dir("s3-list");
    let file = Store::open(&d.join("state"), limits).unwrap();
    let names: Vec<String> = (0..MAX_LIST + 5).map(|i| format!("n/{i:x}")).collect();
    for n in &names {
        assert!(file.handle(put(n, 0, b"v")).ok);
    }
    let chunks: Vec<Vec<String>> = names.chunks(128).map(|c| c.to_vec()).collect();
    let workers: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let s3 = s3.clone();
            thread::spawn(move || {
                for n in chunk {
                    let r = s3.handle(put(&n, 0, b"v"));
                    assert!(r.ok, "{n}: {r:?}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // Under the prefix but not a sigil name, the bare prefix, and outside the prefix.
    for key in ["p/n/a~b", "p/", "other/n/0"] {
        let (status, body) = moto.raw("PUT", &format!("/sigil-list/{key}"), &[], b"foreign");
        assert_eq!(status, 200, "{body}");
    }
    for prefix in [None, Some("n/"), Some("n/3e"), Some("n/a"), Some("m")] {
        let a = s3.handle(list(prefix));
        assert_eq!(a, file.handle(list(prefix)), "{prefix:?}");
        assert!(a.ok);
    }
    let all = s3.handle(list(None));
    assert_eq!((all.names.unwrap().len(), all.more), (MAX_LIST, Some(true)));
    // A valid name whose object the store did not write: refused, not passed on.
    let (status, _) = moto.raw("PUT", "/sigil-list/p/foreign", &[], b"not a blob");
    assert_eq!(status, 200);
    for r in [get("foreign"), put("foreign", 1, b"x"), del("foreign", 1)] {
        let a = s3.handle(r);
        assert_eq!(code(&a), "storage", "{a:?}");
        assert!(
            a.error.unwrap().message.contains("not a sigil blob"),
            "a foreign object is named as such"
        );
    }
    let _ = std::fs::remove_dir_all(d);
}

/// Two shims (two stores on one bucket) race for one version: both read version N, then both
/// write N+1. Exactly one wins; the other gets version_conflict with the winner's version,
/// and both shims read the winner's data. For creates (If-None-Match), updates (If-Match) and
/// deletes (If-Match), and for a winner that writes the same bytes as version N (the ETag
/// must still change, or the stale writer's If-Match would pass).
#[test]
fn two_shims_racing_for_one_version_exactly_one_wins() {
    let moto = Moto::start();
    moto.create_bucket("sigil-race");
    let limits = Limits {
        max_blob_bytes: 1024,
        max_blobs: 100,
    };
    let b = Arc::new(open(&moto, "sigil-race", "", limits));
    let mut a = open(&moto, "sigil-race", "", limits);
    // Shim B's request, run inside shim A's request after A read the current version and
    // before A writes: B reads the same version, writes, and is done before A writes.
    let b_request: Arc<Mutex<Option<Request>>> = Arc::default();
    let b_answer: Arc<Mutex<Option<Response>>> = Arc::default();
    {
        let (b, req, ans) = (b.clone(), b_request.clone(), b_answer.clone());
        a.set_race_hook(move |_| {
            if let Some(r) = req.lock().unwrap().take() {
                *ans.lock().unwrap() = Some(b.handle(r));
            }
        });
    }
    let race = |a_req: Request, b_req: Request| -> (Response, Response) {
        *b_request.lock().unwrap() = Some(b_req);
        let from_a = a.handle(a_req);
        let from_b = b_answer
            .lock()
            .unwrap()
            .take()
            .expect("B ran inside A's request");
        (from_a, from_b)
    };

    // Create: both see no blob; B creates it first.
    let (from_a, from_b) = race(put("k", 0, b"from A"), put("k", 0, b"from B"));
    assert!(from_b.ok && from_b.version == Some(1), "{from_b:?}");
    assert_eq!(
        (code(&from_a), from_a.version),
        ("version_conflict", Some(1))
    );

    // Update: both see version 1; B writes version 2 first.
    let (from_a, from_b) = race(put("k", 1, b"A's 2"), put("k", 1, b"B's 2"));
    assert_eq!((from_b.ok, from_b.version), (true, Some(2)), "{from_b:?}");
    assert_eq!(
        (code(&from_a), from_a.version),
        ("version_conflict", Some(2))
    );
    for shim in [&*b, &a] {
        let g = shim.handle(get("k"));
        assert_eq!(
            (g.version, g.data.as_deref()),
            (Some(2), Some(&b"B's 2"[..]))
        );
    }

    // The winner writes version 3 with the very bytes of version 2: the loser still loses.
    let (from_a, from_b) = race(put("k", 2, b"A's 3"), put("k", 2, b"B's 2"));
    assert_eq!((from_b.ok, from_b.version), (true, Some(3)), "{from_b:?}");
    assert_eq!(
        (code(&from_a), from_a.version),
        ("version_conflict", Some(3))
    );
    let g = a.handle(get("k"));
    assert_eq!(
        (g.version, g.data.as_deref()),
        (Some(3), Some(&b"B's 2"[..]))
    );

    // Delete against update: A would delete version 3, B writes version 4 first; B's write
    // stays.
    let (from_a, from_b) = race(del("k", 3), put("k", 3, b"B's 4"));
    assert_eq!((from_b.ok, from_b.version), (true, Some(4)), "{from_b:?}");
    assert_eq!(
        (code(&from_a), from_a.version),
        ("version_conflict", Some(4))
    );
    assert_eq!(b.handle(get("k")).data.as_deref(), Some(&b"B's 4"[..]));

    // Update against delete: A would write version 5, B deletes version 4 first.
    let (from_a, from_b) = race(put("k", 4, b"A's 5"), del("k", 4));
    assert!(from_b.ok, "{from_b:?}");
    assert_eq!(
        (code(&from_a), from_a.version),
        ("version_conflict", Some(0))
    );
    assert_eq!(code(&b.handle(get("k"))), "not_found");

    // Delete against delete: one of them deletes.
    assert!(a.handle(put("k", 0, b"v1")).ok);
    let (from_a, from_b) = race(del("k", 1), del("k", 1));
    assert!(from_b.ok, "{from_b:?}");
    assert_eq!(code(&from_a), "not_found");

    // Without a race the hook changes nothing.
    assert_eq!(a.handle(put("k", 0, b"v1")).version, Some(1));
    assert_eq!(a.handle(put("k", 1, b"v2")).version, Some(2));
}

/// A blob over max_blob_bytes is refused before anything is sent to S3, at the limit it is
/// stored, a 4 MiB blob (the wire's maximum, past the signer's 256 KiB body bound) round-
/// trips, and an object larger than this shim's limit is refused when read.
#[test]
fn oversized_blobs_are_refused() {
    let moto = Moto::start();
    moto.create_bucket("sigil-size");
    let small = open(&moto, "sigil-size", "", LIMITS);
    let r = small.handle(put("big", 0, &[1; 1025]));
    assert_eq!(code(&r), "too_large");
    assert!(moto.keys("sigil-size").is_empty(), "nothing was written");
    assert!(small.handle(put("edge", 0, &[1; 1024])).ok);

    let full = open(
        &moto,
        "sigil-size",
        "",
        Limits {
            max_blob_bytes: wire::MAX_DATA,
            max_blobs: 10,
        },
    );
    let big = random_bytes(3, wire::MAX_DATA);
    assert_eq!(full.handle(put("big", 0, &big)).version, Some(1));
    let g = full.handle(get("big"));
    assert!(g.ok && g.data.as_deref() == Some(&big[..]));
    // The small shim does not read past its own limit.
    let r = small.handle(get("big"));
    assert_eq!(code(&r), "storage");
    assert!(
        r.error
            .unwrap()
            .message
            .contains("larger than the blob limit"),
        "clear message"
    );
}

/// A bucket that does not exist stops the store at open with a message that names it; one
/// that disappears later makes requests fail with `storage`, naming NoSuchBucket.
#[test]
fn a_missing_bucket_is_a_clear_error() {
    let moto = Moto::start();
    let e = S3Store::open(config(&moto, "no-such-bucket", ""), LIMITS, fetch())
        .err()
        .expect("no bucket, no store")
        .to_string();
    assert!(
        e.contains("\"no-such-bucket\" does not exist (NoSuchBucket"),
        "{e}"
    );
    assert!(e.contains(&moto.endpoint()), "{e}");

    moto.create_bucket("sigil-gone");
    let s3 = open(&moto, "sigil-gone", "", LIMITS);
    let (status, body) = moto.raw("DELETE", "/sigil-gone", &[], b"");
    assert_eq!(status, 204, "{body}");
    for r in [put("k", 0, b"x"), get("k"), list(None)] {
        let a = s3.handle(r.clone());
        assert_eq!(code(&a), "storage", "{r:?}");
        let m = a.error.unwrap().message;
        assert!(m.contains("does not exist (NoSuchBucket"), "{r:?}: {m}");
    }

    // Nothing listening at the endpoint: also refused at open, naming the endpoint.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = S3Store::open(
        S3Config::new(&format!("http://127.0.0.1:{port}"), "bucket", REGION, "").unwrap(),
        LIMITS,
        fetch(),
    )
    .err()
    .expect("no server, no store")
    .to_string();
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
}

/// max_blobs counts the blobs of every shim on the bucket: a full store refuses a new blob,
/// and has room again once another shim deleted one.
#[test]
fn max_blobs_counts_what_other_shims_did() {
    let moto = Moto::start();
    moto.create_bucket("sigil-count");
    let a = open(&moto, "sigil-count", "", LIMITS);
    for n in ["1", "2", "3"] {
        assert!(a.handle(put(n, 0, b"x")).ok);
    }
    assert_eq!(code(&a.handle(put("4", 0, b"x"))), "limit");
    // A second shim opened now counts the three.
    let b = open(&moto, "sigil-count", "", LIMITS);
    assert_eq!(b.len(), 3);
    assert_eq!(code(&b.handle(put("4", 0, b"x"))), "limit");
    assert!(b.handle(del("2", 1)).ok);
    // A counts again when full, and sees B's delete.
    assert!(a.handle(put("4", 0, b"x")).ok);
    assert_eq!(code(&b.handle(put("5", 0, b"x"))), "limit");
}

fn call(s: &mut UnixStream, r: &Request) -> Response {
    wire::write_frame(s, &wire::encode_request(r)).unwrap();
    let body = wire::read_frame(s).map_err(|e| format!("{e:?}")).unwrap();
    wire::decode_response(&body).unwrap()
}

fn connect(p: &std::path::Path) -> UnixStream {
    let t = Instant::now();
    loop {
        match UnixStream::connect(p) {
            Ok(s) => return s,
            Err(_) if t.elapsed() < Duration::from_secs(20) => {
                thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("{}: {e}", p.display()),
        }
    }
}

/// The real binary with `--blob-s3`: two shims on one bucket serve one store over their
/// blob sockets; a missing bucket stops the binary with a clear error.
#[test]
fn two_shim_binaries_share_one_bucket() {
    let moto = Moto::start();
    moto.create_bucket("sigil-bin");
    let d = temp_dir("s3-binary");
    let shim = |sock: &std::path::Path, bucket: &str| {
        Command::new(env!("CARGO_BIN_EXE_sigil-shim"))
            .arg("--blob-listen")
            .arg(format!("unix:{}", sock.display()))
            .args(["--blob-s3", &moto.endpoint(), "--blob-s3-bucket", bucket])
            .args(["--region", REGION, "--blob-s3-prefix", "sigil/"])
            .args(["--credentials-source", "env"])
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env_remove("AWS_SESSION_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (sock1, sock2) = (d.join("b1.sock"), d.join("b2.sock"));
    let mut one = shim(&sock1, "sigil-bin");
    let mut two = shim(&sock2, "sigil-bin");
    let (mut s1, mut s2) = (connect(&sock1), connect(&sock2));
    assert_eq!(call(&mut s1, &put("seal/x", 0, b"sealed")).version, Some(1));
    let g = call(&mut s2, &get("seal/x"));
    assert_eq!(
        (g.version, g.data.as_deref()),
        (Some(1), Some(&b"sealed"[..]))
    );
    let r = call(&mut s2, &put("seal/x", 0, b"other"));
    assert_eq!((code(&r), r.version), ("version_conflict", Some(1)));
    assert_eq!(call(&mut s2, &put("seal/x", 1, b"v2")).version, Some(2));
    assert_eq!(
        call(&mut s1, &get("seal/x")).data.as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(moto.keys("sigil-bin"), ["sigil/seal/x"]);
    // Both started on the empty bucket, and say where the blobs are.
    for c in [&mut one, &mut two] {
        let mut first = String::new();
        BufReader::new(c.stderr.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let want = format!(
            "0 blobs in s3://sigil-bin/sigil/ at {} ({REGION})",
            moto.endpoint()
        );
        assert!(first.contains(&want), "{first}");
    }
    for c in [&mut one, &mut two] {
        c.kill().unwrap();
        c.wait().unwrap();
    }

    let out = shim(&d.join("b3.sock"), "sigil-missing")
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"sigil-missing\" does not exist (NoSuchBucket"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(d);
}

/// The in-process blob service (`blobs::serve_conn`) over the S3 backend, as `main` wires it:
/// a CRS import through the backend abstraction lands in the bucket.
#[test]
fn the_blob_service_and_crs_import_run_on_s3() {
    let moto = Moto::start();
    moto.create_bucket("sigil-svc");
    let st: Arc<dyn store::Backend> = Arc::new(open(
        &moto,
        "sigil-svc",
        "",
        Limits {
            max_blob_bytes: wire::MAX_DATA,
            max_blobs: 100,
        },
    ));
    let d = temp_dir("s3-svc");
    let crs = d.join("bn254_g1.dat");
    let bytes = random_bytes(9, sigil_shim::crs::CHUNK + 128);
    std::fs::write(&crs, &bytes).unwrap();
    assert_eq!(
        sigil_shim::crs::import(&*st, &crs).unwrap(),
        (bytes.len() as u64 / 64, 2, 0)
    );
    assert_eq!(
        sigil_shim::crs::import(&*st, &crs).unwrap(),
        (bytes.len() as u64 / 64, 0, 2)
    );
    let sock = d.join("b.sock");
    let served = st.clone();
    relay::spawn_service("blobs", &Addr::Unix(sock.clone()), 4, move |s, _| {
        sigil_shim::blobs::serve_conn(&*served, s, Duration::from_secs(5))
    })
    .unwrap();
    let mut s = connect(&sock);
    let g = call(&mut s, &get(&sigil_shim::crs::chunk_name(1)));
    assert_eq!(g.data.as_deref(), Some(&bytes[sigil_shim::crs::CHUNK..]));
    let _ = std::fs::remove_dir_all(d);
}

/// The IAM policy of the README, for bucket `sigil-auth` and prefix `sigil-`.
const README_POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
      "Resource": "arn:aws:s3:::sigil-auth/sigil-*"
    },
    {
      "Effect": "Allow",
      "Action": "s3:ListBucket",
      "Resource": "arn:aws:s3:::sigil-auth"
    }
  ]
}"#;

/// moto with authentication on verifies every request's signature (botocore's S3 SigV4, so
/// path-style paths, queries, metadata and conditional headers are signed as S3 expects) and
/// allows each request by the README's IAM policy; a wrong secret is refused at open.
///
/// moto's verifier gets a query value with a '/' wrong (boto3's own `list_objects_v2` with
/// `Prefix="a/"` fails it too, while SigV4 and S3 want it encoded as %2F, as the store does and
/// the AWS examples check), so the prefixes listed here have none.
#[test]
fn moto_verifies_the_signatures_and_the_readme_policy() {
    let moto = Moto::start();
    moto.create_bucket("sigil-auth");
    moto.iam(&[("Action", "CreateUser"), ("UserName", "sigil-shim")]);
    moto.iam(&[
        ("Action", "PutUserPolicy"),
        ("UserName", "sigil-shim"),
        ("PolicyName", "sigil-blobs"),
        ("PolicyDocument", README_POLICY),
    ]);
    let key = moto.iam(&[("Action", "CreateAccessKey"), ("UserName", "sigil-shim")]);
    let (id, secret) = (
        xml_field(&key, "AccessKeyId"),
        xml_field(&key, "SecretAccessKey"),
    );
    moto.require_auth();
    let with_secret = |secret: String| -> s3::FetchCredentials {
        let id = id.clone();
        Box::new(move || {
            creds::from_env(|k| match k {
                "AWS_ACCESS_KEY_ID" => Some(id.clone()),
                "AWS_SECRET_ACCESS_KEY" => Some(secret.clone()),
                _ => None,
            })
        })
    };
    let limits = Limits {
        max_blob_bytes: wire::MAX_DATA,
        max_blobs: 100,
    };
    let st = S3Store::open(
        config(&moto, "sigil-auth", "sigil-"),
        limits,
        with_secret(secret.clone()),
    )
    .unwrap();
    let big = random_bytes(5, 300 * 1024);
    assert_eq!(st.handle(put("a/1", 0, b"one")).version, Some(1));
    assert_eq!(st.handle(put("a/1", 1, &big)).version, Some(2));
    assert_eq!(code(&st.handle(put("a/1", 1, b"x"))), "version_conflict");
    assert_eq!(st.handle(get("a/1")).data, Some(big));
    assert_eq!(st.handle(list(Some("a"))).names, Some(vec!["a/1".into()]));
    assert!(st.handle(del("a/1", 2)).ok);
    assert_eq!(code(&st.handle(get("a/1"))), "not_found");

    let e = S3Store::open(
        config(&moto, "sigil-auth", "sigil-"),
        limits,
        with_secret(format!("{secret}x")),
    )
    .err()
    .expect("a wrong secret is refused")
    .to_string();
    assert!(e.contains("SignatureDoesNotMatch"), "{e}");
    // Outside the policy's prefix: access denied.
    let other = S3Store::open(
        config(&moto, "sigil-auth", "elsewhere-"),
        limits,
        with_secret(secret),
    )
    .unwrap();
    let r = other.handle(get("k"));
    assert_eq!(code(&r), "storage");
    assert!(r.error.unwrap().message.contains("AccessDenied"));
}
