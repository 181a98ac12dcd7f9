//! Delegated proving from the client's side: submit encapsulated, long-poll, open the sealed
//! result with the key only this client holds, and check it is for its own inputs; or
//! cancel the job with the token derived from that key.

use std::time::{Duration, Instant};

use sigil_protocol::endpoint as ep;
use sigil_protocol::prove::{
    CancelAnswer, CancelRequest, JobProgress, JobRef, JobResult, JobStatus, MAX_STATUS_WAIT_SECS,
    ProveRequest, Scheme, Submitted, Target, cancel_token, chonk_inputs_sha256, inputs_sha256,
    open_result,
};
use sigil_protocol::wire::{Hex32, Id, Open, SecretBase64};
use zeroize::Zeroizing;

use crate::{AttestedEnclave, Client, ClientError};

/// A job this client submitted: its id and the key its result is sealed under.
pub struct Job {
    pub submitted: Submitted,
    key: Zeroizing<[u8; 32]>,
    inputs_sha256: Hex32,
}

/// The outputs of a successful job, in bb's own formats. A chonk proof has no separate
/// public inputs and no vk hash: those are empty.
pub struct Proof {
    pub proof: Vec<u8>,
    pub public_inputs: Vec<u8>,
    pub vk: Vec<u8>,
    pub vk_hash: Vec<u8>,
    pub result: JobResult,
}

/// The first pause before the next status poll when one did not wait (it failed, or the
/// enclave answered before the long-poll's time: an older enclave, or every waiting place
/// taken), doubled after each such poll up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(2);

/// A new key for one job's result; never reused.
fn fresh_result_key() -> Result<Zeroizing<[u8; 32]>, ClientError> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut key[..])
        .map_err(|e| ClientError::Protocol(format!("no randomness: {e}")))?;
    Ok(key)
}

impl Client {
    /// Submits a proving job: the circuit (Noir program JSON or gzipped bytecode) and the
    /// gzipped witness, sealed to the attested enclave.
    pub fn prove_submit(
        &self,
        enclave: &AttestedEnclave,
        circuit: &[u8],
        witness: &[u8],
        target: &str,
    ) -> Result<Job, ClientError> {
        self.prove_submit_with(enclave, circuit, witness, target, None)
    }

    /// As [`Client::prove_submit`], proved by the bb version named `bb_version` (one the
    /// attestation's user_data lists; `None`: the enclave's default).
    pub fn prove_submit_with(
        &self,
        enclave: &AttestedEnclave,
        circuit: &[u8],
        witness: &[u8],
        target: &str,
        bb_version: Option<&str>,
    ) -> Result<Job, ClientError> {
        let key = fresh_result_key()?;
        let req = ProveRequest {
            scheme: Scheme::UltraHonk.into(),
            circuit: SecretBase64::copy_of(circuit),
            witness: SecretBase64::copy_of(witness),
            ivc_inputs: None,
            // A target this build does not know is sent as given: the enclave names it.
            target: target
                .parse::<Target>()
                .map_or_else(|_| Open::Unknown(target.into()), Open::Known),
            bb_version: bb_version.map(str::to_string),
            result_key: SecretBase64::copy_of(&key[..]),
        };
        self.prove_send(enclave, req, key, inputs_sha256(circuit, witness))
    }

    /// Submits a chonk job: bb's input stack (`ivc-inputs.msgpack`), sealed to the attested
    /// enclave.
    pub fn prove_submit_chonk(
        &self,
        enclave: &AttestedEnclave,
        ivc_inputs: &[u8],
    ) -> Result<Job, ClientError> {
        self.prove_submit_chonk_with(enclave, ivc_inputs, None)
    }

    /// As [`Client::prove_submit_chonk`], proved by the bb version named `bb_version`.
    pub fn prove_submit_chonk_with(
        &self,
        enclave: &AttestedEnclave,
        ivc_inputs: &[u8],
        bb_version: Option<&str>,
    ) -> Result<Job, ClientError> {
        let key = fresh_result_key()?;
        let req = ProveRequest {
            scheme: Scheme::Chonk.into(),
            circuit: SecretBase64::default(),
            witness: SecretBase64::default(),
            ivc_inputs: Some(SecretBase64::copy_of(ivc_inputs)),
            target: Target::Default.into(),
            bb_version: bb_version.map(str::to_string),
            result_key: SecretBase64::copy_of(&key[..]),
        };
        self.prove_send(enclave, req, key, chonk_inputs_sha256(ivc_inputs))
    }

