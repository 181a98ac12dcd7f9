//! Runs the AWS SigV4 test suites in shared/vectors/sigv4 (both formats) against `sigv4`.
//!
//! Only header-based signing is implemented, so the new suite's `query-*` (presigned URL)
//! files are skipped in every case.

use sigil_kms::sigv4::{self, Credentials, Request, SigningParams, SigningTime};
use std::fs;
use std::path::{Path, PathBuf};

const SUITES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors/sigv4");
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if let (b'%', Some(v)) = (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Parses a suite request file: request line, headers (obs-fold continuation lines unfolded
/// to one space per RFC 7230 3.2.4), blank line, body.
fn parse_request(text: &str) -> Request {
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], text.as_bytes()[i + 2..].to_vec()),
        None => (text, Vec::new()),
    };
    let mut lines = head.lines();
    let first = lines.next().unwrap();
    let (method, rest) = first.split_once(' ').unwrap();
    let target = rest.strip_suffix(" HTTP/1.1").unwrap();
    let (path, qs) = target.split_once('?').unwrap_or((target, ""));
    let query = if qs.is_empty() {
        Vec::new()
    } else {
        qs.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (pct_decode(k), pct_decode(v))
            })
            .collect()
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (n, v) = line.split_once(':').unwrap();
            headers.push((n.to_string(), v.to_string()));
        }
    }
    Request {
        method: method.into(),
        path: path.into(),
        query,
        headers,
        body,
    }
}

fn take_header(req: &mut Request, name: &str) -> Option<String> {
    let i = req
        .headers
        .iter()
        .position(|(n, _)| n.eq_ignore_ascii_case(name))?;
    Some(req.headers.remove(i).1)
}

/// Checks one signing: returns (canonical request, string to sign, Authorization value).
fn sign_and_explain(
    mut req: Request,
    creds: &Credentials,
    params: &SigningParams<'_>,
) -> (String, String, String) {
    sigv4::sign(&mut req, creds, params).unwrap();
    let authz = take_header(&mut req, "authorization").unwrap();
    if params.omit_session_token && creds.session_token.is_some() {
        take_header(&mut req, "x-amz-security-token").unwrap();
    }
    let creq = sigv4::canonical_request(&req, params).unwrap();
    let sts = sigv4::string_to_sign(&creq, params);
    (creq, sts, authz)
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn new_format_suite_header_signing() {
    let root = PathBuf::from(SUITES).join("aws-signing-test-suite-v4");
    let mut dirs: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let mut passed = 0;
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let ctx: serde_json::Value =
            serde_json::from_str(&read(&dir.join("context.json"))).unwrap();
        let c = &ctx["credentials"];
        let creds = Credentials {
            access_key_id: c["access_key_id"].as_str().unwrap().into(),
            secret_access_key: c["secret_access_key"].as_str().unwrap().into(),
            session_token: c["token"].as_str().map(Into::into),
        };
        let ts: String = ctx["timestamp"]
            .as_str()
            .unwrap()
            .chars()
            .filter(|c| *c != '-' && *c != ':')
            .collect();
        let mut params = SigningParams::new(
            ctx["region"].as_str().unwrap(),
            ctx["service"].as_str().unwrap(),
            SigningTime::from_amz_date(&ts).unwrap(),
        );
        params.normalize_path = ctx["normalize"].as_bool().unwrap();
        params.content_sha256_header = ctx["sign_body"].as_bool().unwrap();
        params.omit_session_token = ctx["omit_session_token"].as_bool().unwrap_or(false);

        let req = parse_request(&read(&dir.join("request.txt")));
        let (creq, sts, authz) = sign_and_explain(req, &creds, &params);
        assert_eq!(
            creq,
            read(&dir.join("header-canonical-request.txt")),
            "{name}: canonical request"
        );
        assert_eq!(
            sts,
            read(&dir.join("header-string-to-sign.txt")),
            "{name}: string to sign"
        );
        let sig = read(&dir.join("header-signature.txt"));
        assert!(
            authz.ends_with(&format!("Signature={}", sig.trim())),
            "{name}: {authz}"
        );
        let signed = read(&dir.join("header-signed-request.txt"));
        assert!(
            signed.contains(&format!("Authorization:{authz}")),
            "{name}: signed request"
        );
        passed += 1;
    }
    eprintln!(
        "aws-signing-test-suite-v4: {passed} header cases passed, query-* (presigned) skipped"
    );
    assert_eq!(passed, 38);
}

fn classic_cases(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if p.join(format!("{name}.req")).exists() {
                out.push(p.clone());
            }
            classic_cases(&p, out);
        }
    }
}

