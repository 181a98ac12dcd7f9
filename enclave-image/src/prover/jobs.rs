//! Proving jobs: a bounded queue, a fixed number of workers, and `bb` run as a child process
//! per job with its inputs in a private directory under memory-backed storage, a time limit
//! and an address-space limit, inside the sandbox of `sigil_sys::sandbox` (its own user,
//! namespaces, a read-only root where only the job directory is writable, a seccomp filter):
//! bb parses anonymous clients' inputs, so it is treated as hostile. Whatever happens, the job's directory is removed when the job
//! ends (inputs and outputs are the client's secrets), and a failure becomes a clear error in
//! the sealed result, never a hang.
//!
//! Results are sealed under the client's `result_key` (see `sigil_protocol::prove`) as soon
//! as the job ends; the enclave then forgets the key and keeps only the sealed bytes until
//! they expire ([`RESULT_TTL`]) or are pushed out ([`MAX_FINISHED`]).
//!
//! A client may cancel its job ([`Prover::cancel`], with the token derived from its key): a
//! queued job leaves the queue, a running one's bb is killed as at the time limit; either
//! ends `cancelled`, with no sealed result (see [`State::Cancelled`]).

use std::cmp::Reverse;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use sigil_protocol::parent::source::Source;
use sigil_protocol::prove::{
    CancelAnswer, JobFailure, JobProgress, JobResult, JobState, JobStatus, RESULT_PAD,
    RESULT_PAD_CHONK, Submitted, cancel_token, chonk_inputs_sha256, inputs_sha256, seal_result,
};
use sigil_protocol::wire::{Base64Bytes, Hex, Hex32, HexBytes, Id, SecretHex};
use sigil_sys::process::{self, Rlimit};
use sigil_sys::sandbox::{self, Sandbox};
use sigil_sys::signals;
use zeroize::Zeroizing;

use super::ProverError;
use super::crs::CrsService;
use crate::log;

/// How long a finished job's sealed result is kept for the client to fetch.
pub const RESULT_TTL: Duration = Duration::from_secs(3600);
/// Most finished jobs kept; when more finish, the source holding the most loses its oldest
/// first (see [`remember_finished`]).
pub const MAX_FINISHED: usize = 256;
/// Most bytes of sealed results kept at once: results of large circuits (chonk proofs, padded
/// to 1 MiB multiples) must not add up to the enclave's memory however many finish. The
/// source holding the most bytes loses its oldest first; the newest is always kept.
pub const MAX_FINISHED_BYTES: usize = 64 << 20;
/// Largest output file read back from bb (proofs and keys are tens of KiB).
const MAX_OUTPUT: u64 = 4 << 20;
/// Largest file bb may write (RLIMIT_FSIZE): its outputs, with room to spare.
const MAX_BB_FILE: u64 = 64 << 20;
/// How long the cancellation that stops a running job waits for its bb to be stopped, so
/// that it can answer `cancelled` (the kill itself waits at most 5 s for the process). Only
/// the request that sets the job's cancel flag waits; repeats answer at once.
const CANCEL_WAIT: Duration = Duration::from_secs(10);
/// How much of bb's stderr is kept for the error message.
const STDERR_TAIL: usize = 2048;
/// Most jobs one client (its source address as the shim reports it, keyed like the shim's
/// connection limit: IPv4 address, IPv6 /64) may have queued or running. Connections of
/// unknown source (direct ones: local mode and tests, or a shim with its header turned off)
/// count as one client together.
///
/// Threat: one client, or a few addresses of one, filling the queue and starving every other.
/// Three defences work together: this share (four is half the default queue of 8); a full
/// queue still admits a client holding fewer queued jobs than the biggest holder, by
/// displacing that holder's newest queued job (max-min fairness: a client with many
/// addresses cannot keep a new one out); and workers take jobs source by source, least
/// recently served first, so one client's backlog never stands before another's next job.
pub const MAX_JOBS_PER_SOURCE: usize = 4;

/// Most status requests long-polling at once (`GET /v1/prove/{id}?wait=`, see
/// [`Prover::status_wait`]), and most of them from one source (as [`MAX_JOBS_PER_SOURCE`]:
/// one waiter for each job it may have). Past either, a request is answered at once, as
/// without `wait` (the client then polls with backoff).
///
/// Threat: long-polls filling the server's connections. Each waiting request holds its
/// connection and that connection's thread (256 KiB of stack, nothing else) for up to
/// `MAX_STATUS_WAIT_SECS`; the server serves at most `Limits::max_connections` (64 by
/// default) and answers the rest `503 busy`. Waiters never take more than a quarter of the
/// default connections, so every other route keeps at least 48 however many clients (or
/// the parent, which sees every job id) long-poll; a deployment that lowers
/// `max_connections` well below 64 gives waiters a larger share of it.
pub const MAX_WAITERS: usize = 16;
/// Most long-polls of one source at once (see [`MAX_WAITERS`]).
pub const MAX_WAITERS_PER_SOURCE: usize = MAX_JOBS_PER_SOURCE;

/// Longest part of a client's text quoted back in an error message.
pub const MAX_QUOTED: usize = 64;

/// `s` quoted (as `{:?}` does) for an error message, cut to [`MAX_QUOTED`] bytes with `...`
/// after the quote when cut.
///
/// Threat: a request field the body limit allows to be megabytes long, echoed whole into an
/// error: memory, and a sealed error too large to seal. Only a bounded prefix is echoed.
pub fn quoted(s: &str) -> String {
    let mut end = s.len().min(MAX_QUOTED);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() {
        format!("{:?}...", &s[..end])
    } else {
        format!("{s:?}")
    }
}

/// One bb version the prover serves.
#[derive(Clone, Debug)]
pub struct BbBinary {
    /// The name requests use (`bb_version`), e.g. "4.1.2".
    pub name: String,
    /// The binary (an absolute path without symbolic links: the sandbox shows its directory
    /// at the same path).
    pub path: PathBuf,
    /// Its own C/C++ runtime (the binary's directory), when the image's libc is not the one
    /// it needs: it then runs as `DIR/ld-linux-x86-64.so.2 --library-path DIR bb ...`.
    pub runtime: Option<PathBuf>,
    /// What `bb --version` prints, reported in results (and in the attestation's user_data).
    pub version: String,
    /// SHA-256 (hex) of the binary, in the attestation's user_data.
    pub sha256: String,
    /// SHA-256 (hex) of its runtime's file list, in the attestation's user_data.
    pub runtime_sha256: Option<String>,
}

impl BbBinary {
    /// The command that starts this bb (arguments follow).
    pub fn command(&self) -> Command {
        match &self.runtime {
            Some(dir) => {
                // Its ELF interpreter is the system's loader, which goes with the system's
                // (older) libc: run the loader of its own runtime, which looks beside it first
                // (no cache). A library not found there would still be taken from the system's
                // directories: the prover checks at start that the runtime holds every
                // library bb and its libraries name (`prover::runtime_has_every_library`).
                let mut cmd = Command::new(dir.join(super::RUNTIME_LOADER));
                cmd.arg("--inhibit-cache")
                    .arg("--library-path")
                    .arg(dir)
                    .arg(&self.path);
                cmd
            }
            None => Command::new(&self.path),
        }
    }

    /// The directory holding bb (and its runtime), shown read-only in the sandbox.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// The bb versions served, the default first (never empty once started).
    pub bbs: Vec<BbBinary>,
    /// Job directories go here (tmpfs in the image).
    pub work_dir: PathBuf,
    pub workers: usize,
    /// Most jobs waiting (running ones not counted).
    pub max_queue: usize,
    pub time_limit: Duration,
    /// Address-space limit of bb, bytes.
    pub memory_limit: u64,
    /// Every bb runs in it.
    pub sandbox: Sandbox,
}

/// What a client submits (decoded and bounded by the API).
pub struct Input {
    pub work: Work,
    /// Which of [`Settings::bbs`] proves it.
    pub bb: usize,
    pub result_key: Zeroizing<[u8; 32]>,
}

/// The proof asked for.
pub enum Work {
    /// One circuit and its witness.
    UltraHonk {
        circuit: Zeroizing<Vec<u8>>,
        witness: Zeroizing<Vec<u8>>,
        /// bb's `--verifier_target`.
        target: &'static str,
    },
    /// Aztec's client IVC: bb's msgpack stack of circuits, witnesses and keys.
    Chonk { ivc_inputs: Zeroizing<Vec<u8>> },
}

/// CRS points every chonk proof needs with bb 5.0.0, whatever the circuits: its translator
/// circuit has a fixed 2^17 rows. Bigger stacks need more, and bb says so (it then tries to
/// download them, which fails inside the enclave: no network).
pub const CHONK_MIN_CRS_POINTS: u64 = 1 << 17;