    fn prove_send(
        &self,
        enclave: &AttestedEnclave,
        req: ProveRequest,
        key: Zeroizing<[u8; 32]>,
        mine: Hex32,
    ) -> Result<Job, ClientError> {
        // The request's inputs and result key are wiped when it drops.
        let submitted = self.call::<ep::ProveSubmit>(enclave, &req)?;
        if submitted.inputs_sha256 != mine {
            return Err(ClientError::Protocol(
                "the enclave acknowledged other inputs than the ones sent".into(),
            ));
        }
        Ok(Job {
            submitted,
            key,
            inputs_sha256: mine,
        })
    }

    /// The job's state (no secrets: the result inside is sealed).
    pub fn prove_status(&self, id: &Id) -> Result<JobStatus, ClientError> {
        self.call_plain::<ep::ProveStatus>(&JobRef {
            id: *id,
            wait: None,
        })
    }

    /// The job's state once it has ended, or after `wait_secs` (at most
    /// [`MAX_STATUS_WAIT_SECS`]), whichever comes first: a long-poll. The enclave may answer
    /// sooner with the job still running (its waiting places are bounded).
    pub fn prove_status_wait(&self, id: &Id, wait_secs: u32) -> Result<JobStatus, ClientError> {
        self.call_plain::<ep::ProveStatus>(&JobRef {
            id: *id,
            wait: Some(wait_secs),
        })
    }

    /// Cancels a job this client submitted: a queued job leaves the queue, a running one's bb
    /// is stopped, and its status becomes `cancelled`, with no result (which
    /// [`Client::prove_wait`] reports as the failure `cancelled`). The answer says whether it
    /// is cancelled: `cancelled` false with `ended` means it finished first (its result is
    /// in [`Client::prove_status`]); `running` with `cancelled` true, that it is still being
    /// stopped. A job that had ended already is refused with `job_ended`; the enclave
    /// answers `unknown_job` for a job it does not know. Encapsulated: the token, derived
    /// from the job's result key, is what lets only this client cancel it.
    pub fn prove_cancel(
        &self,
        enclave: &AttestedEnclave,
        job: &Job,
    ) -> Result<CancelAnswer, ClientError> {
        let req = CancelRequest {
            id: job.submitted.id,
            token: cancel_token(&job.key),
        };
        self.call::<ep::ProveCancel>(enclave, &req)
    }