/// Value of `x-amz-security-token:` in a canonical request, if it signs one.
/// The classic suite's example credentials (no session token) and signing parameters.
fn classic_example() -> (Credentials, SigningParams<'static>) {
    let creds = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: SECRET.into(),
        session_token: None,
    };
    let params = SigningParams::new(
        "us-east-1",
        "service",
        SigningTime::from_amz_date("20150830T123600Z").unwrap(),
    );
    (creds, params)
}

fn token_in_creq(creq: &str) -> Option<String> {
    creq.lines()
        .find_map(|l| l.strip_prefix("x-amz-security-token:"))
        .map(str::to_string)
}

#[test]
fn classic_suite_header_signing() {
    let root = PathBuf::from(SUITES).join("aws-sig-v4-test-suite");
    let long_token = read(&root.join("post-sts-token/readme.txt"))
        .lines()
        .find(|l| l.starts_with("AQoD"))
        .unwrap()
        .trim()
        .to_string();
    let mut dirs = Vec::new();
    classic_cases(&root, &mut dirs);
    dirs.sort();
    let (mut full, mut sts_only) = (0, 0);
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let file = |ext: &str| read(&dir.join(format!("{name}.{ext}")));
        let (base_creds, params) = classic_example();

        if name.starts_with("post-x-www-form-urlencoded") {
            // Known inconsistency (see the suite README): the shipped .sts does not hash the
            // shipped .creq. Only .sts -> signature is checked for these two.
            let sig = sigv4::signature(&base_creds, &params, &file("sts")).unwrap();
            assert!(
                file("authz").ends_with(&format!("Signature={sig}")),
                "{name}"
            );
            sts_only += 1;
            continue;
        }

        let mut req = parse_request(&file("req"));
        // The classic .req already carries X-Amz-Date (and sometimes the token), which `sign`
        // adds itself; take them out and feed them back through the parameters.
        assert_eq!(
            take_header(&mut req, "x-amz-date").as_deref(),
            Some("20150830T123600Z"),
            "{name}"
        );
        let creq_expected = file("creq");
        let mut params = params;
        let mut creds = base_creds;
        if let Some(tok) = take_header(&mut req, "x-amz-security-token") {
            creds.session_token = Some(tok);
        } else if let Some(tok) = token_in_creq(&creq_expected) {
            creds.session_token = Some(tok);
        } else if name == "post-sts-header-after" {
            creds.session_token = Some(long_token.clone());
            params.omit_session_token = true;
        }
        let (creq, sts, authz) = sign_and_explain(req, &creds, &params);
        assert_eq!(creq, creq_expected, "{name}: canonical request");
        assert_eq!(sts, file("sts"), "{name}: string to sign");
        assert_eq!(authz, file("authz"), "{name}: authorization");
        full += 1;
    }
    eprintln!("aws-sig-v4-test-suite: {full} full cases, {sts_only} .sts->signature only");
    assert_eq!((full, sts_only), (31, 2));
}

#[test]
fn rejects_header_injection_and_double_signing() {
    let (creds, params) = classic_example();
    let base = Request {
        method: "GET".into(),
        path: "/".into(),
        headers: vec![("Host".into(), "example.amazonaws.com".into())],
        ..Default::default()
    };

    let mut r = base.clone();
    r.headers
        .push(("X-Test".into(), "a\r\nAuthorization: forged".into()));
    assert_eq!(
        sigv4::sign(&mut r, &creds, &params),
        Err(sigv4::SigV4Error::BadHeader)
    );

    let mut r = base.clone();
    r.headers.push(("Authorization".into(), "x".into()));
    assert!(matches!(
        sigv4::sign(&mut r, &creds, &params),
        Err(sigv4::SigV4Error::ReservedHeader(_))
    ));

    let mut r = base.clone();
    r.headers.clear();
    assert_eq!(
        sigv4::sign(&mut r, &creds, &params),
        Err(sigv4::SigV4Error::MissingHost)
    );

    let mut r = base.clone();
    let bad = SigningParams::new("us-east-1/x", "service", params.time.clone());
    assert_eq!(
        sigv4::sign(&mut r, &creds, &bad),
        Err(sigv4::SigV4Error::BadScope)
    );
    assert_eq!(r, base, "request must be untouched on error");

    let mut r = base.clone();
    r.body = vec![0; sigv4::MAX_BODY + 1];
    assert_eq!(
        sigv4::sign(&mut r, &creds, &params),
        Err(sigv4::SigV4Error::TooLarge)
    );

    let dbg = format!("{creds:?}");
    assert!(!dbg.contains("EXAMPLEKEY"), "secret leaked in Debug");
}
