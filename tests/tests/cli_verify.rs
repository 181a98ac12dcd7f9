//! The `sigil` CLI: `sigil attestation verify` on the real Nitro documents (accepted at their own
//! time, refused now and in every tampered or mismatched variant, each with the failing check
//! named), and the names of its commands.

mod common;

use common::{shared, sigil};

struct Doc {
    name: &'static str,
    at: u64,
    nonce_len: usize,
}

const DOCS: [Doc; 2] = [
    Doc {
        name: "03_evervault_2022-10-13_use1_prod_nonce256",
        at: 1_665_651_482,
        nonce_len: 256,
    },
    Doc {
        name: "06_eternis_2024-07-31_use1_prod",
        at: 1_722_457_107,
        nonce_len: 20,
    },
];

fn doc_path(d: &Doc, ext: &str) -> String {
    shared(&format!("vectors/nitro/docs/{}.{ext}", d.name))
        .to_str()
        .unwrap()
        .to_string()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sigil-cli-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs verify; returns (exit code, stdout JSON or Null, stderr).
fn verify(args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = vec!["attestation", "verify"];
    all.extend_from_slice(args);
    let out = sigil(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

fn assert_refused(args: &[&str], check: &str) {
    let (code, json, err) = verify(args);
    assert_eq!(code, 1, "{args:?} accepted: {json}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(
        err.contains(&format!("{check}:")),
        "{args:?}: {err} does not name {check}"
    );
}

#[test]
fn real_documents_verify_at_their_time_in_both_encodings() {
    for d in &DOCS {
        let at = d.at.to_string();
        for ext in ["cbor", "b64"] {
            let (code, json, err) = verify(&["--document", &doc_path(d, ext), "--at", &at]);
            assert_eq!(code, 0, "{} {ext}: {err}", d.name);
            assert_eq!(json["root"], "aws-nitro-enclaves-root-g1");
            assert_eq!(json["debug"], false);
            assert!(json["module_id"].as_str().unwrap().starts_with("i-"));
            assert_eq!(json["nonce"].as_str().unwrap().len(), 2 * d.nonce_len);
            assert_eq!(json["pcrs"]["0"].as_str().unwrap().len(), 96);
            assert!(
                json.get("warning").is_none(),
                "real documents carry no warning"
            );
        }
    }
}

#[test]
fn real_documents_are_refused_now_and_at_the_wrong_time() {
    for d in &DOCS {
        assert_refused(&["--document", &doc_path(d, "cbor")], "chain");
        let before = (d.at - 86_400).to_string();
        assert_refused(
            &["--document", &doc_path(d, "cbor"), "--at", &before],
            "chain",
        );
    }
}

#[test]
fn tampered_copies_are_refused_with_the_right_reason() {
    let d = &DOCS[1];
    let at = d.at.to_string();
    let bytes = std::fs::read(doc_path(d, "cbor")).unwrap();
    let find = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("needle in document")
    };
    // Offsets found by content, not hard-coded: the module id text inside the payload, the
    // last byte of the signature, a byte inside the leaf certificate's subject, and a byte of
    // the root certificate at the start of cabundle.
    let module_id = find(b"i-0809070ca8037095f-enc");
    let leaf_subject = find(b"i-0809070ca8037095f-enc01910a70380dca7e.us-east-1.aws");
    let cabundle = find(b"cabundle");
    let root_cn = cabundle
        + bytes[cabundle..]
            .windows(18)
            .position(|w| w == b"aws.nitro-enclaves")
            .expect("root CN");
    let cases: [(&str, usize, &str); 4] = [
        ("signature", bytes.len() - 1, "signature"),
        ("payload", module_id + 3, "signature"),
        ("certificate", leaf_subject + 2, "chain"),
        ("root", root_cn + 1, "root"),
    ];
    for (what, offset, check) in cases {
        let mut t = bytes.clone();
        t[offset] ^= 0x01;
        let p = tmp(&format!("tampered-{what}.cbor"));
        std::fs::write(&p, &t).unwrap();
        assert_refused(&["--document", p.to_str().unwrap(), "--at", &at], check);
    }
    let truncated = tmp("truncated.cbor");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    assert_refused(
        &["--document", truncated.to_str().unwrap(), "--at", &at],
        "cose",
    );
}

#[test]
fn pcrs_nonce_and_freshness_policies() {
    let d = &DOCS[1];
    let at = d.at.to_string();
    let path = doc_path(d, "cbor");
    let (code, json, _) = verify(&["--document", &path, "--at", &at]);
    assert_eq!(code, 0);
    let pcr = |i: &str| json["pcrs"][i].as_str().unwrap().to_string();

    // A manifest with the document's PCR0..2 is accepted; one with a changed PCR1 is not.
    let manifest = |pcr1: &str| {
        serde_json::json!({
            "schema": "sigil-pcr-manifest/1",
            "Measurements": {
                "HashAlgorithm": "Sha384 { ... }",
                "PCR0": pcr("0"), "PCR1": pcr1, "PCR2": pcr("2"),
            },
            "inputs": { "source_commit": "0000000000000000000000000000000000000000", "toolchain": "rustc 1.95.0" }
        })
        .to_string()
    };
    let good = tmp("good-manifest.json");
    std::fs::write(&good, manifest(&pcr("1"))).unwrap();
    let (code, _, err) = verify(&[
        "--document",
        &path,
        "--at",
        &at,
        "--pcrs",
        good.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let mut other = pcr("1");
    other.replace_range(0..2, if other.starts_with("ff") { "00" } else { "ff" });
    let bad = tmp("bad-manifest.json");
    std::fs::write(&bad, manifest(&other)).unwrap();
    assert_refused(
        &[
            "--document",
            &path,
            "--at",
            &at,
            "--pcrs",
            bad.to_str().unwrap(),
        ],
        "pcr",
    );
    assert_refused(
        &[
            "--document",
            &path,
            "--at",
            &at,
            "--pcr",
            &format!("4={}", "00".repeat(48)),
        ],
        "pcr",
    );
    let (code, _, _) = verify(&[
        "--document",
        &path,
        "--at",
        &at,
        "--pcr",
        &format!("1={}", pcr("1")),
    ]);
    assert_eq!(code, 0);

    let nonce = json["nonce"].as_str().unwrap().to_string();
    let (code, _, _) = verify(&["--document", &path, "--at", &at, "--nonce", &nonce]);
    assert_eq!(code, 0);
    assert_refused(
        &["--document", &path, "--at", &at, "--nonce", "00112233"],
        "nonce",
    );

    // Fresh at its own time; too old an hour later (its chain is still valid then).
    let (code, _, _) = verify(&["--document", &path, "--at", &at, "--max-age", "60"]);
    assert_eq!(code, 0);
    let later = (d.at + 3600).to_string();
    assert_refused(
        &["--document", &path, "--at", &later, "--max-age", "60"],
        "freshness",
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = sigil(&["attestation", "verify", "--document", "/nonexistent/doc"]);
    assert_eq!(out.status.code(), Some(2));
    let out = sigil(&[
        "attestation",
        "verify",
        "--document",
        &doc_path(&DOCS[0], "cbor"),
        "--pcr",
        "99=00",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// The MuSig2 commands are `sigil musig2`; `sigil musig`, their first name, still works for old
/// scripts but is not advertised.
#[test]
fn musig2_is_the_command_and_musig_a_hidden_alias() {
    let out = sigil(&["musig2", "--help"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["key", "aggregate", "session"] {
        assert!(
            help.contains(sub),
            "`sigil musig2 --help` lacks {sub}: {help}"
        );
    }
    let out = sigil(&["musig", "--help"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), help);
    let top = sigil(&["--help"]);
    let top = String::from_utf8_lossy(&top.stdout);
    assert!(top.contains("musig2"), "{top}");
    assert!(
        !top.lines().any(|l| l.trim_start().starts_with("musig ")),
        "the old name is listed: {top}"
    );
}
