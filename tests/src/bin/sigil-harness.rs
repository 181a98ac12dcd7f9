//! `sigil-harness`: boots an EIF in QEMU (microvm) with guest vsock, and serves the enclave's
//! API on a local TCP port until interrupted.

use std::process::ExitCode;
use std::time::Duration;

use sigil_e2e::harness::{Harness, Options, ShimOptions};
use sigil_e2e::shim::{ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use sigil_sys::signals::{self, SignalSet};

const USAGE: &str = "\
usage: sigil-harness --eif FILE [--listen HOST:PORT] [--memory MIB] [--accel auto|kvm|tcg]
                     [--boot-timeout SECS] [--parent DIR [--crs FILE]] [--timeline] [--quiet]

Boots the EIF's own kernel, command line and ramdisks under qemu-system-x86_64 -M microvm,
answers the enclave's heartbeat, prints its log stream, and once it is ready prints
`ready http://HOST:PORT` (the enclave's API). Stops the VM on SIGINT/SIGTERM.

--parent DIR plays the parent instance for the default image: the real sigil-shim (next to
this binary) serves the API, the blob store (files in DIR/blobs), the egress proxy and the
credentials, and a development KMS (the committed dev CA; its master key kept in
DIR/devkms-master-key) stands in for AWS KMS. The enclave's sealed state then survives
reboots that reuse DIR. --crs FILE gives the shim the prover's CRS (bn254_g1.dat) for the
enclave to load. Development only: nothing here is secret.

--timeline prints the boot's timeline to stderr once the enclave is ready: the harness's own
work before QEMU, the kernel's landmarks (by their printk times), PID 1's phases, the
heartbeat and the first health answer (and with --parent, sealing ready), each at ms since
QEMU was started and the ms it took after the row before; then the same as one JSON line
starting `timeline-json ` (scripts/bench-image reads it).";

/// The development KMS key the default image's configuration names.
const DEV_KEY_ID: &str = "sigil-dev";
const DEV_REGION: &str = "us-east-1";

/// Starts the development KMS for `--parent DIR` and returns it with the shim options.
fn dev_parent(
    dir: &std::path::Path,
    crs: Option<std::path::PathBuf>,
) -> Result<(sigil_devkms::RunningServer, ShimOptions), String> {
    std::fs::create_dir_all(dir.join("blobs")).map_err(|e| format!("{}: {e}", dir.display()))?;
    // The master key persists so a later run decrypts the data key of an earlier one.
    let key_file = dir.join("devkms-master-key");
    let master = match std::fs::read_to_string(&key_file) {
        Ok(k) => k.trim().to_string(),
        Err(_) => {
            let mut k = [0u8; 32];
            getrandom_fill(&mut k)?;
            let k = hex_encode(&k);
            std::fs::write(&key_file, &k).map_err(|e| format!("{}: {e}", key_file.display()))?;
            k
        }
    };
    let ca_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../devkms/dev-ca");
    let config = serde_json::json!({
        "listen": "127.0.0.1:0",
        "region": DEV_REGION,
        "tls_ca_dir": ca_dir,
        "keys": [{
            "key_id": DEV_KEY_ID,
            "master_key_hex": master,
            "policy": {
                "allowed_credentials": [{
                    "access_key_id": ACCESS_KEY_ID,
                    "secret_access_key": SECRET_ACCESS_KEY
                }],
                // The harness's NSM is simulated: its documents chain to the test root and
                // carry debug (zero) PCRs.
                "trust_test_root": true,
                "allow_debug": true
            }
        }]
    });
    let config = sigil_devkms::Config::from_json(config.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let kms = sigil_devkms::start(&config).map_err(|e| e.to_string())?;
    let host = format!("kms.{DEV_REGION}.amazonaws.com:443");
    let shim_bin = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("sigil-shim");
    if !shim_bin.exists() {
        return Err(format!(
            "{} is missing (cargo build -p sigil-shim)",
            shim_bin.display()
        ));
    }
    let shim = ShimOptions {
        bin: shim_bin,
        state_dir: dir.join("blobs"),
        egress_resolve: Some(format!("{host}={}", kms.local_addr())),
        egress_allow: host,
        crs,
    };
    Ok((kms, shim))
}

fn getrandom_fill(b: &mut [u8]) -> Result<(), String> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(b))
        .map_err(|e| format!("/dev/urandom: {e}"))
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = Options::new("");
    opts.verbose = true;
    let mut it = args.iter();
    let mut eif = None;
    let mut parent = None;
    let mut crs = None;
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
                "--timeline" => opts.timeline = true,
                "--parent" => parent = Some(std::path::PathBuf::from(val()?)),
                "--crs" => crs = Some(std::path::PathBuf::from(val()?)),
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
    let _kms = match &parent {
        Some(dir) => match dev_parent(dir, crs.clone()) {
            Ok((kms, shim)) => {
                opts.shim = Some(shim);
                Some(kms)
            }
            Err(e) => {
                eprintln!("sigil-harness: --parent: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };

    // Block SIGINT/SIGTERM before any thread starts; the main thread waits for them.
    let set = match SignalSet::block(&[signals::SIGINT, signals::SIGTERM]) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("sigil-harness: cannot block signals: {e}");
            return ExitCode::FAILURE;
        }
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
    if let Some(t) = &h.timeline {
        eprint!(
            "sigil-harness: boot timeline ({:?})\n{}",
            h.accel,
            t.table()
        );
        eprintln!("timeline-json {}", t.to_json());
    }
    println!("ready {}", h.endpoint);
    let _ = set.wait();
    eprintln!("sigil-harness: stopping the VM");
    h.shutdown();
    ExitCode::SUCCESS
}
