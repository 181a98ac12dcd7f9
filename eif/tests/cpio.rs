//! The initramfs writer against GNU cpio (which `scripts/setup` installs: these tests fail,
//! rather than pass unchecked, without it) and its determinism.

use sigil_eif::cpio::{Entry, gzip, write_newc};
use std::io::{Read, Write};
use std::process::{Command, Stdio};

fn entries() -> Vec<Entry> {
    vec![
        Entry::Dir {
            path: "/dev".into(),
            mode: 0o755,
        },
        Entry::Dir {
            path: "bin".into(),
            mode: 0o755,
        },
        Entry::Dir {
            path: "etc".into(),
            mode: 0o700,
        },
        Entry::File {
            path: "init".into(),
            mode: 0o755,
            data: b"#!/bin/sh\nexec app\n".to_vec(),
        },
        Entry::File {
            path: "etc/empty".into(),
            mode: 0o600,
            data: Vec::new(),
        },
        Entry::File {
            path: "bin/app".into(),
            mode: 0o750,
            data: (0..5000u32).map(|i| (i * 7) as u8).collect(),
        },
        Entry::CharDev {
            path: "dev/console".into(),
            mode: 0o600,
            major: 5,
            minor: 1,
        },
        Entry::Symlink {
            path: "bin/sh".into(),
            target: "app".into(),
        },
    ]
}

/// GNU cpio's listing (`cpio ARGS`) of the archive of `entries()`, which it must accept.
fn gnu_cpio_listing(args: &[&str]) -> String {
    let (ok, out, err) = cpio(args, &write_newc(&entries()).unwrap());
    assert!(ok, "cpio {} failed: {err}", args[0]);
    out
}

const MISSING: &str = "the initramfs cannot be checked against GNU cpio without it; run \
                       scripts/setup (Debian package `cpio`)";

/// Runs GNU `cpio ARGS` with `input` on stdin. A missing cpio, or another implementation
/// (whose listing format differs), fails the test.
fn cpio(args: &[&str], input: &[u8]) -> (bool, String, String) {
    let version = Command::new("cpio")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run cpio ({e}): {MISSING}"));
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.contains("GNU cpio"),
        "cpio is not GNU cpio ({:?}): {MISSING}",
        version.lines().next().unwrap_or_default()
    );
    let mut child = Command::new("cpio")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running cpio: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn same_entries_in_any_order_give_same_bytes() {
    let a = write_newc(&entries()).unwrap();
    let mut rev = entries();
    rev.reverse();
    assert_eq!(a, write_newc(&rev).unwrap());
    let mut rot = entries();
    rot.rotate_left(3);
    assert_eq!(a, write_newc(&rot).unwrap());
    assert_eq!(a.len() % 4, 0);
}

#[test]
fn gnu_cpio_lists_in_sorted_order() {
    let out = gnu_cpio_listing(&["-t", "--quiet"]);
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(
        names,
        [
            "bin",
            "bin/app",
            "bin/sh",
            "dev",
            "dev/console",
            "etc",
            "etc/empty",
            "init"
        ]
    );
}

#[test]
fn gnu_cpio_verbose_listing_shows_console_and_metadata() {
    let out = gnu_cpio_listing(&["-tv", "--quiet"]);
    let line = |name: &str| {
        out.lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not in listing:\n{out}"))
            .to_string()
    };
    let console = line(" dev/console");
    assert!(console.starts_with("crw-------"), "{console}");
    let cols: Vec<&str> = console.split_whitespace().collect();
    // mode nlink owner group "5," "1" month day year name
    assert_eq!(
        &cols[..6],
        ["crw-------", "1", "root", "root", "5,", "1"],
        "{console}"
    );
    assert!(console.contains("1970"), "mtime 0: {console}");
    assert!(line(" bin/sh -> app").starts_with("lrwxrwxrwx"));
    assert!(line(" etc").starts_with("drwx------"));
    let app = line(" bin/app");
    assert!(
        app.starts_with("-rwxr-x---") && app.contains(" 5000 "),
        "{app}"
    );
}

#[test]
fn gnu_cpio_extracts_the_contents() {
    // No device node here: extraction stays free of mknod privileges.
    let list: Vec<Entry> = entries()
        .into_iter()
        .filter(|e| !matches!(e, Entry::CharDev { .. }))
        .collect();
    let a = write_newc(&list).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, _, err) = cpio(
        &["-i", "-d", "--quiet", "--no-absolute-filenames", "-D", d],
        &a,
    );
    assert!(ok, "cpio -i failed: {err}");
    for e in &list {
        if let Entry::File { path, data, mode } = e {
            let p = dir.path().join(path);
            assert_eq!(&std::fs::read(&p).unwrap(), data, "{path}");
            use std::os::unix::fs::PermissionsExt;
            let got = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
            assert_eq!(got, *mode, "{path}");
        }
    }
    assert_eq!(
        std::fs::read_link(dir.path().join("bin/sh")).unwrap(),
        std::path::Path::new("app")
    );
}

#[test]
fn gzip_is_deterministic_and_decompresses() {
    let a = write_newc(&entries()).unwrap();
    let z1 = gzip(&a);
    let z2 = gzip(&a);
    assert_eq!(z1, z2);
    // Fixed header: magic, deflate, no flags, mtime 0, OS = Unix.
    assert_eq!(&z1[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&z1[4..8], &[0, 0, 0, 0]);
    assert_eq!(z1[9], 3);
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&z1[..])
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, a);
    assert!(z1.len() < a.len());
}
