//! `scripts/kms-key-policy`: run against the real pcr-manifest.json and against broken ones.
//! The script needs python3 (as the reproducible build does).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::temp_dir;
use serde_json::Value;

const ACCOUNT: &str = "111122223333";
const ROLE: &str = "arn:aws:iam::111122223333:role/sigil-parent";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> Output {
    Command::new(repo().join("scripts/kms-key-policy"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run scripts/kms-key-policy (needs python3)")
}

/// The script's arguments for ACCOUNT and `role`, then `rest`.
fn role_args<'a>(role: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--account-id", ACCOUNT, "--role-arn", role];
    args.extend_from_slice(rest);
    args
}

fn policy(args: &[&str]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "nothing on stderr on success");
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

fn manifest_pcrs(path: &Path) -> [String; 3] {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    ["PCR0", "PCR1", "PCR2"].map(|k| m["Measurements"][k].as_str().unwrap().to_string())
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// The attestation conditions of one enclave statement, checked for shape.
fn conditions<'a>(st: &'a Value, sid: &str) -> &'a serde_json::Map<String, Value> {
    assert_eq!(st["Sid"], sid);
    assert_eq!(st["Effect"], "Allow");
    assert_eq!(st["Principal"]["AWS"], ROLE);
    assert_eq!(st["Resource"], "*");
    assert_eq!(
        strs(&st["Action"]),
        ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateRandom"]
    );
    let cond = st["Condition"].as_object().unwrap();
    assert_eq!(
        cond.keys().collect::<Vec<_>>(),
        ["StringEqualsIgnoreCase"],
        "only the attestation condition operator"
    );
    cond["StringEqualsIgnoreCase"].as_object().unwrap()
}

fn assert_pins(c: &serde_json::Map<String, Value>, pcrs: &[String; 3]) {
    assert_eq!(c["kms:RecipientAttestation:ImageSha384"], pcrs[0].as_str());
    assert_eq!(c["kms:RecipientAttestation:PCR1"], pcrs[1].as_str());
    assert_eq!(c["kms:RecipientAttestation:PCR2"], pcrs[2].as_str());
    for v in c.values() {
        let v = v.as_str().unwrap();
        assert!(
            v.len() == 96 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{v} is not 96 lower-case hex digits"
        );
    }
}

#[test]
fn policy_pins_the_published_pcrs_and_keeps_the_account_out() {
    let p = policy(&role_args(ROLE, &[]));
    let pcrs = manifest_pcrs(&repo().join("pcr-manifest.json"));
    assert_eq!(p["Version"], "2012-10-17");
    let sts = p["Statement"].as_array().unwrap();
    assert_eq!(sts.len(), 2);

    // The account administers the key but gets nothing that yields plaintext.
    let admin = &sts[0];
    assert_eq!(admin["Effect"], "Allow");
    assert_eq!(admin["Principal"]["AWS"], "arn:aws:iam::111122223333:root");
    assert!(admin.get("Condition").is_none());
    let actions = strs(&admin["Action"]);
    for a in [
        "kms:PutKeyPolicy",
        "kms:ScheduleKeyDeletion",
        "kms:DescribeKey",
    ] {
        assert!(actions.contains(&a), "admin lacks {a}");
    }
    for a in &actions {
        assert!(
            a.starts_with("kms:") && !a.contains('*'),
            "{a}: no wildcards"
        );
        for forbidden in [
            "Decrypt",
            "GenerateDataKey",
            "ReEncrypt",
            "Encrypt",
            "CreateGrant",
            "GenerateRandom",
        ] {
            assert!(!a.contains(forbidden), "admin statement allows {a}");
        }
    }

    // The role: exactly the three operations, exactly the manifest's PCRs.
    let c = conditions(&sts[1], "AttestedSigilEnclaveOnly");
    assert_eq!(c.len(), 3);
    assert_pins(c, &pcrs);

    // --manifest names the same default explicitly: the same policy.
    let explicit = policy(&role_args(ROLE, &["--manifest", "pcr-manifest.json"]));
    assert_eq!(explicit, p);
}

