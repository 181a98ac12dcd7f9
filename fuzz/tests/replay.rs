//! Replays the committed seeds (`corpus/`), every crash found so far (`regressions/`) and the
//! shared vectors named in `shared-seeds.txt` through the targets, without AFL: what the
//! fuzzer once broke stays fixed in ordinary CI.

use std::fs;
use std::path::{Path, PathBuf};

use sigil_fuzz::TARGETS;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir` (none if it does not exist), sorted for a stable order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("reading a corpus folder").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn replay(folder: &str) -> usize {
    let mut n = 0;
    for t in TARGETS {
        for f in files(&root().join(folder).join(t.name)) {
            let data = fs::read(&f).expect("reading an input");
            // A panic names the input through the test's output.
            eprintln!("{}: {}", t.name, f.display());
            (t.run)(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn every_target_has_seeds_and_they_run() {
    for t in TARGETS {
        assert!(
            !files(&root().join("corpus").join(t.name)).is_empty(),
            "{} has no seeds (cargo run --bin make-seeds)",
            t.name
        );
    }
    assert!(replay("corpus") > 0);
}

#[test]
fn regressions_stay_fixed() {
    replay("regressions");
}

#[test]
fn shared_vectors_run() {
    let vectors = root().join("../../shared/vectors");
    let list = fs::read_to_string(root().join("shared-seeds.txt")).expect("shared-seeds.txt");
    for line in list
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let [target, selector, path] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            panic!("bad line {line:?}");
        };
        let t = TARGETS
            .iter()
            .find(|t| t.name == target)
            .unwrap_or_else(|| panic!("unknown target {target}"));
        let bytes = fs::read(vectors.join(path))
            .unwrap_or_else(|e| panic!("{path}: {e} (the shared vectors sit beside the checkout)"));
        let data = match selector {
            "-" => bytes,
            s => [vec![s.parse::<u8>().expect("selector")], bytes].concat(),
        };
        (t.run)(&data);
    }
}

#[test]
fn every_target_has_a_binary() {
    for t in TARGETS {
        let bin = root().join("src/bin").join(format!("{}.rs", t.name));
        assert!(bin.is_file(), "{} has no AFL driver", t.name);
    }
}
