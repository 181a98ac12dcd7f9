//! Runs the real `sigil-shim` binary for end-to-end tests: the blob store, the egress proxy
//! (with `--egress-resolve` pointing the KMS name at a development KMS) and the credentials
//! service, on Unix sockets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Credentials the shim hands out (from its environment) and the development KMS accepts.
pub const ACCESS_KEY_ID: &str = "AKIDSIGILTEST";
pub const SECRET_ACCESS_KEY: &str = "sigil-test-secret";

/// What the shim serves and where.
#[derive(Clone, Debug)]
pub struct ShimSetup {
    /// The `sigil-shim` binary.
    pub bin: PathBuf,
    /// Blob files live in `<state_dir>`.
    pub state_dir: PathBuf,
    pub blob_listen: String,
    pub egress_listen: String,
    pub credentials_listen: String,
    /// Allowed egress destination (HOST:PORT).
    pub egress_allow: String,
    /// `HOST:PORT=IP:PORT`, if the allowed name should reach a local server.
    pub egress_resolve: Option<String>,
    /// Optional ingress: (listen, enclave API address).
    pub ingress: Option<(String, String)>,
    /// Where the shim's output goes (its log).
    pub log: PathBuf,
    /// A CRS file the shim puts into the blob store for the prover (`--crs`).
    pub crs: Option<PathBuf>,
    /// Keep the blobs in S3 instead of files: (endpoint URL, bucket), region us-east-1.
    pub blob_s3: Option<(String, String)>,
}

impl ShimSetup {
    /// The local layout: blobs in `<dir>/state`, the sockets `<dir>/{blobs,egress,creds}.sock`,
    /// the log `<dir>/shim.log`, egress only to the us-east-1 KMS (not redirected), no
    /// ingress.
    pub fn in_dir(bin: PathBuf, dir: &Path, crs: Option<PathBuf>) -> ShimSetup {
        let sock = |n: &str| format!("unix:{}", dir.join(n).display());
        ShimSetup {
            bin,
            state_dir: dir.join("state"),
            blob_listen: sock("blobs.sock"),
            egress_listen: sock("egress.sock"),
            credentials_listen: sock("creds.sock"),
            egress_allow: "kms.us-east-1.amazonaws.com:443".into(),
            egress_resolve: None,
            ingress: None,
            log: dir.join("shim.log"),
            crs,
            blob_s3: None,
        }
    }
}

/// A running shim, killed when dropped.
pub struct Shim {
    child: Child,
}

fn wait_for(p: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Shim {
    pub fn start(s: &ShimSetup) -> Result<Shim, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log)
            .map_err(|e| format!("{}: {e}", s.log.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        // A previous shim's socket files would look ready before this one binds.
        for a in [&s.blob_listen, &s.egress_listen, &s.credentials_listen] {
            if let Some(p) = a.strip_prefix("unix:") {
                let _ = std::fs::remove_file(p);
            }
        }
        let mut cmd = Command::new(&s.bin);
        cmd.arg("--state-dir")
            .arg(&s.state_dir)
            .args(["--blob-listen", &s.blob_listen])
            .args(["--egress-listen", &s.egress_listen])
            .args(["--egress-allow", &s.egress_allow])
            .args(["--credentials-listen", &s.credentials_listen])
            .args(["--credentials-source", "env"])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env_remove("AWS_SESSION_TOKEN")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if let Some(r) = &s.egress_resolve {
            cmd.args(["--egress-resolve", r]);
        }
        if let Some((url, bucket)) = &s.blob_s3 {
            cmd.args(["--blob-s3", url, "--blob-s3-bucket", bucket])
                .args(["--blob-s3-region", "us-east-1"]);
        }
        if let Some(crs) = &s.crs {
            cmd.arg("--crs").arg(crs);
        }
        if let Some((listen, api)) = &s.ingress {
            cmd.args(["--ingress-listen", listen, "--enclave-api", api]);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", s.bin.display()))?;
        // Ready once its Unix sockets exist.
        for a in [&s.blob_listen, &s.egress_listen, &s.credentials_listen] {
            if let Some(p) = a.strip_prefix("unix:")
                && !wait_for(Path::new(p), Duration::from_secs(10))
            {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "sigil-shim did not create {p}: {}",
                    std::fs::read_to_string(&s.log).unwrap_or_default()
                ));
            }
        }
        Ok(Shim { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the shim is still running (it has not crashed).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().map(|s| s.is_none()).unwrap_or(false)
    }

    /// Stops the shim at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
