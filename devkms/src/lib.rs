#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod blob;
pub mod config;
pub mod server;
pub mod service;
pub mod tls;

pub use config::{Config, CredentialConfig, KeyConfig, KeyPolicy};
pub use server::RunningServer;
pub use service::{DevKms, HttpRequest, HttpResponse, KmsError};

/// Validates `config`, generates the TLS material (under `config.tls_ca_dir` when set) and
/// starts serving on `config.listen`.
// Still a `String`: callers outside this crate (the QEMU harness) pass it on with `?`.
pub fn start(config: &Config) -> Result<RunningServer, String> {
    let kms = DevKms::new(config).map_err(|e| e.to_string())?;
    let tls = match &config.tls_ca_dir {
        Some(dir) => tls::generate_with_ca_dir(&config.region, dir),
        None => tls::generate(&config.region),
    }
    .map_err(|e| e.to_string())?;
    server::start(kms, tls, &config.listen).map_err(|e| format!("listen on {}: {e}", config.listen))
}
