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

/// Why the development KMS could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Validates `config`, generates the TLS material (under `config.tls_ca_dir` when set) and
/// starts serving on `config.listen`.
pub fn start(config: &Config) -> Result<RunningServer, StartError> {
    let kms = DevKms::new(config)?;
    let tls = match &config.tls_ca_dir {
        Some(dir) => tls::generate_with_ca_dir(&config.region, dir),
        None => tls::generate(&config.region),
    }?;
    server::start(kms, tls, &config.listen).map_err(|source| StartError::Listen {
        addr: config.listen.clone(),
        source,
    })
}
