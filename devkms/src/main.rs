//! `sigil-devkms`: run the development KMS (never in production).

use clap::Parser;
use sigil_devkms::{Config, CredentialConfig, KeyConfig, KeyPolicy};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// Development stand-in for AWS KMS (GenerateDataKey, Decrypt, GenerateRandom with Nitro
/// attestation Recipient). NEVER use in production.
#[derive(Parser, Debug)]
#[command(name = "sigil-devkms", version)]
struct Args {
    /// JSON config file (see README). Without it, one key is configured from the flags below.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Listen address (overrides the config).
    #[arg(long)]
    listen: Option<String>,
    /// Region (overrides the config).
    #[arg(long)]
    region: Option<String>,
    /// Write the development CA certificate (PEM) here, for clients to pin.
    #[arg(long)]
    ca_out: Option<std::path::PathBuf>,
    /// Issue the server certificate under the fixed CA in DIR (`ca.pem`, `ca.key`), e.g. the
    /// committed `devkms/dev-ca`, instead of a throw-away CA (overrides the config).
    #[arg(long, value_name = "DIR")]
    dev_ca: Option<std::path::PathBuf>,
    /// Key id for the flag-configured key.
    #[arg(long, default_value = "sigil-dev-key")]
    key_id: String,
    /// Alias for the flag-configured key (repeatable).
    #[arg(long)]
    alias: Vec<String>,
    /// Allowed access key id for the flag-configured key.
    #[arg(long, default_value = "AKIDEVKMS")]
    access_key_id: String,
    /// Secret for --access-key-id (development only; visible in the process list).
    #[arg(long, default_value = "devkms-secret")]
    secret_access_key: String,
    /// Required PCR, `INDEX=HEX` (repeatable): kms:RecipientAttestation:PCR<INDEX>.
    #[arg(long = "pcr")]
    pcrs: Vec<String>,
    /// Required PCR0: kms:RecipientAttestation:ImageSha384.
    #[arg(long)]
    image_sha384: Option<String>,
    /// Allow calls without a Recipient (return Plaintext).
    #[arg(long)]
    allow_plaintext: bool,
    /// Accept documents under the sigil test root (simulated NSM).
    #[arg(long)]
    trust_test_root: bool,
    /// Accept debug-mode documents.
    #[arg(long)]
    allow_debug: bool,
}

fn config_from(args: &Args) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Config::from_json(&bytes).map_err(|e| e.to_string())?
        }
        None => {
            let mut allowed_pcrs = BTreeMap::new();
            for p in &args.pcrs {
                let (i, h) = p
                    .split_once('=')
                    .ok_or_else(|| format!("--pcr {p:?}: expected INDEX=HEX"))?;
                let i: u8 = i.parse().map_err(|_| format!("--pcr {p:?}: bad index"))?;
                allowed_pcrs.insert(i, h.to_string());
            }
            Config::from_json(b"{\"keys\":[]}")
                .map(|mut c| {
                    c.keys.push(KeyConfig {
                        key_id: args.key_id.clone(),
                        aliases: args.alias.clone(),
                        master_key_hex: None,
                        policy: KeyPolicy {
                            allowed_credentials: vec![CredentialConfig {
                                access_key_id: args.access_key_id.clone(),
                                secret_access_key: args.secret_access_key.clone(),
                            }],
                            require_recipient: !args.allow_plaintext,
                            allowed_pcrs,
                            allowed_image_sha384: args.image_sha384.clone(),
                            trust_test_root: args.trust_test_root,
                            allow_debug: args.allow_debug,
                        },
                    });
                    c
                })
                .map_err(|e| e.to_string())?
        }
    };
    if let Some(l) = &args.listen {
        config.listen = l.clone();
    }
    if let Some(r) = &args.region {
        config.region = r.clone();
    }
    if let Some(d) = &args.dev_ca {
        config.tls_ca_dir = Some(d.clone());
    }
    Ok(config)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let run = || -> Result<(), String> {
        let config = config_from(&args)?;
        let server = sigil_devkms::start(&config).map_err(|e| e.to_string())?;
        if let Some(p) = &args.ca_out {
            std::fs::write(p, server.ca_pem()).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        eprintln!(
            "sigil-devkms: DEVELOPMENT KMS, NOT FOR PRODUCTION; listening on https://{} (region {}, CA {}, keys: {})",
            server.local_addr(),
            config.region,
            match &config.tls_ca_dir {
                Some(d) => d.display().to_string(),
                None => "generated at start".into(),
            },
            config
                .keys
                .iter()
                .map(|k| k.key_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        server.wait();
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigil-devkms: {e}");
            ExitCode::FAILURE
        }
    }
}