#[derive(Debug)]
pub enum SubmitError {
    QueueFull(usize),
    /// The client's source already has this many jobs queued or running.
    SourceQuota(usize),
    CrsNotReady(String),
    /// A bb failed its check against the pins: no job runs this boot.
    Unavailable(String),
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::QueueFull(n) => {
                write!(f, "{n} jobs are already waiting; try again later")
            }
            SubmitError::SourceQuota(n) => write!(
                f,
                "this client address already has {n} proving jobs queued or running (at most \
                 {MAX_JOBS_PER_SOURCE}); submit again when one has ended"
            ),
            SubmitError::CrsNotReady(m) => write!(f, "the prover's CRS is not ready: {m}"),
            SubmitError::Unavailable(m) => {
                write!(f, "the prover failed its start check and runs no job: {m}")
            }
        }
    }
}

/// Why a job was not cancelled.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelError {
    /// No such job, or the token is not its own: the two are one answer.
    Unknown,
    /// The job has ended already (its result stays as it was).
    Ended,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Queued,
    Running,
    Done,
    Failed,
    /// Cancelled by its client: ended with no sealed result, only this small record.
    ///
    /// Threat: submit-then-cancel round trips (bb never runs, and the job leaves the
    /// per-source share at once) each leaving a padded result (a chonk one is 1 MiB), to push
    /// every other client's unfetched results out of the byte budget. A cancelled job keeps
    /// no result and weighs nothing there; in the count of finished jobs its source is the
    /// first to lose (see [`remember_finished`]). Its status says `cancelled` in the clear:
    /// the parent relays the cancel request and knows it anyway, and the client that
    /// cancelled knows the outcome; every other job's status stays `ended`, whatever its
    /// outcome.
    Cancelled,
}

struct Job {
    state: State,
    /// Who submitted it, for the per-source share ([`MAX_JOBS_PER_SOURCE`]).
    source: Source,
    input: Option<Input>,
    /// Hashed once at submission (inputs are up to megabytes); the result repeats it.
    inputs_sha256: Hex32,
    submitted: Instant,
    started: Option<Instant>,
    ended: Option<Instant>,
    sealed: Option<Vec<u8>>,
    /// [`cancel_token`] of the job's result key, computed at submission (the key itself
    /// leaves with the input when a worker takes the job); dropped when the job ends, since
    /// refusing to cancel an ended job needs only its state.
    cancel_token: Option<Zeroizing<[u8; 32]>>,
    /// Set by [`Prover::cancel`] while the job runs: the worker's bb is killed. Swapped, so
    /// only the first cancellation waits for it.
    cancel: Arc<AtomicBool>,
}

/// The checks of the bb binaries a pinned start runs after the service is ready (see
/// `prover::start`): `Err` says which bb failed and why.
pub type Check = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// Where those checks are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Checked {
    Running,
    /// Passed, or checked before the prover started.
    #[default]
    Passed,
    Failed(String),
}

#[derive(Default)]
struct Inner {
    /// No job runs before this is `Passed`.
    checked: Checked,
    jobs: HashMap<Id, Job>,
    queue: VecDeque<Id>,
    /// When each source with queued jobs was last served (a dispatch count; absent: never).
    served: HashMap<Source, u64>,
    dispatches: u64,
    /// Finished jobs, oldest first, never more than [`MAX_FINISHED`], so results kept for
    /// clients to fetch can never pile up, however fast jobs finish.
    finished: VecDeque<Id>,
    /// Status requests long-polling now, by source (see [`MAX_WAITERS`]); none is kept at 0.
    waiting: HashMap<Source, usize>,
}

pub struct Prover {
    settings: Settings,
    crs: Arc<CrsService>,
    inner: Mutex<Inner>,
    wake: Condvar,
    /// Notified whenever a job ends, however (a worker finished or stopped it, it was
    /// cancelled or displaced from the queue): a cancellation and the status long-polls wait
    /// on it.
    ended: Condvar,
}

impl Prover {
    /// Starts `settings.workers` worker threads, and `check` (when given) beside them: until it
    /// passes, jobs wait in the queue; if it fails, queued jobs fail and new ones are refused.
    pub fn start(
        settings: Settings,
        crs: Arc<CrsService>,
        check: Option<Check>,
    ) -> Result<Arc<Prover>, ProverError> {
        let root = sandbox_root(&settings.work_dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(|source| ProverError::Io { path: root, source })?;
        let p = Arc::new(Prover {
            settings,
            crs,
            inner: Mutex::new(Inner {
                checked: match check {
                    Some(_) => Checked::Running,
                    None => Checked::Passed,
                },
                ..Inner::default()
            }),
            wake: Condvar::new(),
            ended: Condvar::new(),
        });
        if let Some(check) = check {
            let me = p.clone();
            std::thread::Builder::new()
                .name("sigil-prover-check".into())
                .spawn(move || {
                    let started = Instant::now();
                    // A panic in the check (a bug) is a failed check, never one left running.
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check))
                        .unwrap_or_else(|_| {
                            Err("prover: internal error while checking the bb binaries".into())
                        });
                    let ms = started.elapsed().as_millis();
                    let checked = match outcome {
                        Ok(()) => {
                            log::info(format_args!(
                                "prover: every bb matched its pins and answered --version \
                                 ({ms} ms)"
                            ));
                            Checked::Passed
                        }
                        Err(e) => {
                            log::warn(format_args!("{e}: the prover runs no job this boot"));
                            Checked::Failed(e)
                        }
                    };
                    me.lock().checked = checked;
                    me.wake.notify_all();
                })
                .map_err(ProverError::Worker)?;
        }
        for i in 0..p.settings.workers.max(1) {
            let me = p.clone();
            std::thread::Builder::new()
                .name(format!("sigil-prover-{i}"))
                .spawn(move || me.work())
                .map_err(ProverError::Worker)?;
        }
        Ok(p)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// For health: `checking`, `ready` or `failed`, with the failure.
    pub fn state(&self) -> (&'static str, Option<String>) {
        match &self.lock().checked {
            Checked::Running => ("checking", None),
            Checked::Passed => ("ready", None),
            Checked::Failed(e) => ("failed", Some(e.clone())),
        }
    }

    /// The bb version of that name, or what the versions served are.
    pub fn bb_by_name(&self, name: Option<&str>) -> Result<usize, String> {
        match name {
            None => Ok(0),
            Some(n) => self
                .settings
                .bbs
                .iter()
                .position(|b| b.name == n)
                .ok_or_else(|| {
                    let served: Vec<&str> =
                        self.settings.bbs.iter().map(|b| b.name.as_str()).collect();
                    format!(
                        "bb version {} is not served here; this image serves {} (default {})",
                        quoted(n),
                        served.join(", "),
                        served.first().copied().unwrap_or("none")
                    )
                }),
        }
    }

    /// The version a request that names none gets.
    pub fn default_bb(&self) -> &BbBinary {
        self.bb(0)
    }

    /// Index `i` of the versions served (the default if out of range: indices come from
    /// [`Prover::bb_by_name`]).
    fn bb(&self, i: usize) -> &BbBinary {
        &self.settings.bbs[i.min(self.settings.bbs.len().saturating_sub(1))]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn submit(&self, input: Input, source: Source) -> Result<Submitted, SubmitError> {
        // Permanent for this boot, so said before the CRS's (retryable) state. A check that
        // fails after this point fails the queued job instead (see `next_runnable`).
        refuse_if_failed(&self.lock())?;
        if self.crs.path().is_none() {
            let st = self.crs.status();
            return Err(SubmitError::CrsNotReady(
                st.error.unwrap_or_else(|| "still loading".into()),
            ));
        }
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| SubmitError::CrsNotReady(format!("random: {e}")))?;
        let id = Hex(id);
        let inputs = match &input.work {
            Work::UltraHonk {
                circuit, witness, ..
            } => inputs_sha256(circuit, witness),
            Work::Chonk { ivc_inputs } => chonk_inputs_sha256(ivc_inputs),
        };
        let token = cancel_token(&input.result_key).expose().clone();
        let mut inner = self.lock();
        expire(&mut inner);
        // Refused before anything is queued: the other sources' jobs are not touched.
        if let Some(held) = over_share(&inner, source) {
            return Err(SubmitError::SourceQuota(held));
        }
        if inner.queue.len() >= self.settings.max_queue {
            let Some(victim) = displaceable(&inner, source) else {
                return Err(SubmitError::QueueFull(inner.queue.len()));
            };
            self.displace(&mut inner, victim);
            // The displaced job has ended: its long-polls answer now.
            self.ended.notify_all();
        }
        inner.jobs.insert(
            id,
            Job {
                state: State::Queued,
                source,
                input: Some(input),
                inputs_sha256: inputs,
                submitted: Instant::now(),
                started: None,
                ended: None,
                sealed: None,
                cancel_token: Some(token),
                cancel: Arc::new(AtomicBool::new(false)),
            },
        );
        inner.queue.push_back(id);
        let position = (inner.queue.len() - 1) as u32;
        drop(inner);
        self.wake.notify_one();
        Ok(Submitted {
            id,
            queue_position: position,
            inputs_sha256: inputs,
        })
    }

