//! The enclave's HTTP API.
//!
//! The endpoints are declared once in `sigil_protocol::endpoint`: the router, the body limits
//! and the method check (405 with `Allow`) come from that table, and every encapsulated
//! endpoint runs through one pipeline ([`App::sealed_call`]) around a typed handler:
//! `GET /v1/health`, `GET /v1/attestation?nonce=HEX`, the encapsulated `POST /v1/ping`, the
//! vault (see [`vault`]), MuSig2 (`/v1/musig2/...`, see [`musig2`]) and
//! proving (see [`prove`]). Errors are `sigil_protocol::error::ApiError`s: a code
//! from the registry and its status.
//! Encapsulated bodies are HPKE-sealed to the per-boot key that the attestation document
//! carries, and answers are sealed back under the same context: the parent that relays them
//! sees only ciphertext and cannot forge an answer.

pub mod musig2;
pub mod prove;
pub mod vault;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sigil_protocol::api::{
    AttestationResponse, CrsHealth, ENCAPSULATED_CONTENT_TYPE, ErrorBody, HealthResponse,
    MAX_NONCE_LEN, PingRequest, PingResponse, ProverHealth,
};
use sigil_protocol::encap::{ResponseSealer, ServerKey};
use sigil_protocol::endpoint::{self as ep, Endpoint, EndpointInfo, Lookup};
use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::prove::JobRef;
use sigil_protocol::wire::{Base64Bytes, Id};
use zeroize::Zeroizing;

