//! The image is reproducible: a second build from a copy of the sources in another directory,
//! with its own target directory, gives the same EIF bytes.

mod common;

#[test]
fn a_second_build_in_another_directory_gives_the_same_eif() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(root.join("reproducible-build/check-reproducible"))
        .output()
        .expect("run check-reproducible");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON result");
    assert_eq!(v["first"], v["second"]);
    assert_eq!(v["first"].as_str().unwrap().len(), 64);
}
