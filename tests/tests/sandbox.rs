//! The prover's sandbox (`sigil_sys::sandbox`) on its own: a hostile stand-in for bb run in it
//! the way the enclave runs bb finds every door shut and can still do its work. The same
//! program runs through the enclave in `prove.rs` (`a_hostile_prover_in_the_enclave_...`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{DOORS, assert_doors_shut, hostile_bb};
use sigil_sys::sandbox::{SANDBOX_GID, SANDBOX_UID, Sandbox, Spec};

fn give(p: &Path) {
    std::os::unix::fs::chown(p, Some(SANDBOX_UID), Some(SANDBOX_GID)).unwrap();
}

#[test]
fn a_hostile_prover_finds_every_door_shut_and_can_write_its_job_directory() {
    let dir = common::fresh_dir("test-sandbox", "direct");
    // The layout of the enclave's state: job directories side by side, the checked CRS that
    // each job links to, a device standing in for the NSM.
    let jobs = dir.join("jobs");
    let job = jobs.join("job-1");
    let other = jobs.join("job-2");
    for d in [
        &job,
        &other,
        &job.join("crs"),
        &dir.join("crs"),
        &dir.join("root"),
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(other.join("witness.gz"), b"another client's witness").unwrap();
    let crs = dir.join("crs/bn254_g1.dat");
    std::fs::write(&crs, [7u8; 64]).unwrap();
    std::fs::set_permissions(&crs, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::os::unix::fs::symlink(&crs, job.join("crs/bn254_g1.dat")).unwrap();
    let nsm = dir.join("nsm");
    std::fs::write(&nsm, b"stand-in for /dev/nsm").unwrap();
    std::fs::set_permissions(&nsm, std::fs::Permissions::from_mode(0o600)).unwrap();
    let doors = serde_json::json!({
        "nsm": ["/dev/nsm", nsm],
        "secrets": [other.join("witness.gz")],
        "pids": [std::process::id()],
        "write_dirs": [jobs, dir.join("crs"), dir],
    });
    std::fs::write(job.join("doors.json"), doors.to_string()).unwrap();
    give(&job);
    give(&job.join("crs"));
    give(&job.join("doors.json"));
    // A descriptor this process holds without close-on-exec, as the enclave might hold the
    // NSM device: it must not reach the sandboxed program.
    let held = nix::fcntl::open(
        &nsm,
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();

    let hostile = hostile_bb();
    let sandbox = Sandbox::new().expect("the tests run as root");
    let mut cmd = Command::new(&hostile);
    cmd.args(["prove", "-b", "doors.json", "-o", "out"])
        .current_dir(&job)
        .env_clear();
    let bin_dir = hostile.parent().unwrap();
    sandbox
        .apply(
            &mut cmd,
            &Spec {
                root: &dir.join("root"),
                writable: &job,
                read_only: &[bin_dir, &crs],
            },
        )
        .unwrap();
    let out = cmd.output().unwrap();
    drop(held);
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read(job.join("out/proof")).unwrap();
    assert_doors_shut(&report, DOORS);
    // And nothing it tried left a trace outside its directory.
    assert_eq!(std::fs::read(&crs).unwrap(), [7u8; 64]);
    assert!(
        std::fs::read_dir(dir.join("root"))
            .unwrap()
            .next()
            .is_none()
    );
}
