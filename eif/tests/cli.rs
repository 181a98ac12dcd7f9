//! The `sigil-eif` binary end to end.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil-eif"))
        .args(args)
        .output()
        .unwrap()
}

fn ok_json(args: &[&str]) -> serde_json::Value {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Exit 1 with exactly one line on stderr.
fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(o.status.code(), Some(1), "{args:?}");
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.starts_with("sigil-eif: "), "{err:?}");
    err
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn check_measurements(v: &serde_json::Value, name: &str) {
    let e = &expected()[name];
    assert_eq!(v["HashAlgorithm"], "Sha384 { ... }");
    for k in ["PCR0", "PCR1", "PCR2"] {
        assert_eq!(v[k], e[k], "{name} {k}");
    }
}

/// eif_build's command line from expected.json, with our equivalents for its metadata
/// defaults, gives the identical file.
#[test]
fn build_reproduces_both_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let cmdline = cmdline();
    let kernel = vector_path("kernel.bin");
    let config = vector_path("kernel.config");
    let r1 = vector_path("ramdisk1.bin");
    let r2 = vector_path("ramdisk2.bin");
    for (name, rds) in [(ONE, vec![&r1]), (TWO, vec![&r1, &r2])] {
        let out = tmp.path().join(name);
        let mut args = vec![
            "build",
            "--kernel",
            p(&kernel),
            "--kernel-config",
            p(&config),
            "--cmdline",
            &cmdline,
            "--output",
            p(&out),
            "--build-time",
            "1970-01-01T00:00:00+00:00",
            "--build-tool",
            "eif_build",
            "--build-tool-version",
            "0.2.1",
        ];
        for r in &rds {
            args.extend(["--ramdisk", p(r)]);
        }
        let v = ok_json(&args);
        check_measurements(&v["Measurements"], name);
        assert!(std::fs::read(&out).unwrap() == read(name), "{name} differs");
    }
}

#[test]
fn build_with_verbatim_metadata_then_extract_and_describe() {
    let tmp = tempfile::tempdir().unwrap();
    let ex = tmp.path().join("golden");
    let v = ok_json(&["extract", p(&vector_path(TWO)), "--out", p(&ex)]);
    assert_eq!(v["Written"].as_array().unwrap().len(), 5);
    for (extracted, vector) in [
        ("kernel", "kernel.bin"),
        ("cmdline", "cmdline.txt"),
        ("ramdisk1", "ramdisk1.bin"),
        ("ramdisk2", "ramdisk2.bin"),
    ] {
        assert_eq!(
            std::fs::read(ex.join(extracted)).unwrap(),
            read(vector),
            "{extracted}"
        );
    }
    assert!(!ex.join("ramdisk3").exists());

    // Rebuild from what was extracted, metadata used verbatim.
    let out = tmp.path().join("re.eif");
    let v = ok_json(&[
        "build",
        "--kernel",
        p(&ex.join("kernel")),
        "--cmdline",
        &cmdline(),
        "--ramdisk",
        p(&ex.join("ramdisk1")),
        "--ramdisk",
        p(&ex.join("ramdisk2")),
        "--metadata",
        p(&ex.join("metadata.json")),
        "--output",
        p(&out),
    ]);
    check_measurements(&v["Measurements"], TWO);
    assert!(std::fs::read(&out).unwrap() == read(TWO));

    let d = ok_json(&["describe", p(&out)]);
    assert_eq!(d["EifVersion"], 4);
    assert_eq!(d["IsSigned"], false);
    assert_eq!(d["CheckCRC"], true);
    check_measurements(&d["Measurements"], TWO);
    assert_eq!(d["Sections"].as_array().unwrap().len(), 5);
    assert_eq!(d["Metadata"]["ImageName"], "kernel.bin");
}

#[test]
fn pcrs_command() {
    let v = ok_json(&[
        "pcrs",
        "--kernel",
        p(&vector_path("kernel.bin")),
        "--cmdline",
        &cmdline(),
        "--ramdisk",
        p(&vector_path("ramdisk1.bin")),
    ]);
    check_measurements(&v["Measurements"], ONE);
}