    pub fn status(&self, id: &Id) -> Option<JobStatus> {
        self.status_wait(id, Duration::ZERO, Source::Unknown)
    }

    /// The status of `id` once it has ended (done, failed or cancelled), or after `wait`,
    /// whichever comes first (a long-poll: the client learns of the end when it happens, not
    /// at its next poll). An ended or unknown job, a zero `wait`, and a request over
    /// [`MAX_WAITERS`] or [`MAX_WAITERS_PER_SOURCE`] are answered at once. The wait is on
    /// the `ended` condition variable, notified whenever any job ends; no polling.
    ///
    /// Threat: the parent sees the job id (it travels in the clear) and could long-poll any
    /// job. It learns nothing new: the answer is the status anyone with the id reads at
    /// once, and when the job ended is visible to it already (the status changes then, and it
    /// relays the answer whose timing it sees either way). The waiting places are bounded so
    /// that long-polls, its own included, cannot take the connections other requests need
    /// (see [`MAX_WAITERS`]).
    pub fn status_wait(&self, id: &Id, wait: Duration, source: Source) -> Option<JobStatus> {
        let mut inner = self.lock();
        expire(&mut inner);
        let pending = |inner: &mut Inner| {
            inner
                .jobs
                .get(id)
                .is_some_and(|j| matches!(j.state, State::Queued | State::Running))
        };
        if wait.is_zero() || !pending(&mut inner) {
            return status_of(&inner, id);
        }
        if !take_waiting_place(&mut inner, source) {
            return status_of(&inner, id);
        }
        // Poisoning is recovered from (as everywhere here), so the place is always given back.
        let (mut inner, _) = self
            .ended
            .wait_timeout_while(inner, wait, pending)
            .unwrap_or_else(|p| p.into_inner());
        give_back_waiting_place(&mut inner, source);
        status_of(&inner, id)
    }

