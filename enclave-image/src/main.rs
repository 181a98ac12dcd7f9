//! `sigil-enclave`: starts the enclave service.

use std::process::ExitCode;
use std::sync::Arc;

use sigil_enclave::api::App;
use sigil_enclave::config::{self, Parsed, USAGE};
use sigil_enclave::http::{Server, Stopper};
use sigil_enclave::log;
use sigil_enclave::nsm::{HardwareNsm, Mode, Nsm, SimulatedNsm};
use sigil_enclave::transport::Listener;
use sigil_protocol::encap::ServerKey;
use sigil_protocol::user_data::{ImageInfo, PROTOCOL_VERSION};

/// What this build can do; goes into every attestation's user_data.
const CAPABILITIES: &[&str] = &["attestation", "encapsulated-ping"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match config::parse(&args) {
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

fn open_nsm() -> Result<Box<dyn Nsm>, String> {
    if std::path::Path::new(sigil_enclave::nsm::hardware_device()).exists() {
        return HardwareNsm::open()
            .map(|n| Box::new(n) as Box<dyn Nsm>)
            .map_err(|e| e.to_string());
    }
    log::warn(format_args!(
        "no NSM device: LOCAL MODE, attestation documents are simulated under the sigil test root (not AWS) with zero PCRs"
    ));
    SimulatedNsm::new(Mode::Local)
        .map(|n| Box::new(n) as Box<dyn Nsm>)
        .map_err(|e| e.to_string())
}

fn run(cfg: config::Config) -> Result<(), String> {
    let nsm = open_nsm()?;
    let mode = nsm.mode();
    let key = ServerKey::generate().map_err(|e| format!("per-boot HPKE key: {e}"))?;
    let info = ImageInfo {
        protocol: PROTOCOL_VERSION,
        sigil_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: mode.as_str().to_string(),
        capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
    };
    let listener =
        Listener::bind(&cfg.listen).map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("bound address: {e}"))?;
    let server = Server::new(listener, cfg.limits);
    let stopper = server.stopper();
    stop_on_signals(stopper)?;
    let app = App::new(nsm, key, info.to_cbor());
    log::info(format_args!(
        "listening on {bound} (mode {})",
        mode.as_str()
    ));
    // The bound address on stdout is what scripts wait for (port 0 picks a free port).
    println!("listening {bound}");
    server
        .serve(Arc::new(app))
        .map_err(|e| format!("serving: {e}"))?;
    log::info(format_args!("stopped"));
    Ok(())
}

/// SIGINT and SIGTERM stop the accept loop so the listener is closed cleanly (a Unix socket
/// file is removed). The signals are blocked in every thread and taken by one waiter thread.
fn stop_on_signals(stopper: Stopper) -> Result<(), String> {
    // SAFETY: sigset manipulation on a local, zero-initialized set; pthread_sigmask on the
    // calling thread before any other thread exists, so all later threads inherit the mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err("cannot block signals".into());
        }
        set
    };
    std::thread::Builder::new()
        .name("sigil-signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: set is a valid sigset_t; sig is a valid out-pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                log::info(format_args!("signal {sig}: stopping"));
                stopper.stop();
            }
        })
        .map(|_| ())
        .map_err(|e| format!("signal thread: {e}"))
}
