//! `sigil-eif`: build, inspect and unpack Nitro Enclave images; pack initramfs archives.
//!
//! Exit status: 0 on success, 1 on failure (one line on stderr), 2 on a usage error.

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use sigil_eif::cpio::{self, Entry};
use sigil_eif::eif::{self, EifBuilder, ImageMetadata};
use sigil_eif::pcr;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sigil-eif",
    version,
    about = "Reproducible AWS Nitro Enclave images (EIF v4)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a version-4 EIF and print its measurements.
    Build(BuildArgs),
    /// Print an EIF's header, sections, measurements and metadata as JSON.
    Describe {
        /// The EIF to read.
        eif: PathBuf,
    },
    /// Write an EIF's sections to DIR: kernel, cmdline, ramdisk1.., metadata.json.
    Extract {
        eif: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Pack a deterministic initramfs (cpio newc, optionally gzip).
    Cpio(CpioArgs),
    /// Print the measurements an image of these parts would have.
    Pcrs(Inputs),
}

#[derive(Args)]
struct Inputs {
    /// Kernel image (bzImage / Image).
    #[arg(long)]
    kernel: PathBuf,
    /// Kernel command line, used verbatim (no trailing newline added).
    #[arg(long)]
    cmdline: String,
    /// Ramdisk, in boot order; the first is measured into PCR1, the rest into PCR2.
    #[arg(long, required = true)]
    ramdisk: Vec<PathBuf>,
}

#[derive(Args)]
struct BuildArgs {
    #[command(flatten)]
    inputs: Inputs,
    #[arg(long)]
    output: PathBuf,
    /// BuildTime in the metadata.
    #[arg(long, default_value = eif::DEFAULT_BUILD_TIME)]
    build_time: String,
    /// Kernel .config: OperatingSystem and KernelVersion are read from its third line.
    #[arg(long)]
    kernel_config: Option<PathBuf>,
    /// Metadata JSON file, written verbatim instead of generated metadata.
    #[arg(long, conflicts_with_all = ["build_time", "kernel_config", "name", "image_version", "build_tool", "build_tool_version"])]
    metadata: Option<PathBuf>,
    /// ImageName in the metadata [default: the kernel's file name, as eif_build does].
    #[arg(long)]
    name: Option<String>,
    /// ImageVersion in the metadata.
    #[arg(long, default_value = "1.0")]
    image_version: String,
    /// BuildTool in the metadata.
    #[arg(long, default_value = env!("CARGO_PKG_NAME"))]
    build_tool: String,
    /// BuildToolVersion in the metadata.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    build_tool_version: String,
    /// Default memory in the header, MiB.
    #[arg(long, default_value_t = eif::DEFAULT_MEM >> 20)]
    memory: u64,
    /// Default vCPU count in the header.
    #[arg(long, default_value_t = eif::DEFAULT_CPUS)]
    cpus: u64,
    #[arg(long, default_value = "x86_64", value_parser = ["x86_64", "aarch64"])]
    arch: String,
}

#[derive(Args)]
struct CpioArgs {
    #[arg(long)]
    out: PathBuf,
    /// Compress with deterministic gzip.
    #[arg(long)]
    gzip: bool,
    /// Directory: PATH:MODE (MODE octal, e.g. 0755).
    #[arg(long = "dir", value_name = "PATH:MODE", value_parser = parse_dir)]
    dirs: Vec<Entry>,
    /// Regular file with the contents of SRC: PATH=SRC:MODE.
    #[arg(long = "file", value_name = "PATH=SRC:MODE", value_parser = parse_file)]
    files: Vec<FileSpec>,
    /// Character device: PATH:MAJOR:MINOR:MODE (e.g. dev/console:5:1:0600).
    #[arg(long = "char", value_name = "PATH:MAJOR:MINOR:MODE", value_parser = parse_char)]
    chars: Vec<Entry>,
    /// Symbolic link: PATH=TARGET.
    #[arg(long = "symlink", value_name = "PATH=TARGET", value_parser = parse_symlink)]
    symlinks: Vec<Entry>,
}