use crate::http::{Handler, Request, Response};
use crate::log;
use crate::nsm::Nsm;
use crate::seal::service::Sealing;
use musig2::SigningApi;

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

    fn health(&self) -> HealthResponse {
        let sealing = self.sealing.status();
        HealthResponse {
            status: "ok".into(),
            mode: self.nsm.mode().as_str().into(),
            version: env!("CARGO_PKG_VERSION").into(),
            sealing: sigil_protocol::api::SealingHealth {
                state: sealing.state.into(),
                origin: sealing.origin.map(Into::into),
                attempts: sealing.attempts,
                error_code: sealing.error_code.map(Into::into),
                error: sealing.error,
            },
            crs: self.crs.as_ref().map(|c| {
                let s = c.status();
                CrsHealth {
                    state: s.state.into(),
                    points: s.points,
                    error: s.error,
                }
            }),
            prover: self.prover.as_ref().map(|p| {
                let (queued, running) = p.load();
                ProverHealth {
                    bb_version: p.settings().bb_version.clone(),
                    queued,
                    running,
                }
            }),
        }
    }

    fn attestation(&self, query: Option<&str>) -> Result<AttestationResponse, ApiError> {
        let nonce = parse_nonce(query)?;
        let public_key = self.key.public_key();
        match self
            .nsm
            .attest(Some(&public_key), Some(&self.image_info), nonce.as_deref())
        {
            Ok(doc) => Ok(AttestationResponse {
                document: Base64Bytes(doc),
                mode: self.nsm.mode().as_str().to_string(),
            }),
            Err(e) => {
                log::warn(format_args!("attestation failed: {e}"));
                Err(ApiError::new(
                    Code::NsmFailed,
                    format!("attestation failed: {e}"),
                ))
            }
        }
    }

    fn ping(ping: PingRequest) -> Result<PingResponse, ApiError> {
        if ping.message.len() > MAX_PING_MESSAGE {
            return Err(ApiError::new(
                Code::MessageTooLong,
                format!("ping message exceeds {MAX_PING_MESSAGE} bytes"),
            ));
        }
        Ok(PingResponse {
            message: ping.message,
            enclave_time_ms: now_ms(),
        })
    }

    /// The one pipeline of every encapsulated endpoint: content type, open the request under
    /// the endpoint's route, decode its JSON, handle it, and seal the answer back. Once the
    /// request is open every answer, errors included, is sealed to the requester: what failed
    /// is nobody else's business, and the relaying parent cannot substitute its own answer.
    fn sealed_call<E: Endpoint>(
        &self,
        req: &Request,
        handle: impl FnOnce(E::Request) -> Result<E::Response, ApiError>,
    ) -> Response {
        if let Err(r) = require_encapsulated(req) {
            return r;
        }
        let (plain, sealer) = match self.key.open_request(E::ROUTE, &req.body) {
            Ok(v) => v,
            Err(e) => return error(ApiError::from(e)),
        };
        // The plaintext may hold secrets (a vault value, an imported key, a witness): wiped
        // once decoded. Handlers wipe the secret fields they take out of the request.
        let plain = Zeroizing::new(plain);
        let request = serde_json::from_slice::<E::Request>(&plain).map_err(|e| {
            ApiError::new(
                Code::MalformedJson,
                format!("encapsulated body is not a {} request: {e}", E::ROUTE),
            )
        });
        drop(plain);
        let answer = request.and_then(handle).and_then(|r| {
            serde_json::to_vec(&r)
                .map(Zeroizing::new)
                .map_err(|_| ApiError::new(Code::InternalError, "answer could not be encoded"))
        });
        match answer {
            Ok(json) => sealed(sealer, E::ROUTE, E::SUCCESS, &json),
            Err(e) => {
                let status = e.status;
                let body = serde_json::to_vec(&ErrorBody::from(e)).unwrap_or_default();
                sealed(sealer, E::ROUTE, status, &body)
            }
        }
    }

    /// A plain (not encapsulated) endpoint: its JSON answer or its error.
    fn plain_call<E: Endpoint>(answer: Result<E::Response, ApiError>) -> Response {
        match answer {
            Ok(r) => Response::json(E::SUCCESS, &r),
            Err(e) => error(e),
        }
    }

    fn dispatch(&self, info: &EndpointInfo, param: Option<&str>, req: &Request) -> Response {
        let now = now_secs();
        let musig = &self.signing;
        let sealing = &self.sealing;
        match info.route {
            ep::Health::ROUTE => Self::plain_call::<ep::Health>(Ok(self.health())),
            ep::Attestation::ROUTE => {
                Self::plain_call::<ep::Attestation>(self.attestation(req.query.as_deref()))
            }
            ep::Ping::ROUTE => self.sealed_call::<ep::Ping>(req, Self::ping),
            ep::VaultPut::ROUTE => {
                self.sealed_call::<ep::VaultPut>(req, |r| vault::put(sealing, r))
            }
            ep::VaultGet::ROUTE => {
                self.sealed_call::<ep::VaultGet>(req, |r| vault::get(sealing, r))
            }
            ep::VaultDelete::ROUTE => {
                self.sealed_call::<ep::VaultDelete>(req, |r| vault::delete(sealing, r))
            }
            ep::KeyGenerate::ROUTE => {
                self.sealed_call::<ep::KeyGenerate>(req, |r| musig.generate_key(r, now))
            }
            ep::KeyImport::ROUTE => {
                self.sealed_call::<ep::KeyImport>(req, |r| musig.import_key(r, now))
            }
            ep::KeyList::ROUTE => self.sealed_call::<ep::KeyList>(req, |r| musig.list_keys(r)),
            ep::KeyDescribe::ROUTE => {
                self.sealed_call::<ep::KeyDescribe>(req, |r| musig.describe_key(r))
            }
            ep::KeyDelete::ROUTE => {
                self.sealed_call::<ep::KeyDelete>(req, |r| musig.delete_key(r, now))
            }
            ep::AggregateCreate::ROUTE => {
                self.sealed_call::<ep::AggregateCreate>(req, |r| musig.create_aggregate(r, now))
            }
            ep::AggregateList::ROUTE => {
                self.sealed_call::<ep::AggregateList>(req, |r| musig.list_aggregates(r))
            }
            ep::AggregateDescribe::ROUTE => {
                self.sealed_call::<ep::AggregateDescribe>(req, |r| musig.describe_aggregate(r))
            }
            ep::AggregateDelete::ROUTE => {
                self.sealed_call::<ep::AggregateDelete>(req, |r| musig.delete_aggregate(r, now))
            }
            ep::SessionCreate::ROUTE => {
                self.sealed_call::<ep::SessionCreate>(req, |r| musig.create_session(r, now))
            }
            ep::SessionStatus::ROUTE => {
                self.sealed_call::<ep::SessionStatus>(req, |r| musig.session_status(r, now))
            }
            ep::SessionApprove::ROUTE => {
                self.sealed_call::<ep::SessionApprove>(req, |r| musig.approve(r, now))
            }
            ep::SessionNonces::ROUTE => {
                self.sealed_call::<ep::SessionNonces>(req, |r| musig.nonces(r, now))
            }
            ep::SessionSubmitNonces::ROUTE => {
                self.sealed_call::<ep::SessionSubmitNonces>(req, |r| musig.submit_nonces(r, now))
            }
            ep::SessionRound::ROUTE => {
                self.sealed_call::<ep::SessionRound>(req, |r| musig.round(r, now))
            }
            ep::SessionPartialSignatures::ROUTE => self
                .sealed_call::<ep::SessionPartialSignatures>(req, |r| {
                    musig.submit_partial_signatures(r, now)
                }),
            ep::SessionAbort::ROUTE => {
                self.sealed_call::<ep::SessionAbort>(req, |r| musig.abort(r, now))
            }
            ep::ProveSubmit::ROUTE => self
                .sealed_call::<ep::ProveSubmit>(req, |r| prove::submit(self.prover.as_deref(), r)),
            ep::ProveStatus::ROUTE => {
                // The router let through only 32 lowercase hex digits, which always parse.
                let answer = param
                    .map(Id::parse)
                    .and_then(Result::ok)
                    .ok_or_else(|| ApiError::new(Code::NotFound, "no such endpoint"))
                    .and_then(|id| prove::status(self.prover.as_deref(), JobRef { id }));
                Self::plain_call::<ep::ProveStatus>(answer)
            }
            // Declared in the table but not served: a bug, which the tests catch.
            route => error(ApiError::new(
                Code::InternalError,
                format!("{route} is declared but not served"),
            )),
        }
    }
}

