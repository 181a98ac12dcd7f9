//! Putting the service together: the NSM, the per-boot key, the image description and the
//! HTTP server. Shared by local mode and PID 1.

use std::sync::Arc;

use sigil_protocol::encap::ServerKey;
use sigil_protocol::user_data::{BbInfo, ImageInfo, PROTOCOL_VERSION};

use crate::api::App;
use crate::http::{Limits, Server};
use crate::nsm::Nsm;
use crate::sealing::Sealing;
use crate::transport::Listener;

/// What this build can do; goes into every attestation's user_data.
pub const CAPABILITIES: &[&str] = &[
    "attestation",
    "encapsulated-ping",
    "vault",
    "musig2",
    "prove",
];

/// The image description a client reads from the attestation's user_data.
pub fn image_info(nsm: &dyn Nsm, bb: Option<BbInfo>) -> ImageInfo {
    ImageInfo {
        bb,
        protocol: PROTOCOL_VERSION,
        sigil_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: nsm.mode().as_str().to_string(),
        capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
    }
}

/// A server ready to `serve`, and the application it will serve.
pub fn prepare(
    nsm: Arc<dyn Nsm>,
    listener: Listener,
    limits: Limits,
    sealing: Arc<Sealing>,
    crs: Option<Arc<crate::prover::crs::CrsService>>,
    prover: Option<Arc<crate::prover::jobs::Prover>>,
) -> Result<(Server, Arc<App>), String> {
    // The per-boot key: generated here, never leaves memory, gone at power-off.
    let key = ServerKey::generate().map_err(|e| format!("per-boot HPKE key: {e}"))?;
    let bb = prover.as_ref().map(|p| BbInfo {
        version: p.settings().bb_version.clone(),
        sha256: p.settings().bb_sha256.clone(),
    });
    let info = image_info(nsm.as_ref(), bb);
    let mut limits = limits;
    if prover.is_some() {
        // Submissions carry whole circuits; every other route keeps its own smaller limit.
        limits.max_body_bytes = limits
            .max_body_bytes
            .max(sigil_protocol::endpoint::MAX_PROVE_BODY);
    }
    let server = Server::new(listener, limits);
    let mut app = App::new(nsm, key, info.to_cbor(), sealing);
    if let Some(crs) = crs {
        app = app.with_crs(crs);
    }
    if let Some(p) = prover {
        app = app.with_prover(p);
    }
    Ok((server, Arc::new(app)))
}
