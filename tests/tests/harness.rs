//! The built image booted in the QEMU harness: heartbeat, attestation from inside the VM,
//! an encapsulated round trip through guest vsock, logs on the log port, clean stop.

mod common;

use sigil_e2e::harness::{Harness, Options};

fn eif() -> std::path::PathBuf {
    let p = common::target_dir().join("eif/sigil.eif");
    assert!(
        p.exists(),
        "{} is missing: scripts/test builds it with reproducible-build/build",
        p.display()
    );
    p
}

#[test]
fn the_image_boots_attests_and_answers_sealed_requests() {
    let mut h = Harness::boot(&Options::new(eif())).unwrap_or_else(|e| panic!("boot: {e}"));
    eprintln!(
        "booted in {} ms with {:?}",
        h.boot_time.as_millis(),
        h.accel
    );

    let out = common::sigil(&["attest", "--endpoint", &h.endpoint, "--trust-test-root"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["image"]["mode"], "harness");
    assert_eq!(v["root"], "sigil-test-root");
    assert!(v["module_id"].as_str().unwrap().contains("simulated"));

    let refused = common::sigil(&["attest", "--endpoint", &h.endpoint]);
    assert_eq!(refused.status.code(), Some(1));

    let out = common::sigil(&[
        "ping",
        "--endpoint",
        &h.endpoint,
        "--trust-test-root",
        "--message",
        "through vsock",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["message"], "through vsock");

    // The enclave's own log stream reached the parent's log port.
    let mut seen = false;
    for _ in 0..50 {
        if h.logs()
            .iter()
            .any(|l| l.contains("heartbeat acknowledged"))
        {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        seen,
        "log port got: {:?}\nconsole:\n{}",
        h.logs(),
        h.console_tail(40)
    );
    assert!(h.logs().iter().any(|l| l.contains("HARNESS MODE")));

    assert!(h.running());
    h.shutdown();
    assert!(!h.running());
}

/// A parent that answers the heartbeat wrongly is not the parent the enclave expects: PID 1
/// logs why and powers the machine off (QEMU exits by itself), it does not hang or serve.
#[test]
fn a_wrong_heartbeat_answer_powers_the_enclave_off() {
    let mut opts = Options::new(eif());
    opts.heartbeat_reply = 0x00;
    opts.boot_timeout = std::time::Duration::from_secs(60);
    let err = match Harness::boot(&opts) {
        Ok(_) => panic!("the enclave served after a wrong heartbeat answer"),
        Err(e) => e,
    };
    assert!(err.contains("QEMU exited (exit status: 0)"), "{err}");
    assert!(err.contains("heartbeat answered 0x00"), "{err}");
    assert!(err.contains("powering off"), "{err}");
}