    /// Cancels job `id` for the client presenting `token` ([`cancel_token`] of the job's
    /// result key): a queued job is taken out of the queue, a running one's bb is killed
    /// (the request that sets its cancel flag waits up to [`CANCEL_WAIT`] for it to end;
    /// repeats answer at once); either ends `cancelled`, with no result. The answer is made
    /// under the same lock as the cancellation, so the job cannot be forgotten in between.
    pub fn cancel(&self, id: &Id, token: &SecretHex<32>) -> Result<CancelAnswer, CancelError> {
        let mut inner = self.lock();
        expire(&mut inner);
        let Some(job) = inner.jobs.get(id) else {
            return Err(CancelError::Unknown);
        };
        let Some(own) = &job.cancel_token else {
            // Ended: its token is gone. Nothing here is secret: its status in the clear says
            // as much to anyone who knows the id, and nothing changes.
            return match job.state {
                State::Cancelled => Ok(answer_of(&inner, id)),
                _ => Err(CancelError::Ended),
            };
        };
        // Threat: the parent knows every job id (status paths are in the clear) and would
        // cancel other clients' jobs; only the submitter, who holds the result key, knows the
        // token. Compared in constant time, so timing does not reveal how much of a guess
        // matched, and a wrong token is answered as an unknown id.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&own[..], &token.expose()[..])) {
            return Err(CancelError::Unknown);
        }
        let (state, flag) = (job.state, job.cancel.clone());
        match state {
            State::Done | State::Failed | State::Cancelled => return Err(CancelError::Ended),
            State::Queued => {
                end_cancelled_queued(&mut inner, *id);
                // Ended: its long-polls answer (once this lock is released).
                self.ended.notify_all();
            }
            // Threat: every repeat holding a connection and a handler thread for the whole
            // wait. Only the request that sets the flag waits (bounded); repeats answer at
            // once (`running`, cancelled: the worker is stopping it).
            State::Running if !flag.swap(true, Ordering::AcqRel) => {
                let (guard, _) = self
                    .ended
                    .wait_timeout_while(inner, CANCEL_WAIT, |inner| {
                        inner
                            .jobs
                            .get(id)
                            .is_some_and(|j| j.state == State::Running)
                    })
                    .unwrap_or_else(|p| p.into_inner());
                inner = guard;
            }
            State::Running => {}
        }
        Ok(answer_of(&inner, id))
    }

    /// Jobs waiting and running (for health).
    pub fn load(&self) -> (usize, usize) {
        let inner = self.lock();
        let running = inner
            .jobs
            .values()
            .filter(|j| j.state == State::Running)
            .count();
        (inner.queue.len(), running)
    }

    fn work(&self) {
        loop {
            let (id, input, queued, inputs, cancel, refused) = {
                let mut inner = self.lock();
                let (id, refused) = loop {
                    if let Some(next) = next_runnable(&mut inner) {
                        break next;
                    }
                    inner = self.wake.wait(inner).unwrap_or_else(|p| p.into_inner());
                };
                let Some(job) = inner.jobs.get_mut(&id) else {
                    continue;
                };
                job.state = State::Running;
                job.started = Some(Instant::now());
                let queued = job.submitted.elapsed();
                let inputs = job.inputs_sha256;
                let cancel = job.cancel.clone();
                match job.input.take() {
                    Some(input) => (id, input, queued, inputs, cancel, refused),
                    None => continue,
                }
            };
            let started = Instant::now();
            // A panic in one job (a bug) fails that job; the worker, the others' state and the
            // input's wiping survive it.
            let outcome = match refused {
                Some(e) => Err(Failure {
                    code: "prover_failed",
                    message: format!("the prover failed its start check and runs no job: {e}"),
                    circuit_size: None,
                }),
                None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.prove(&id.to_string(), &input, &cancel)
                }))
                .unwrap_or_else(|_| {
                    Err(Failure {
                        code: "prover_failed",
                        message: "internal error while running the prover".into(),
                        circuit_size: None,
                    })
                }),
            };
            let prove_ms = started.elapsed().as_millis() as u64;
            // Cancelled while it ran: cancelled, whatever bb managed before it was stopped
            // (the client that cancelled gets the answer it asked for), with no result.
            let sealed = if cancel.load(Ordering::Acquire) {
                drop(input);
                None
            } else {
                Some(self.seal_outcome(id, inputs, input, outcome, queued, prove_ms))
            };
            let mut inner = self.lock();
            match sealed {
                Some((failed, sealed)) => end_job(&mut inner, id, failed, sealed),
                None => end_cancelled(&mut inner, id),
            }
            remember_finished(&mut inner, id);
            expire(&mut inner);
            drop(inner);
            self.ended.notify_all();
        }
    }

    /// Takes `victim` (a queued job) out of the queue and ends it as `displaced`, its result
    /// sealed to its client like any other.
    fn displace(&self, inner: &mut Inner, victim: Id) {
        let failure = Failure {
            code: "displaced",
            message: "displaced from the full queue by another client's job (this client held \
                      the most queued jobs); submit it again later"
                .into(),
            circuit_size: None,
        };
        self.end_queued(inner, victim, failure);
    }

    /// Takes `id` (a queued job) out of the queue, freeing its place, and ends it with
    /// `failure` (bb never ran), its result sealed to its client like any other.
    fn end_queued(&self, inner: &mut Inner, id: Id, failure: Failure) {
        inner.queue.retain(|q| *q != id);
        let Some(job) = inner.jobs.get_mut(&id) else {
            return;
        };
        let (inputs, queued) = (job.inputs_sha256, job.submitted.elapsed());
        let Some(input) = job.input.take() else {
            return;
        };
        let (failed, sealed) = self.seal_outcome(id, inputs, input, Err(failure), queued, 0);
        end_job(inner, id, failed, sealed);
        remember_finished(inner, id);
    }

    /// The job's result, padded and sealed to its client's key; the inputs are dropped here.
    fn seal_outcome(
        &self,
        id: Id,
        inputs: Hex32,
        input: Input,
        outcome: Result<Output, Failure>,
        queued: Duration,
        prove_ms: u64,
    ) -> (bool, Result<Vec<u8>, String>) {
        {
            let mut result = JobResult {
                id,
                inputs_sha256: inputs,
                state: JobState::Done,
                error: None,
                proof: None,
                public_inputs: None,
                vk: None,
                vk_hash: None,
                circuit_size: None,
                queued_ms: queued.as_millis() as u64,
                prove_ms,
                bb_version: self.bb(input.bb).version.clone(),
            };
            let failed = match outcome {
                Ok(out) => {
                    result.proof = Some(Base64Bytes(out.proof));
                    result.public_inputs = out.public_inputs.map(Base64Bytes);
                    result.vk = Some(Base64Bytes(out.vk));
                    result.vk_hash = out.vk_hash.map(HexBytes);
                    result.circuit_size = out.circuit_size;
                    false
                }
                Err(e) => {
                    // Nothing about the outcome goes to the log: the parent reads it.
                    result.state = JobState::Failed;
                    result.circuit_size = e.circuit_size;
                    result.error = Some(JobFailure {
                        code: e.code.into(),
                        message: e.message,
                    });
                    true
                }
            };
            let unit = match input.work {
                Work::Chonk { .. } => RESULT_PAD_CHONK,
                Work::UltraHonk { .. } => RESULT_PAD,
            };
            let plain = pad_result(
                sigil_protocol::wire::to_json_secret(&result).unwrap_or_default(),
                unit,
            );
            let mut nonce = [0u8; 12];
            let sealed = getrandom::fill(&mut nonce)
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    seal_result(&input.result_key, &id.to_string(), nonce, &plain)
                        .map_err(|e| e.to_string())
                });
            // The inputs and the key go here: only the sealed bytes remain.
            drop(input);
            (failed, sealed)
        }
    }

    /// Runs bb for one job in its own directory, which is removed whatever happens; `cancel`
    /// stops it (no further bb step starts, a running one is killed).
    fn prove(&self, id: &str, input: &Input, cancel: &AtomicBool) -> Result<Output, Failure> {
        let dir = self.settings.work_dir.join(id);
        let result = (|| {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .and_then(|_| hand_over(&dir))
                .map_err(|e| Failure::internal(format!("job directory: {e}")))?;
            let crs = self.job_crs_dir(&dir)?;
            let job = Step {
                bb: self.bb(input.bb),
                dir: &dir,
                cancel,
            };
            match &input.work {
                Work::UltraHonk {
                    circuit,
                    witness,
                    target,
                } => self.prove_ultra_honk(&job, &crs, circuit, witness, target),
                Work::Chonk { ivc_inputs } => self.prove_chonk(&job, &crs, ivc_inputs),
            }
        })();
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn(format_args!("removing {}: {e}", dir.display()));
        }
        result
    }

    /// The job's own CRS directory: a link to the checked points. bb writes into its CRS
    /// directory (a lock file; for chonk the Grumpkin points it derives; points it downloads
    /// when it has too few), and none of that may touch the shared, checked copy or another
    /// job: the sandbox shows the checked file read-only (a read-only bind mount, and the
    /// file is mode 0444, not bb's), so the link leads nowhere writable.
    fn job_crs_dir(&self, dir: &Path) -> Result<PathBuf, Failure> {
        let points = self
            .crs
            .path()
            .ok_or_else(|| Failure::internal("the CRS disappeared".into()))?;
        let crs = dir.join("crs");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&crs)
            .and_then(|_| std::os::unix::fs::symlink(&points, crs.join("bn254_g1.dat")))
            .and_then(|_| hand_over(&crs))
            .map_err(|e| Failure::internal(format!("job CRS directory: {e}")))?;
        Ok(crs)
    }

    fn prove_ultra_honk(
        &self,
        job: &Step,
        crs: &Path,
        circuit: &[u8],
        witness: &[u8],
        target: &str,
    ) -> Result<Output, Failure> {
        let (bb, dir) = (job.bb, job.dir);
        // bb reads gzipped bytecode or Noir's program JSON from the same flag.
        let circuit_path = dir.join(if circuit.starts_with(&[0x1f, 0x8b]) {
            "circuit.gz"
        } else {
            "circuit.json"
        });
        write_private(&circuit_path, circuit)?;
        let witness_path = dir.join("witness.gz");
        write_private(&witness_path, witness)?;

        let size = self.gates(job, &circuit_path)?;
        let needed = size.map(points_needed);
        let have = self.crs.status().points;
        if let Some(n) = needed
            && n > have
        {
            return Err(Failure {
                code: "crs_too_small",
                message: format!(
                    "the circuit has {} gates and needs {n} CRS points; this enclave's CRS has \
                     {have}",
                    size.unwrap_or(0),
                ),
                circuit_size: size,
            });
        }
        let out = dir.join("out");
        let mut cmd = bb.command();
        cmd.arg("prove")
            .args(["--scheme", "ultra_honk"])
            .arg("-b")
            .arg(&circuit_path)
            .arg("-w")
            .arg(&witness_path)
            .arg("-o")
            .arg(&out)
            .args(["--verifier_target", target])
            .arg("--write_vk")
            .arg("-c")
            .arg(crs);
        self.run(job, &mut cmd, "prove").map_err(|mut f| {
            f.circuit_size = size;
            f
        })?;
        // bb proves an unsatisfying witness without complaint (its proof just does not
        // verify), so every proof is verified here before it is returned.
        let mut cmd = bb.command();
        cmd.arg("verify")
            .args(["--scheme", "ultra_honk"])
            .arg("-p")
            .arg(out.join("proof"))
            .arg("-i")
            .arg(out.join("public_inputs"))
            .arg("-k")
            .arg(out.join("vk"))
            .args(["--verifier_target", target])
            .arg("-c")
            .arg(crs);
        if let Err(f) = self.run(job, &mut cmd, "verify") {
            return Err(Failure {
                code: "unsatisfied",
                message: format!(
                    "the witness does not satisfy the circuit: the proof bb made from it does \
                     not verify ({})",
                    f.message
                ),
                circuit_size: size,
            });
        }
        Ok(Output {
            proof: read_output(dir, "out/proof")?,
            public_inputs: Some(read_output(dir, "out/public_inputs")?),
            vk: read_output(dir, "out/vk")?,
            vk_hash: Some(read_output(dir, "out/vk_hash")?),
            circuit_size: size,
        })
    }

    /// A chonk proof of a stack of circuits. bb checks the proof it made before writing it
    /// (an unsatisfied step fails there); it is verified once more here, as for UltraHonk.
    fn prove_chonk(&self, job: &Step, crs: &Path, ivc_inputs: &[u8]) -> Result<Output, Failure> {
        let (bb, dir) = (job.bb, job.dir);
        let have = self.crs.status().points;
        if have < CHONK_MIN_CRS_POINTS {
            return Err(Failure {
                code: "crs_too_small",
                message: format!(
                    "chonk proofs need at least {CHONK_MIN_CRS_POINTS} CRS points (bb's \
                     translator circuit alone has 2^17 rows); this enclave's CRS has {have}"
                ),
                circuit_size: None,
            });
        }
        let inputs = dir.join("ivc-inputs.msgpack");
        write_private(&inputs, ivc_inputs)?;
        let out = dir.join("out");
        let mut cmd = bb.command();
        cmd.arg("prove")
            .args(["--scheme", "chonk"])
            .arg("--ivc_inputs_path")
            .arg(&inputs)
            .arg("-o")
            .arg(&out)
            .arg("--write_vk")
            .arg("-c")
            .arg(crs);
        self.run(job, &mut cmd, "prove")?;
        let mut cmd = bb.command();
        cmd.arg("verify")
            .args(["--scheme", "chonk"])
            .arg("-p")
            .arg(out.join("proof"))
            .arg("-k")
            .arg(out.join("vk"))
            .arg("-c")
            .arg(crs);
        if let Err(f) = self.run(job, &mut cmd, "verify") {
            return Err(Failure {
                code: "unsatisfied",
                message: format!("the chonk proof bb made does not verify ({})", f.message),
                circuit_size: None,
            });
        }
        let vk_hash = out.join("vk_hash");
        Ok(Output {
            proof: read_output(dir, "out/proof")?,
            public_inputs: None,
            vk: read_output(dir, "out/vk")?,
            vk_hash: if vk_hash.exists() {
                Some(read_output(dir, "out/vk_hash")?)
            } else {
                None
            },
            circuit_size: None,
        })
    }

    /// `bb gates`: the circuit's size, checked against the CRS before proving. `None` if bb's
    /// answer cannot be read (proving then says what is wrong).
    fn gates(&self, job: &Step, circuit: &Path) -> Result<Option<u64>, Failure> {
        let mut cmd = job.bb.command();
        cmd.arg("gates")
            .args(["--scheme", "ultra_honk"])
            .arg("-b")
            .arg(circuit);
        let stdout = self.run(job, &mut cmd, "gates")?;
        let v: serde_json::Value = match serde_json::from_slice(&stdout) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        Ok(v["functions"][0]["circuit_size"].as_u64())
    }

    /// Runs a bb subcommand in the sandbox with the limits; returns its stdout. A cancelled
    /// job starts no further step.
    fn run(&self, job: &Step, cmd: &mut Command, what: &str) -> Result<Vec<u8>, Failure> {
        let (bb, dir) = (job.bb, job.dir);
        if job.cancel.load(Ordering::Acquire) {
            return Err(Failure::cancelled());
        }
        let crs = self.crs.path();
        let mut read_only = vec![bb.dir()];
        read_only.extend(crs.as_deref());
        let (stdout, stderr) = (
            self.output_file(dir, what, "stdout")?,
            self.output_file(dir, what, "stderr")?,
        );
        let status = run_sandboxed(
            &self.settings,
            cmd,
            dir,
            &read_only,
            (&stdout, &stderr),
            Some(job.cancel),
        )
        .map_err(|e| Failure::internal(format!("starting bb: {e}")))?;
        let stderr = tail(&stderr);
        match status {
            Exit::Cancelled => Err(Failure::cancelled()),
            Exit::TimedOut => Err(Failure {
                code: "time_limit",
                message: format!(
                    "bb {what} did not finish within {} s and was stopped",
                    self.settings.time_limit.as_secs()
                ),
                circuit_size: None,
            }),
            Exit::Code(0) => {
                use std::io::{Seek, SeekFrom};
                let mut f = &stdout;
                f.seek(SeekFrom::Start(0))
                    .and_then(|_| read_limited(f, MAX_OUTPUT, "bb's output"))
                    .map_err(|e| Failure::internal(format!("bb output: {e}")))
            }
            Exit::Code(c) => Err(self.explain(classify(what, &format!("exit code {c}"), &stderr))),
            Exit::Signal(s) => {
                let mut f = self.explain(classify(what, &format!("signal {s}"), &stderr));
                if f.code == "prover_failed" && s == signals::SIGSEGV {
                    // Under RLIMIT_AS a failed stack or mmap growth shows up as SIGSEGV with
                    // nothing on stderr; say that the limit may be the cause.
                    f.message.push_str(&format!(
                        " (a crash like this can mean the {} MiB memory limit is too low)",
                        self.settings.memory_limit >> 20
                    ));
                }
                Err(f)
            }
        }
    }

    /// A file for bb's stdout or stderr in the job directory; the enclave keeps its own
    /// handle and reads back through it.
    fn output_file(&self, dir: &Path, what: &str, stream: &str) -> Result<std::fs::File, Failure> {
        let p = dir.join(format!("{what}.{stream}"));
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
            .map_err(|e| Failure::internal(format!("{}: {e}", p.display())))
    }

    /// Names the configured limit in a memory failure, so the client knows what to change.
    fn explain(&self, mut f: Failure) -> Failure {
        if f.code == "memory_limit" {
            f.message = format!(
                "{} (the prover's memory limit is {} MiB)",
                f.message,
                self.settings.memory_limit >> 20
            );
        }
        f
    }
}