    /// Long-polls until the job ends (`GET /v1/prove/{id}?wait=`, each poll waiting up to
    /// [`MAX_STATUS_WAIT_SECS`] or what is left of `limit`, so the end is seen when it
    /// happens), calling `progress` on every answer, then opens its result. A failed job is
    /// an `Api` error with bb's reason (`cancelled` for one cancelled with
    /// [`Client::prove_cancel`]). A poll that does not reach the enclave (a `Transport`
    /// error: a reset connection, a relay restarting) is retried with backoff, and so is one
    /// answered before its wait with the job still running (an enclave that does not
    /// long-poll, or has no waiting place free): the job goes on regardless. Only when
    /// `limit` passes does it give up, with [`ClientError::Timeout`]; that leaves the job
    /// running in the enclave: cancel it to free its place.
    pub fn prove_wait(
        &self,
        job: &Job,
        limit: Duration,
        mut progress: impl FnMut(&JobStatus),
    ) -> Result<Proof, ClientError> {
        let start = Instant::now();
        let mut delay = POLL_FIRST;
        let status = loop {
            let left = limit.saturating_sub(start.elapsed());
            // Whole seconds (the query's unit), rounded down: never past `limit`.
            let wait = left.as_secs().min(MAX_STATUS_WAIT_SECS.into()) as u32;
            let asked = Instant::now();
            let waited = match self.prove_status_wait(&job.submitted.id, wait) {
                Ok(s) => {
                    progress(&s);
                    if s.sealed.is_some() {
                        break s;
                    }
                    if s.state == JobProgress::Cancelled {
                        // No result: the job was cancelled (with `prove_cancel`).
                        return Err(ClientError::Api {
                            status: 422,
                            code: "cancelled".into(),
                            message: format!("job {} was cancelled by its client", s.id),
                        });
                    }
                    if s.state == JobProgress::Ended {
                        return Err(ClientError::Protocol(format!(
                            "job {} ended without a sealed result (the enclave could not seal it)",
                            s.id
                        )));
                    }
                    // The enclave held the poll for its whole wait: ask again at once.
                    let held = wait > 0 && asked.elapsed() >= Duration::from_secs(wait.into());
                    (format!("still {}", s.state), !held)
                }
                Err(ClientError::Transport(e)) => (format!("its status unreachable ({e})"), true),
                Err(e) => return Err(e),
            };
            let (waited, pause) = waited;
            if start.elapsed() > limit {
                return Err(ClientError::Timeout(format!(
                    "job {} {waited} after {} s",
                    job.submitted.id,
                    limit.as_secs()
                )));
            }
            if pause {
                std::thread::sleep(delay.min(limit.saturating_sub(start.elapsed())));
                delay = (delay * 2).min(POLL_MAX);
            } else {
                delay = POLL_FIRST;
            }
        };
        let sealed = status.sealed.unwrap_or_default();
        let plain = Zeroizing::new(
            open_result(&job.key, &job.submitted.id.to_string(), &sealed.0)
                .map_err(|e| ClientError::Protocol(e.to_string()))?,
        );
        let result: JobResult = serde_json::from_slice(&plain)
            .map_err(|e| ClientError::Protocol(format!("job result: {e}")))?;
        if result.id != job.submitted.id || result.inputs_sha256 != job.inputs_sha256 {
            return Err(ClientError::Protocol(
                "the sealed result is for another job or other inputs".into(),
            ));
        }
        if let Some(e) = &result.error {
            // A job failure's code is the prover's (see `JobFailure`), kept as text.
            return Err(ClientError::Api {
                status: 422,
                code: e.code.as_str().into(),
                message: e.message.clone(),
            });
        }
        Ok(Proof {
            proof: result.proof.clone().unwrap_or_default().0,
            public_inputs: result.public_inputs.clone().unwrap_or_default().0,
            vk: result.vk.clone().unwrap_or_default().0,
            vk_hash: result.vk_hash.clone().unwrap_or_default().0,
            result,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use sigil_protocol::prove::{JobState, seal_result};
    use sigil_protocol::wire::{Base64Bytes, Hex};

    use super::*;

    /// Reads one request's head (a status poll has no body); returns its request line.
    fn read_head(s: &mut TcpStream) -> String {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        head.lines().next().unwrap_or_default().to_string()
    }

    /// A status endpoint answering the `n`th connection (from 0) with `answer(n)`, at once;
    /// `None` drops it unanswered. Keeps the request lines it saw.
    fn status_server(
        answer: impl Fn(usize) -> Option<Vec<u8>> + Send + 'static,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let lines = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let line = read_head(&mut s);
                let n = {
                    let mut l = lines.lock().unwrap();
                    l.push(line);
                    l.len() - 1
                };
                let Some(status) = answer(n) else {
                    continue; // dropped: the connection closes unanswered
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    status.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&status);
            }
        });
        (base, seen)
    }

    /// A status endpoint that drops its first `drop_first` connections without an answer,
    /// then answers every poll with `status`. Counts the connections it saw.
    fn flaky_server(drop_first: usize, status: Vec<u8>) -> (String, Arc<AtomicUsize>) {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let (base, _) = status_server(move |n| {
            counter.fetch_add(1, Ordering::SeqCst);
            (n >= drop_first).then(|| status.clone())
        });
        (base, seen)
    }