#[derive(Clone)]
struct FileSpec {
    path: String,
    src: PathBuf,
    mode: u32,
}

fn main() -> ExitCode {
    // clap exits with 2 on usage errors and 0 for --help/--version.
    let cli = Cli::parse();
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigil-eif: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> Result<(), String> {
    match cmd {
        Cmd::Build(a) => build(a),
        Cmd::Describe { eif } => describe(&eif),
        Cmd::Extract { eif, out } => extract(&eif, &out),
        Cmd::Cpio(a) => pack(a),
        Cmd::Pcrs(i) => {
            let (kernel, ramdisks) = read_inputs(&i)?;
            let refs: Vec<&[u8]> = ramdisks.iter().map(Vec::as_slice).collect();
            let p = pcr::compute(&kernel, i.cmdline.as_bytes(), &refs);
            print_json(&json!({ "Measurements": p.to_measurements_json() }))
        }
    }
}

/// Reads a whole file, refusing anything over `max` bytes before allocating for it.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let f = File::open(path).map_err(err)?;
    let len = f.metadata().map_err(err)?.len();
    if len > max {
        return Err(format!(
            "{}: {len} bytes, over the {max}-byte limit",
            path.display()
        ));
    }
    let mut buf = Vec::with_capacity(len as usize);
    // take() guards against a file that grows while being read.
    f.take(max + 1).read_to_end(&mut buf).map_err(err)?;
    if buf.len() as u64 > max {
        return Err(format!("{}: over the {max}-byte limit", path.display()));
    }
    Ok(buf)
}

/// Kernel and ramdisks, read within one shared budget so their sum stays under the image
/// size limit before anything large is allocated.
fn read_inputs(i: &Inputs) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    let mut budget = eif::MAX_EIF_SIZE;
    let mut take = |p: &Path| -> Result<Vec<u8>, String> {
        let b = read_bounded(p, budget)?;
        budget -= b.len() as u64;
        Ok(b)
    };
    let kernel = take(&i.kernel)?;
    let ramdisks = i
        .ramdisk
        .iter()
        .map(|p| take(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((kernel, ramdisks))
}

fn print_json(v: &impl serde::Serialize) -> Result<(), String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(())
}

fn build(a: BuildArgs) -> Result<(), String> {
    let (kernel, ramdisks) = read_inputs(&a.inputs)?;
    let metadata = match &a.metadata {
        Some(p) => read_bounded(p, eif::MAX_METADATA_LEN as u64)?,
        None => {
            let config = match &a.kernel_config {
                Some(p) => {
                    let b = read_bounded(p, 16 << 20)?;
                    Some(
                        String::from_utf8(b)
                            .map_err(|_| format!("{}: not UTF-8 text", p.display()))?,
                    )
                }
                None => None,
            };
            let name = match &a.name {
                Some(n) => n.clone(),
                None => a
                    .inputs
                    .kernel
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| {
                        format!(
                            "{}: no usable file name for ImageName; pass --name",
                            a.inputs.kernel.display()
                        )
                    })?
                    .to_string(),
            };
            let mut m = ImageMetadata::new(&name, &a.build_time, config.as_deref());
            m.image_version = a.image_version.clone();
            m.build.build_tool = a.build_tool.clone();
            m.build.build_tool_version = a.build_tool_version.clone();
            m.to_bytes()
        }
    };
    let default_mem = a
        .memory
        .checked_mul(1 << 20)
        .ok_or_else(|| format!("--memory {} MiB overflows", a.memory))?;
    let builder = EifBuilder {
        kernel,
        cmdline: a.inputs.cmdline.clone(),
        ramdisks,
        metadata,
        default_mem,
        default_cpus: a.cpus,
        flags: if a.arch == "aarch64" {
            eif::FLAG_ARCH_ARM64
        } else {
            0
        },
    };
    let image = builder.build().map_err(|e| e.to_string())?;
    fs::write(&a.output, &image).map_err(|e| format!("{}: {e}", a.output.display()))?;
    print_json(&json!({ "Measurements": builder.pcrs().to_measurements_json() }))
}