#[test]
fn build_header_options_and_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.eif");
    let rd = tmp.path().join("rd");
    std::fs::write(&rd, b"ramdisk").unwrap();
    let build = |out: &std::path::Path| {
        ok_json(&[
            "build",
            "--kernel",
            p(&vector_path("kernel.bin")),
            "--cmdline",
            "console=ttyS0",
            "--ramdisk",
            p(&rd),
            "--output",
            p(out),
            "--memory",
            "512",
            "--cpus",
            "4",
            "--arch",
            "aarch64",
        ]);
    };
    build(&out);
    let d = ok_json(&["describe", p(&out)]);
    assert_eq!(d["DefaultMemory"], 512u64 << 20);
    assert_eq!(d["DefaultCpus"], 4);
    assert_eq!(d["Arch"], "aarch64");
    // Metadata defaults: kernel file name, this tool, the epoch, no kernel config.
    assert_eq!(d["ImageName"], "kernel.bin");
    assert_eq!(d["Metadata"]["BuildMetadata"]["BuildTool"], "sigil-eif");
    assert_eq!(
        d["Metadata"]["BuildMetadata"]["BuildTime"],
        "1970-01-01T00:00:00+00:00"
    );
    // Same inputs, same bytes.
    let out2 = tmp.path().join("y.eif");
    build(&out2);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());
}

#[test]
fn cpio_command_matches_library() {
    use sigil_eif::cpio::{Entry, gzip, write_newc};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("init.sh");
    std::fs::write(&src, b"#!/bin/sh\n").unwrap();
    let out = tmp.path().join("a.cpio.gz");
    let file_spec = format!("init={}:0755", p(&src));
    let o = run(&[
        "cpio",
        "--out",
        p(&out),
        "--gzip",
        "--dir",
        "dev:0755",
        "--file",
        &file_spec,
        "--char",
        "dev/console:5:1:0600",
        "--symlink",
        "sh=init",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = write_newc(&[
        Entry::Dir {
            path: "dev".into(),
            mode: 0o755,
        },
        Entry::File {
            path: "init".into(),
            mode: 0o755,
            data: b"#!/bin/sh\n".to_vec(),
        },
        Entry::CharDev {
            path: "dev/console".into(),
            mode: 0o600,
            major: 5,
            minor: 1,
        },
        Entry::Symlink {
            path: "sh".into(),
            target: "init".into(),
        },
    ])
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), gzip(&want));
}

#[test]
fn failures_are_one_line_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk");
    std::fs::write(&junk, vec![0u8; 1000]).unwrap();
    assert!(fails(&["describe", p(&junk)]).contains("not an EIF"));
    let mut bad = read(TWO);
    bad[80_000] ^= 1;
    let bad_path = tmp.path().join("bad.eif");
    std::fs::write(&bad_path, &bad).unwrap();
    assert!(fails(&["describe", p(&bad_path)]).contains("CRC mismatch"));
    assert!(fails(&["extract", p(&bad_path), "--out", p(&tmp.path().join("o"))]).contains("CRC"));
    assert!(
        !tmp.path().join("o").exists(),
        "nothing extracted from a bad image"
    );
    let short = tmp.path().join("short.eif");
    std::fs::write(&short, &read(TWO)[..90_000]).unwrap();
    assert!(fails(&["describe", p(&short)]).contains("past the end"));
    fails(&["describe", p(&tmp.path().join("missing"))]);
    fails(&[
        "cpio",
        "--out",
        p(&tmp.path().join("c")),
        "--dir",
        "a/../b:0755",
    ]);
    fails(&[
        "build",
        "--kernel",
        p(&vector_path("kernel.bin")),
        "--cmdline",
        "x",
        "--ramdisk",
        p(&vector_path("ramdisk1.bin")),
        "--metadata",
        p(&junk),
        "--output",
        p(&tmp.path().join("m.eif")),
    ]);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["build", "--kernel", "k"],
        &["cpio", "--out", "x", "--dir", "nomode"],
        &["cpio", "--out", "x", "--char", "dev/console:5:1:999"],
        &[
            "build",
            "--kernel",
            "k",
            "--cmdline",
            "c",
            "--ramdisk",
            "r",
            "--output",
            "o",
            "--metadata",
            "m",
            "--build-time",
            "t",
        ],
    ] {
        assert_eq!(run(args).status.code(), Some(2), "{args:?}");
    }
}
