//! The enclave's HTTP API.
//!
//! `GET /v1/health`, `GET /v1/attestation?nonce=HEX`, the encapsulated `POST /v1/ping` and
//! the encapsulated vault (`POST /v1/vault/{put,get,delete}`, see [`crate::api::vault`]) and the
//! encapsulated MuSig2 signing service (`POST /v1/musig2/...`, see [`crate::api::musig2`]).
//! Encapsulated bodies are HPKE-sealed to the per-boot key that the attestation document
//! carries, and answers are sealed back under the same context: the parent that relays them
//! sees only ciphertext and cannot forge an answer.

pub mod musig2;
pub mod prove;
pub mod vault;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use http::Method;
use serde::Serialize;
use sigil_protocol::api::ErrorBody;
use sigil_protocol::api::{
    AttestationResponse, ENCAPSULATED_CONTENT_TYPE, MAX_NONCE_LEN, PATH_ATTESTATION, PATH_HEALTH,
    PATH_PING, PingRequest, PingResponse, ROUTE_PING,
};
use sigil_protocol::encap::{ResponseSealer, ServerKey};
use sigil_protocol::prove::PATH_PROVE;
use sigil_protocol::signing::route_of as signing_route;
use sigil_protocol::vault::{
    MAX_VALUE, PATH_VAULT_DELETE, PATH_VAULT_GET, PATH_VAULT_PUT, ROUTE_VAULT_DELETE,
    ROUTE_VAULT_GET, ROUTE_VAULT_PUT,
};

use crate::http::{Handler, Request, Response};
use crate::log;
use crate::nsm::Nsm;
use crate::seal::service::Sealing;
use musig2::SigningApi;
use vault::Refusal;

/// Longest message the ping echoes.
pub const MAX_PING_MESSAGE: usize = 4096;

pub struct App {
    nsm: Arc<dyn Nsm>,
    key: ServerKey,
    image_info: Vec<u8>,
    sealing: Arc<Sealing>,
    /// One MuSig2 engine per boot: its sessions die with this process.
    signing: SigningApi,
    /// The prover's CRS, when the configuration has a `prover` section.
    crs: Option<Arc<crate::prover::crs::CrsService>>,
    /// The proving jobs, when `bb` is available.
    prover: Option<Arc<crate::prover::jobs::Prover>>,
}

impl App {
    pub fn new(
        nsm: Arc<dyn Nsm>,
        key: ServerKey,
        image_info: Vec<u8>,
        sealing: Arc<Sealing>,
    ) -> App {
        let signing = SigningApi::new(nsm.clone(), sealing.clone());
        App {
            nsm,
            key,
            image_info,
            sealing,
            signing,
            crs: None,
            prover: None,
        }
    }

    /// Adds the proving jobs (`/v1/prove`).
    pub fn with_prover(mut self, prover: Arc<crate::prover::jobs::Prover>) -> App {
        self.prover = Some(prover);
        self
    }

    /// Adds the prover's CRS service (its state shows in `/v1/health`).
    pub fn with_crs(mut self, crs: Arc<crate::prover::crs::CrsService>) -> App {
        self.crs = Some(crs);
        self
    }

    fn health(&self) -> Response {
        #[derive(Serialize)]
        struct Health {
            status: &'static str,
            mode: &'static str,
            version: &'static str,
            sealing: crate::seal::service::Status,
            #[serde(skip_serializing_if = "Option::is_none")]
            crs: Option<crate::prover::crs::Status>,
            #[serde(skip_serializing_if = "Option::is_none")]
            prover: Option<ProverLoad>,
        }
        #[derive(Serialize)]
        struct ProverLoad {
            bb_version: String,
            queued: usize,
            running: usize,
        }
        Response::json(
            200,
            &Health {
                status: "ok",
                mode: self.nsm.mode().as_str(),
                version: env!("CARGO_PKG_VERSION"),
                sealing: self.sealing.status(),
                crs: self.crs.as_ref().map(|c| c.status()),
                prover: self.prover.as_ref().map(|p| {
                    let (queued, running) = p.load();
                    ProverLoad {
                        bb_version: p.settings().bb_version.clone(),
                        queued,
                        running,
                    }
                }),
            },
        )
    }

    fn attestation(&self, query: Option<&str>) -> Response {
        let nonce = match parse_nonce(query) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let public_key = self.key.public_key();
        match self
            .nsm
            .attest(Some(&public_key), Some(&self.image_info), nonce.as_deref())
        {
            Ok(doc) => Response::json(
                200,
                &AttestationResponse {
                    document: base64::engine::general_purpose::STANDARD.encode(doc),
                    mode: self.nsm.mode().as_str().to_string(),
                },
            ),
            Err(e) => {
                log::warn(format_args!("attestation failed: {e}"));
                Response::error(503, "nsm_failed", format!("attestation failed: {e}"))
            }
        }
    }

