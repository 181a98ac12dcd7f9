//! `POST /v1/prove` and `GET /v1/prove/{id}` (formats in `sigil_protocol::prove`).
//!
//! The submission is encapsulated: circuit and witness (or a chonk input stack) and the
//! client's result key reach only the attested enclave. The status is in the clear except the
//! result, which is sealed under the client's key: the parent relays it but cannot read or
//! forge it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sigil_protocol::api::ErrorBody;
use sigil_protocol::encap::{ResponseSealer, ServerKey};
use sigil_protocol::prove::{
    MAX_CIRCUIT, MAX_IVC_INPUTS, MAX_WITNESS, PATH_PROVE_STATUS_PREFIX, ProveRequest, ROUTE_PROVE,
};
use zeroize::Zeroizing;

use crate::http::{Request, Response};
use crate::prover::jobs::{Input, Prover, SubmitError, Work};

/// Largest encapsulated submission: base64 of the largest circuit and witness, plus JSON and
/// HPKE overhead.
pub const MAX_PROVE_BODY: usize = (MAX_CIRCUIT + MAX_WITNESS) / 3 * 4 + 64 * 1024;

/// The verifier targets bb is asked for; anything else is refused before bb runs.
const TARGETS: &[&str] = &["evm", "evm-no-zk", "noir-recursive", "noir-recursive-no-zk"];

fn sealed(sealer: ResponseSealer, status: u16, plain: &[u8]) -> Response {
    match sealer.seal(ROUTE_PROVE, plain) {
        Ok(body) => Response {
            status,
            content_type: sigil_protocol::api::ENCAPSULATED_CONTENT_TYPE,
            body,
        },
        Err(e) => Response::error(500, e.code(), e.to_string()),
    }
}

fn sealed_error(sealer: ResponseSealer, status: u16, code: &str, message: String) -> Response {
    let body = serde_json::to_vec(&ErrorBody::new(code, message)).unwrap_or_default();
    sealed(sealer, status, &body)
}

/// Decodes base64 into a wiped buffer, bounded before decoding.
fn decode(field: &str, text: &str, max: usize) -> Result<Zeroizing<Vec<u8>>, (u16, String)> {
    if text.len() > max.div_ceil(3) * 4 {
        return Err((413, format!("{field} is larger than {max} bytes")));
    }
    B64.decode(text.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| (400, format!("{field} is not base64: {e}")))
}

pub fn submit(prover: Option<&Prover>, key: &ServerKey, req: &Request) -> Response {
    let (plain, sealer) = match key.open_request(ROUTE_PROVE, &req.body) {
        Ok(v) => v,
        Err(e) => return Response::error(400, e.code(), e.to_string()),
    };
    let plain = Zeroizing::new(plain);
    let Some(prover) = prover else {
        return sealed_error(
            sealer,
            503,
            "prover_disabled",
            "this enclave is configured without a prover (no prover section)".into(),
        );
    };
    let mut r: ProveRequest = match serde_json::from_slice(&plain) {
        Ok(r) => r,
        Err(e) => {
            return sealed_error(
                sealer,
                400,
                "malformed_json",
                format!("not a prove request: {e}"),
            );
        }
    };
    let chonk = match r.scheme.as_str() {
        "ultra_honk" => false,
        "chonk" => true,
        other => {
            return sealed_error(
                sealer,
                400,
                "bad_scheme",
                format!("scheme {other:?}: one of ultra_honk, chonk"),
            );
        }
    };
    let target = match (chonk, r.target.as_str()) {
        (false, "default") => "noir-recursive",
        // A chonk proof has one verifier; bb takes no target for it.
        (true, "default") => "default",
        (true, t) => {
            return sealed_error(
                sealer,
                400,
                "bad_target",
                format!("verifier target {t:?}: chonk proofs take only default"),
            );
        }
        (false, t) => match TARGETS.iter().find(|x| **x == t) {
            Some(x) => x,
            None => {
                return sealed_error(
                    sealer,
                    400,
                    "bad_target",
                    format!(
                        "verifier target {t:?}: one of default, {}",
                        TARGETS.join(", ")
                    ),
                );
            }
        },
    };
    let fields = (|| {
        let key = decode("result_key", &r.result_key, 32)?;
        let key: [u8; 32] = key[..]
            .try_into()
            .map_err(|_| (400, "result_key must be 32 bytes".to_string()))?;
        let key = Zeroizing::new(key);
        let work = if chonk {
            if !r.circuit.is_empty() || !r.witness.is_empty() {
                return Err((
                    400,
                    "a chonk request carries its circuits and witnesses in ivc_inputs; \
                     circuit and witness must be empty"
                        .to_string(),
                ));
            }
            let ivc = r.ivc_inputs.as_deref().unwrap_or("");
            let ivc_inputs = decode("ivc_inputs", ivc, MAX_IVC_INPUTS)?;
            if ivc_inputs.is_empty() {
                return Err((400, "a chonk request needs ivc_inputs".to_string()));
            }
            Work::Chonk { ivc_inputs }
        } else {
            if r.ivc_inputs.is_some() {
                return Err((400, "ivc_inputs are for scheme chonk only".to_string()));
            }
            let circuit = decode("circuit", &r.circuit, MAX_CIRCUIT)?;
            let witness = decode("witness", &r.witness, MAX_WITNESS)?;
            if circuit.is_empty() || witness.is_empty() {
                return Err((400, "circuit and witness must not be empty".to_string()));
            }
            Work::UltraHonk {
                circuit,
                witness,
                target,
            }
        };
        Ok((work, key))
    })();
    // The base64 texts are the secrets too.
    zeroize::Zeroize::zeroize(&mut r.circuit);
    zeroize::Zeroize::zeroize(&mut r.witness);
    if let Some(ivc) = r.ivc_inputs.as_mut() {
        zeroize::Zeroize::zeroize(ivc);
    }
    zeroize::Zeroize::zeroize(&mut r.result_key);
    let (work, result_key) = match fields {
        Ok(f) => f,
        Err((status, m)) => return sealed_error(sealer, status, "bad_input", m),
    };
    match prover.submit(Input { work, result_key }) {
        Ok(s) => sealed(sealer, 202, &serde_json::to_vec(&s).unwrap_or_default()),
        Err(e @ SubmitError::QueueFull(_)) => {
            sealed_error(sealer, 503, "queue_full", e.to_string())
        }
        Err(e @ SubmitError::CrsNotReady(_)) => {
            sealed_error(sealer, 503, "crs_not_ready", e.to_string())
        }
    }
}

/// The job id from `/v1/prove/<32 hex>`, if the path is one.
pub fn status_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix(PATH_PROVE_STATUS_PREFIX)?;
    (id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(id)
}

pub fn status(prover: Option<&Prover>, id: &str) -> Response {
    let Some(prover) = prover else {
        return Response::error(503, "prover_disabled", "this enclave has no prover");
    };
    match prover.status(id) {
        Some(s) => Response::json(200, &s),
        None => Response::error(
            404,
            "unknown_job",
            "no such job (never submitted, or its result expired after an hour, or the enclave restarted)",
        ),
    }
}
