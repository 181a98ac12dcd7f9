//! `POST /v1/prove`, `GET /v1/prove/{id}` and `POST /v1/prove/cancel` (formats in `sigil_protocol::prove`, the
//! endpoints in `sigil_protocol::endpoint`).
//!
//! The submission is encapsulated: circuit and witness (or a chonk input stack) and the
//! client's result key reach only the attested enclave. The status is in the clear except the
//! result, which is sealed under the client's key: the parent relays it but cannot read or
//! forge it. A cancellation is encapsulated too: its token is the job's capability.

use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::prove::{
    CancelAnswer, CancelRequest, JobRef, JobStatus, MAX_BB_VERSION_NAME, MAX_CIRCUIT,
    MAX_IVC_INPUTS, MAX_WITNESS, ProveRequest, Scheme, Submitted, Target,
};
use sigil_protocol::wire::SecretBase64;
use zeroize::Zeroizing;

use crate::http::Source;
use crate::prover::jobs::{CancelError, Input, Prover, SubmitError, Work, quoted};

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let code = match e {
            SubmitError::QueueFull(_) => Code::QueueFull,
            SubmitError::SourceQuota(_) => Code::SourceQuota,
            SubmitError::CrsNotReady(_) => Code::CrsNotReady,
        };
        ApiError::new(code, e.to_string())
    }
}

fn bad_input(status: u16, message: String) -> ApiError {
    ApiError::new(Code::BadInput, message).with_status(status)
}

/// A decoded input within its bound (the body limit bounded the decoding).
fn bounded(field: &str, v: SecretBase64, max: usize) -> Result<Zeroizing<Vec<u8>>, (u16, String)> {
    if v.len() > max {
        return Err((413, format!("{field} is larger than {max} bytes")));
    }
    Ok(v.into_inner())
}

/// `POST /v1/prove`, opened: the job is queued, or the reason it is not. The request's
/// secrets are wiped when it drops, whatever the outcome. `source` is the client as the
/// shim reports it: it only decides whose share of the queue the job takes.
pub fn submit(
    prover: Option<&Prover>,
    source: Source,
    r: ProveRequest,
) -> Result<Submitted, ApiError> {
    let Some(prover) = prover else {
        return Err(ApiError::new(
            Code::ProverDisabled,
            "this enclave is configured without a prover (no prover section)",
        ));
    };
    let scheme = r.scheme.known().map_err(|other| {
        ApiError::new(
            Code::BadScheme,
            format!(
                "scheme {}: one of {}",
                quoted(other),
                Scheme::NAMES.join(", ")
            ),
        )
    })?;
    let chonk = scheme == Scheme::Chonk;
    let target = match (chonk, r.target.known()) {
        (false, Ok(Target::Default)) => Target::NoirRecursive.as_str(),
        // A chonk proof has one verifier; bb takes no target for it.
        (true, Ok(Target::Default)) => Target::Default.as_str(),
        (true, t) => {
            return Err(ApiError::new(
                Code::BadTarget,
                format!(
                    "verifier target {}: chonk proofs take only default",
                    quoted(&t.map_or_else(str::to_string, |t| t.to_string()))
                ),
            ));
        }
        (false, Ok(t)) => t.as_str(),
        (false, Err(t)) => {
            return Err(ApiError::new(
                Code::BadTarget,
                format!(
                    "verifier target {}: one of {}",
                    quoted(t),
                    Target::NAMES.join(", ")
                ),
            ));
        }
    };
    // Named by the client, checked here: an unknown one never reaches the queue.
    //
    // Threat: a name as long as the body allows (tens of MiB) echoed into the refusal, which
    // costs memory and makes the sealed error too large to seal (the client then gets an
    // unsealed 500). No served name is longer than the bound: refused without echoing it.
    if let Some(n) = r.bb_version.as_deref()
        && n.len() > MAX_BB_VERSION_NAME
    {
        return Err(ApiError::new(
            Code::UnknownBbVersion,
            format!(
                "bb_version is {} bytes long; version names are at most {MAX_BB_VERSION_NAME}",
                n.len()
            ),
        ));
    }
    let bb = prover
        .bb_by_name(r.bb_version.as_deref())
        .map_err(|m| ApiError::new(Code::UnknownBbVersion, m))?;
    let ProveRequest {
        circuit,
        witness,
        ivc_inputs,
        result_key,
        ..
    } = r;
    let fields = (|| {
        let key: [u8; 32] = result_key
            .expose()
            .try_into()
            .map_err(|_| (400, "result_key must be 32 bytes".to_string()))?;
        let key = Zeroizing::new(key);
        let work = if chonk {
            if !circuit.is_empty() || !witness.is_empty() {
                return Err((
                    400,
                    "a chonk request carries its circuits and witnesses in ivc_inputs; \
                     circuit and witness must be empty"
                        .to_string(),
                ));
            }
            let ivc_inputs = bounded("ivc_inputs", ivc_inputs.unwrap_or_default(), MAX_IVC_INPUTS)?;
            if ivc_inputs.is_empty() {
                return Err((400, "a chonk request needs ivc_inputs".to_string()));
            }
            Work::Chonk { ivc_inputs }
        } else {
            if ivc_inputs.is_some() {
                return Err((400, "ivc_inputs are for scheme chonk only".to_string()));
            }
            let circuit = bounded("circuit", circuit, MAX_CIRCUIT)?;
            let witness = bounded("witness", witness, MAX_WITNESS)?;
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
    Ok(prover.submit(
        Input {
            work,
            bb,
            result_key,
        },
        source,
    )?)
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

/// `POST /v1/prove/cancel`, opened: the job is cancelled (or is being stopped), or ended
/// first; never its result (see [`CancelAnswer`]). The token is wiped when the request drops.
pub fn cancel(prover: Option<&Prover>, r: CancelRequest) -> Result<CancelAnswer, ApiError> {
    let Some(prover) = prover else {
        return Err(ApiError::new(
            Code::ProverDisabled,
            "this enclave has no prover",
        ));
    };
    prover.cancel(&r.id, &r.token).map_err(|e| match e {
        // Threat: the parent probing which ids are live jobs with made-up tokens. An unknown
        // id and a wrong token get the same code and the same words.
        CancelError::Unknown => ApiError::new(
            Code::UnknownJob,
            "no such job with this token (never submitted, its result expired, or the \
             enclave restarted)",
        ),
        CancelError::Ended => ApiError::new(
            Code::JobEnded,
            "the job has ended already; its result is unchanged",
        ),
    })
}
