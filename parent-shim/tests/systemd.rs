//! The unit files, checked by systemd itself (`systemd-analyze`, which `scripts/setup`
//! installs: these tests fail, rather than pass unchecked, without it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(name)
}

fn unit_text(name: &str) -> String {
    std::fs::read_to_string(unit_path(name)).unwrap()
}

/// `systemd-analyze ARGS`; a missing tool fails the test, naming how to get it.
fn systemd_analyze(args: &[&str], files: &[&Path]) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run systemd-analyze ({e}): the unit files cannot be checked without it; \
                 run scripts/setup (Debian package `systemd`)"
            )
        })
}

/// A scratch directory for unit copies, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sigil-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `systemd-analyze verify` must succeed without a word of complaint.
fn assert_verifies(files: &[&Path]) {
    let out = systemd_analyze(&["verify", "--man=no"], files);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

/// The overall exposure `systemd-analyze security --offline=true` gives the unit file (0 is
/// best, 10 worst).
fn exposure(file: &Path) -> f64 {
    let out = systemd_analyze(&["security", "--offline=true", "--no-pager"], &[file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze security: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "→ Overall exposure level for NAME: 1.1 OK 🙂"
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{stdout}"));
    let after = line.rsplit_once(": ").map(|(_, s)| s).unwrap_or_default();
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unparsable exposure line {line:?}"))
}

/// The value of every `KEY=` line of a unit, continuation lines joined (as systemd does).
fn settings(text: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(mut acc) = current.take() {
            match line.strip_suffix('\\') {
                Some(part) => {
                    acc.push_str(part);
                    current = Some(acc);
                }
                None => {
                    acc.push_str(line);
                    out.push(acc);
                }
            }
            continue;
        }
        if let Some(v) = line.strip_prefix(&format!("{key}=")) {
            match v.strip_suffix('\\') {
                Some(part) => current = Some(part.to_string()),
                None => out.push(v.to_string()),
            }
        }
    }
    out
}

/// systemd's expansion of a command line: `${VAR}` from `env`, words split on whitespace (the
/// unit's values hold no spaces or quotes; the test refuses any that do).
fn expand(command: &str, env: &[(String, String)]) -> Vec<String> {
    assert!(
        !command.contains(['"', '\'']),
        "quoting not handled: {command}"
    );
    command
        .split_whitespace()
        .map(|word| {
            let mut w = word.to_string();
            for (k, v) in env {
                w = w.replace(&format!("${{{k}}}"), v);
            }
            assert!(!w.contains('$'), "unexpanded variable in {word:?}");
            w
        })
        .collect()
}

/// `KEY=VALUE` lines of an environment file.
fn env_file(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn shim_unit_verifies() {
    let text = unit_text("sigil-shim.service");
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
    let dir = Scratch::new("shim-unit");
    let copy = dir.write(
        "sigil-shim.service",
        &text.replace(
            "/usr/local/bin/sigil-shim",
            env!("CARGO_BIN_EXE_sigil-shim"),
        ),
    );
    dir.write("sigil-enclave.service", &unit_text("sigil-enclave.service"));
    assert_verifies(&[&copy]);
}

/// The enclave unit as shipped, with `/usr/bin/nitro-cli` (absent on a build machine) replaced
/// by `stub`, next to a stand-in for the allocator unit it requires.
fn enclave_unit_copy(dir: &Scratch, stub: &str) -> PathBuf {
    dir.write(
        "nitro-enclaves-allocator.service",
        "[Unit]\nDescription=stand-in for the Nitro Enclaves allocator\n\n\
         [Service]\nType=oneshot\nExecStart=/bin/true\n",
    );
    dir.write(
        "sigil-enclave.service",
        &unit_text("sigil-enclave.service").replace("/usr/bin/nitro-cli", stub),
    )
}

#[test]
fn enclave_unit_verifies() {
    let dir = Scratch::new("enclave-unit");
    let stub = dir.write("nitro-cli", "#!/bin/sh\nexit 0\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = enclave_unit_copy(&dir, stub.to_str().unwrap());
    assert_verifies(&[&copy]);
}

/// The hardened unit still runs nitro-cli with the enclave's command line, built from the
/// settings file, and keeps what nitro-cli needs inside its sandbox.
#[test]
fn enclave_unit_runs_the_enclave_command_line_with_what_nitro_cli_needs() {
    let text = unit_text("sigil-enclave.service");
    let env = env_file(&unit_path("enclave.env.example"));
    let start = settings(&text, "ExecStart");
    assert_eq!(start.len(), 1, "{start:?}");
    assert_eq!(
        expand(&start[0], &env),
        [
            "/usr/bin/nitro-cli",
            "run-enclave",
            "--enclave-name",
            "sigil",
            "--eif-path",
            "/opt/sigil/sigil.eif",
            "--cpu-count",
            "2",
            "--memory",
            "1024",
            "--enclave-cid",
            "16",
        ]
    );
    let stop = settings(&text, "ExecStop");
    assert_eq!(
        expand(&stop[0], &env),
        [
            "/usr/bin/nitro-cli",
            "terminate-enclave",
            "--enclave-name",
            "sigil"
        ]
    );
    assert_eq!(
        settings(&text, "EnvironmentFile"),
        ["/etc/sigil/enclave.env"]
    );
    // What run-enclave touches: the Nitro Enclaves device (group `ne`), its log directory,
    // the socket of the enclave process it leaves behind, vsock for the boot heartbeat, and a
    // Unix socket for terminate-enclave.
    let one = |key: &str| {
        let v = settings(&text, key);
        assert_eq!(v.len(), 1, "{key}: {v:?}");
        v[0].clone()
    };
    assert_eq!(one("SupplementaryGroups"), "ne");
    assert_eq!(one("DeviceAllow"), "/dev/nitro_enclaves rw");
    assert_eq!(one("BindPaths"), "/dev/nitro_enclaves");
    assert_eq!(
        one("ReadWritePaths"),
        "/var/log/nitro_enclaves /run/nitro_enclaves"
    );
    assert_eq!(one("RestrictAddressFamilies"), "AF_UNIX AF_VSOCK");
    // Hugepage-backed enclave memory is mapped read-write, never executable.
    assert_eq!(one("MemoryDenyWriteExecute"), "yes");
    assert_eq!(one("RemainAfterExit"), "yes");
}

/// `systemd-analyze security` exposure of the enclave unit, as systemd 252 rates it (it was
/// 9.6, UNSAFE, running nitro-cli as root with everything open).
#[test]
fn enclave_unit_exposure_is_at_most_1_1() {
    let e = exposure(&unit_path("sigil-enclave.service"));
    assert!(e <= 1.1, "sigil-enclave.service exposure {e} > 1.1");
}

#[test]
fn shim_unit_exposure_is_at_most_1_3() {
    let e = exposure(&unit_path("sigil-shim.service"));
    assert!(e <= 1.3, "sigil-shim.service exposure {e} > 1.3");
}
