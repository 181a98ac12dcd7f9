//! A local deployment for tests and benchmarks: the development KMS (in-process, TLS under the
//! committed development CA), the real `sigil-shim` (blob store, egress proxy, credentials)
//! and `sigil-enclave` in local mode with a `kms` section, all in one directory. Each part can
//! be stopped and started again, as crashes and restarts do.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::shim::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, Shim, ShimSetup};
use crate::workspace;

pub const REGION: &str = "us-east-1";
pub const KEY_ID: &str = "sigil-test-key";
/// A fixed master key, so a restarted development KMS decrypts what it made before.
pub const MASTER_KEY: &str = "5c1d3f0a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817060504";

/// The ARN the enclave's configuration names.
pub fn key_arn() -> String {
    format!("arn:aws:kms:{REGION}:111122223333:key/{KEY_ID}")
}

/// The development KMS's key policy, as JSON: the shim's test credentials, the sigil test
/// root, and either any (debug) PCRs or exactly `pcr0`.
pub fn kms_policy(pcr0: Option<&str>) -> String {
    let pcrs = match pcr0 {
        Some(p) => format!(r#""allowed_pcrs": {{"0": "{p}"}}, "allow_debug": false"#),
        None => r#""allow_debug": true"#.into(),
    };
    format!(
        r#"{{"allowed_credentials": [{{"access_key_id": "{ACCESS_KEY_ID}", "secret_access_key": "{SECRET_ACCESS_KEY}"}}],
            "trust_test_root": true, {pcrs}}}"#
    )
}

