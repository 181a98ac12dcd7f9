//! `sigil-enclave`: as PID 1 it is the enclave image's `/init`; otherwise it runs the service
//! as an ordinary process in local mode.

use std::process::ExitCode;

use sigil_enclave::config::{self, Parsed, USAGE};
use sigil_enclave::http::Stopper;
use sigil_enclave::nsm::{HardwareNsm, Mode, Nsm, SimulatedNsm, hardware_device};
use sigil_enclave::transport::Listener;
use sigil_enclave::{init, log, service};

fn main() -> ExitCode {
    log::set_debug(std::env::var("SIGIL_LOG").is_ok_and(|v| v == "debug"));
    if std::process::id() == 1 {
        // The kernel passes unknown command-line words as arguments; PID 1 takes its
        // configuration only from the measured image, never from arguments.
        init::run();
    }
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
    if std::path::Path::new(hardware_device()).exists() {
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
    let listener =
        Listener::bind(&cfg.listen).map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("bound address: {e}"))?;
    let (server, app) = service::prepare(nsm, listener, cfg.limits)?;
    stop_on_signals(server.stopper())?;
    log::info(format_args!(
        "listening on {bound} (mode {})",
        mode.as_str()
    ));
    // The bound address on stdout is what scripts wait for (port 0 picks a free port).
    println!("listening {bound}");
    server.serve(app).map_err(|e| format!("serving: {e}"))?;
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
