//! `insecure-crs --points N --out FILE`: writes an INSECURE (tau = 2) BN254 CRS for tests, the
//! same bytes as `scripts/insecure-test-crs`, up to 2^24 points. Prints one line, as the
//! script does: `{"crs_points": N, "crs_sha256": "<hex>", "file": "FILE"}`.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: insecure-crs --points N --out FILE\n\
    Writes an INSECURE BN254 CRS (tau = 2, point i = 2^i * G): FOR TESTS ONLY, anyone can \
    forge proofs under it.";

fn run() -> Result<(), String> {
    let (mut points, mut out) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--points" => {
                let v = value()?;
                points = Some(v.parse::<u64>().map_err(|_| format!("--points {v:?}"))?);
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let (Some(points), Some(out)) = (points, out) else {
        return Err(USAGE.into());
    };
    let sha = sigil_insecure_crs::write_file(points, &out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let file = serde_json::to_string(&out.to_string_lossy()).unwrap_or_default();
    println!(r#"{{"crs_points": {points}, "crs_sha256": "{sha}", "file": {file}}}"#);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("insecure-crs: {e}");
            ExitCode::FAILURE
        }
    }
}
