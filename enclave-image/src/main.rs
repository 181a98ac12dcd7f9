//! `sigil-enclave`: as PID 1 it is the enclave image's `/init`; otherwise it runs the service
//! as an ordinary process in local mode.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use sigil_enclave::boot::args::{self, Parsed, USAGE};
use sigil_enclave::boot::config::MeasuredConfig;
use sigil_enclave::http::Stopper;
use sigil_enclave::nsm::{HardwareNsm, Mode, Nsm, SimulatedNsm, hardware_device};
use sigil_enclave::parent::ParentServices;
use sigil_enclave::{boot, init, log};
use sigil_protocol::manifest::PcrManifest;
use sigil_sys::signals::{self, SignalSet};
use sigil_sys::{Addr, Listener};

fn main() -> ExitCode {
    log::set_debug(std::env::var("SIGIL_LOG").is_ok_and(|v| v == "debug"));
    if std::process::id() == 1 {
        // The kernel passes unknown command-line words as arguments; PID 1 takes its
        // configuration only from the measured image, never from arguments.
        init::run();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match args::parse(&args) {
        Ok(Ok(c)) => c,
        Ok(Err(Parsed::Help)) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Err(Parsed::Version)) => {
            println!("sigil-enclave {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sigil-enclave: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::warn(format_args!("fatal: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn open_nsm(simulated_pcrs: Option<&str>) -> Result<Arc<dyn Nsm>, String> {
    if std::path::Path::new(hardware_device()).exists() {
        if simulated_pcrs.is_some() {
            return Err("--simulated-pcrs is for local mode; this machine has an NSM".into());
        }
        return HardwareNsm::open()
            .map(|n| Arc::new(n) as Arc<dyn Nsm>)
            .map_err(|e| e.to_string());
    }
    let nsm = SimulatedNsm::new(Mode::Local).map_err(|e| e.to_string())?;
    let Some(path) = simulated_pcrs else {
        log::warn(format_args!(
            "no NSM device: LOCAL MODE, attestation documents are simulated under the sigil test root (not AWS) with zero PCRs"
        ));
        return Ok(Arc::new(nsm));
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let m = PcrManifest::from_json(&text).map_err(|e| format!("{path}: {e}"))?;
    let mut pcrs = BTreeMap::new();
    for (i, v) in [
        (0u8, &m.measurements.pcr0),
        (1, &m.measurements.pcr1),
        (2, &m.measurements.pcr2),
    ] {
        pcrs.insert(
            i,
            hex::decode(v).map_err(|e| format!("{path}: PCR{i}: {e}"))?,
        );
    }
    log::warn(format_args!(
        "no NSM device: LOCAL MODE, attestation documents are simulated under the sigil test root (not AWS), claiming the PCRs of {path}"
    ));
    let nsm = nsm.with_pcrs(pcrs).map_err(|e| e.to_string())?;
    Ok(Arc::new(nsm))
}

/// The parent services in local mode: the shim's addresses from the flags, checked against
/// what the configuration needs (a kms section needs all three, a prover section the blob
/// store).
fn local_services(
    cfg: &args::Config,
    file: &MeasuredConfig,
) -> Result<Option<ParentServices>, String> {
    if file.kms.is_none() && file.quorum.is_some() {
        if cfg.egress.is_some() || cfg.credentials.is_some() {
            return Err("--egress and --credentials need a kms section in --config".into());
        }
        let blobs = cfg
            .blob_store
            .clone()
            .ok_or("the configuration has a quorum section, so --blob-store ADDR is needed")?;
        // Without a kms section the sealing never dials the egress proxy or the credentials
        // service; they name the blob store only to fill the structure.
        return Ok(Some(ParentServices {
            egress: blobs.clone(),
            credentials: blobs.clone(),
            blobs,
        }));
    }
    if file.kms.is_none() {
        if cfg.egress.is_some()
            || cfg.credentials.is_some()
            || (cfg.blob_store.is_some() && file.prover.is_none())
        {
            return Err(
                "--egress and --credentials need a kms section in --config, and \
                 --blob-store a kms or prover section"
                    .into(),
            );
        }
        return Ok(None);
    }
    let need = |a: &Option<Addr>, flag: &str| {
        a.clone()
            .ok_or_else(|| format!("the configuration has a kms section, so {flag} ADDR is needed"))
    };
    Ok(Some(ParentServices {
        blobs: need(&cfg.blob_store, "--blob-store")?,
        egress: need(&cfg.egress, "--egress")?,
        credentials: need(&cfg.credentials, "--credentials")?,
    }))
}

fn run(cfg: args::Config) -> Result<(), String> {
    let mut file = match &cfg.config_file {
        Some(path) => {
            if !std::path::Path::new(path).exists() {
                return Err(format!("--config {path}: no such file"));
            }
            MeasuredConfig::load_from(path).map_err(|e| e.to_string())?
        }
        None => MeasuredConfig::default(),
    };
    if !cfg.cors_origins.is_empty() {
        // Local mode only: PID 1 takes its origins from the measured configuration alone.
        let cors = file.cors.get_or_insert_with(Default::default);
        cors.origins.extend(cfg.cors_origins.iter().cloned());
    }
    let nsm = open_nsm(cfg.simulated_pcrs.as_deref())?;
    let mode = nsm.mode();
    let sealing_services = local_services(&cfg, &file)?;
    let listener = Listener::bind(&cfg.listen).map_err(|e| format!("cannot listen: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("bound address: {e}"))?;
    let limits = cfg.limit_flags.apply(file.limits());
    // Local mode keeps the CRS and the jobs in a per-process temporary directory.
    let state_dir = std::env::temp_dir().join(format!("sigil-enclave-{}", std::process::id()));
    let (server, app) = boot::assemble(boot::Parts {
        nsm,
        config: file,
        limits,
        listener,
        sealing_services,
        blobs: cfg.blob_store.clone(),
        state_dir: state_dir.clone(),
        bb: cfg.bb.clone(),
        // The host's file system: the tests read the job directories from outside.
        jobs_fs: false,
    })
    .map_err(|e| e.to_string())?;
    stop_on_signals(server.stopper())?;
    log::info(format_args!(
        "listening on {bound} (mode {})",
        mode.as_str()
    ));
    // The bound address on stdout is what scripts wait for (port 0 picks a free port).
    println!("listening {bound}");
    let served = server.serve(app).map_err(|e| format!("serving: {e}"));
    // The local-mode CRS copy goes with the process (in the image it is in tmpfs anyway).
    let _ = std::fs::remove_dir_all(&state_dir);
    served?;
    log::info(format_args!("stopped"));
    Ok(())
}

/// SIGINT and SIGTERM stop the accept loop so the listener is closed cleanly (a Unix socket
/// file is removed). The signals are blocked in every thread and taken by one waiter thread.
fn stop_on_signals(stopper: Stopper) -> Result<(), String> {
    // Threads started after this inherit the mask; one waiter thread takes the signals.
    let set = SignalSet::block(&[signals::SIGINT, signals::SIGTERM])
        .map_err(|e| format!("cannot block signals: {e}"))?;
    std::thread::Builder::new()
        .name("sigil-signals".into())
        .spawn(move || {
            if let Ok(sig) = set.wait() {
                log::info(format_args!("signal {sig}: stopping"));
                stopper.stop();
            }
        })
        .map(|_| ())
        .map_err(|e| format!("signal thread: {e}"))
}