#[test]
fn pcr8_and_old_plus_new_images_during_an_upgrade() {
    let d = temp_dir("key-policy-upgrade");
    let old = repo().join("pcr-manifest.json");
    let new = d.join("new.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&old).unwrap()).unwrap();
    for (k, digit) in [("PCR0", "a"), ("PCR2", "b")] {
        m["Measurements"][k] = Value::from(digit.repeat(96));
    }
    std::fs::write(&new, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let pcr8 = "AB".repeat(48);
    let p = policy(&role_args(
        ROLE,
        &[
            "--manifest",
            old.to_str().unwrap(),
            "--manifest",
            new.to_str().unwrap(),
            "--pcr8",
            &pcr8,
        ],
    ));
    let sts = p["Statement"].as_array().unwrap();
    assert_eq!(sts.len(), 3, "one statement per image, never a mixed set");
    for (st, sid, file) in [
        (&sts[1], "AttestedSigilEnclaveImage1", &old),
        (&sts[2], "AttestedSigilEnclaveImage2", &new),
    ] {
        let c = conditions(st, sid);
        assert_eq!(c.len(), 4);
        assert_pins(c, &manifest_pcrs(file));
        assert_eq!(c["kms:RecipientAttestation:PCR8"], "ab".repeat(48));
    }
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn broken_manifests_fail_with_the_reason() {
    let d = temp_dir("key-policy-bad");
    let good: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("pcr-manifest.json")).unwrap())
            .unwrap();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut m = good.clone();
        f(&mut m);
        serde_json::to_string(&m).unwrap()
    };
    let pcr0 = good["Measurements"]["PCR0"].as_str().unwrap().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        ("not-json", "{\"schema\": ".into(), "not JSON"),
        ("array", "[]".into(), "must be an object"),
        (
            "unknown-field",
            with(&|m| m["Measurements"]["PCR8"] = Value::from("ab".repeat(48))),
            "unknown field 'PCR8'",
        ),
        (
            "missing-pcr",
            with(&|m| {
                m["Measurements"].as_object_mut().unwrap().remove("PCR1");
            }),
            "lacks 'PCR1'",
        ),
        (
            "upper-case",
            with(&|m| m["Measurements"]["PCR0"] = Value::from(pcr0.to_uppercase())),
            "Measurements.PCR0 must be 96 lower-case hex",
        ),
        (
            "short",
            with(&|m| m["Measurements"]["PCR2"] = Value::from(&pcr0[..94])),
            "Measurements.PCR2 must be 96",
        ),
        (
            "debug-mode",
            with(&|m| m["Measurements"]["PCR1"] = Value::from("0".repeat(96))),
            "all zeros",
        ),
        (
            "schema",
            with(&|m| m["schema"] = Value::from("sigil-pcr-manifest/2")),
            "schema is 'sigil-pcr-manifest/2'",
        ),
        (
            "duplicate",
            format!(
                "{{\"schema\": \"sigil-pcr-manifest/1\", \"schema\": \"x\", {}",
                &serde_json::to_string(&good).unwrap()[1..]
            ),
            "duplicate field 'schema'",
        ),
        (
            "too-large",
            format!(
                "{}{}",
                " ".repeat(70 * 1024),
                serde_json::to_string(&good).unwrap()
            ),
            "larger than 65536 bytes",
        ),
    ];
    for (name, text, want) in cases {
        let path = d.join(format!("{name}.json"));
        std::fs::write(&path, text).unwrap();
        let out = run(&role_args(ROLE, &["--manifest", path.to_str().unwrap()]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}: no policy on failure");
        assert!(
            err.starts_with("kms-key-policy: ") && err.contains(path.to_str().unwrap()),
            "{name}: {err}"
        );
        assert!(err.contains(want), "{name}: {err:?} lacks {want:?}");
    }
    let missing = d.join("missing.json");
    let out = run(&role_args(ROLE, &["--manifest", missing.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such file"));
    // The same image twice is a mistake in an upgrade, not two images.
    let out = run(&role_args(
        ROLE,
        &[
            "--manifest",
            "pcr-manifest.json",
            "--manifest",
            "pcr-manifest.json",
        ],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the same PCRs as an earlier"));
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn malformed_arguments_are_refused() {
    for (args, want) in [
        (role_args("sigil-parent", &[]), "is not an IAM role ARN"),
        (
            role_args("arn:aws:iam::111122223333:user/alice", &[]),
            "is not an IAM role ARN",
        ),
        (
            role_args("arn:aws:iam::111122223333:role/sigil-*", &[]),
            "no wildcards",
        ),
        (
            role_args("arn:aws:iam::11112222333:role/sigil", &[]),
            "is not an IAM role ARN",
        ),
        (
            role_args(
                "arn:aws:sts::111122223333:assumed-role/sigil-parent/i-0123456789abcdef0",
                &[],
            ),
            "session ARN",
        ),
        (
            role_args("arn:aws:iam::999988887777:role/sigil-parent", &[]),
            "same-account",
        ),
        (
            vec!["--account-id", "1111-2222-3333", "--role-arn", ROLE],
            "12-digit",
        ),
        (role_args(ROLE, &["--pcr8", "abc"]), "--pcr8 must be 96"),
        (vec!["--role-arn", ROLE], "--account-id"),
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
    }
    // Other partitions carry through to the account principal.
    let p = policy(&role_args(
        "arn:aws-cn:iam::111122223333:role/ops/sigil-parent",
        &[],
    ));
    assert_eq!(
        p["Statement"][0]["Principal"]["AWS"],
        "arn:aws-cn:iam::111122223333:root"
    );
    assert_eq!(
        p["Statement"][1]["Principal"]["AWS"],
        "arn:aws-cn:iam::111122223333:role/ops/sigil-parent"
    );
}