/// Points of CRS an UltraHonk proof of `circuit_size` gates needs: the next power of two,
/// plus one.
pub fn points_needed(circuit_size: u64) -> u64 {
    circuit_size.max(1).next_power_of_two() + 1
}

struct Output {
    proof: Vec<u8>,
    /// None for chonk (its public inputs are inside the proof).
    public_inputs: Option<Vec<u8>>,
    vk: Vec<u8>,
    vk_hash: Option<Vec<u8>>,
    circuit_size: Option<u64>,
}

/// One job's bb runs: which bb, its job directory, and its cancellation flag.
struct Step<'a> {
    bb: &'a BbBinary,
    dir: &'a Path,
    cancel: &'a AtomicBool,
}

struct Failure {
    code: &'static str,
    message: String,
    circuit_size: Option<u64>,
}

impl Failure {
    fn cancelled() -> Failure {
        Failure {
            code: "cancelled",
            message: "cancelled by its client (POST /v1/prove/cancel)".into(),
            circuit_size: None,
        }
    }

    fn internal(message: String) -> Failure {
        Failure {
            code: "prover_failed",
            message,
            circuit_size: None,
        }
    }
}

/// Turns bb's failure into a stable code with its own words.
fn classify(what: &str, how: &str, stderr: &str) -> Failure {
    let lower = stderr.to_ascii_lowercase();
    // With RLIMIT_AS, running out shows as bad_alloc, or as a thread that cannot get its stack.
    let code = if lower.contains("bad_alloc")
        || lower.contains("out of memory")
        || lower.contains("thread constructor failed")
    {
        "memory_limit"
    } else if lower.contains("unsatisf")
        || lower.contains("failed constraint")
        // chonk: a step whose witness does not satisfy its circuit.
        || lower.contains("builder failure")
    {
        "unsatisfied"
    } else if lower.contains("failed to verify the generated proof") {
        // chonk: bb's own check of its proof failed without naming a step; with the pinned
        // CRS the inputs are at fault (a wrong key in the stack, say), but bb does not say.
        "prover_failed"
    } else if lower.contains("downloading bn254 crs") {
        // bb wanted more points than the CRS directory has and tried the network.
        "crs_too_small"
    } else if what == "gates"
        || lower.contains("deserializ")
        || lower.contains("bytecode")
        || lower.contains("parse")
        // chonk: a stack that is not bb's msgpack, cut short, or too short.
        || lower.contains("msgpack")
        || lower.contains("insufficient bytes")
        || lower.contains("number of circuits")
    {
        "bad_circuit"
    } else if lower.contains("crs") || lower.contains("srs") {
        "crs_too_small"
    } else {
        "prover_failed"
    };
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    Failure {
        code,
        message: format!("bb {what} failed ({how}): {last}"),
        circuit_size: None,
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .and_then(|_| hand_over(path))
        .map_err(|e| Failure::internal(format!("{}: {e}", path.display())))
}

/// Gives `path` to the sandbox's user: bb reads its inputs and writes in its job directory
/// as that user, and nothing else of the enclave belongs to it.
fn hand_over(path: &Path) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(sandbox::SANDBOX_UID), Some(sandbox::SANDBOX_GID))
}

/// At most `max` bytes of `r`, or an error naming `what` if there are more.
fn read_limited(r: impl Read, max: u64, what: &str) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "{what} is larger than {max} bytes"
        )));
    }
    Ok(out)
}

/// A file bb wrote at `rel` in its job directory `dir`. Opened without following anything bb
/// could have planted there (a link to another job's witness, a FIFO): see
/// `sigil_sys::fs::open_regular_beneath`.
fn read_output(dir: &Path, rel: &str) -> Result<Vec<u8>, Failure> {
    sigil_sys::fs::open_regular_beneath(dir, Path::new(rel))
        .and_then(|f| read_limited(f, MAX_OUTPUT, rel))
        .map_err(|e| Failure::internal(format!("bb wrote no {rel}: {e}")))
}

/// The last [`STDERR_TAIL`] bytes of bb's stderr, as text (read through the enclave's own
/// handle: bb may have replaced the file's name with anything).
fn tail(mut f: &std::fs::File) -> String {
    use std::io::{Seek, SeekFrom};
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(STDERR_TAIL as u64);
    let mut data = Vec::new();
    let _ = f
        .seek(SeekFrom::Start(start))
        .and_then(|_| f.take(STDERR_TAIL as u64).read_to_end(&mut data));
    String::from_utf8_lossy(&data).into_owned()
}

/// Records how a job ended.
fn end_job(inner: &mut Inner, id: Id, failed: bool, sealed: Result<Vec<u8>, String>) {
    if let Some(job) = inner.jobs.get_mut(&id) {
        job.ended = Some(Instant::now());
        job.cancel_token = None;
        match sealed {
            Ok(s) => {
                job.state = if failed { State::Failed } else { State::Done };
                job.sealed = Some(s);
            }
            Err(e) => {
                log::warn(format_args!("sealing the result of {id}: {e}"));
                job.state = State::Failed;
            }
        }
    }
}

/// Records that a job ended cancelled: no result, its input and token dropped.
fn end_cancelled(inner: &mut Inner, id: Id) {
    if let Some(job) = inner.jobs.get_mut(&id) {
        job.state = State::Cancelled;
        job.ended = Some(Instant::now());
        job.input = None;
        job.sealed = None;
        job.cancel_token = None;
    }
}

/// Takes `id` (a queued job) out of the queue, freeing its place, and ends it cancelled (bb
/// never ran; its inputs and key are wiped as they drop).
fn end_cancelled_queued(inner: &mut Inner, id: Id) {
    inner.queue.retain(|q| *q != id);
    end_cancelled(inner, id);
    remember_finished(inner, id);
}

/// The next job a worker takes, and the failed check that refuses it (bb does not run): none
/// while the check runs, whatever is queued.
fn next_runnable(inner: &mut Inner) -> Option<(Id, Option<String>)> {
    let refused = match &inner.checked {
        Checked::Running => return None,
        Checked::Passed => None,
        Checked::Failed(e) => Some(e.clone()),
    };
    next_fair(inner).map(|id| (id, refused))
}

/// A submission to a prover whose check failed is refused, with the reason.
fn refuse_if_failed(inner: &Inner) -> Result<(), SubmitError> {
    match &inner.checked {
        Checked::Failed(e) => Err(SubmitError::Unavailable(e.clone())),
        _ => Ok(()),
    }
}

