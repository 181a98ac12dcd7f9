//! The composition root: putting the service together from the NSM, the per-boot key, the
//! image description, the sealed state, the prover and the HTTP server. Shared by local mode
//! and PID 1 ([`crate::init`]). [`args`] is the local-mode command line; [`config`] the
//! measured configuration PID 1 reads from the image.
//!
//! Local mode ([`args`], `main.rs`) and PID 1 ([`crate::init`]) differ only in where their
//! inputs come from (flags and a file, or the measured image and vsock); both hand them to
//! [`assemble`], so what is served is wired in one place.

pub mod args;
pub mod config;

use std::path::PathBuf;
use std::sync::Arc;

use sigil_protocol::encap::ServerKey;
use sigil_protocol::user_data::{BbInfo, ImageInfo, PROTOCOL_VERSION, ServedBb};

use crate::api::App;
use crate::http::{Limits, Server};
use crate::log;
use crate::nsm::Nsm;
use crate::parent::ParentServices;
use crate::prover::crs::CrsService;
use crate::seal::service::Sealing;
use config::MeasuredConfig;
use sigil_sys::{Addr, Listener};

/// Why the service did not start: PID 1's start-up steps (see [`crate::init`]) and the
/// composition in [`assemble`].
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The pseudo file systems that could not be mounted, each with its reason.
    #[error("{0}")]
    Mount(String),
    #[error("cannot block SIGCHLD: {0}")]
    BlockSigchld(#[source] std::io::Error),
    #[error("{what}: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Nsm(#[from] crate::nsm::NsmError),
    #[error("NSM present but not answering: {0}")]
    NsmSilent(#[source] crate::nsm::NsmError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("getrandom: {0}")]
    Entropy(#[source] std::io::Error),
    #[error("the kernel's random number generator is not initialized after {0} s")]
    NoEntropy(u64),
    #[error("cannot listen: {0}")]
    Listen(#[source] std::io::Error),
    #[error("per-boot HPKE key: {0}")]
    ServerKey(#[source] sigil_protocol::encap::EncapError),
    #[error("the configuration has a kms or quorum section but no parent services")]
    NoParentServices,
    #[error(
        "the configuration has a prover section, so --blob-store ADDR is needed (the CRS comes from there)"
    )]
    NoBlobStore,
    #[error(transparent)]
    Prover(#[from] crate::prover::ProverError),
    #[error(transparent)]
    Heartbeat(#[from] crate::init::HeartbeatError),
    #[error("serving: {0}")]
    Serve(#[source] std::io::Error),
    #[error("{0}")]
    Peers(String),
    #[error("cors: {0}")]
    Cors(String),
}

/// What this build can do; goes into every attestation's user_data.
pub const CAPABILITIES: &[&str] = &[
    "attestation",
    "encapsulated-ping",
    "vault",
    "musig2",
    "prove",
    "peers",
    "quorum",
    "registry",
];

/// The image description a client reads from the attestation's user_data.
pub fn image_info(nsm: &dyn Nsm, bb: Option<BbInfo>) -> ImageInfo {
    ImageInfo {
        bb,
        protocol: PROTOCOL_VERSION,
        sigil_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: nsm.mode().as_str().to_string(),
        capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
        bb_served: Vec::new(),
        // Filled in per document, once the sealed state (which holds the node key) is open.
        node: None,
        registry_log: None,
    }
}

/// Whether the attestation's user_data still fits its bound when it is largest: every
/// version in `served` (the default first), the node and the registry's log head present, the
/// longest mode.
///
/// Threat (availability): a configuration whose user_data grows past
/// [`sigil_protocol::user_data::MAX_USER_DATA_LEN`] once the sealed state opens (the node key)
/// or a registry has a log head: the enclave would boot, then fail every attestation. Checked
/// with the configured names when the configuration is read, and with what each bb prints
/// when the prover starts.
pub fn check_user_data_room(served: Vec<ServedBb>) -> Result<(), String> {
    let mode = [
        crate::nsm::Mode::Nitro,
        crate::nsm::Mode::Harness,
        crate::nsm::Mode::Local,
    ]
    .into_iter()
    .map(crate::nsm::Mode::as_str)
    .max_by_key(|m| m.len())
    .unwrap_or("harness");
    let count = served.len();
    let info = ImageInfo {
        protocol: PROTOCOL_VERSION,
        sigil_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: mode.to_string(),
        capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
        bb: served.first().map(|b| BbInfo {
            version: b.version.clone(),
            sha256: b.sha256.clone(),
        }),
        bb_served: served,
        node: Some([0xff; 32]),
        registry_log: Some([0xff; 32]),
    };
    info.validate().map_err(|e| {
        format!(
            "the attestation's user_data would not fit with these {count} bb versions once the \
             node key and the registry's log head are in it ({e}); serve fewer versions or \
             shorter names"
        )
    })
}

/// Whom the measured configuration trusts: which owners, which peer enclaves.
pub struct Trust {
    pub admission: crate::api::owner::Admission,
    pub peers: crate::peers::PeerPolicy,
    /// The registry's settings, when it runs one.
    pub registry: Option<config::RegistryConfig>,
}

/// A server ready to `serve`, and the application it will serve.
pub fn prepare(
    nsm: Arc<dyn Nsm>,
    listener: Listener,
    limits: Limits,
    sealing: Arc<Sealing>,
    crs: Option<Arc<crate::prover::crs::CrsService>>,
    prover: Option<Arc<crate::prover::jobs::Prover>>,
    trust: Trust,
) -> Result<(Server, Arc<App>), BootError> {
    // The per-boot key: generated here, never leaves memory, gone at power-off.
    let key = ServerKey::generate().map_err(BootError::ServerKey)?;
    let bb = prover.as_ref().map(|p| BbInfo {
        version: p.default_bb().version.clone(),
        sha256: p.default_bb().sha256.clone(),
    });
    let mut info = image_info(nsm.as_ref(), bb);
    if let Some(p) = &prover {
        info.bb_served = crate::prover::served(&p.settings().bbs);
    }
    let mut limits = limits;
    if prover.is_some() {
        // Submissions carry whole circuits; every other route keeps its own smaller limit.
        // One submission of the largest size fits in the large routes' budget; a second one
        // waits (503 busy) instead of doubling the memory held. The small routes keep their
        // own budget whatever the large ones hold.
        let prove = sigil_protocol::endpoint::MAX_PROVE_BODY;
        limits.max_body_bytes = limits.max_body_bytes.max(prove);
        limits.max_large_body_bytes_in_flight = limits.max_large_body_bytes_in_flight.max(prove);
    }
    let server = Server::new(listener, limits);
    let mut app = App::new(nsm, key, info, sealing)
        .with_admission(trust.admission)
        .with_peers(trust.peers);
    if let Some(r) = trust.registry {
        app = app
            .with_registry(r)
            .map_err(|e| BootError::Peers(format!("registry: {e}")))?;
    }
    if let Some(crs) = crs {
        app = app.with_crs(crs);
    }
    if let Some(p) = prover {
        app = app.with_prover(p);
    }
    Ok((server, Arc::new(app)))
}

/// Everything the service is made from, whichever mode supplies it.
pub struct Parts {
    pub nsm: Arc<dyn Nsm>,
    pub config: MeasuredConfig,
    pub limits: Limits,
    pub listener: Listener,
    /// The parent's blob store, egress proxy and credentials, for sealed state (needed when
    /// the configuration has a `kms` section).
    pub sealing_services: Option<ParentServices>,
    /// The parent's blob store, for the prover's CRS (needed with a `prover` section).
    pub blobs: Option<Addr>,
    /// Where the CRS and the proving jobs' directories go (tmpfs in the image).
    pub state_dir: PathBuf,
    /// Prover binaries that replace or add to the configuration's (local mode only).
    pub bb: crate::prover::BbOverride,
    /// Mount a bounded tmpfs of their own for the proving jobs' directories (PID 1).
    pub jobs_fs: bool,
}

/// Starts the background services the configuration asks for (the data key, the CRS, the
/// proving workers) and returns the server with the application it will serve.
pub fn assemble(parts: Parts) -> Result<(Server, Arc<App>), BootError> {
    let Parts {
        nsm,
        config,
        limits,
        listener,
        sealing_services,
        blobs,
        state_dir,
        bb,
        jobs_fs,
    } = parts;
    let roots = (config.kms.clone(), config.quorum.clone());
    let sealing = match (roots, sealing_services) {
        ((None, None), _) => {
            log::info(format_args!(
                "no kms or quorum section: running without sealed state"
            ));
            Sealing::disabled()
        }
        ((kms, quorum), Some(services)) => {
            if kms.is_none() {
                log::info(format_args!(
                    "no kms section: the quorum of administrators is the only root of the state"
                ));
            }
            let mode = nsm.mode();
            Sealing::start(kms, quorum, nsm.clone(), mode, services)
        }
        (_, None) => {
            return Err(BootError::NoParentServices);
        }
    };
    crate::init::timeline::mark("sealing-started");
    let crs = match (config.prover.clone(), blobs) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(BootError::NoBlobStore);
        }
        (Some(p), Some(blobs)) => Some(CrsService::start(p, blobs, state_dir.join("crs"))),
    };
    let prover = match (&config.prover, &crs) {
        (Some(p), Some(c)) => Some(crate::prover::start(
            p,
            c.clone(),
            &state_dir.join("jobs"),
            &bb,
            jobs_fs,
        )?),
        _ => None,
    };
    crate::init::timeline::mark("prover");
    let admission = config.admission();
    if admission == crate::api::owner::Admission::Any {
        log::info(format_args!(
            "owners.admit is \"any\": any key may own vault entries and keys (development)"
        ));
    }
    let peers = match &config.peers {
        Some(p) => {
            let own = if p.names_self() {
                nsm.describe_pcrs().map_err(|e| {
                    BootError::Peers(format!("peers: reading this image's PCRs: {e}"))
                })?
            } else {
                Default::default()
            };
            match crate::peers::PeerPolicy::new(p, nsm.mode(), &own) {
                Ok(policy) => policy,
                // Like the development KMS trust: the image still boots and serves, but
                // accepts no peer rather than trusting a public key.
                Err(e) => {
                    log::warn(format_args!("{e}: this enclave accepts no peers"));
                    crate::peers::PeerPolicy::none()
                }
            }
        }
        None => crate::peers::PeerPolicy::none(),
    };
    let registry = match config.registry.clone() {
        // As for peers: the test root's key is public, so on Nitro hardware anyone could mint
        // an "instance"; the image boots but provisions nobody.
        Some(r) if r.trust_test_root && nsm.mode() == crate::nsm::Mode::Nitro => {
            log::warn(format_args!(
                "registry.trust_test_root is set but this is Nitro hardware: the registry is off"
            ));
            None
        }
        r => r,
    };
    let cors = match &config.cors {
        Some(c) => {
            let policy = c.policy().map_err(BootError::Cors)?;
            let origins: Vec<&str> = policy.origins().collect();
            log::info(format_args!(
                "cors: pages of {} may read answers in a browser",
                origins.join(", ")
            ));
            policy
        }
        None => crate::http::cors::Cors::none(),
    };
    let (server, app) = prepare(
        nsm,
        listener,
        limits,
        sealing,
        crs,
        prover,
        Trust {
            admission,
            peers,
            registry,
        },
    )?;
    crate::init::timeline::mark("assembled");
    Ok((server.with_cors(cors), app))
}
