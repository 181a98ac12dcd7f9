//! The enclave binary that goes into the image is statically linked: no ELF interpreter and
//! no DT_NEEDED entries, so nothing outside it is loaded at run time.

mod common;

#[test]
fn enclave_binary_is_static() {
    let path = common::static_enclave();
    assert!(
        path.exists(),
        "{} is missing: scripts/test builds it with reproducible-build/build",
        path.display()
    );
    let bytes = std::fs::read(&path).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).expect("an ELF file");
    assert!(elf.is_64);
    assert_eq!(elf.interpreter, None, "has a PT_INTERP: dynamically linked");
    assert!(
        elf.libraries.is_empty(),
        "DT_NEEDED entries: {:?}",
        elf.libraries
    );
    // And it runs with no loader at all.
    let out = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sigil-enclave "));
}
