//! The real binary: flags, the log sink on stdout, and the credentials service from env.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::temp_dir;

fn connect(p: &std::path::Path) -> UnixStream {
    let t = Instant::now();
    loop {
        match UnixStream::connect(p) {
            Ok(s) => return s,
            Err(_) if t.elapsed() < Duration::from_secs(10) => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("{}: {e}", p.display()),
        }
    }
}

#[test]
fn logs_to_stdout_and_credentials_from_env() {
    let d = temp_dir("binary");
    let (logs, creds) = (d.join("logs.sock"), d.join("creds.sock"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil-shim"))
        .arg("--log-listen")
        .arg(format!("unix:{}", logs.display()))
        .arg("--credentials-listen")
        .arg(format!("unix:{}", creds.display()))
        .args(["--credentials-source", "env"])
        .env("AWS_ACCESS_KEY_ID", "AKIATEST")
        .env("AWS_SECRET_ACCESS_KEY", "sekrit")
        .env_remove("AWS_SESSION_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());

    let mut l = connect(&logs);
    l.write_all(b"booted\nsecond line\x1b[2J\n").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("enclave[unix:") && line.ends_with("]: booted\n"),
        "{line:?}"
    );
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(line.ends_with("]: second line?[2J\n"), "{line:?}");

    let mut c = connect(&creds);
    let body = sigil_shim::wire::read_frame(&mut c)
        .map_err(|e| format!("{e:?}"))
        .unwrap();
    let mut dec = minicbor::Decoder::new(&body);
    assert_eq!(dec.map().unwrap(), Some(4));
    let mut fields = Vec::new();
    for _ in 0..4 {
        let k = dec.str().unwrap().to_string();
        let v = match k.as_str() {
            "v" => dec.u8().unwrap().to_string(),
            "ok" => dec.bool().unwrap().to_string(),
            _ => dec.str().unwrap().to_string(),
        };
        fields.push(format!("{k}={v}"));
    }
    assert_eq!(
        fields,
        [
            "v=1",
            "ok=true",
            "access_key_id=AKIATEST",
            "secret_access_key=sekrit"
        ]
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn bad_configuration_exits_with_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_sigil-shim"))
        .args([
            "--ingress-listen",
            "tcp:127.0.0.1:0",
            "--enclave-api",
            "vsock:16",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("enclave_api: vsock address \"16\" needs CID:PORT"),
        "{err}"
    );
}
