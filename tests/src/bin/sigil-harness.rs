//! `sigil-harness`: boots an EIF in QEMU (microvm) with guest vsock, and serves the enclave's
//! API on a local TCP port until interrupted.

use std::process::ExitCode;
use std::time::Duration;

use sigil_e2e::harness::{Harness, Options};

const USAGE: &str = "\
usage: sigil-harness --eif FILE [--listen HOST:PORT] [--memory MIB] [--accel auto|kvm|tcg]
                     [--boot-timeout SECS] [--quiet]

Boots the EIF's own kernel, command line and ramdisks under qemu-system-x86_64 -M microvm,
answers the enclave's heartbeat, prints its log stream, and once it is ready prints
`ready http://HOST:PORT` (the enclave's API). Stops the VM on SIGINT/SIGTERM.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = Options::new("");
    opts.verbose = true;
    let mut it = args.iter();
    let mut eif = None;
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        let r: Result<(), String> = (|| {
            match a.as_str() {
                "--eif" => eif = Some(val()?),
                "--listen" => opts.api_listen = val()?,
                "--memory" => opts.memory_mib = val()?.parse().map_err(|_| "--memory: MiB")?,
                "--accel" => opts.accel = val()?.parse()?,
                "--boot-timeout" => {
                    opts.boot_timeout =
                        Duration::from_secs(val()?.parse().map_err(|_| "--boot-timeout: seconds")?)
                }
                "--quiet" => opts.verbose = false,
                "--help" | "-h" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
            Ok(())
        })();
        if let Err(e) = r {
            eprintln!("sigil-harness: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let Some(eif) = eif else {
        eprintln!("sigil-harness: --eif FILE is required\n\n{USAGE}");
        return ExitCode::from(2);
    };
    opts.eif = eif.into();

    // Block SIGINT/SIGTERM before any thread starts; the main thread waits for them.
    // SAFETY: local sigset and the calling thread's mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let mut h = match Harness::boot(&opts) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("sigil-harness: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "sigil-harness: enclave ready after {} ms ({:?})",
        h.boot_time.as_millis(),
        h.accel
    );
    println!("ready {}", h.endpoint);
    let mut sig = 0;
    // SAFETY: valid sigset and out-pointer.
    unsafe {
        libc::sigwait(&set, &mut sig);
    }
    eprintln!("sigil-harness: stopping the VM");
    h.shutdown();
    ExitCode::SUCCESS
}