    fn ping(&self, req: &Request) -> Response {
        if let Err(r) = require_encapsulated(req) {
            return r;
        }
        let (plain, sealer) = match self.key.open_request(ROUTE_PING, &req.body) {
            Ok(v) => v,
            Err(e) => return Response::error(400, e.code(), e.to_string()),
        };
        // Once the request is open, errors are sealed like answers: only the client reads them,
        // and the parent cannot substitute its own.
        let refuse = |sealer, code: &str, message: String| {
            let body = serde_json::to_vec(&ErrorBody::new(code, message)).unwrap_or_default();
            sealed(sealer, ROUTE_PING, 400, &body)
        };
        let ping: PingRequest = match serde_json::from_slice(&plain) {
            Ok(p) => p,
            Err(e) => {
                return refuse(
                    sealer,
                    "malformed_json",
                    format!("encapsulated body is not a ping request: {e}"),
                );
            }
        };
        if ping.message.len() > MAX_PING_MESSAGE {
            return refuse(
                sealer,
                "message_too_long",
                format!("ping message exceeds {MAX_PING_MESSAGE} bytes"),
            );
        }
        let answer = PingResponse {
            message: ping.message,
            enclave_time_ms: now_ms(),
        };
        let Ok(plain) = serde_json::to_vec(&answer) else {
            return Response::error(500, "internal_error", "response could not be encoded");
        };
        sealed(sealer, ROUTE_PING, 200, &plain)
    }

    /// An encapsulated vault call. Once the request has been opened, every answer (errors
    /// included) is sealed to the requester: what failed is nobody else's business.
    fn vault(&self, req: &Request, route: &str) -> Response {
        if let Err(r) = require_encapsulated(req) {
            return r;
        }
        let (plain, sealer) = match self.key.open_request(route, &req.body) {
            Ok(v) => v,
            Err(e) => return Response::error(400, e.code(), e.to_string()),
        };
        // The body may carry a secret value: wiped when the request is done.
        let plain = zeroize::Zeroizing::new(plain);
        let answer = match route {
            ROUTE_VAULT_PUT => vault::put(&self.sealing, &plain).map(|w| serde_json::to_vec(&w)),
            ROUTE_VAULT_GET => vault::get(&self.sealing, &plain).map(|e| serde_json::to_vec(&e)),
            _ => vault::delete(&self.sealing, &plain).map(|w| serde_json::to_vec(&w)),
        };
        match answer {
            Ok(Ok(json)) => sealed(sealer, route, 200, &zeroize::Zeroizing::new(json)),
            Ok(Err(_)) => Response::error(500, "internal_error", "answer could not be encoded"),
            Err(Refusal {
                status,
                code,
                message,
            }) => {
                let body = serde_json::to_vec(&ErrorBody::new(code, message)).unwrap_or_default();
                sealed(sealer, route, status, &body)
            }
        }
    }

    /// An encapsulated signing call; as for the vault, every answer after the request has been
    /// opened (errors included) is sealed to the requester.
    fn signing(&self, req: &Request, route: &'static str) -> Response {
        if let Err(r) = require_encapsulated(req) {
            return r;
        }
        let (plain, sealer) = match self.key.open_request(route, &req.body) {
            Ok(v) => v,
            Err(e) => return Response::error(400, e.code(), e.to_string()),
        };
        // The plaintext may hold an imported secret key: wiped when dropped.
        let plain = zeroize::Zeroizing::new(plain);
        match self.signing.handle(route, &plain) {
            Ok(json) => sealed(sealer, route, 200, &json),
            Err(Refusal {
                status,
                code,
                message,
            }) => {
                let body = serde_json::to_vec(&ErrorBody::new(code, message)).unwrap_or_default();
                sealed(sealer, route, status, &body)
            }
        }
    }
}

fn sealed(sealer: ResponseSealer, route: &str, status: u16, plain: &[u8]) -> Response {
    match sealer.seal(route, plain) {
        Ok(body) => Response {
            status,
            content_type: ENCAPSULATED_CONTENT_TYPE,
            body,
        },
        Err(e) => Response::error(500, e.code(), e.to_string()),
    }
}

/// Largest encapsulated ping: the message, JSON and HPKE overhead, with room to spare.
pub const MAX_PING_BODY: usize = 32 * 1024;
/// Largest encapsulated vault request: a base64 value of [`MAX_VALUE`] bytes plus the fields.
pub const MAX_VAULT_BODY: usize = MAX_VALUE / 3 * 4 + 8 * 1024;

