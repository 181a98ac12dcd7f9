//! `GET /v1/health`: what a load balancer and an operator need to know, nothing secret: the
//! mode, the version, the sealed state's progress, the CRS and the prover's load.

use sigil_protocol::api::{CrsHealth, HealthResponse, ProverHealth, SealingHealth};

use super::App;

pub(super) fn health(app: &App) -> HealthResponse {
    let sealing = app.sealing.status();
    HealthResponse {
        status: "ok".into(),
        mode: app.nsm.mode().as_str().into(),
        version: env!("CARGO_PKG_VERSION").into(),
        sealing: SealingHealth {
            state: sealing.state.into(),
            origin: sealing.origin.map(Into::into),
            attempts: sealing.attempts,
            error_code: sealing.error_code.map(Into::into),
            error: sealing.error,
            quorum: sealing.quorum,
        },
        crs: app.crs.as_ref().map(|c| {
            let s = c.status();
            CrsHealth {
                state: s.state.into(),
                points: s.points,
                error: s.error,
            }
        }),
        prover: app.prover.as_ref().map(|p| {
            let (queued, running) = p.load();
            let (state, error) = p.state();
            ProverHealth {
                bb_version: p.default_bb().version.clone(),
                queued,
                running,
                state: Some(state.into()),
                error,
            }
        }),
    }
}