/// Takes one of the long-polls' places for `source`, if one is free (see [`MAX_WAITERS`]).
fn take_waiting_place(inner: &mut Inner, source: Source) -> bool {
    let total: usize = inner.waiting.values().sum();
    let mine = inner.waiting.get(&source).copied().unwrap_or(0);
    if total >= MAX_WAITERS || mine >= MAX_WAITERS_PER_SOURCE {
        return false;
    }
    *inner.waiting.entry(source).or_insert(0) += 1;
    true
}

/// Gives back a place [`take_waiting_place`] took.
fn give_back_waiting_place(inner: &mut Inner, source: Source) {
    if let Some(n) = inner.waiting.get_mut(&source) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            inner.waiting.remove(&source);
        }
    }
}

/// The job's status as anyone who knows its id sees it.
fn status_of(inner: &Inner, id: &Id) -> Option<JobStatus> {
    let job = inner.jobs.get(id)?;
    // While it runs only: how long a job took is the client's business (see JobStatus).
    let elapsed = match (job.started, job.ended) {
        (Some(s), None) => Some(s.elapsed().as_millis() as u64),
        _ => None,
    };
    Some(JobStatus {
        id: *id,
        state: progress(job.state),
        queue_position: inner.queue.iter().position(|q| q == id).map(|p| p as u32),
        elapsed_ms: elapsed,
        sealed: job.sealed.clone().map(Base64Bytes),
    })
}

fn progress(state: State) -> JobProgress {
    match state {
        State::Queued => JobProgress::Queued,
        State::Running => JobProgress::Running,
        State::Done | State::Failed => JobProgress::Ended,
        State::Cancelled => JobProgress::Cancelled,
    }
}

/// The answer to a cancellation of `id` (its token checked), from the job as it is now.
fn answer_of(inner: &Inner, id: &Id) -> CancelAnswer {
    let (state, cancelled) = match inner.jobs.get(id) {
        Some(job) => (
            progress(job.state),
            match job.state {
                State::Cancelled => true,
                // Being stopped: the worker ends it cancelled.
                State::Running => job.cancel.load(Ordering::Acquire),
                State::Queued | State::Done | State::Failed => false,
            },
        ),
        // A running job that ended and was forgotten while the cancellation waited (every
        // finished place taken in between): how it ended is not known here any more.
        None => (JobProgress::Ended, false),
    };
    CancelAnswer {
        id: *id,
        state,
        cancelled,
    }
}

/// How many jobs each source has waiting.
fn queued_by_source(inner: &Inner) -> HashMap<Source, usize> {
    let mut n = HashMap::new();
    for id in &inner.queue {
        if let Some(j) = inner.jobs.get(id) {
            *n.entry(j.source).or_insert(0) += 1;
        }
    }
    n
}

/// With the queue full: the newest queued job of a source holding the most (of the newest
/// such job, if several hold as many), if `source` holds at least two fewer (so the two do
/// not trade places back and forth).
fn displaceable(inner: &Inner, source: Source) -> Option<Id> {
    let n = queued_by_source(inner);
    let most = n.values().copied().max()?;
    let mine = n.get(&source).copied().unwrap_or(0);
    if mine + 2 > most {
        return None;
    }
    inner
        .queue
        .iter()
        .rev()
        .find(|id| {
            inner
                .jobs
                .get(id)
                .is_some_and(|j| n.get(&j.source) == Some(&most))
        })
        .copied()
}

/// Takes the next job to run: the oldest of the source served least recently (never served
/// first), so sources take turns whatever their backlog.
fn next_fair(inner: &mut Inner) -> Option<Id> {
    let waiting = queued_by_source(inner);
    inner.served.retain(|s, _| waiting.contains_key(s));
    let pos = inner
        .queue
        .iter()
        .enumerate()
        .min_by_key(|(i, id)| {
            let last = inner
                .jobs
                .get(id)
                .and_then(|j| inner.served.get(&j.source).copied());
            (last, *i)
        })
        .map(|(i, _)| i)?;
    let id = inner.queue.remove(pos)?;
    inner.dispatches += 1;
    if let Some(j) = inner.jobs.get(&id) {
        inner.served.insert(j.source, inner.dispatches);
    }
    Some(id)
}

/// The number of jobs `source` has queued or running, if that is its whole share already.
/// Finished jobs do not count (their results are bounded apart: [`MAX_FINISHED_BYTES`]).
fn over_share(inner: &Inner, source: Source) -> Option<usize> {
    let held = inner
        .jobs
        .values()
        .filter(|j| j.source == source && matches!(j.state, State::Queued | State::Running))
        .count();
    (held >= MAX_JOBS_PER_SOURCE).then_some(held)
}

/// Keeps `id` among the finished jobs. Past [`MAX_FINISHED`] jobs, or [`MAX_FINISHED_BYTES`]
/// of sealed results, finished jobs are forgotten (with their results) to make room: the
/// oldest of the source holding the most (jobs, or bytes), never `id` itself.
///
/// Threat: a client submitting many jobs and never fetching (or cancelling them), to push
/// other clients' unfetched results out. It loses its own oldest first; a cancelled job has
/// no result, so it weighs nothing against the byte budget.
fn remember_finished(inner: &mut Inner, id: Id) {
    inner.finished.push_back(id);
    while inner.finished.len() > MAX_FINISHED && forget_one(inner, id, |_| 1) {}
    while finished_bytes(inner) > MAX_FINISHED_BYTES
        && forget_one(inner, id, |j| j.sealed.as_ref().map_or(0, Vec::len))
    {}
}

/// Forgets one finished job other than `keep`, of weight above zero: the oldest of the source
/// whose finished jobs weigh the most. False if there is none.
fn forget_one(inner: &mut Inner, keep: Id, weight: impl Fn(&Job) -> usize) -> bool {
    let mut held: HashMap<Source, usize> = HashMap::new();
    for j in inner.finished.iter().filter_map(|id| inner.jobs.get(id)) {
        *held.entry(j.source).or_insert(0) += weight(j);
    }
    let victim = inner
        .finished
        .iter()
        .enumerate()
        .filter(|(_, id)| **id != keep)
        .filter_map(|(i, id)| match inner.jobs.get(id) {
            // A finished id without its job (never so): forgotten first.
            None => Some((usize::MAX, Reverse(i))),
            Some(j) if weight(j) > 0 => {
                Some((held.get(&j.source).copied().unwrap_or(0), Reverse(i)))
            }
            Some(_) => None,
        })
        .max()
        .map(|(_, Reverse(i))| i);
    let Some(i) = victim else {
        return false;
    };
    if let Some(old) = inner.finished.remove(i) {
        inner.jobs.remove(&old);
    }
    true
}

fn finished_bytes(inner: &Inner) -> usize {
    inner
        .finished
        .iter()
        .filter_map(|id| inner.jobs.get(id)?.sealed.as_ref())
        .map(Vec::len)
        .sum()
}

fn expire(inner: &mut Inner) {
    while inner.finished.front().is_some_and(|id| {
        inner
            .jobs
            .get(id)
            .and_then(|j| j.ended)
            .is_none_or(|e| e.elapsed() > RESULT_TTL)
    }) {
        if let Some(id) = inner.finished.pop_front() {
            inner.jobs.remove(&id);
        }
    }
}

pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut,
    /// Killed because its job was cancelled.
    Cancelled,
}

/// Runs bb's `cmd` in the sandbox, in `dir` (its job directory, the only writable place),
/// with `read_only` shown, the address-space limit and the time limit; killed early when
/// `cancel` is set.
pub(crate) fn run_sandboxed(
    settings: &Settings,
    cmd: &mut Command,
    dir: &Path,
    read_only: &[&Path],
    (stdout, stderr): (&std::fs::File, &std::fs::File),
    cancel: Option<&AtomicBool>,
) -> std::io::Result<Exit> {
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout.try_clone()?)
        .stderr(stderr.try_clone()?)
        .env_clear()
        .env("HOME", dir);
    // Threat: a compromised bb filling the enclave's memory-backed file system through its
    // job directory or its output files; each file it writes is bounded (its real outputs
    // are at most MAX_OUTPUT).
    process::set_rlimits_before_exec(
        cmd,
        &[
            Rlimit::AddressSpace(settings.memory_limit),
            Rlimit::FileSize(MAX_BB_FILE),
        ],
    );
    let root = sandbox_root(&settings.work_dir);
    settings
        .sandbox
        .apply(
            cmd,
            &sandbox::Spec {
                root: &root,
                writable: dir,
                read_only,
            },
        )
        .map_err(std::io::Error::other)?;
    run_with_limit(cmd, settings.time_limit, cancel)
}

/// The empty directory the sandbox's root is mounted on (in each run's own mount namespace),
/// beside the job directories so that it is never taken for a job's.
pub(crate) fn sandbox_root(work_dir: &Path) -> PathBuf {
    let name = format!(
        "{}.sandbox-root",
        work_dir.file_name().unwrap_or_default().to_string_lossy()
    );
    work_dir.with_file_name(name)
}