fn load(path: &Path) -> Result<eif::Eif, String> {
    let bytes = read_bounded(path, eif::MAX_EIF_SIZE)?;
    eif::parse_eif(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn describe(path: &Path) -> Result<(), String> {
    let d = load(path)?
        .describe()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    print_json(&d)
}

fn extract(path: &Path, out: &Path) -> Result<(), String> {
    let e = load(path)?;
    fs::create_dir_all(out).map_err(|err| format!("{}: {err}", out.display()))?;
    let mut files: Vec<(String, &[u8])> = Vec::new();
    if let Some(k) = e.kernel() {
        files.push(("kernel".into(), k));
    }
    if let Some(c) = e.cmdline_bytes() {
        files.push(("cmdline".into(), c));
    }
    for (i, r) in e.ramdisks().into_iter().enumerate() {
        files.push((format!("ramdisk{}", i + 1), r));
    }
    if let Some(m) = e.metadata() {
        files.push(("metadata.json".into(), m));
    }
    if let Some(s) = e.signature() {
        files.push(("signature".into(), s));
    }
    let mut written = Vec::new();
    for (name, data) in files {
        let p = out.join(&name);
        fs::write(&p, data).map_err(|err| format!("{}: {err}", p.display()))?;
        written.push(p.display().to_string());
    }
    print_json(&json!({ "Written": written }))
}

// Spec parsers run inside clap, so a malformed spec is a usage error (exit 2).

/// Octal permission bits: "0755", "755" or "0o755".
fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("bad mode {s:?}: expected octal permission bits like 0755"))
}

fn parse_dir(spec: &str) -> Result<Entry, String> {
    let (path, mode) = spec.rsplit_once(':').ok_or("expected PATH:MODE")?;
    Ok(Entry::Dir {
        path: path.into(),
        mode: parse_mode(mode)?,
    })
}

fn parse_file(spec: &str) -> Result<FileSpec, String> {
    let shape = "expected PATH=SRC:MODE";
    let (path, rest) = spec.split_once('=').ok_or(shape)?;
    let (src, mode) = rest.rsplit_once(':').ok_or(shape)?;
    Ok(FileSpec {
        path: path.into(),
        src: src.into(),
        mode: parse_mode(mode)?,
    })
}

fn parse_char(spec: &str) -> Result<Entry, String> {
    let mut it = spec.rsplitn(4, ':');
    let (Some(mode), Some(minor), Some(major), Some(path)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err("expected PATH:MAJOR:MINOR:MODE".into());
    };
    let num = |s: &str, what: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("bad {what} number {s:?}"))
    };
    Ok(Entry::CharDev {
        path: path.into(),
        mode: parse_mode(mode)?,
        major: num(major, "major")?,
        minor: num(minor, "minor")?,
    })
}

fn parse_symlink(spec: &str) -> Result<Entry, String> {
    let (path, target) = spec.split_once('=').ok_or("expected PATH=TARGET")?;
    Ok(Entry::Symlink {
        path: path.into(),
        target: target.into(),
    })
}

fn pack(a: CpioArgs) -> Result<(), String> {
    let mut entries = a.dirs;
    for f in a.files {
        entries.push(Entry::File {
            data: read_bounded(&f.src, cpio::MAX_FILE_SIZE)?,
            path: f.path,
            mode: f.mode,
        });
    }
    entries.extend(a.chars);
    entries.extend(a.symlinks);
    let mut archive = cpio::write_newc(&entries).map_err(|e| e.to_string())?;
    if a.gzip {
        archive = cpio::gzip(&archive);
    }
    fs::write(&a.out, &archive).map_err(|e| format!("{}: {e}", a.out.display()))
}