/// An error answered in the clear (before a request is open, or on a plain endpoint).
fn error(e: ApiError) -> Response {
    Response::error(e.status, e.code.as_str(), e.message)
}

fn sealed(sealer: ResponseSealer, route: &str, status: u16, plain: &[u8]) -> Response {
    match sealer.seal(route, plain) {
        Ok(body) => Response {
            status,
            content_type: ENCAPSULATED_CONTENT_TYPE,
            body,
            allow: None,
        },
        Err(e) => error(ApiError::from(e).with_status(500)),
    }
}

impl Handler for App {
    /// From the endpoint table; a path that is no endpoint takes no body.
    fn body_limit(&self, method: &http::Method, path: &str) -> Option<usize> {
        Some(match ep::lookup(method.as_str(), path) {
            Lookup::Found(e, _) => e.max_body,
            _ => 0,
        })
    }

    fn handle(&self, req: Request) -> Response {
        match ep::lookup(req.method.as_str(), &req.path) {
            Lookup::Found(info, param) => self.dispatch(info, param, &req),
            Lookup::MethodNotAllowed { allow } => {
                let mut r = error(ApiError::new(
                    Code::MethodNotAllowed,
                    format!("{} takes {allow}, not {}", req.path, req.method),
                ));
                r.allow = Some(allow);
                r
            }
            Lookup::NotFound => error(ApiError::new(
                Code::NotFound,
                format!("no such endpoint: {}", req.path),
            )),
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
        return Err(error(ApiError::new(
            Code::UnsupportedMediaType,
            format!(
                "this endpoint takes {ENCAPSULATED_CONTENT_TYPE} bodies sealed to the attested key"
            ),
        )));
    }
    Ok(())
}

/// `nonce=HEX` is the only query parameter; anything else is an error, not ignored, so a
/// typo cannot silently produce a document without the caller's nonce.
fn parse_nonce(query: Option<&str>) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    let mut nonce = None;
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "nonce" {
            return Err(ApiError::new(
                Code::BadQuery,
                format!("unknown query parameter {k:?}; only nonce=HEX is accepted"),
            ));
        }
        if nonce.is_some() {
            return Err(ApiError::new(Code::BadQuery, "nonce given twice"));
        }
        if v.len() > 2 * MAX_NONCE_LEN {
            return Err(ApiError::new(
                Code::NonceTooLong,
                format!("nonce exceeds {MAX_NONCE_LEN} bytes"),
            ));
        }
        let bytes = hex::decode(v)
            .map_err(|e| ApiError::new(Code::BadNonce, format!("nonce is not hex: {e}")))?;
        nonce = Some(bytes);
    }
    Ok(nonce)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
            assert_eq!(r.code.as_str(), code, "{q}");
        }
        let long = format!("nonce={}", "00".repeat(MAX_NONCE_LEN + 1));
        let r = parse_nonce(Some(&long)).unwrap_err();
        assert_eq!(r.code, Code::NonceTooLong);
        let max = format!("nonce={}", "00".repeat(MAX_NONCE_LEN));
        assert_eq!(
            parse_nonce(Some(&max)).unwrap().unwrap().len(),
            MAX_NONCE_LEN
        );
    }
}
