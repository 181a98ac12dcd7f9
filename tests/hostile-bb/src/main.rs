//! A hostile stand-in for `bb`: run where the enclave runs bb, it tries every door a
//! compromised prover would try and writes what it found as its "proof" (JSON lines
//! `{"door": NAME, "open": BOOL, "detail": TEXT}`), so a test can assert that each door is
//! shut and that the allowed work (writing its outputs in its job directory) still succeeds.
//!
//! It answers bb's command line: `--version`; `gates ...` (a small circuit size); `prove -b
//! DOORS -o OUT ...` (the knocking: DOORS is the "circuit", a JSON object naming what to try:
//! `nsm` and `secrets` (paths to open for reading), `pids` (processes to signal and trace) and
//! `write_dirs` (directories to create a file in)); `verify ...` (succeeds).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
use nix::unistd::Pid;

struct Report(Vec<String>);

impl Report {
    fn door(&mut self, door: &str, open: bool, detail: impl std::fmt::Display) {
        self.0.push(
            serde_json::json!({"door": door, "open": open, "detail": detail.to_string()})
                .to_string(),
        );
    }

    /// A door is open when `attempt` succeeds.
    fn knock<T, E: std::fmt::Display>(&mut self, door: &str, attempt: Result<T, E>) {
        match attempt {
            Ok(_) => self.door(door, true, "succeeded"),
            Err(e) => self.door(door, false, e),
        }
    }
}

fn arg_after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn strings(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn knock_everywhere(doors: &serde_json::Value, out: &Path) -> Report {
    let mut r = Report(Vec::new());
    let me = std::process::id();

    // Who am I?
    let (uid, euid) = (nix::unistd::getuid(), nix::unistd::geteuid());
    r.door(
        "root",
        uid.is_root() || euid.is_root(),
        format!("uid {uid} euid {euid}"),
    );
    let groups = nix::unistd::getgroups().unwrap_or_default();
    r.door("groups", !groups.is_empty(), format!("{groups:?}"));
    r.knock(
        "setuid 0",
        nix::unistd::setuid(nix::unistd::Uid::from_raw(0)),
    );

    // The network: the parent's vsock ports, the egress proxy, anything.
    for (name, family) in [
        ("socket AF_INET", AddressFamily::Inet),
        ("socket AF_UNIX", AddressFamily::Unix),
        ("socket AF_VSOCK", AddressFamily::Vsock),
    ] {
        r.knock(
            name,
            socket(family, SockType::Stream, SockFlag::empty(), None),
        );
    }

    // The NSM and other secrets (another job's witness, the enclave's state).
    for p in strings(doors, "nsm")
        .iter()
        .chain(&strings(doors, "secrets"))
    {
        r.knock(&format!("read {p}"), std::fs::File::open(p));
    }

    // Other processes: the enclave (PID 1 in the image), the test.
    let pids: Vec<i32> = doors["pids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_i64().map(|p| p as i32))
                .collect()
        })
        .unwrap_or_default();
    for pid in pids.iter().copied().chain([1]) {
        if pid as u32 == me {
            // PID 1 of a namespace of its own: the enclave's PID 1 is out of sight.
            r.door(&format!("signal pid {pid}"), false, "this process itself");
            r.knock(
                &format!("read /proc/{pid}/environ"),
                std::fs::read(format!("/proc/{pid}/environ")),
            );
            continue;
        }
        r.knock(
            &format!("signal pid {pid}"),
            nix::sys::signal::kill(Pid::from_raw(pid), None),
        );
        r.knock(
            &format!("read /proc/{pid}/environ"),
            std::fs::read(format!("/proc/{pid}/environ")),
        );
        // Seize does not stop the tracee; detached again at once if it worked.
        let seized =
            nix::sys::ptrace::seize(Pid::from_raw(pid), nix::sys::ptrace::Options::empty());
        if seized.is_ok() {
            let _ = nix::sys::ptrace::detach(Pid::from_raw(pid), None);
        }
        r.knock(&format!("ptrace pid {pid}"), seized);
    }

    // Writing outside the job directory: the root, /tmp, bb's own directory, the CRS (through
    // the job's link to it), whatever the test names.
    let exe_dir = std::env::args()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mut dirs = vec![PathBuf::from("/"), PathBuf::from("/tmp"), exe_dir];
    dirs.extend(strings(doors, "write_dirs").into_iter().map(PathBuf::from));
    for d in dirs {
        let f = d.join(format!("hostile-{me}"));
        let made = OpenOptions::new().write(true).create_new(true).open(&f);
        if made.is_ok() {
            let _ = std::fs::remove_file(&f);
        }
        r.knock(&format!("write in {}", d.display()), made);
    }
    r.knock(
        "write the CRS",
        OpenOptions::new().write(true).open("crs/bn254_g1.dat"),
    );

    // Other jobs: whatever lies beside this job's directory.
    let cwd = std::env::current_dir().unwrap_or_default();
    let mine = cwd.file_name().map(|n| n.to_os_string());
    let others: Vec<String> = cwd
        .parent()
        .and_then(|p| std::fs::read_dir(p).ok())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| Some(e.file_name()) != mine)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    r.door("see other jobs", !others.is_empty(), format!("{others:?}"));

    // Descriptors the enclave left open (its sockets, the NSM).
    let inherited = sigil_sys::io::open_descriptors(3..1024);
    r.door(
        "inherited descriptors",
        !inherited.is_empty(),
        format!("{inherited:?}"),
    );

    // Kernel interfaces: mount (inside the job directory, so nothing else is disturbed),
    // namespaces.
    let m = Path::new("mnt");
    let _ = std::fs::create_dir(m);
    let mounted = nix::mount::mount(
        Some("tmpfs"),
        m,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    if mounted.is_ok() {
        let _ = nix::mount::umount(m);
    }
    r.knock("mount", mounted);
    r.knock(
        "unshare a user namespace",
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER),
    );

    // Room: fill the job directory until the file system says no. Only when the test asks
    // (`fill_mib`): in local mode the job directory is on the host's disk.
    if let Some(limit) = doors["fill_mib"].as_u64() {
        let (written, stop) = fill(Path::new("fill"), limit << 20);
        let _ = std::fs::remove_dir_all("fill");
        r.door(
            "fill the job file system",
            written > limit << 20,
            format!("{} MiB written, then: {stop}", written >> 20),
        );
    }

    // The work bb is there for.
    let written = std::fs::create_dir_all(out).and_then(|_| std::fs::write(out.join("vk"), b"vk"));
    r.door(
        "job directory writable",
        written.is_ok(),
        format!("{written:?}"),
    );
    r
}

