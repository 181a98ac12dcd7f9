//! The QEMU harness.
//!
//! Guest vsock comes from `vhost-device-vsock` in Unix-socket mode: the host reaches guest
//! port P by connecting to `<uds>` and writing `CONNECT P\n` (answered `OK <port>\n`); guest
//! connections to host port P arrive on `<uds>_P`. The host is CID 2 (vhost-device-vsock drops
//! packets addressed to CID 3, Nitro's parent), which is why the harness-mode enclave talks to
//! CID 2.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use sigil_protocol::ports::{API, BLOBS, CREDENTIALS, EGRESS, HEARTBEAT, HEARTBEAT_BYTE, LOGS};

use crate::shim::{Shim, ShimSetup};

/// Longest a KVM boot may take before the harness falls back to TCG.
const KVM_ATTEMPT: Duration = Duration::from_secs(30);

/// Longest a KVM boot may go without the kernel's first console line: a KVM that cannot run
/// this kernel (a nested one here) hangs before it, in the firmware, and every boot used to
/// wait the whole [`KVM_ATTEMPT`] before falling back.
const KVM_FIRST_OUTPUT: Duration = Duration::from_secs(10);

/// Set once KVM failed to boot in this process: later boots go to TCG at once.
static KVM_FAILED: AtomicBool = AtomicBool::new(false);

/// The guest's CID in the harness.
pub const GUEST_CID: u32 = 4;

/// The kernel's CONFIG_HZ (reproducible-build/kernel: tinyconfig's default), for `lpj=`.
const KERNEL_HZ: u64 = 250;