/// The `/v1/health` of the enclave at `endpoint` (`http://HOST:PORT`), or `None` while it
/// does not answer with JSON (booting, restarting).
pub fn health(endpoint: &str) -> Option<serde_json::Value> {
    ureq::get(format!("{endpoint}/v1/health"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|b| serde_json::from_str(&b).ok())
}

/// Waits (up to 120 s) until the enclave at `endpoint` (`http://HOST:PORT`) reports the
/// sealing state `state` in `/v1/health`; returns the health's `sealing` object. An enclave
/// that does not answer yet (booting, restarting) is waited for too.
pub fn wait_sealing_state(endpoint: &str, state: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let h = health(endpoint).unwrap_or_default();
        if h["sealing"]["state"] == state {
            return h["sealing"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "sealing never became {state}: {h}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `sigil-enclave` as a local process on a free TCP port; killed (SIGKILL) on drop.
pub struct LocalEnclave {
    child: Child,
    addr: String,
}

impl LocalEnclave {
    pub fn start(bin: &Path, args: &[&str]) -> LocalEnclave {
        LocalEnclave::start_listening(bin, "tcp:127.0.0.1:0", args)
    }

    /// As [`LocalEnclave::start`], listening on `listen` (`tcp:HOST:PORT`).
    pub fn start_listening(bin: &Path, listen: &str, args: &[&str]) -> LocalEnclave {
        let mut child = Command::new(bin)
            .args(["--listen", listen])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening tcp:")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        LocalEnclave { child, addr }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for LocalEnclave {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A killed enclave cannot clean up its local-mode directory (its CRS copy, job
        // directories); do it for it, so test runs do not fill the temporary directory.
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("sigil-enclave-{}", self.child.id())),
        );
    }
}

/// What a deployment may add to the default one.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The enclave's address (`tcp:127.0.0.1:PORT`), the same after every restart; a free
    /// port chosen at each start when `None`.
    pub enclave_listen: Option<String>,
    /// The shim's ingress (`tcp:127.0.0.1:PORT`), relaying to `enclave_listen` (which it
    /// needs), as the parent instance's public port does.
    pub ingress_listen: Option<String>,
    /// The prover, when the enclave should prove.
    pub prover: Option<Prover>,
    /// The shim keeps the blobs in S3: (endpoint URL, bucket). Several deployments on one
    /// bucket share one store, as a cluster on several parents does.
    pub blob_s3: Option<(String, String)>,
}

/// The enclave's prover: the host's `bb`, the CRS file the shim puts into its blob store, and
/// the `prover` member of the enclave's configuration (a JSON object).
#[derive(Clone, Debug)]
pub struct Prover {
    pub bb: PathBuf,
    pub crs: PathBuf,
    pub config: String,
}

pub struct Deployment {
    pub dir: PathBuf,
    /// The region the enclave's configuration names (the shim allows only [`REGION`]'s KMS).
    pub region: &'static str,
    /// Makes the simulated attestation claim this manifest's PCRs.
    pub simulated_pcrs: Option<PathBuf>,
    /// The measured configuration's `kms.first_boot` (the default when `None`).
    pub first_boot: Option<&'static str>,
    /// The measured configuration's `owners` member, a JSON object (absent when `None`).
    pub owners: Option<String>,
    /// The measured configuration's `peers` member, a JSON object (absent when `None`).
    pub peers: Option<String>,
    /// The measured configuration's `quorum` member, a JSON object (absent when `None`).
    pub quorum: Option<String>,
    /// The measured configuration's `registry` member, a JSON object (absent when `None`).
    pub registry: Option<String>,
    /// The measured configuration's `cors` member, a JSON object (absent when `None`).
    pub cors: Option<String>,
    /// Leave the `kms` section out (the quorum is then the only root).
    pub without_kms: bool,
    enclave_bin: PathBuf,
    shim_bin: PathBuf,
    options: Options,
    // Dropped in this order: the enclave first, then the shim, then the KMS.
    enclave: Option<LocalEnclave>,
    shim: Option<Shim>,
    /// The development KMS this deployment started, or `None` when it uses another's
    /// ([`Deployment::beside`]), which must then outlive it.
    _kms: Option<sigil_devkms::RunningServer>,
    kms_addr: String,
}

impl Deployment {
    /// A fresh `dir` with the development KMS (its policy allowing `pcr0`, or any debug
    /// image) and the shim running; the enclave is started by [`Deployment::start_enclave`].
    pub fn new(
        dir: PathBuf,
        enclave_bin: PathBuf,
        shim_bin: PathBuf,
        pcr0_policy: Option<&str>,
    ) -> Deployment {
        Deployment::with_options(dir, enclave_bin, shim_bin, pcr0_policy, Options::default())
    }

    /// A deployment with its own shim and enclave in `dir` that uses `kms_of`'s development
    /// KMS (several enclaves of one service, one KMS key); `kms_of` must outlive it.
    pub fn beside(
        dir: PathBuf,
        enclave_bin: PathBuf,
        shim_bin: PathBuf,
        kms_of: &Deployment,
    ) -> Deployment {
        Deployment::beside_with(dir, enclave_bin, shim_bin, kms_of, Options::default())
    }

    /// As [`Deployment::beside`], with `options`.
    pub fn beside_with(
        dir: PathBuf,
        enclave_bin: PathBuf,
        shim_bin: PathBuf,
        kms_of: &Deployment,
        options: Options,
    ) -> Deployment {
        let mut d = Deployment::empty(dir, enclave_bin, shim_bin, options);
        d.kms_addr = kms_of.kms_addr.clone();
        d.start_shim();
        d
    }

    fn empty(
        dir: PathBuf,
        enclave_bin: PathBuf,
        shim_bin: PathBuf,
        options: Options,
    ) -> Deployment {
        assert!(
            options.ingress_listen.is_none() || options.enclave_listen.is_some(),
            "the shim's ingress needs the enclave's fixed address"
        );
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        Deployment {
            dir,
            region: REGION,
            simulated_pcrs: None,
            first_boot: None,
            owners: None,
            peers: None,
            quorum: None,
            registry: None,
            cors: None,
            without_kms: false,
            enclave_bin,
            shim_bin,
            options,
            enclave: None,
            shim: None,
            kms_addr: String::new(),
            _kms: None,
        }
    }

    /// As [`Deployment::new`], with `options`.
    pub fn with_options(
        dir: PathBuf,
        enclave_bin: PathBuf,
        shim_bin: PathBuf,
        pcr0_policy: Option<&str>,
        options: Options,
    ) -> Deployment {
        let mut d = Deployment::empty(dir, enclave_bin, shim_bin, options);
        d.start_kms(pcr0_policy);
        d.start_shim();
        d
    }

    /// Starts this deployment's development KMS (its policy allowing `pcr0`, or any debug
    /// image).
    fn start_kms(&mut self, pcr0_policy: Option<&str>) {
        let config = format!(
            r#"{{"listen": "127.0.0.1:0", "region": "{REGION}", "tls_ca_dir": "{}",
                "keys": [{{"key_id": "{KEY_ID}", "master_key_hex": "{MASTER_KEY}", "policy": {}}}]}}"#,
            workspace().join("devkms/dev-ca").display(),
            kms_policy(pcr0_policy)
        );
        let config = sigil_devkms::Config::from_json(config.as_bytes()).expect("devkms config");
        let kms = sigil_devkms::start(&config).expect("start the development KMS");
        self.kms_addr = kms.local_addr().to_string();
        self._kms = Some(kms);
    }

    /// Takes the enclave's KMS access away, as a deleted key grant or a policy change does:
    /// the development KMS restarts with a policy that admits only a PCR0 no image has, and
    /// the shim restarts to reach it. A running enclave keeps its data key; the next boot is
    /// refused.
    pub fn refuse_kms(&mut self) {
        self.restart_kms(Some(&"ee".repeat(48)));
    }

    /// Gives the enclave its KMS access back (the policy that admits any debug image).
    pub fn admit_kms(&mut self) {
        self.restart_kms(None);
    }

    fn restart_kms(&mut self, pcr0_policy: Option<&str>) {
        if let Some(k) = self._kms.take() {
            k.shutdown();
        }
        self.start_kms(pcr0_policy);
        self.kill_shim();
        self.start_shim();
    }

    pub fn sock(&self, name: &str) -> String {
        format!("unix:{}", self.dir.join(name).display())
    }

    pub fn start_shim(&mut self) {
        let host = format!("kms.{REGION}.amazonaws.com:443");
        let o = &self.options;
        let setup = ShimSetup {
            egress_resolve: Some(format!("{host}={}", self.kms_addr)),
            egress_allow: host,
            ingress: o.ingress_listen.clone().zip(o.enclave_listen.clone()),
            blob_s3: o.blob_s3.clone(),
            ..ShimSetup::in_dir(
                self.shim_bin.clone(),
                &self.dir,
                o.prover.as_ref().map(|p| p.crs.clone()),
            )
        };
        self.shim = Some(Shim::start(&setup).expect("start sigil-shim"));
    }

    /// The running shim's process id.
    pub fn shim_pid(&self) -> Option<u32> {
        self.shim.as_ref().map(Shim::pid)
    }

    /// Whether the shim is still running (it has not crashed).
    pub fn shim_running(&mut self) -> bool {
        self.shim.as_mut().is_some_and(Shim::is_running)
    }

    pub fn kill_shim(&mut self) {
        if let Some(s) = self.shim.take() {
            s.kill();
        }
    }

    /// Starts the enclave (it fetches its data key in the background; see
    /// [`Deployment::wait_sealing`]).
    pub fn start_enclave(&mut self) -> &LocalEnclave {
        let listen = self
            .options
            .enclave_listen
            .clone()
            .unwrap_or_else(|| "tcp:127.0.0.1:0".into());
        let e = self.spawn_enclave(&listen, self.simulated_pcrs.clone());
        self.enclave = Some(e);
        self.enclave.as_ref().unwrap()
    }

    /// Another enclave process on this deployment's configuration, shim and state (as a
    /// second enclave of a cluster sharing one store), claiming `simulated_pcrs` (this
    /// deployment's when `None`). The caller owns it.
    pub fn start_another_enclave(&self, simulated_pcrs: Option<PathBuf>) -> LocalEnclave {
        self.spawn_enclave(
            "tcp:127.0.0.1:0",
            simulated_pcrs.or_else(|| self.simulated_pcrs.clone()),
        )
    }

    fn spawn_enclave(&self, listen: &str, simulated_pcrs: Option<PathBuf>) -> LocalEnclave {
        let config = self.dir.join("enclave.json");
        let first_boot = self
            .first_boot
            .map(|f| format!(r#", "first_boot": "{f}""#))
            .unwrap_or_default();
        let prover = self
            .options
            .prover
            .as_ref()
            .map(|p| format!(r#", "prover": {}"#, p.config))
            .unwrap_or_default();
        let owners = self
            .owners
            .as_ref()
            .map(|o| format!(r#", "owners": {o}"#))
            .into_iter()
            .chain(self.peers.as_ref().map(|p| format!(r#", "peers": {p}"#)))
            .chain(self.quorum.as_ref().map(|q| format!(r#", "quorum": {q}"#)))
            .chain(
                self.registry
                    .as_ref()
                    .map(|r| format!(r#", "registry": {r}"#)),
            )
            .chain(self.cors.as_ref().map(|c| format!(r#", "cors": {c}"#)))
            .collect::<String>();
        let kms = if self.without_kms {
            String::new()
        } else {
            format!(
                r#""kms": {{"region": "{}", "key_id": "{}", "trust": "development",
                    "encryption_context": {{"app": "sigil-test"}}{first_boot}}}"#,
                self.region,
                key_arn()
            )
        };
        let members = format!("{kms}{prover}{owners}");
        let members = members.trim_start_matches([',', ' ']);
        std::fs::write(&config, format!("{{{members}}}")).unwrap();
        let config = config.display().to_string();
        let (blobs, egress, creds) = (
            self.sock("blobs.sock"),
            self.sock("egress.sock"),
            self.sock("creds.sock"),
        );
        let mut args = vec!["--config", &config, "--blob-store", &blobs];
        if !self.without_kms {
            args.extend(["--egress", &egress, "--credentials", &creds]);
        }
        let pcrs = simulated_pcrs.as_ref().map(|p| p.display().to_string());
        if let Some(p) = &pcrs {
            args.extend(["--simulated-pcrs", p]);
        }
        let bb = self
            .options
            .prover
            .as_ref()
            .map(|p| p.bb.display().to_string());
        if let Some(bb) = &bb {
            args.extend(["--bb", bb]);
        }
        LocalEnclave::start_listening(&self.enclave_bin, listen, &args)
    }

    /// SIGKILL, as a crash or a power cut would.
    pub fn kill_enclave(&mut self) {
        self.enclave = None;
    }

    /// Whether the enclave process is still running (it has not crashed).
    pub fn enclave_running(&mut self) -> bool {
        self.enclave.as_mut().is_some_and(LocalEnclave::is_running)
    }

    pub fn enclave(&self) -> &LocalEnclave {
        self.enclave.as_ref().expect("enclave running")
    }

    pub fn endpoint(&self) -> String {
        self.enclave().endpoint()
    }

    pub fn health(&self) -> serde_json::Value {
        let body = ureq::get(format!("{}/v1/health", self.endpoint()))
            .call()
            .expect("health")
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until the sealing's state is `state` (`locked`, `awaiting_genesis`, ...).
    /// Returns the health's `sealing` object.
    pub fn wait_sealing_state(&self, state: &str) -> serde_json::Value {
        wait_sealing_state(&self.endpoint(), state)
    }

    /// Waits until the sealing settles: "ready", or (unless `want_ready`) an error that has
    /// been retried. Returns the health's `sealing` object.
    pub fn wait_sealing(&self, want_ready: bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let h = self.health();
            let s = &h["sealing"];
            if s["state"] == "ready" || (!want_ready && s["error"].is_string()) {
                return s.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "sealing did not settle: {h}\nshim log:\n{}",
                std::fs::read_to_string(self.dir.join("shim.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