/// Writes files of up to 32 MiB (below RLIMIT_FSIZE) under `dir` until a write fails or more
/// than `limit` bytes are written: (bytes written, why it stopped).
fn fill(dir: &Path, limit: u64) -> (u64, String) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return (0, e.to_string());
    }
    let chunk = vec![0x5au8; 1 << 20];
    let mut written = 0u64;
    for i in 0.. {
        let mut f = match std::fs::File::create(dir.join(format!("f{i}"))) {
            Ok(f) => f,
            Err(e) => return (written, e.to_string()),
        };
        for _ in 0..32 {
            if let Err(e) = f.write_all(&chunk) {
                return (written, e.to_string());
            }
            written += chunk.len() as u64;
            if written > limit {
                return (written, "the limit".into());
            }
        }
    }
    (written, "unreachable".into())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--version") => println!("hostile-bb 0"),
        Some("gates") => println!(r#"{{"functions": [{{"circuit_size": 100}}]}}"#),
        Some("verify") => {}
        Some("prove") => {
            let doors = arg_after(&args, "-b")
                .and_then(|p| std::fs::read(p).ok())
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(serde_json::Value::Null);
            let out = PathBuf::from(arg_after(&args, "-o").unwrap_or("out"));
            let report = knock_everywhere(&doors, &out);
            let mut f = std::fs::File::create(out.join("proof")).expect("write the report");
            for line in &report.0 {
                writeln!(f, "{line}").expect("write the report");
            }
            for name in ["public_inputs", "vk_hash"] {
                std::fs::write(out.join(name), b"x").expect("write outputs");
            }
        }
        _ => std::process::exit(2),
    }
}
