//! `POST /v1/prove`, `GET /v1/prove/{id}[?wait=SECONDS]` and `POST /v1/prove/cancel` (formats
//! in `sigil_protocol::prove`, the endpoints in `sigil_protocol::endpoint`).
//!
//! The submission is encapsulated: circuit and witness (or a chonk input stack) and the
//! client's result key reach only the attested enclave. The status is in the clear except the
//! result, which is sealed under the client's key: the parent relays it but cannot read or
//! forge it. A cancellation is encapsulated too: its token is the job's capability.

use sigil_protocol::error::{ApiError, Code};
use std::time::Duration;

use sigil_protocol::prove::{
    CancelAnswer, CancelRequest, JobRef, JobStatus, MAX_BB_VERSION_NAME, MAX_CIRCUIT,
    MAX_IVC_INPUTS, MAX_STATUS_WAIT_SECS, MAX_WITNESS, ProveRequest, Scheme, Submitted, Target,
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
            SubmitError::Unavailable(_) => Code::ProverUnavailable,
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

/// The query of `GET /v1/prove/{id}`: `wait=SECONDS` (0 to [`MAX_STATUS_WAIT_SECS`], digits
/// only) or nothing. Anything else is refused with `bad_query`, not ignored: a misspelt
/// `wait` would otherwise turn every long-poll into a busy poll without a word.
pub fn status_query(query: Option<&str>) -> Result<Option<u32>, ApiError> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    let mut wait = None;
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "wait" {
            return Err(ApiError::new(
                Code::BadQuery,
                format!(
                    "unknown query parameter {}; only wait=SECONDS is accepted",
                    quoted(k)
                ),
            ));
        }
        if wait.is_some() {
            return Err(ApiError::new(Code::BadQuery, "wait given twice"));
        }
        // Digits only: `u32::from_str` would take a sign too.
        let secs = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse::<u32>().ok())
            .flatten()
            .filter(|s| *s <= MAX_STATUS_WAIT_SECS)
            .ok_or_else(|| {
                ApiError::new(
                    Code::BadQuery,
                    format!(
                        "wait is a whole number of seconds from 0 to {MAX_STATUS_WAIT_SECS}, \
                         not {}",
                        quoted(v)
                    ),
                )
            })?;
        wait = Some(secs);
    }
    Ok(wait)
}

/// `GET /v1/prove/{id}[?wait=SECONDS]` (the router checked the id's form): the status at once,
/// or, with `wait`, once the job has ended or the seconds have passed (see
/// [`Prover::status_wait`]: the request holds its connection meanwhile, within bounded
/// places; `source` is whose share of them it takes). The answer is the same either way: in
/// the clear, with the result sealed to the client once the job has ended.
///
/// Threat: the parent sees the job id and may long-poll it; that tells it nothing beyond
/// what an immediate status already does (the state, and when it changed, which the parent
/// sees as the answers it relays change).
pub fn status(prover: Option<&Prover>, source: Source, r: JobRef) -> Result<JobStatus, ApiError> {
    let Some(prover) = prover else {
        return Err(ApiError::new(
            Code::ProverDisabled,
            "this enclave has no prover",
        ));
    };
    let wait = Duration::from_secs(r.wait.unwrap_or(0).min(MAX_STATUS_WAIT_SECS).into());
    prover.status_wait(&r.id, wait, source).ok_or_else(|| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_query_parsing() {
        assert_eq!(status_query(None).unwrap(), None);
        assert_eq!(status_query(Some("")).unwrap(), None);
        assert_eq!(status_query(Some("wait=0")).unwrap(), Some(0));
        assert_eq!(status_query(Some("wait=7")).unwrap(), Some(7));
        let max = format!("wait={MAX_STATUS_WAIT_SECS}");
        assert_eq!(
            status_query(Some(&max)).unwrap(),
            Some(MAX_STATUS_WAIT_SECS)
        );
        let over = format!("wait={}", MAX_STATUS_WAIT_SECS + 1);
        for q in [
            over.as_str(),
            "wait=",
            "wait",
            "wait=abc",
            "wait=+5",
            "wait=-1",
            "wait=1.5",
            "wait=%205",
            "wait=99999999999999999999",
            "wait=1&wait=2",
            "wiat=5",
            "wait=5&nonce=00",
        ] {
            let e = status_query(Some(q)).unwrap_err();
            assert_eq!((e.status, e.code), (400, Code::BadQuery), "{q}");
        }
        // The refusal quotes a bounded part of what was sent.
        let long = format!("wait={}", "9".repeat(10_000));
        assert!(status_query(Some(&long)).unwrap_err().message.len() < 200);
    }
}
