//! The PID-1 runtime: what `/init` does in the enclave image (on Nitro and in the QEMU
//! harness) before and while it serves.
//!
//! Order: mount the pseudo file systems, make `/dev/nsm` root's alone (0600) and the root
//! file system read-only; switch logging to the bounded ring and the
//! non-blocking console; start reaping; pick the NSM (real, or simulated in the harness, which
//! is said loudly); wait for the kernel's entropy; read the measured configuration; start
//! fetching the data key (in the background); bind the API; send the heartbeat; serve. Any failure logs its reason and powers the machine off:
//! a half-started enclave that hangs is worse than one that visibly stops.

mod heartbeat;
mod logs;
pub mod reaper;
mod system;
pub mod timeline;

pub use heartbeat::HeartbeatError;

use std::sync::Arc;
use std::time::Duration;

use sigil_protocol::ports;
use sigil_sys::addr::VMADDR_CID_ANY;
use sigil_sys::signals::SignalSet;
use sigil_sys::{Addr, Listener, VsockAddr};

use crate::boot;
use crate::boot::BootError;
use crate::boot::config::MeasuredConfig;
use crate::log;
use crate::nsm::{HardwareNsm, Mode, Nsm, SimulatedNsm, hardware_device};
use crate::parent::ParentServices;

/// Runs as PID 1. Never returns: the machine powers off when serving ends or fails.
pub fn run() -> ! {
    timeline::mark("pid1");
    // Before any thread exists, so every thread inherits the mask and only the reaper
    // takes SIGCHLD.
    let sigchld = reaper::block_sigchld();
    match boot(sigchld) {
        Ok(()) => log::warn(format_args!("the service stopped; powering off")),
        Err(e) => log::warn(format_args!("fatal: {e}; powering off")),
    }
    // Give the log forwarder a moment to pass the reason on.
    std::thread::sleep(Duration::from_millis(500));
    system::power_off()
}

fn boot(sigchld: Result<SignalSet, BootError>) -> Result<(), BootError> {
    let mut mount_errors = Vec::new();
    for m in system::MOUNTS {
        if let Err(e) = system::mount(m) {
            mount_errors.push(e.to_string());
        }
    }
    timeline::mark("mounted");
    let console = system::open_console().ok();
    let ring = log::use_ring(console);
    // A panic anywhere is logged through the ring (stderr goes nowhere from here on).
    std::panic::set_hook(Box::new(|p| log::warn(format_args!("panic: {p}"))));
    if let Err(e) = system::detach_stdio() {
        log::warn(format_args!("stdio: {e}"));
    }
    log::info(format_args!(
        "sigil-enclave {} starting as PID 1",
        env!("CARGO_PKG_VERSION")
    ));
    // The NSM device is root's alone (threat: any other user of the image, such as the
    // prover's sandbox user, asking it for attestations or randomness), and nothing on the
    // root file system (the initramfs: /init, bb, libc) may change while the enclave serves
    // (threat: a compromised child replacing bb or libc for later jobs). What the enclave
    // writes lives on the separate tmpfs mounts /run and /tmp.
    if let Err(e) = system::restrict_nsm(hardware_device()) {
        mount_errors.push(e.to_string());
    }
    if let Err(e) = sigil_sys::fs::remount_read_only(std::path::Path::new("/")) {
        mount_errors.push(format!("remounting / read-only: {e}"));
    }
    if !mount_errors.is_empty() {
        return Err(BootError::Mount(mount_errors.join("; ")));
    }
    reaper::start(sigchld?)?;
    timeline::mark("locked-down");

    let (nsm, parent_cid): (Arc<dyn Nsm>, u32) = if std::path::Path::new(hardware_device()).exists()
    {
        let nsm = HardwareNsm::open()?;
        // Prove the device answers before serving anything that depends on it.
        nsm.random(32).map_err(BootError::NsmSilent)?;
        log::info(format_args!("mode nitro: hardware NSM"));
        (Arc::new(nsm), ports::NITRO_PARENT_CID)
    } else {
        log::warn(format_args!(
            "no {}: HARNESS MODE, attestation documents are simulated under the sigil test root (not AWS) with zero PCRs",
            hardware_device()
        ));
        let nsm = SimulatedNsm::new(Mode::Harness)?;
        (Arc::new(nsm), ports::HARNESS_HOST_CID)
    };
    timeline::mark("nsm");

    let config = MeasuredConfig::load()?;
    timeline::mark("config");
    logs::start(
        ring,
        VsockAddr {
            cid: parent_cid,
            port: config.log_port,
        },
    )?;
    let waited = system::wait_for_entropy(Duration::from_secs(60))?;
    timeline::mark("entropy");
    log::info(format_args!(
        "kernel entropy ready after {} ms",
        waited.as_millis()
    ));

    let addr = Addr::Vsock(VsockAddr {
        cid: VMADDR_CID_ANY,
        port: config.api_port,
    });
    let listener = Listener::bind(&addr).map_err(BootError::Listen)?;
    timeline::mark("listening");
    let limits = config.limits();
    let services = ParentServices::vsock(parent_cid);
    let (server, app) = boot::assemble(boot::Parts {
        nsm,
        config,
        limits,
        listener,
        blobs: Some(services.blobs.clone()),
        sealing_services: Some(services),
        // tmpfs: memory-backed, gone at power-off.
        state_dir: std::path::PathBuf::from("/run/sigil"),
        bb: Vec::new(),
        jobs_fs: true,
    })?;
    // The listener is bound before the heartbeat: once nitro-cli (or the harness) sees the
    // heartbeat, connections to the API are accepted.
    heartbeat::send(parent_cid)?;
    timeline::mark("heartbeat");
    log::info(format_args!(
        "heartbeat acknowledged by CID {parent_cid}; serving on {addr}"
    ));
    log::info(format_args!("{}", timeline::line()));
    server.serve(app).map_err(BootError::Serve)
}