/// How often a running bb's cancellation flag is looked at.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// Runs `cmd` to completion or kills it at `limit`, or as soon as `cancel` is set (the same
/// kill). As PID 1 the reaper owns `waitpid`, so the child is registered with it; as an
/// ordinary process the child is polled.
pub(crate) fn run_with_limit(
    cmd: &mut Command,
    limit: Duration,
    cancel: Option<&AtomicBool>,
) -> std::io::Result<Exit> {
    let decode = |status| match process::Exit::from_wait_status(status) {
        process::Exit::Code(c) => Exit::Code(c),
        process::Exit::Signal(s) => Exit::Signal(s),
    };
    let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Acquire));
    let end = Instant::now() + limit;
    if crate::init::reaper::running() {
        let pid = crate::init::reaper::spawn(cmd)?;
        let stopped = loop {
            let left = end.saturating_duration_since(Instant::now());
            if let Some(status) = crate::init::reaper::wait(pid, left.min(CANCEL_POLL)) {
                return Ok(decode(status));
            }
            if cancelled() {
                break Exit::Cancelled;
            }
            if Instant::now() >= end {
                break Exit::TimedOut;
            }
        };
        // The reaper may reap the child between the wait above and the kill: the signal is
        // sent under its table's lock, and only while the pid is still registered and
        // unreaped, so a reused pid is never signalled (`reaper::kill`).
        crate::init::reaper::kill(pid, signals::SIGKILL);
        if crate::init::reaper::wait(pid, Duration::from_secs(5)).is_none() {
            // Not reaped in time: its status is not waited for any more, so it must not stay
            // in the reaper's table.
            crate::init::reaper::forget(pid);
        }
        return Ok(stopped);
    }
    let mut child = cmd.spawn()?;
    let started = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            use std::os::unix::process::ExitStatusExt;
            return Ok(match (st.code(), st.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                (None, None) => Exit::Code(-1),
            });
        }
        let stopped = if cancelled() {
            Some(Exit::Cancelled)
        } else if Instant::now() >= end {
            Some(Exit::TimedOut)
        } else {
            None
        };
        if let Some(stopped) = stopped {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(stopped);
        }
        // Polled (this thread owns the child, so it is never reaped behind a kill's back),
        // often while it is young: most of bb's steps take milliseconds, and a fixed 10 ms
        // would add about 5 ms to each of a job's three. Longer runs back off to 10 ms.
        std::thread::sleep((started.elapsed() / 32).clamp(LOCAL_POLL_MIN, LOCAL_POLL_MAX));
    }
}

/// The pauses between looks at a child in local mode (see [`run_with_limit`]).
const LOCAL_POLL_MIN: Duration = Duration::from_millis(1);
const LOCAL_POLL_MAX: Duration = Duration::from_millis(10);

