//! `sigil-devkms`: a development stand-in for AWS KMS. It speaks the KMS `awsJson1_1`
//! protocol (SigV4-signed `TrentService.GenerateDataKey`, `Decrypt`, `GenerateRandom`) over
//! TLS under a throw-away CA or the committed development CA, verifies Nitro attestation `Recipient`s and enforces a key
//! policy modelled on the `kms:RecipientAttestation:*` condition keys. Never for production:
//! its keys live in process memory and its CA is generated on the spot or has a public key.
//!
//! * [`config`]: the JSON configuration and key policy.
//! * [`service`]: the operations, independent of transport ([`DevKms::handle`]).
//! * [`blob`]: the authenticated `CiphertextBlob` format (AES-256-GCM).
//! * [`tls`]: the development CA and server certificate.
//! * [`server`]: the blocking HTTP/1.1-over-TLS server ([`start`]).

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
pub fn start(config: &Config) -> Result<RunningServer, String> {
    let kms = DevKms::new(config)?;
    let tls = match &config.tls_ca_dir {
        Some(dir) => tls::generate_with_ca_dir(&config.region, dir)?,
        None => tls::generate(&config.region)?,
    };
    server::start(kms, tls, &config.listen).map_err(|e| format!("listen on {}: {e}", config.listen))
}