    fn job_and_sealed_status() -> (Job, Vec<u8>) {
        let key = Zeroizing::new([7u8; 32]);
        let id: Id = Hex([3u8; 16]);
        let mine = inputs_sha256(b"circuit", b"witness");
        let result = JobResult {
            id,
            inputs_sha256: mine,
            state: JobState::Done,
            error: None,
            proof: Some(Base64Bytes(b"proof".to_vec())),
            public_inputs: None,
            vk: None,
            vk_hash: None,
            circuit_size: None,
            queued_ms: 0,
            prove_ms: 1,
            bb_version: "test".into(),
        };
        let plain = serde_json::to_vec(&result).unwrap();
        let sealed = seal_result(&key, &id.to_string(), [1u8; 12], &plain).unwrap();
        let status = JobStatus {
            id,
            state: JobProgress::Ended,
            queue_position: None,
            elapsed_ms: None,
            sealed: Some(Base64Bytes(sealed)),
        };
        let job = Job {
            submitted: Submitted {
                id,
                queue_position: 0,
                inputs_sha256: mine,
            },
            key,
            inputs_sha256: mine,
        };
        (job, serde_json::to_vec(&status).unwrap())
    }

    #[test]
    fn a_lost_status_poll_is_retried_not_the_end_of_the_wait() {
        let (job, status) = job_and_sealed_status();
        let (base, seen) = flaky_server(3, status);
        let client = Client::new(&base).unwrap();
        let proof = client
            .prove_wait(&job, Duration::from_secs(30), |_| {})
            .expect("the wait outlives dropped connections");
        assert_eq!(proof.proof, b"proof");
        assert!(seen.load(Ordering::SeqCst) >= 4);
    }

    #[test]
    fn every_poll_long_polls_and_one_answered_early_is_not_repeated_at_once() {
        // An enclave that answers at once however long it is asked to wait (an older one, or
        // one with every waiting place taken): the job runs for five polls, then has ended.
        let (job, sealed) = job_and_sealed_status();
        let running = serde_json::to_vec(&JobStatus {
            id: job.submitted.id,
            state: JobProgress::Running,
            queue_position: None,
            elapsed_ms: Some(1),
            sealed: None,
        })
        .unwrap();
        let (base, seen) = status_server(move |n| {
            Some(if n < 5 {
                running.clone()
            } else {
                sealed.clone()
            })
        });
        let client = Client::new(&base).unwrap();
        let mut answers = Vec::new();
        let proof = client
            .prove_wait(&job, Duration::from_secs(60), |s| answers.push(s.state))
            .unwrap();
        assert_eq!(proof.proof, b"proof");
        // The progress callback saw every answer.
        assert_eq!(answers.len(), 6);
        assert_eq!(answers[0], JobProgress::Running);
        assert_eq!(answers[5], JobProgress::Ended);
        // Each poll asked to wait as long as a long-poll may (the limit is far off), and the
        // early answers were followed by backoff, not by a busy loop: six polls in all.
        let lines = seen.lock().unwrap();
        assert_eq!(lines.len(), 6, "{lines:?}");
        let want = format!(
            "GET /v1/prove/{}?wait={MAX_STATUS_WAIT_SECS} HTTP/1.1",
            job.submitted.id
        );
        assert!(lines.iter().all(|l| *l == want), "{lines:?}");
    }

    #[test]
    fn a_long_poll_never_asks_to_wait_past_the_limit() {
        let (job, sealed) = job_and_sealed_status();
        let (base, seen) = status_server(move |_| Some(sealed.clone()));
        let client = Client::new(&base).unwrap();
        client
            .prove_wait(&job, Duration::from_millis(3500), |_| {})
            .unwrap();
        let lines = seen.lock().unwrap();
        assert!(lines[0].contains("?wait=3 "), "{lines:?}");
    }

    #[test]
    fn only_the_time_limit_ends_a_wait_that_cannot_reach_the_enclave() {
        let (job, status) = job_and_sealed_status();
        let (base, seen) = flaky_server(usize::MAX, status);
        let client = Client::new(&base).unwrap();
        let t = Instant::now();
        let err = client
            .prove_wait(&job, Duration::from_millis(500), |_| {})
            .err()
            .expect("no answer ever came");
        assert!(matches!(err, ClientError::Timeout(_)), "{err}");
        assert!(t.elapsed() >= Duration::from_millis(500));
        assert!(seen.load(Ordering::SeqCst) >= 2);
    }
}
