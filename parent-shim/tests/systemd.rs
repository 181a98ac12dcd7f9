//! The unit file is checked by systemd itself when systemd-analyze is installed.

use std::path::Path;
use std::process::Command;

#[test]
fn unit_verifies() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/sigil-shim.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for required in [
        "DynamicUser=yes",
        "StateDirectory=sigil",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_VSOCK",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "After=sigil-enclave.service",
    ] {
        assert!(text.contains(required), "unit lacks {required:?}");
    }
    // Verify a copy whose ExecStart names the binary just built (the real path,
    // /usr/local/bin/sigil-shim, does not exist on a build machine), next to the enclave unit
    // it orders itself after; everything else is verified byte for byte as shipped.
    let dir = std::env::temp_dir().join(format!("sigil-shim-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("sigil-shim.service");
    std::fs::write(
        &copy,
        text.replace(
            "/usr/local/bin/sigil-shim",
            env!("CARGO_BIN_EXE_sigil-shim"),
        ),
    )
    .unwrap();
    std::fs::copy(
        unit.with_file_name("sigil-enclave.service"),
        dir.join("sigil-enclave.service"),
    )
    .unwrap();
    let Ok(out) = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
    else {
        eprintln!("systemd-analyze not installed: skipping verify");
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}