impl Handler for App {
    fn body_limit(&self, method: &Method, path: &str) -> Option<usize> {
        Some(match (method, path) {
            (&Method::POST, PATH_PING) => MAX_PING_BODY,
            (&Method::POST, PATH_VAULT_PUT | PATH_VAULT_GET | PATH_VAULT_DELETE) => MAX_VAULT_BODY,
            (&Method::POST, p) if signing_route(p).is_some() => musig2::body_limit(p),
            (&Method::POST, PATH_PROVE) => crate::api::prove::MAX_PROVE_BODY,
            // GET endpoints take no body.
            _ => 0,
        })
    }

    fn handle(&self, req: Request) -> Response {
        let path = req.path.as_str();
        let allowed = match path {
            PATH_HEALTH | PATH_ATTESTATION => Method::GET,
            PATH_PING | PATH_VAULT_PUT | PATH_VAULT_GET | PATH_VAULT_DELETE => Method::POST,
            p if signing_route(p).is_some() => Method::POST,
            PATH_PROVE => Method::POST,
            p if crate::api::prove::status_id(p).is_some() => Method::GET,
            _ => {
                return Response::error(404, "not_found", format!("no such endpoint: {path}"));
            }
        };
        if req.method != allowed {
            return Response::error(
                405,
                "method_not_allowed",
                format!("{path} takes {allowed}, not {}", req.method),
            );
        }
        match path {
            PATH_HEALTH => self.health(),
            PATH_ATTESTATION => self.attestation(req.query.as_deref()),
            PATH_PING => self.ping(&req),
            PATH_VAULT_PUT => self.vault(&req, ROUTE_VAULT_PUT),
            PATH_VAULT_GET => self.vault(&req, ROUTE_VAULT_GET),
            PATH_VAULT_DELETE => self.vault(&req, ROUTE_VAULT_DELETE),
            PATH_PROVE => match require_encapsulated(&req) {
                Ok(()) => crate::api::prove::submit(self.prover.as_deref(), &self.key, &req),
                Err(r) => r,
            },
            p if crate::api::prove::status_id(p).is_some() => crate::api::prove::status(
                self.prover.as_deref(),
                crate::api::prove::status_id(p).unwrap_or_default(),
            ),
            p => match signing_route(p) {
                Some(route) => self.signing(&req, route),
                None => Response::error(404, "not_found", format!("no such endpoint: {p}")),
            },
        }
    }
}

fn require_encapsulated(req: &Request) -> Result<(), Response> {
    let ct = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct != ENCAPSULATED_CONTENT_TYPE {
        return Err(Response::error(
            415,
            "unsupported_media_type",
            format!(
                "this endpoint takes {ENCAPSULATED_CONTENT_TYPE} bodies sealed to the attested key"
            ),
        ));
    }
    Ok(())
}

/// `nonce=HEX` is the only query parameter; anything else is an error, not ignored, so a
/// typo cannot silently produce a document without the caller's nonce.
fn parse_nonce(query: Option<&str>) -> Result<Option<Vec<u8>>, Response> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    let mut nonce = None;
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "nonce" {
            return Err(Response::error(
                400,
                "bad_query",
                format!("unknown query parameter {k:?}; only nonce=HEX is accepted"),
            ));
        }
        if nonce.is_some() {
            return Err(Response::error(400, "bad_query", "nonce given twice"));
        }
        if v.len() > 2 * MAX_NONCE_LEN {
            return Err(Response::error(
                400,
                "nonce_too_long",
                format!("nonce exceeds {MAX_NONCE_LEN} bytes"),
            ));
        }
        let bytes = hex::decode(v)
            .map_err(|e| Response::error(400, "bad_nonce", format!("nonce is not hex: {e}")))?;
        nonce = Some(bytes);
    }
    Ok(nonce)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_parsing() {
        assert_eq!(parse_nonce(None).unwrap(), None);
        assert_eq!(parse_nonce(Some("")).unwrap(), None);
        assert_eq!(parse_nonce(Some("nonce=00ff")).unwrap(), Some(vec![0, 255]));
        for (q, code) in [
            ("nonce=zz", "bad_nonce"),
            ("nonce=abc", "bad_nonce"),
            ("foo=1", "bad_query"),
            ("nonce=00&nonce=01", "bad_query"),
        ] {
            let r = parse_nonce(Some(q)).unwrap_err();
            assert_eq!(r.status, 400);
            assert!(String::from_utf8_lossy(&r.body).contains(code), "{q}");
        }
        let long = format!("nonce={}", "00".repeat(MAX_NONCE_LEN + 1));
        let r = parse_nonce(Some(&long)).unwrap_err();
        assert!(String::from_utf8_lossy(&r.body).contains("nonce_too_long"));
        let max = format!("nonce={}", "00".repeat(MAX_NONCE_LEN));
        assert_eq!(
            parse_nonce(Some(&max)).unwrap().unwrap().len(),
            MAX_NONCE_LEN
        );
    }
}