/// The result's JSON padded with whitespace (still the same JSON) to a multiple of
/// `unit` ([`RESULT_PAD`], or [`RESULT_PAD_CHONK`] for chonk), and to at least one unit: the
/// sealed length then says nothing about done or failed (a success larger than the unit,
/// which no usual circuit makes, still shows in the length).
fn pad_result(json: Zeroizing<Vec<u8>>, unit: usize) -> Zeroizing<Vec<u8>> {
    let len = json.len().next_multiple_of(unit).max(unit);
    let mut padded = Zeroizing::new(Vec::with_capacity(len));
    padded.extend_from_slice(&json);
    padded.resize(len, b' ');
    padded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_client_text_is_bounded() {
        assert_eq!(quoted("9.9.9"), "\"9.9.9\"");
        let long = "x".repeat(10 << 20);
        let q = quoted(&long);
        assert_eq!(q, format!("\"{}\"...", "x".repeat(MAX_QUOTED)));
        // Cut on a character boundary, never inside one.
        let wide = "é".repeat(MAX_QUOTED);
        assert_eq!(
            quoted(&wide),
            format!("\"{}\"...", "é".repeat(MAX_QUOTED / 2))
        );
        let exact = "y".repeat(MAX_QUOTED);
        assert_eq!(quoted(&exact), format!("{exact:?}"));
    }

    /// A job with no input, `sealed` its result (ended when it has one).
    fn test_job(state: State, source: Source, sealed: Option<Vec<u8>>) -> Job {
        Job {
            state,
            source,
            input: None,
            inputs_sha256: Hex([0; 32]),
            submitted: Instant::now(),
            started: None,
            ended: sealed.as_ref().map(|_| Instant::now()),
            sealed,
            cancel_token: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    #[test]
    fn a_cancelled_run_is_killed_at_once() {
        let flag = Arc::new(AtomicBool::new(false));
        let setter = flag.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            setter.store(true, Ordering::Release);
        });
        let start = Instant::now();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let exit = run_with_limit(&mut cmd, Duration::from_secs(30), Some(&flag)).unwrap();
        t.join().unwrap();
        assert!(matches!(exit, Exit::Cancelled));
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn long_polls_take_bounded_places_per_source_and_in_all() {
        let mut inner = Inner::default();
        let source = |i: u8| Source::Addr(std::net::IpAddr::from([10, 0, 0, i]));
        // One source: its share, then no more.
        for _ in 0..MAX_WAITERS_PER_SOURCE {
            assert!(take_waiting_place(&mut inner, source(0)));
        }
        assert!(!take_waiting_place(&mut inner, source(0)));
        // Others fill the rest, then everyone is answered at once.
        let mut i = 1;
        while inner.waiting.values().sum::<usize>() < MAX_WAITERS {
            assert!(take_waiting_place(&mut inner, source(i)));
            i += 1;
        }
        assert!(!take_waiting_place(&mut inner, source(200)));
        // A place given back is free again, and an emptied source leaves no entry behind.
        give_back_waiting_place(&mut inner, source(1));
        assert!(!inner.waiting.contains_key(&source(1)));
        assert!(take_waiting_place(&mut inner, source(200)));
        give_back_waiting_place(&mut inner, source(0));
        assert_eq!(inner.waiting[&source(0)], MAX_WAITERS_PER_SOURCE - 1);
        // Giving back what was never taken changes nothing.
        give_back_waiting_place(&mut inner, source(99));
        assert!(!inner.waiting.contains_key(&source(99)));
    }

    #[test]
    fn the_oldest_finished_job_is_forgotten_when_the_ring_is_full() {
        let mut inner = Inner::default();
        let id = |i: usize| Hex((i as u128).to_be_bytes());
        for i in 0..MAX_FINISHED + 3 {
            inner
                .jobs
                .insert(id(i), test_job(State::Done, Source::Unknown, Some(vec![1])));
            remember_finished(&mut inner, id(i));
            expire(&mut inner);
        }
        assert_eq!(inner.finished.len(), MAX_FINISHED);
        assert_eq!(inner.jobs.len(), MAX_FINISHED);
        assert_eq!(inner.finished.front(), Some(&id(3)));
        assert!(!inner.jobs.contains_key(&id(2)) && inner.jobs.contains_key(&id(3)));
    }

    #[test]
    fn finished_results_are_bounded_in_bytes_too() {
        let mut inner = Inner::default();
        let id = |i: usize| Hex((i as u128).to_be_bytes());
        let size = MAX_FINISHED_BYTES / 4 + 1;
        for i in 0..10 {
            inner.jobs.insert(
                id(i),
                test_job(State::Done, Source::Unknown, Some(vec![0; size])),
            );
            remember_finished(&mut inner, id(i));
            assert!(finished_bytes(&inner) <= MAX_FINISHED_BYTES);
        }
        // Three results fit, the newest three.
        assert_eq!(inner.finished.len(), 3);
        assert_eq!(inner.jobs.len(), 3);
        assert_eq!(inner.finished.front(), Some(&id(7)));
    }

    #[test]
    fn cancelled_jobs_keep_no_result_and_push_out_only_their_own_source() {
        let mut inner = Inner::default();
        let (a, b) = (
            Source::Addr("127.0.0.2".parse().unwrap()),
            Source::Addr("127.0.0.3".parse().unwrap()),
        );
        let id = |i: usize| Hex((i as u128).to_be_bytes());
        // `b` has three large results waiting to be fetched.
        for i in 0..3 {
            inner.jobs.insert(
                id(i),
                test_job(State::Done, b, Some(vec![0; MAX_FINISHED_BYTES / 4])),
            );
            remember_finished(&mut inner, id(i));
        }
        // `a` submits and cancels, many times over.
        for i in 100..100 + 2 * MAX_FINISHED {
            let mut job = test_job(State::Queued, a, None);
            job.cancel_token = Some(Zeroizing::new([1; 32]));
            inner.jobs.insert(id(i), job);
            inner.queue.push_back(id(i));
            end_cancelled_queued(&mut inner, id(i));
            let j = &inner.jobs[&id(i)];
            assert_eq!(j.state, State::Cancelled);
            assert!(j.sealed.is_none() && j.cancel_token.is_none());
            assert!(inner.queue.is_empty());
            assert!(inner.finished.len() <= MAX_FINISHED);
        }
        assert_eq!(finished_bytes(&inner), 3 * (MAX_FINISHED_BYTES / 4));
        for i in 0..3 {
            assert!(
                inner.jobs.contains_key(&id(i)),
                "b's result {i} was pushed out"
            );
        }
        assert_eq!(progress(State::Cancelled), JobProgress::Cancelled);
        let st = status_of(&inner, &id(100 + 2 * MAX_FINISHED - 1)).unwrap();
        assert_eq!(st.state, JobProgress::Cancelled);
        assert!(st.sealed.is_none());
    }

    #[test]
    fn the_source_holding_the_most_bytes_loses_its_oldest_result_first() {
        let mut inner = Inner::default();
        let (a, b) = (
            Source::Addr("127.0.0.2".parse().unwrap()),
            Source::Addr("127.0.0.3".parse().unwrap()),
        );
        let id = |i: usize| Hex((i as u128).to_be_bytes());
        let size = MAX_FINISHED_BYTES / 4;
        let mut add = |i, source| {
            inner
                .jobs
                .insert(id(i), test_job(State::Done, source, Some(vec![0; size])));
            remember_finished(&mut inner, id(i));
        };
        // b's result is the oldest, a holds three after it; a fifth goes over the budget.
        add(0, b);
        add(1, a);
        add(2, a);
        add(3, a);
        add(4, b);
        assert!(inner.jobs.contains_key(&id(0)), "b's oldest was taken");
        assert!(!inner.jobs.contains_key(&id(1)), "a's oldest stays");
        assert_eq!(inner.finished.len(), 4);
    }

    #[test]
    fn each_source_gets_its_share_of_queued_and_running_jobs() {
        let mut inner = Inner::default();
        let a = Source::Addr("127.0.0.2".parse().unwrap());
        let b = Source::Addr("127.0.0.3".parse().unwrap());
        let add = |inner: &mut Inner, i: u128, source, state| {
            inner
                .jobs
                .insert(Hex(i.to_be_bytes()), test_job(state, source, None));
        };
        // Finished jobs and other sources' jobs do not count against `a`.
        add(&mut inner, 0, a, State::Done);
        add(&mut inner, 1, a, State::Failed);
        for i in 2..12 {
            add(&mut inner, i, b, State::Queued);
            add(&mut inner, 100 + i, Source::Unknown, State::Queued);
        }
        add(&mut inner, 20, a, State::Running);
        for i in 21..(20 + MAX_JOBS_PER_SOURCE as u128 - 1) {
            add(&mut inner, i, a, State::Queued);
        }
        assert_eq!(over_share(&inner, a), None, "one place left");
        add(&mut inner, 99, a, State::Queued);
        assert_eq!(over_share(&inner, a), Some(MAX_JOBS_PER_SOURCE));
        assert_eq!(over_share(&inner, b), Some(10));
        assert_eq!(
            over_share(&inner, Source::Addr("127.0.0.4".parse().unwrap())),
            None
        );
        // Unknown sources (direct connections) share one.
        assert_eq!(over_share(&inner, Source::Unknown), Some(10));
    }

    fn queued_inner(jobs: &[(u128, Source)]) -> Inner {
        let mut inner = Inner::default();
        for &(i, source) in jobs {
            inner
                .jobs
                .insert(Hex(i.to_be_bytes()), test_job(State::Queued, source, None));
            inner.queue.push_back(Hex(i.to_be_bytes()));
        }
        inner
    }

    #[test]
    fn workers_take_jobs_source_by_source() {
        let (a, b, c) = (
            Source::Addr("127.0.0.2".parse().unwrap()),
            Source::Addr("127.0.0.3".parse().unwrap()),
            Source::Unknown,
        );
        // `a` queued a backlog first; `b` and `c` one job each after it.
        let mut inner = queued_inner(&[(1, a), (2, a), (3, a), (4, b), (5, a), (6, c)]);
        let order: Vec<u128> = std::iter::from_fn(|| next_fair(&mut inner))
            .map(|id| u128::from_be_bytes(id.0))
            .collect();
        assert_eq!(order, vec![1, 4, 6, 2, 3, 5]);
    }

    /// The pinned start's invariant: while the bb check runs no queued job is taken; after a
    /// failed one every job is taken only to be refused (bb never runs) and submissions are
    /// refused with the reason; after a passed one jobs run.
    #[test]
    fn no_job_runs_before_the_bb_check_passes() {
        let a = Source::Unknown;
        let mut inner = queued_inner(&[(1, a), (2, a)]);
        inner.checked = Checked::Running;
        assert_eq!(next_runnable(&mut inner), None);
        assert_eq!(inner.queue.len(), 2, "nothing left the queue");
        assert!(
            refuse_if_failed(&inner).is_ok(),
            "submissions queue meanwhile"
        );

        inner.checked = Checked::Failed("bb --version prints x, not the pinned y".into());
        let (id, refused) = next_runnable(&mut inner).unwrap();
        assert_eq!(u128::from_be_bytes(id.0), 1);
        assert_eq!(
            refused.as_deref(),
            Some("bb --version prints x, not the pinned y")
        );
        match refuse_if_failed(&inner) {
            Err(SubmitError::Unavailable(m)) => assert!(m.contains("not the pinned y"), "{m}"),
            other => panic!("{other:?}"),
        }

        inner.checked = Checked::Passed;
        let (id, refused) = next_runnable(&mut inner).unwrap();
        assert_eq!((u128::from_be_bytes(id.0), refused), (2, None));
        assert!(refuse_if_failed(&inner).is_ok());
    }

    #[test]
    fn a_full_queue_admits_a_smaller_holder_by_displacing_the_biggest() {
        let (a, b, c, d) = (
            Source::Addr("127.0.0.2".parse().unwrap()),
            Source::Addr("127.0.0.3".parse().unwrap()),
            Source::Addr("127.0.0.4".parse().unwrap()),
            Source::Addr("127.0.0.5".parse().unwrap()),
        );
        // Three addresses of one client fill a queue of 8: 3 + 4 + 1.
        let inner = queued_inner(&[
            (1, a),
            (2, a),
            (3, a),
            (4, b),
            (5, b),
            (6, b),
            (7, b),
            (8, c),
        ]);
        // A newcomer displaces the biggest holder's newest job...
        assert_eq!(displaceable(&inner, d), Some(Hex(7u128.to_be_bytes())));
        // (of the newest such job when holders tie)
        let tied = queued_inner(&[(1, a), (2, a), (3, b), (4, b), (5, a), (6, b), (7, c)]);
        assert_eq!(displaceable(&tied, d), Some(Hex(6u128.to_be_bytes())));
        // ...and so does `c` (1 queued against 4), but not `a` (3 against 4: they would
        // trade places back and forth) nor `b` itself.
        assert_eq!(displaceable(&inner, c), Some(Hex(7u128.to_be_bytes())));
        assert_eq!(displaceable(&inner, a), None);
        assert_eq!(displaceable(&inner, b), None);
    }

    #[test]
    fn points_for_circuit_sizes() {
        assert_eq!(points_needed(0), 2);
        assert_eq!(points_needed(1000), 1025);
        assert_eq!(points_needed(1024), 1025);
        assert_eq!(points_needed(32_768), 32_769);
        assert_eq!(points_needed(32_769), 65_537);
    }

    #[test]
    fn failures_get_stable_codes() {
        assert_eq!(
            classify("prove", "x", "std::bad_alloc").code,
            "memory_limit"
        );
        assert_eq!(
            classify("prove", "x", "Error: Failed constraint at gate 3").code,
            "unsatisfied"
        );
        assert_eq!(
            classify(
                "prove",
                "exit code 1",
                "thread constructor failed: Resource temporarily unavailable"
            )
            .code,
            "memory_limit"
        );
        assert_eq!(classify("gates", "x", "something").code, "bad_circuit");
        // chonk's words for the same failures.
        for (stderr, code) in [
            (
                "WARNING: Builder failure when we have real witnesses!\nFailed to verify",
                "unsatisfied",
            ),
            (
                "downloading bn254 crs...\nHTTP request failed for http://crs",
                "crs_too_small",
            ),
            (
                "uncaught exception of type msgpack::v1::type_error",
                "bad_circuit",
            ),
            ("insufficient bytes", "bad_circuit"),
            (
                "Reason : Number of circuits must be at least 4",
                "bad_circuit",
            ),
        ] {
            assert_eq!(classify("prove", "x", stderr).code, code, "{stderr}");
        }
        assert_eq!(classify("prove", "x", "who knows").code, "prover_failed");
        assert!(
            classify("prove", "exit code 1", "a\nlast words\n\n")
                .message
                .ends_with("last words")
        );
    }
}
