//! `ARCHITECTURE.md` is a map a newcomer trusts: every crate and path it names must exist, and
//! every crate of the workspace must be on it. A renamed module or a new crate that the map
//! does not follow fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// Every `code span` of the document.
fn code_spans(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Odd-numbered pieces between backticks are the spans of the line.
        spans.extend(
            line.split('`')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s.to_string()),
        );
    }
    spans
}

/// `(package name, directory)` of every workspace member, from the manifests.
fn members() -> Vec<(String, String)> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let start = manifest.find("members = [").expect("members list");
    let end = start + manifest[start..].find(']').expect("end of members");
    manifest[start + "members = [".len()..end]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .map(|dir| {
            let text = std::fs::read_to_string(root().join(&dir).join("Cargo.toml"))
                .unwrap_or_else(|e| panic!("{dir}/Cargo.toml: {e}"));
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("name = "))
                .unwrap_or_else(|| panic!("{dir}/Cargo.toml has no name"))
                .trim_matches('"')
                .to_string();
            (name, dir)
        })
        .collect()
}

#[test]
fn every_path_and_crate_named_exists_and_every_crate_is_named() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let spans = code_spans(&text);
    let members = members();
    let names: BTreeSet<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    let mut wrong = Vec::new();
    for span in &spans {
        // A path: relative to the workspace root, with a slash (`enclave-image/src/api/`) or a
        // file name with an extension we keep in the tree.
        let looks_like_path = span.contains('/') && !span.contains(' ') && !span.contains("::");
        if looks_like_path && !span.starts_with('/') && !span.contains("{") {
            if !root().join(span.trim_end_matches('/')).exists() {
                wrong.push(format!("path `{span}` does not exist"));
            }
        } else if span.starts_with("sigil-") && !span.contains(' ') {
            // Crate names; binaries with the same prefix are named by their crate's table.
            let bins = ["sigil-harness"];
            if !names.contains(span.as_str()) && !bins.contains(&span.as_str()) {
                wrong.push(format!("crate `{span}` is not a workspace member"));
            }
        }
    }
    for (name, dir) in &members {
        if !spans.iter().any(|s| s == name) {
            wrong.push(format!(
                "workspace crate `{name}` ({dir}/) is not on the map"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "ARCHITECTURE.md disagrees with the tree:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_span_reader_finds_what_the_check_relies_on() {
    let spans = code_spans("a `x/y` b `sigil-z` c\n```\n`not/this`\n```\n`last`");
    assert_eq!(spans, ["x/y", "sigil-z", "last"]);
}

/// Every `.rs` file of the workspace, outside build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() {
            if name != "target"
                && name != "node_modules"
                && !name.to_string_lossy().starts_with('.')
            {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The workspace lints deny `unsafe_code`; an `allow` can lift that anywhere, so the places
/// that may lift it are listed here: the system crate, PID 1's mount and power-off calls, and
/// the allocator of the test that looks for secrets left in freed memory.
#[test]
fn unsafe_code_is_allowed_only_in_the_system_layer() {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    // Built here so that this file does not match itself.
    let needle = ["allow(", "unsafe_code)"].concat();
    let mut found = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(&root)
            .unwrap_or(f)
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let n = text.matches(needle.as_str()).count();
        if n > 0 && !rel.starts_with("sys/") {
            found.push((rel, n));
        }
    }
    assert_eq!(
        found,
        [
            ("enclave-image/src/init/system.rs".to_string(), 2),
            ("protocol/tests/no_secret_copies.rs".to_string(), 1)
        ],
        "unsafe code allowed outside the system layer"
    );
    assert!(
        files.len() > 100,
        "the walk found only {} files",
        files.len()
    );
}