/// Words the harness appends to the EIF's command line under TCG, and only there. They change
/// nothing the enclave does: on a busy host the emulated TSC fails the kernel's calibration
/// against the PIT and the boot hangs, so the guest is told the rate (the host's, which TCG's
/// TSC follows) and not to second-guess it (see reproducible-build/kernel/README.md). `lpj=`
/// (TSC cycles per tick, what the boot CPU computes from that rate) spares the second vCPU its
/// delay-loop calibration, about 60 ms under TCG: TCG's CPU model lacks the invariant-TSC flag
/// that lets the kernel reuse the boot CPU's value (on Nitro it has it).
pub fn tcg_cmdline_additions() -> String {
    let khz = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map(|mhz| (mhz * 1000.0) as u64);
    match khz {
        Some(k) if k > 0 => format!(
            "tsc_early_khz={k} tsc=reliable lpj={}",
            k * 1000 / KERNEL_HZ
        ),
        _ => String::new(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// KVM when it really boots this kernel, TCG otherwise.
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Accel::Auto),
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            o => Err(format!("unknown accelerator {o:?}: auto, kvm or tcg")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub eif: PathBuf,
    pub memory_mib: u32,
    pub accel: Accel,
    /// Longest wait from starting QEMU to the heartbeat.
    pub boot_timeout: Duration,
    /// Where the API is exposed (`127.0.0.1:0` picks a free port).
    pub api_listen: String,
    /// Echo the guest console and the enclave's log stream to stderr.
    pub verbose: bool,
    /// The byte the harness answers the heartbeat with (0xB7; anything else tests that the
    /// enclave refuses to run with a parent that answers wrongly).
    pub heartbeat_reply: u8,
    /// Run the real `sigil-shim` as the parent: ingress to the API, and the blob store,
    /// egress proxy and credentials on the guest's parent ports. Without it, a minimal
    /// forwarder serves the API and the enclave has no parent services.
    pub shim: Option<ShimOptions>,
    /// Collect a boot timeline (see [`Timeline`]): the kernel prints its timestamps
    /// (`printk.time=1`, a harness-only addition), the console is watched as it grows, and
    /// after the heartbeat the harness asks the API for its health once (and, with a shim,
    /// until sealing is ready or failed).
    pub timeline: bool,
}

/// The parent shim in the harness.
#[derive(Clone, Debug)]
pub struct ShimOptions {
    /// The `sigil-shim` binary.
    pub bin: PathBuf,
    /// Where the blobs live; reuse it across boots to keep the enclave's state.
    pub state_dir: PathBuf,
    /// The one allowed egress destination (the image's KMS endpoint, HOST:443).
    pub egress_allow: String,
    /// `HOST:PORT=IP:PORT`: where that destination really is (a development KMS).
    pub egress_resolve: Option<String>,
    /// The prover's CRS file, put into the blob store for the enclave.
    pub crs: Option<PathBuf>,
}

impl Options {
    pub fn new(eif: impl Into<PathBuf>) -> Options {
        Options {
            eif: eif.into(),
            memory_mib: 512,
            accel: Accel::Auto,
            boot_timeout: Duration::from_secs(90),
            api_listen: "127.0.0.1:0".into(),
            verbose: false,
            heartbeat_reply: HEARTBEAT_BYTE,
            shim: None,
            timeline: false,
        }
    }
}

fn tool(name: &str) -> PathBuf {
    // cargo-installed tools live in ~/.cargo/bin, which a CI shell may not have on PATH.
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
    {
        let p = home.join("bin").join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// A booted enclave image. Dropping it stops the VM and cleans up.
pub struct Harness {
    pub endpoint: String,
    pub accel: Accel,
    /// Time from starting QEMU to the heartbeat.
    pub boot_time: Duration,
    /// The boot's phases, when [`Options::timeline`] asked for them.
    pub timeline: Option<Timeline>,
    qemu: Child,
    backend: Child,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    logs: Arc<Mutex<Vec<String>>>,
    console: PathBuf,
    shim: Option<Shim>,
}

struct Files {
    dir: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
    cmdline: String,
}

fn unique_dir() -> io::Result<PathBuf> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sigil-harness-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Unpacks the EIF: the harness boots exactly the kernel, command line and ramdisks that are
/// measured into the PCRs. QEMU takes one initrd; Linux unpacks concatenated archives in order,
/// which is how Nitro presents several ramdisks too.
fn unpack(eif_path: &Path) -> Result<Files, String> {
    let bytes = std::fs::read(eif_path).map_err(|e| format!("{}: {e}", eif_path.display()))?;
    let eif =
        sigil_eif::eif::parse_eif(&bytes).map_err(|e| format!("{}: {e}", eif_path.display()))?;
    let kernel_bytes = eif.kernel().ok_or("the EIF has no kernel section")?;
    let cmdline = eif
        .cmdline()
        .ok_or("the EIF has no command line")?
        .trim_end_matches('\0')
        .to_string();
    let ramdisks = eif.ramdisks();
    if ramdisks.is_empty() {
        return Err("the EIF has no ramdisk".into());
    }
    let dir = unique_dir().map_err(|e| format!("work directory: {e}"))?;
    let kernel = dir.join("bzImage");
    let initrd = dir.join("initrd");
    std::fs::write(&kernel, kernel_bytes).map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    for r in ramdisks {
        all.extend_from_slice(r);
        // Each archive starts 4-byte aligned.
        while all.len() % 4 != 0 {
            all.push(0);
        }
    }
    std::fs::write(&initrd, all).map_err(|e| e.to_string())?;
    Ok(Files {
        dir,
        kernel,
        initrd,
        cmdline,
    })
}

/// Makes a child die with the harness, so a crashed or killed harness leaves no VM behind.
fn die_with_parent(c: &mut Command) -> &mut Command {
    sigil_sys::process::kill_child_with_parent(c)
}

fn wait_for_path(p: &Path, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if p.exists() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Answers the boot heartbeat on `<uds>_9000` and reports each one.
fn serve_heartbeat(l: UnixListener, reply: u8, beat: mpsc::Sender<()>, stop: Arc<AtomicBool>) {
    thread::spawn(move || {
        for conn in l.incoming() {
            if stop.load(Ordering::Acquire) {
                return;
            }
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut b = [0u8; 1];
            if s.read_exact(&mut b).is_ok()
                && b[0] == HEARTBEAT_BYTE
                && s.write_all(&[reply]).is_ok()
                && reply == HEARTBEAT_BYTE
            {
                let _ = beat.send(());
            }
        }
    });
}

/// Takes the enclave's log stream on `<uds>_9001`.
fn serve_logs(
    l: UnixListener,
    logs: Arc<Mutex<Vec<String>>>,
    verbose: bool,
    stop: Arc<AtomicBool>,
) {
    thread::spawn(move || {
        for conn in l.incoming() {
            if stop.load(Ordering::Acquire) {
                return;
            }
            let Ok(s) = conn else { continue };
            let logs = logs.clone();
            thread::spawn(move || {
                for line in BufReader::new(s).lines() {
                    let Ok(line) = line else { return };
                    if verbose {
                        eprintln!("[enclave] {line}");
                    }
                    if let Ok(mut l) = logs.lock() {
                        // Bounded like the enclave's own ring.
                        if l.len() >= 10_000 {
                            l.remove(0);
                        }
                        l.push(line);
                    }
                }
            });
        }
    });
}

/// Connects to guest port `port` through vhost-device-vsock's Unix socket.
pub fn connect_guest(uds: &Path, port: u32) -> io::Result<UnixStream> {
    sigil_sys::net::connect_vhost_uds(uds, port)
}

/// Copies bytes until EOF or an error, then half-closes the destination.
fn pump<R: Read, W: Write>(mut from: R, mut to: W, close: impl FnOnce(&W)) {
    let mut buf = [0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    close(&to);
}

/// Forwards each TCP connection to the guest's API port (the stand-in when there is no shim).
fn serve_api(l: TcpListener, uds: PathBuf, stop: Arc<AtomicBool>) {
    thread::spawn(move || {
        for conn in l.incoming() {
            if stop.load(Ordering::Acquire) {
                return;
            }
            let Ok(tcp) = conn else { continue };
            let uds = uds.clone();
            thread::spawn(move || {
                let Ok(guest) = connect_guest(&uds, API) else {
                    let _ = tcp.shutdown(Shutdown::Both);
                    return;
                };
                let (Ok(tcp_w), Ok(guest_w)) = (tcp.try_clone(), guest.try_clone()) else {
                    return;
                };
                let up = thread::spawn(move || {
                    pump(tcp, guest_w, |g| {
                        let _ = g.shutdown(Shutdown::Write);
                    })
                });
                pump(guest, tcp_w, |t| {
                    let _ = t.shutdown(Shutdown::Write);
                });
                let _ = up.join();
            });
        }
    });
}

fn qemu_command(
    files: &Files,
    accel: Accel,
    opts: &Options,
    vhost_sock: &Path,
    console: &Path,
) -> Command {
    let memory_mib = opts.memory_mib;
    let mut cmdline = files.cmdline.clone();
    let mut extra = if accel == Accel::Tcg {
        tcg_cmdline_additions()
    } else {
        String::new()
    };
    if opts.timeline {
        // printk times on the console place the kernel's messages on the harness's clock; the
        // parameter exists whatever CONFIG_PRINTK_TIME says.
        extra.push_str(" printk.time=1");
    }
    let extra = extra.trim();
    if !extra.is_empty() {
        cmdline.push(' ');
        cmdline.push_str(extra);
    }
    let mut c = Command::new(tool("qemu-system-x86_64"));
    let accel_arg = match accel {
        Accel::Kvm => "kvm",
        _ => "tcg",
    };
    // ACPI on (microvm's default): devices are found through it, and the guest's power-off
    // (PID 1's answer to a fatal error) ends QEMU; with acpi=off the guest would only halt.
    c.args(["-M", "microvm,acpi=on,memory-backend=mem"])
        .args(["-accel", accel_arg])
        // TCG: every feature TCG has (RDRAND among them, see reproducible-build/kernel/README.md)
        // except the fast-string flags: with them the kernel and libc copy with `rep movsb`,
        // which TCG runs a byte at a time, and unpacking the 100 MB initramfs took twice as long.
        .args([
            "-cpu",
            if accel == Accel::Kvm {
                "host"
            } else {
                "max,-erms,-fsrm"
            },
        ])
        // qboot instead of microvm's default SeaBIOS: it only loads the kernel, a few hundred
        // ms sooner under TCG. Firmware is not part of the image (Nitro has none of either).
        .args(["-bios", "qboot.rom"])
        .args(["-smp", "2"])
        .args(["-m", &format!("{memory_mib}M")])
        .args([
            "-object",
            &format!("memory-backend-memfd,id=mem,size={memory_mib}M,share=on"),
        ])
        .args(["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"])
        .args(["-serial", &format!("file:{}", console.display())])
        .arg("-kernel")
        .arg(&files.kernel)
        .arg("-initrd")
        .arg(&files.initrd)
        .args(["-append", &cmdline])
        .args([
            "-chardev",
            &format!("socket,id=vsock0,path={}", vhost_sock.display()),
        ])
        .args(["-device", "vhost-user-vsock-device,chardev=vsock0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

impl Harness {
    /// Boots the EIF and returns once the enclave has sent its heartbeat (its API is bound).
    pub fn boot(opts: &Options) -> Result<Harness, String> {
        let accels: &[Accel] = match opts.accel {
            Accel::Auto if kvm_usable() && !KVM_FAILED.load(Ordering::Relaxed) => {
                &[Accel::Kvm, Accel::Tcg]
            }
            Accel::Auto | Accel::Tcg => &[Accel::Tcg],
            Accel::Kvm => &[Accel::Kvm],
        };
        let mut last = String::new();
        for &accel in accels {
            match Harness::boot_with(opts, accel) {
                Ok(h) => return Ok(h),
                Err(e) => {
                    if opts.verbose {
                        eprintln!("sigil-harness: boot with {accel:?} failed: {e}");
                    }
                    if accel == Accel::Kvm && opts.accel == Accel::Auto {
                        KVM_FAILED.store(true, Ordering::Relaxed);
                    }
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn boot_with(opts: &Options, accel: Accel) -> Result<Harness, String> {
        let prep = Instant::now();
        let files = unpack(&opts.eif)?;
        let unpacked = prep.elapsed();
        let dir = files.dir.clone();
        let vhost_sock = dir.join("vhost.sock");
        let uds = dir.join("vsock.sock");
        let console = dir.join("console.log");
        let stop = Arc::new(AtomicBool::new(false));
        let logs = Arc::new(Mutex::new(Vec::new()));

        // Host-side listeners exist before the guest boots, as nitro-cli's do.
        let hb = UnixListener::bind(format!("{}_{HEARTBEAT}", uds.display()))
            .map_err(|e| format!("heartbeat socket: {e}"))?;
        let lg = UnixListener::bind(format!("{}_{LOGS}", uds.display()))
            .map_err(|e| format!("log socket: {e}"))?;
        let (beat_tx, beat_rx) = mpsc::channel();
        serve_heartbeat(hb, opts.heartbeat_reply, beat_tx, stop.clone());
        serve_logs(lg, logs.clone(), opts.verbose, stop.clone());

        let mut backend = die_with_parent(&mut Command::new(tool("vhost-device-vsock")))
            .arg("--vm")
            .arg(format!(
                "guest-cid={GUEST_CID},socket={},uds-path={}",
                vhost_sock.display(),
                uds.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("vhost-device-vsock (cargo install vhost-device-vsock): {e}"))?;
        if !wait_for_path(&vhost_sock, Duration::from_secs(10)) {
            let _ = backend.kill();
            let _ = backend.wait();
            return Err("vhost-device-vsock did not create its socket".into());
        }
        let backend_up = prep.elapsed();

        // The shim's ingress port: picked free here, then handed to the shim.
        let mut shim = None;
        let mut shim_api = None;
        if let Some(o) = &opts.shim {
            let port = TcpListener::bind(&opts.api_listen)
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("API listener: {e}"))?;
            let sock = |p: u32| format!("unix:{}_{p}", uds.display());
            let setup = ShimSetup {
                bin: o.bin.clone(),
                state_dir: o.state_dir.clone(),
                blob_listen: sock(BLOBS),
                egress_listen: sock(EGRESS),
                credentials_listen: sock(CREDENTIALS),
                egress_allow: o.egress_allow.clone(),
                egress_resolve: o.egress_resolve.clone(),
                ingress: Some((
                    format!("tcp:{port}"),
                    format!("vhost-uds:{}:{API}", uds.display()),
                )),
                log: dir.join("shim.log"),
                crs: o.crs.clone(),
                blob_s3: None,
            };
            match Shim::start(&setup) {
                Ok(s) => shim = Some(s),
                Err(e) => {
                    let _ = backend.kill();
                    let _ = backend.wait();
                    return Err(e);
                }
            }
            shim_api = Some(port);
        }

        let started = Instant::now();
        let qemu = match qemu_command(&files, accel, opts, &vhost_sock, &console).spawn() {
            Ok(q) => q,
            Err(e) => {
                let _ = backend.kill();
                let _ = backend.wait();
                return Err(format!("qemu-system-x86_64: {e}"));
            }
        };
        let tap = opts
            .timeline
            .then(|| ConsoleTap::start(console.clone(), started));
        let mut h = Harness {
            endpoint: String::new(),
            accel,
            boot_time: Duration::ZERO,
            timeline: None,
            qemu,
            backend,
            dir,
            stop,
            logs,
            console,
            shim,
        };
        // Wait for the heartbeat, watching for QEMU dying first.
        loop {
            match beat_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(()) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("heartbeat listener ended".into());
                }
            }
            if let Ok(Some(status)) = h.qemu.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = h.qemu.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!(
                    "QEMU exited ({status}) before the heartbeat: {}\nconsole:\n{}",
                    err.trim(),
                    h.console_tail(30)
                ));
            }
            // A KVM that cannot run this kernel usually aborts at once; one that hangs gets a
            // short leash so the TCG fallback still happens in reasonable time.
            let limit = match accel {
                Accel::Kvm => opts.boot_timeout.min(KVM_ATTEMPT),
                _ => opts.boot_timeout,
            };
            if started.elapsed() > limit {
                return Err(format!(
                    "no heartbeat within {} s\nconsole:\n{}",
                    limit.as_secs(),
                    h.console_tail(30)
                ));
            }
            if accel == Accel::Kvm
                && started.elapsed() > KVM_FIRST_OUTPUT
                && !std::fs::read_to_string(&h.console)
                    .unwrap_or_default()
                    .contains("Linux version")
            {
                return Err(format!(
                    "KVM: no kernel output within {} s",
                    KVM_FIRST_OUTPUT.as_secs()
                ));
            }
        }
        h.boot_time = started.elapsed();

        if let Some(port) = shim_api {
            h.endpoint = format!("http://{port}");
        } else {
            let api =
                TcpListener::bind(&opts.api_listen).map_err(|e| format!("API listener: {e}"))?;
            h.endpoint = format!("http://{}", api.local_addr().map_err(|e| e.to_string())?);
            serve_api(api, uds, h.stop.clone());
        }
        if let Some(tap) = tap {
            let before = vec![
                ("EIF unpacked to files".to_string(), ms(unpacked)),
                ("vsock backend and shim up".to_string(), ms(backend_up)),
            ];
            h.timeline = Some(h.collect_timeline(started, tap, before, opts.shim.is_some()));
        }
        Ok(h)
    }

    /// Builds the timeline once the heartbeat is in: the harness's own events, the kernel's
    /// landmarks from the console and PID 1's phases from its timeline line.
    fn collect_timeline(
        &self,
        started: Instant,
        tap: ConsoleTap,
        before_qemu: Vec<(String, f64)>,
        sealing: bool,
    ) -> Timeline {
        let heartbeat = ms(self.boot_time);
        let mut own = vec![("harness: heartbeat received".to_string(), heartbeat)];
        let sealing_state =
            |h: &serde_json::Value| h["sealing"]["state"].as_str().map(str::to_owned);
        let health = wait_health(&self.endpoint, started, Duration::from_secs(10), |_| true);
        let prover = health
            .as_ref()
            .is_some_and(|(_, h)| h["prover"].is_object());
        match &health {
            Some((at, h)) => own.push((
                format!(
                    "harness: health answered (sealing {})",
                    sealing_state(h).unwrap_or_default()
                ),
                *at,
            )),
            None => own.push(("harness: health did not answer".to_string(), f64::NAN)),
        }
        // Both end after the boot, in the background: a pinned prover's check of its bb
        // binaries, and sealing (KMS through the shim). Each is timed when first seen done.
        let prover_done = |h: &serde_json::Value| {
            (h["prover"]["state"] != "checking").then(|| {
                let state = h["prover"]["state"].as_str().unwrap_or("?");
                format!("harness: prover {state}")
            })
        };
        let sealing_done = |h: &serde_json::Value| {
            sealing_state(h)
                .filter(|s| s != "starting")
                .map(|s| format!("harness: sealing {s}"))
        };
        let mut pending: Vec<&HealthDone<'_>> = Vec::new();
        if prover {
            pending.push(&prover_done);
        }
        if sealing {
            pending.push(&sealing_done);
        }
        let end = Instant::now() + Duration::from_secs(60);
        let addr = self.endpoint.strip_prefix("http://").unwrap_or_default();
        while !pending.is_empty() && Instant::now() < end {
            if let Some(h) = health_once(addr) {
                let at = ms(started.elapsed());
                pending.retain(|done| match done(&h) {
                    Some(phase) => {
                        own.push((phase, at));
                        false
                    }
                    None => true,
                });
            }
            thread::sleep(Duration::from_millis(10));
        }
        // PID 1 logs its phases right after the heartbeat.
        let end = Instant::now() + Duration::from_secs(5);
        let mut pid1 = None;
        while pid1.is_none() && Instant::now() < end {
            pid1 = self.logs().iter().find_map(|l| parse_pid1_line(l));
            if pid1.is_none() {
                thread::sleep(Duration::from_millis(10));
            }
        }
        let console = tap.stop();
        Timeline::assemble(before_qemu, &console, pid1.unwrap_or_default(), own)
    }

    /// The last `n` lines the guest printed on its serial console.
    pub fn console_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.console).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The enclave's log lines received on the log port so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Whether the VM is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.qemu.try_wait(), Ok(None))
    }

    /// Kills QEMU with SIGKILL at once, as a power cut would (nothing in the guest runs
    /// after it), then cleans up like [`Harness::shutdown`].
    pub fn power_cut(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        self.shutdown();
    }

    /// Stops the VM: SIGTERM lets QEMU exit cleanly; SIGKILL only if it does not.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        // QEMU exits on SIGTERM ("terminating on signal"); the vsock backend holds no state.
        terminate(&mut self.qemu, Duration::from_secs(3));
        terminate(&mut self.backend, Duration::from_secs(1));
        if let Some(s) = self.shim.take() {
            s.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM, then SIGKILL after `grace`.
fn terminate(c: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = c.try_wait() {
        return;
    }
    // Not yet reaped (try_wait above found it running), so the pid is still this child's.
    let _ = sigil_sys::process::signal(c.id(), sigil_sys::signals::SIGTERM);
    let end = Instant::now() + grace;
    while Instant::now() < end {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// KVM is used only if /dev/kvm opens; whether it boots the kernel is then tried, and TCG is
/// the fallback.
fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What PID 1 logs after the heartbeat (`enclave-image/src/init/timeline.rs`): its phases in
/// milliseconds of `CLOCK_BOOTTIME`.
const PID1_TIMELINE: &str = "boot timeline (ms since kernel start):";

fn parse_pid1_line(line: &str) -> Option<Vec<(String, f64)>> {
    let (_, rest) = line.split_once(PID1_TIMELINE)?;
    Some(
        rest.split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}

/// Kernel messages worth a row: (what the line contains, the row's name). Only the first
/// line that matches counts.
const KERNEL_LANDMARKS: &[(&str, &str)] = &[
    ("random: crng init done", "kernel: crng ready (entropy)"),
    (
        "printk: legacy console [ttyS0] enabled",
        "kernel: serial console on",
    ),
    ("smp: Brought up", "kernel: second CPU up"),
    ("Unpacking initramfs", "kernel: initramfs unpacking starts"),
    ("Freeing initrd memory", "kernel: initramfs unpacked"),
    ("Freeing unused kernel image", "kernel: init memory freed"),
    ("Run /init as init process", "kernel: exec /init"),
];

/// Splits `[   1.234567] message` into seconds and the message.
fn printk_time(line: &str) -> Option<(f64, &str)> {
    let rest = line.strip_prefix('[')?;
    let (t, msg) = rest.split_once(']')?;
    Some((t.trim().parse().ok()?, msg.trim_start()))
}

/// Watches the console file as QEMU writes it and stamps each line with the harness's clock
/// (ms since QEMU was started). Polls every millisecond: the file backend has no notification,
/// and a millisecond is well below what the boot's phases take.
struct ConsoleTap {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Vec<(f64, String)>>,
}

impl ConsoleTap {
    fn start(path: PathBuf, t0: Instant) -> ConsoleTap {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut lines = Vec::new();
            let mut file = None;
            let mut partial = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            // One last read after the stop, so nothing written before it is missed.
            let mut last = false;
            loop {
                if file.is_none() {
                    file = std::fs::File::open(&path).ok();
                }
                if let Some(f) = file.as_mut() {
                    while let Ok(n) = f.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let at = ms(t0.elapsed());
                        partial.extend_from_slice(&buf[..n]);
                        while let Some(i) = partial.iter().position(|&b| b == b'\n') {
                            let line: Vec<u8> = partial.drain(..=i).collect();
                            let line = String::from_utf8_lossy(&line).trim_end().to_string();
                            // Bounded: a runaway console must not grow the harness.
                            if lines.len() < 10_000 {
                                lines.push((at, line));
                            }
                        }
                    }
                }
                if last {
                    return lines;
                }
                last = flag.load(Ordering::Acquire);
                thread::sleep(Duration::from_millis(1));
            }
        });
        ConsoleTap { stop, thread }
    }

    /// Stops watching; the console lines with the time each was first seen.
    fn stop(self) -> Vec<(f64, String)> {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap_or_default()
    }
}

/// What a health answer says has ended after the boot (a phase of the timeline), if it has.
type HealthDone<'a> = dyn Fn(&serde_json::Value) -> Option<String> + 'a;

/// Asks `GET /v1/health` on `endpoint` every 10 ms (at once the first time) until the answer
/// satisfies `done`, for at most `limit`. Returns when (ms since `t0`) and the answer.
fn wait_health(
    endpoint: &str,
    t0: Instant,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Option<(f64, serde_json::Value)> {
    let addr = endpoint.strip_prefix("http://")?;
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(answer) = health_once(addr)
            && done(&answer)
        {
            return Some((ms(t0.elapsed()), answer));
        }
        thread::sleep(Duration::from_millis(10));
    }
    None
}

/// One health request; the answer when it is 200. The answer ends where its
/// Content-Length says, not at the connection's close, which comes later (about a second
/// later through the harness's forwarder) and is no part of the enclave being ready.
fn health_once(addr: &str) -> Option<serde_json::Value> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: enclave\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let len = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })?;
        if body.len() < len {
            continue;
        }
        if !head.starts_with("HTTP/1.1 200") {
            return None;
        }
        return serde_json::from_str(body.trim()).ok();
    }
}

/// One row: what happened, and when (ms since QEMU was started).
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    pub name: String,
    pub at_ms: f64,
}

/// A boot's timeline on the harness's clock: QEMU started at 0. Kernel and PID-1 times
/// (guest clock, since the kernel started) are moved onto it by the smallest difference
/// between a console line's arrival and its printk time: a line cannot arrive before it was
/// printed, so that difference is the latest possible kernel start, and usually within a
/// millisecond or two of it.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// The harness's own work before QEMU starts: (what, ms since the boot was asked for).
    pub before_qemu: Vec<(String, f64)>,
    /// Every row, in time order.
    pub phases: Vec<Phase>,
}

impl Timeline {
    fn assemble(
        before_qemu: Vec<(String, f64)>,
        console: &[(f64, String)],
        pid1: Vec<(String, f64)>,
        own: Vec<(String, f64)>,
    ) -> Timeline {
        let mut phases = vec![Phase {
            name: "harness: QEMU started".into(),
            at_ms: 0.0,
        }];
        if let Some((at, _)) = console.first() {
            phases.push(Phase {
                name: "console: first output (firmware)".into(),
                at_ms: *at,
            });
        }
        let stamped: Vec<(f64, f64, &str)> = console
            .iter()
            .filter_map(|(at, l)| printk_time(l).map(|(t, m)| (*at, t * 1000.0, m)))
            .collect();
        let lower = |lines: &[(f64, f64, &str)]| {
            lines
                .iter()
                .map(|(at, t, _)| at - t)
                .fold(f64::INFINITY, f64::min)
        };
        // The kernel's clock only settles once it runs on the TSC: before that it may stand
        // still for a while (over 100 ms under TCG), so only later lines place it. Lines before
        // that are placed by the early clock while the console is not on yet (they arrive
        // together when it comes on), and by their arrival after.
        let settled = stamped
            .iter()
            .position(|(_, _, m)| m.contains("clocksource: Switched to clocksource"))
            .unwrap_or(0);
        let console_on = stamped
            .iter()
            .position(|(_, _, m)| m.contains("console [") && m.contains("enabled"))
            .unwrap_or(0);
        let offset = lower(&stamped[settled..]);
        if let Some((at, _, _)) = stamped.first() {
            phases.push(Phase {
                name: "console: first kernel line".into(),
                at_ms: *at,
            });
        }
        if offset.is_finite() {
            let early = lower(&stamped[..settled]).min(offset);
            phases.push(Phase {
                name: "kernel: start (printk 0, early clock)".into(),
                at_ms: early,
            });
            for (needle, name) in KERNEL_LANDMARKS {
                let hit = stamped.iter().position(|(_, _, m)| m.contains(needle));
                if let Some(i) = hit {
                    let (arrived, t, _) = stamped[i];
                    let at = if i >= settled {
                        offset + t
                    } else if i >= console_on {
                        arrived
                    } else {
                        early + t
                    };
                    phases.push(Phase {
                        name: (*name).into(),
                        at_ms: at,
                    });
                }
            }
            for (name, t) in pid1 {
                phases.push(Phase {
                    name: format!("pid1: {name}"),
                    at_ms: offset + t,
                });
            }
        }
        for (name, at) in own {
            phases.push(Phase { name, at_ms: at });
        }
        phases.retain(|p| p.at_ms.is_finite());
        phases.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        Timeline {
            before_qemu,
            phases,
        }
    }

    /// The table: phase, at (ms since QEMU started), took (ms since the row before).
    pub fn table(&self) -> String {
        let rows: Vec<(String, f64)> = self
            .phases
            .iter()
            .map(|p| (p.name.clone(), p.at_ms))
            .collect();
        format_table(&self.before_qemu, &rows)
    }

    /// `{"before_qemu": [[what, ms], ...], "phases": [[name, at_ms], ...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "before_qemu": self.before_qemu.iter().map(|(n, t)| serde_json::json!([n, t])).collect::<Vec<_>>(),
            "phases": self.phases.iter().map(|p| serde_json::json!([p.name, p.at_ms])).collect::<Vec<_>>(),
        })
    }
}

/// Renders rows of (phase, at) as the timeline table.
pub fn format_table(before_qemu: &[(String, f64)], rows: &[(String, f64)]) -> String {
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(5).max(5);
    let mut out = String::new();
    for (what, at) in before_qemu {
        out.push_str(&format!("before QEMU: {what} after {at:.0} ms\n"));
    }
    out.push_str(&format!(
        "{:<width$} {:>8} {:>8}\n",
        "phase", "at ms", "took ms"
    ));
    let mut prev = 0.0;
    for (name, at) in rows {
        out.push_str(&format!("{name:<width$} {at:>8.1} {:>8.1}\n", at - prev));
        prev = *at;
    }
    out
}
