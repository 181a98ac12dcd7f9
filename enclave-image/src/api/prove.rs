//! `POST /v1/prove` and `GET /v1/prove/{id}` (formats in `sigil_protocol::prove`, the
//! endpoints in `sigil_protocol::endpoint`).
//!
//! The submission is encapsulated: circuit and witness (or a chonk input stack) and the
//! client's result key reach only the attested enclave. The status is in the clear except the
//! result, which is sealed under the client's key: the parent relays it but cannot read or
//! forge it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::prove::{
    JobRef, JobStatus, MAX_CIRCUIT, MAX_IVC_INPUTS, MAX_WITNESS, ProveRequest, Submitted,
};
use zeroize::Zeroizing;

use crate::prover::jobs::{Input, Prover, SubmitError, Work};

/// The verifier targets bb is asked for; anything else is refused before bb runs.
const TARGETS: &[&str] = &["evm", "evm-no-zk", "noir-recursive", "noir-recursive-no-zk"];

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let code = match e {
            SubmitError::QueueFull(_) => Code::QueueFull,
            SubmitError::CrsNotReady(_) => Code::CrsNotReady,
        };
        ApiError::new(code, e.to_string())
    }
}

fn bad_input(status: u16, message: String) -> ApiError {
    ApiError::new(Code::BadInput, message).with_status(status)
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

/// `POST /v1/prove`, opened: the job is queued, or the reason it is not.
pub fn submit(prover: Option<&Prover>, mut r: ProveRequest) -> Result<Submitted, ApiError> {
    let result = check_and_submit(prover, &r);
    // The base64 texts are the secrets too.
    zeroize::Zeroize::zeroize(&mut r.circuit);
    zeroize::Zeroize::zeroize(&mut r.witness);
    if let Some(ivc) = r.ivc_inputs.as_mut() {
        zeroize::Zeroize::zeroize(ivc);
    }
    zeroize::Zeroize::zeroize(&mut r.result_key);
    result
}

fn check_and_submit(prover: Option<&Prover>, r: &ProveRequest) -> Result<Submitted, ApiError> {
    let Some(prover) = prover else {
        return Err(ApiError::new(
            Code::ProverDisabled,
            "this enclave is configured without a prover (no prover section)",
        ));
    };
    let chonk = match r.scheme.as_str() {
        "ultra_honk" => false,
        "chonk" => true,
        other => {
            return Err(ApiError::new(
                Code::BadScheme,
                format!("scheme {other:?}: one of ultra_honk, chonk"),
            ));
        }
    };
    let target = match (chonk, r.target.as_str()) {
        (false, "default") => "noir-recursive",
        // A chonk proof has one verifier; bb takes no target for it.
        (true, "default") => "default",
        (true, t) => {
            return Err(ApiError::new(
                Code::BadTarget,
                format!("verifier target {t:?}: chonk proofs take only default"),
            ));
        }
        (false, t) => match TARGETS.iter().find(|x| **x == t) {
            Some(x) => x,
            None => {
                return Err(ApiError::new(
                    Code::BadTarget,
                    format!(
                        "verifier target {t:?}: one of default, {}",
                        TARGETS.join(", ")
                    ),
                ));
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
    let (work, result_key) = fields.map_err(|(status, m)| bad_input(status, m))?;
    Ok(prover.submit(Input { work, result_key })?)
}

/// `GET /v1/prove/{id}` (the router checked the id's form).
pub fn status(prover: Option<&Prover>, r: JobRef) -> Result<JobStatus, ApiError> {
    let Some(prover) = prover else {
        return Err(ApiError::new(
            Code::ProverDisabled,
            "this enclave has no prover",
        ));
    };
    prover.status(&r.id).ok_or_else(|| {
        ApiError::new(
            Code::UnknownJob,
            "no such job (never submitted, or its result expired after an hour, or the enclave restarted)",
        )
    })
}
