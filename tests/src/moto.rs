//! moto's S3 server (`moto[server]`, installed by `scripts/setup`) on a free loopback port, for
//! tests of the shim's S3 blob store shared by several shims. Killed when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MotoS3 {
    child: Child,
    addr: SocketAddr,
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MotoS3 {
    /// Starts the server (its log in `dir/moto.log`); fails (never skips) without moto.
    pub fn start(dir: &Path) -> MotoS3 {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("python3")
            .args(["-c", "import moto.server"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "moto's server is not installed (python3 -c 'import moto.server' fails): run \
             scripts/setup, which installs moto[server]"
        );
        // A port free now; moto binds it a moment later (a clash only fails this run).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("moto.log")).unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn python3 -m moto.server");
        let mut moto = MotoS3 {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&moto.addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!(
                    "moto exited ({status}): {}",
                    std::fs::read_to_string(dir.join("moto.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "moto did not start in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates a bucket (moto without authentication takes an unsigned request).
    pub fn create_bucket(&self, name: &str) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        agent
            .put(format!("{}/{name}", self.endpoint()))
            .send(&[][..])
            .unwrap_or_else(|e| panic!("create bucket {name}: {e}"));
    }
}
