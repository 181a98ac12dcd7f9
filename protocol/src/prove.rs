//! Delegated proving: the client sends its circuit and witness encrypted to the attested
//! enclave, and gets back a proof only it can read.
//!
//! - `POST /v1/prove` (encapsulated [`ProveRequest`]) queues a job and answers (sealed) with
//!   a [`Submitted`]: the job id, and how many CRS points the circuit needs.
//! - `GET /v1/prove/{id}` answers a [`JobStatus`] in the clear (queued, running or ended,
//!   queue position, time running: nothing about the inputs or the outcome); with
//!   `?wait=SECONDS` (a long-poll, see [`JobRef::wait`]) only once the job has ended or the
//!   seconds have passed, so a client learns of the end at once instead of at its next poll.
//!   Once the job has ended, `sealed` carries the [`JobResult`] (done or failed; proof,
//!   public inputs, verification key, timings, or the failure), padded to [`RESULT_PAD`]
//!   (chonk: [`RESULT_PAD_CHONK`]), under AES-256-GCM with the client's `result_key`, which
//!   only the client and the enclave know: the parent can neither read the result nor forge
//!   one.
//!
//! - `POST /v1/prove/cancel` (encapsulated [`CancelRequest`]) ends a queued or running job:
//!   its status becomes `cancelled`, with no sealed result (the client that cancelled it
//!   knows the outcome). Answered with a [`CancelAnswer`] (no result in it: a chonk result
//!   would not fit an encapsulated response). The request carries the job's
//!   [`cancel_token`], derived from its `result_key`.
//!
//! The job id is 16 random bytes; a proxy that times out loses nothing, the client polls.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::wire::{
    Base64Bytes, Hex, Hex32, HexBytes, Id, Open, SecretBase64, SecretHex, wire_enum,
};

/// Status path prefix: `/v1/prove/<32 hex>` (the endpoint is
/// [`crate::endpoint::ProveStatus`]).
pub const PATH_PROVE_STATUS_PREFIX: &str = "/v1/prove/";

/// Largest proving input of one job, in bytes: real Aztec chonk stacks are tens of MB.
pub const MAX_PROVE_INPUT: usize = 64 << 20;
/// Largest circuit (bytecode JSON or gzip) accepted, in bytes.
pub const MAX_CIRCUIT: usize = MAX_PROVE_INPUT / 2;
/// Largest gzipped witness accepted, in bytes.
pub const MAX_WITNESS: usize = MAX_PROVE_INPUT / 2;
/// Largest chonk input stack (bb's `ivc-inputs.msgpack`) accepted, in bytes: the same budget
/// as an UltraHonk circuit and witness together.
pub const MAX_IVC_INPUTS: usize = MAX_CIRCUIT + MAX_WITNESS;
/// AAD prefix of the sealed result: the job id follows.
pub const RESULT_AAD: &str = "sigil prove result v1 ";
/// Prefix hashed before the `result_key` into a job's [`cancel_token`].
pub const CANCEL_TOKEN_PREFIX: &str = "sigil prove cancel v1";

wire_enum! {
    /// The proof system.
    pub enum Scheme ("scheme") {
        /// One circuit and its witness.
        UltraHonk = "ultra_honk",
        /// Aztec's client IVC: a stack of circuits folded into one proof.
        Chonk = "chonk",
    }
}

wire_enum! {
    /// bb's verifier target (`--verifier_target`).
    pub enum Target ("verifier target") {
        /// UltraHonk: `noir-recursive`; chonk: its one verifier.
        Default = "default",
        Evm = "evm",
        EvmNoZk = "evm-no-zk",
        NoirRecursive = "noir-recursive",
        NoirRecursiveNoZk = "noir-recursive-no-zk",
    }
}

wire_enum! {
    /// Where a job is, as anyone who knows its id sees it (the status is in the clear):
    /// nothing about how it ended.
    pub enum JobProgress ("job progress") {
        Queued = "queued",
        Running = "running",
        /// Done or failed: which, and why, only the sealed result says.
        Ended = "ended",
        /// Cancelled by its client (`POST /v1/prove/cancel`): no sealed result. Said in the
        /// clear because the parent relays the cancel request and so knows it anyway; a job
        /// that ends any other way is `ended`, whatever its outcome.
        Cancelled = "cancelled",
    }
}

/// The sealed result's plaintext is padded with JSON whitespace to at least this many bytes
/// (and to a multiple of it), so its length does not tell a proof from a failure: an UltraHonk
/// result (proof, verification key, public inputs, in base64) fits several times over.
pub const RESULT_PAD: usize = 128 * 1024;
/// The same for chonk results, whose proofs are larger.
pub const RESULT_PAD_CHONK: usize = 1 << 20;

wire_enum! {
    /// How a proving job ended (inside its sealed result).
    pub enum JobState ("job state") {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Failed = "failed",
    }
}

/// What the client asks for. The inputs and the key are secrets: wiped when dropped, never
/// printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProveRequest {
    /// `ultra_honk` (one circuit and its witness) or `chonk` (Aztec's client IVC: a stack of
    /// circuits folded into one proof, given as `ivc_inputs`). Kept as given when unknown, so
    /// the enclave refuses it with `bad_scheme`.
    pub scheme: Open<Scheme>,
    /// ultra_honk: the compiled circuit: Noir's program JSON, or its gzipped bytecode; base64.
    #[serde(default)]
    pub circuit: SecretBase64,
    /// ultra_honk: the gzipped witness (`nargo execute` / noir_js output); base64.
    #[serde(default)]
    pub witness: SecretBase64,
    /// chonk: bb's input stack (`--ivc_inputs_path`), base64: a msgpack array of
    /// `{bytecode, witness, vk, functionName}` maps in folding order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ivc_inputs: Option<SecretBase64>,
    /// The verifier target: `evm`, `noir-recursive` or `default` (chonk: only `default`).
    /// Kept as given when unknown, so the enclave refuses it with `bad_target`.
    #[serde(default = "default_target")]
    pub target: Open<Target>,
    /// Which bb version proves it, by the name the attestation's `user_data` lists under
    /// `bbs` (e.g. "4.1.2", "5.0.0"); absent: the image's default version (older clients).
    /// A version the image does not serve is refused with `unknown_bb_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bb_version: Option<String>,
    /// 32 random bytes (base64) the result is sealed under; never reuse one.
    pub result_key: SecretBase64,
}

/// Longest `bb_version` name accepted (the user_data's string bound).
pub const MAX_BB_VERSION_NAME: usize = 64;

fn default_target() -> Open<Target> {
    Open::Known(Target::Default)
}

/// The sealed answer to a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub id: Id,
    /// Jobs ahead of this one.
    pub queue_position: u32,
    /// [`inputs_sha256`] (or [`chonk_inputs_sha256`]) of the inputs as received: the result
    /// repeats it, so the client knows the proof is for its own inputs.
    pub inputs_sha256: Hex32,
}

/// What `GET /v1/prove/{id}[?wait=SECONDS]` asks for: the job id travels in the path, the
/// long-poll in the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    pub id: Id,
    /// Long-poll: the enclave answers when the job has ended (`ended` or `cancelled`) or when
    /// this many seconds have passed, whichever comes first; absent or 0, at once. At most
    /// [`MAX_STATUS_WAIT_SECS`] (more is refused with `bad_query`). The answer is the same
    /// [`JobStatus`] either way; an enclave short of waiting places answers at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u32>,
}

/// Longest long-poll of `GET /v1/prove/{id}?wait=SECONDS`. Below the enclave's default
/// whole-request deadline (30 s, `Limits::request_timeout`), leaving 10 s to send a result,
/// below the client library's 30 s request timeout, and far below the shim's default idle
/// timeout (300 s), so neither cuts a long-poll.
pub const MAX_STATUS_WAIT_SECS: u32 = 20;

/// `GET /v1/prove/{id}`. Threat: the parent reads every status (it relays them in the
/// clear); it must not learn whether a witness satisfied its circuit, nor how long bb took.
/// The outcome and the timings are only in `sealed`; what remains visible is when the job
/// ended (anyone polling sees the change), and nothing is logged about the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: Id,
    pub state: JobProgress,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u32>,
    /// Milliseconds since the job started running, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    /// nonce (12) || AES-256-GCM ciphertext of the [`JobResult`] JSON, with AAD
    /// [`RESULT_AAD`] followed by the id; present once the job has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Base64Bytes>,
}

/// `POST /v1/prove/cancel`: ends the job `id` (queued: taken out of the queue; running: its
/// bb stopped); its status becomes `cancelled`. Answered with a [`CancelAnswer`].
///
/// Threat: the parent sees every job id (they travel in the clear in status paths) and could
/// cancel every client's jobs if the id were enough. `token` is [`cancel_token`] of the job's
/// `result_key`, which only the submitter and the enclave know; an unknown id and a wrong
/// token get the same answer (`unknown_job`), so the refusal does not tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub id: Id,
    /// [`cancel_token`] of the job's `result_key`, hex; wiped on drop (it is the job's
    /// capability).
    pub token: SecretHex<32>,
}

/// The answer to `POST /v1/prove/cancel`. It never carries the result: a chonk result is
/// padded to a MiB and would not fit an encapsulated response; the client fetches a result
/// (a job that ended before the cancel took effect) with `GET /v1/prove/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelAnswer {
    pub id: Id,
    /// The job's progress now: `cancelled`; `running` while its bb is still being stopped
    /// (it becomes `cancelled`); `ended` if it finished before the cancel took effect (its
    /// result is unchanged, in its status).
    pub state: JobProgress,
    /// Whether the job is cancelled (`state` is or will become `cancelled`): false only when
    /// it ended first, so an `ended` job is not taken for a cancelled one.
    pub cancelled: bool,
}

/// The capability to cancel a job: `SHA-256("sigil prove cancel v1" || result_key)`. It
/// reveals nothing about the key (a one-way hash under its own prefix), so sending it does not
/// weaken the seal of the result; only who holds the key can compute it.
///
/// The key is hashed from a buffer wiped on drop, by a hasher that wipes its state on drop
/// (sha2's `zeroize` feature), and the token is returned wiped on drop too.
pub fn cancel_token(result_key: &[u8; 32]) -> SecretHex<32> {
    const P: usize = CANCEL_TOKEN_PREFIX.len();
    let mut message = Zeroizing::new([0u8; P + 32]);
    message[..P].copy_from_slice(CANCEL_TOKEN_PREFIX.as_bytes());
    message[P..].copy_from_slice(result_key);
    let mut h = Sha256::new();
    h.update(&message[..]);
    let mut token = Zeroizing::new([0u8; 32]);
    h.finalize_into((&mut *token).into());
    SecretHex::new(token)
}

/// What the sealed result holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub id: Id,
    /// Same as [`Submitted::inputs_sha256`].
    pub inputs_sha256: Hex32,
    /// `done` or `failed`.
    pub state: JobState,
    /// When failed: a stable code (`unsatisfied`, `bad_circuit`, `crs_too_small`,
    /// `time_limit`, `memory_limit`, `prover_failed`, `displaced`: taken out of a full
    /// queue for another client's job, bb never ran) and bb's explanation. A cancelled job
    /// has no result (its status says `cancelled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailure>,
    /// bb's output files, base64: `proof`, `public_inputs`, `vk`, and the vk hash (hex).
    /// A chonk proof has no separate public inputs (they are inside the proof) and bb
    /// writes no vk hash for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Base64Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_inputs: Option<Base64Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vk: Option<Base64Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vk_hash: Option<HexBytes>,
    /// Circuit size as bb counts it, and the CRS points it needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_size: Option<u64>,
    pub queued_ms: u64,
    pub prove_ms: u64,
    /// The bb version that ran (also in the attestation's user_data).
    pub bb_version: String,
}

/// Why a job failed (in [`JobResult::error`]). Its codes are the prover's, not API error
/// codes: the job failed, the request that submitted it did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    pub code: String,
    pub message: String,
}

/// A sealed result that cannot be made or opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResultSealError {
    #[error("sealing the result failed")]
    Seal,
    #[error("sealed result is truncated")]
    Truncated,
    #[error("the result does not open under this job's key (tampered or another job)")]
    Open,
}

/// SHA-256 of the inputs as the enclave received them.
pub fn inputs_sha256(circuit: &[u8], witness: &[u8]) -> Hex32 {
    let mut h = Sha256::new();
    h.update((circuit.len() as u64).to_be_bytes());
    h.update(circuit);
    h.update(witness);
    Hex(h.finalize().into())
}

/// SHA-256 of a chonk input stack as the enclave received it. The length field is
/// `u64::MAX`, which no circuit length in [`inputs_sha256`] can be, so the two never collide.
pub fn chonk_inputs_sha256(ivc_inputs: &[u8]) -> Hex32 {
    let mut h = Sha256::new();
    h.update(u64::MAX.to_be_bytes());
    h.update(ivc_inputs);
    Hex(h.finalize().into())
}

/// The AAD of a sealed result.
pub fn result_aad(id: &str) -> Vec<u8> {
    format!("{RESULT_AAD}{id}").into_bytes()
}

/// Seals `plain` under `key`: nonce (12) || ciphertext || tag (16).
pub fn seal_result(
    key: &[u8; 32],
    id: &str,
    nonce: [u8; 12],
    plain: &[u8],
) -> Result<Vec<u8>, ResultSealError> {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|_| ResultSealError::Seal)?;
    let mut out = Vec::with_capacity(12 + plain.len() + 16);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let tag = cipher
        .encrypt_inout_detached(&nonce.into(), &result_aad(id), out[12..].as_mut().into())
        .map_err(|_| ResultSealError::Seal)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a sealed result; fails if it was not sealed under `key` for this `id`.
pub fn open_result(key: &[u8; 32], id: &str, sealed: &[u8]) -> Result<Vec<u8>, ResultSealError> {
    use aes_gcm::aead::{self, AeadInOut, KeyInit};
    let bad = || ResultSealError::Open;
    if sealed.len() < 12 + 16 {
        return Err(ResultSealError::Truncated);
    }
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|_| bad())?;
    let (nonce, rest) = sealed.split_at(12);
    let (ct, tag) = rest.split_at(rest.len() - 16);
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| bad())?;
    let tag = aead::Tag::<aes_gcm::Aes256Gcm>::try_from(tag).map_err(|_| bad())?;
    let mut out = ct.to_vec();
    cipher
        .decrypt_inout_detached(
            &nonce.into(),
            &result_aad(id),
            out.as_mut_slice().into(),
            &tag,
        )
        .map_err(|_| bad())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_open_only_under_their_key_and_id() {
        let key = [7u8; 32];
        let sealed = seal_result(&key, "aa", [1; 12], b"proof").unwrap();
        assert_eq!(open_result(&key, "aa", &sealed).unwrap(), b"proof");
        assert!(open_result(&[8; 32], "aa", &sealed).is_err());
        assert!(open_result(&key, "bb", &sealed).is_err());
        let mut t = sealed.clone();
        t[20] ^= 1;
        assert!(open_result(&key, "aa", &t).is_err());
        assert!(open_result(&key, "aa", &sealed[..20]).is_err());
    }

    #[test]
    fn requests_keep_their_json_and_unknown_names_reach_the_handler() {
        let json = r#"{"scheme":"ultra_honk","circuit":"AQI=","witness":"Aw==","target":"evm","result_key":"BAU="}"#;
        let r: ProveRequest = serde_json::from_str(json).unwrap();
        assert_eq!(r.scheme, Open::Known(Scheme::UltraHonk));
        assert_eq!(r.target, Open::Known(Target::Evm));
        assert_eq!(r.circuit.expose(), &[1, 2]);
        assert_eq!(serde_json::to_string(&r).unwrap(), json);
        assert!(!format!("{r:?}").contains("AQI="));
        let r: ProveRequest =
            serde_json::from_str(r#"{"scheme":"plonk","result_key":"","target":"x"}"#).unwrap();
        assert_eq!(r.scheme.known(), Err("plonk"));
        assert_eq!(r.target.known(), Err("x"));
        let r: ProveRequest =
            serde_json::from_str(r#"{"scheme":"chonk","result_key":""}"#).unwrap();
        assert_eq!(r.target, Open::Known(Target::Default));
        assert!(r.circuit.is_empty());
        assert!(
            serde_json::from_str::<ProveRequest>(r#"{"scheme":"chonk","result_key":"!"}"#).is_err()
        );
    }

    #[test]
    fn cancel_tokens_are_the_documented_hash_of_the_key() {
        let key = [0x11u8; 32];
        let mut h = Sha256::new();
        h.update(b"sigil prove cancel v1");
        h.update(key);
        let want: [u8; 32] = h.finalize().into();
        assert_eq!(cancel_token(&key).expose()[..], want);
        assert_ne!(cancel_token(&key), cancel_token(&[0x12; 32]));
        let json = format!(
            r#"{{"id":"{}","token":"{}"}}"#,
            "ab".repeat(16),
            "cd".repeat(32)
        );
        let r: CancelRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), json);
        assert!(!format!("{r:?}").contains(&"cd".repeat(32)));
        assert!(serde_json::from_str::<CancelRequest>(r#"{"id":"00"}"#).is_err());
    }

    /// The cancel answer is sealed to the client: even its largest form (every state name,
    /// with the encapsulation's overhead) must fit the response limit, which a result
    /// (a chonk one is padded to a MiB) would not.
    #[test]
    fn every_cancel_answer_fits_an_encapsulated_response() {
        use crate::encap::{MAX_ENCAPSULATED_RESPONSE, RESPONSE_OVERHEAD};
        for name in JobProgress::NAMES {
            for cancelled in [false, true] {
                let a = CancelAnswer {
                    id: Hex([0xff; 16]),
                    state: name.parse().unwrap(),
                    cancelled,
                };
                let json = serde_json::to_vec(&a).unwrap();
                assert!(json.len() + RESPONSE_OVERHEAD <= 256, "{}", json.len());
                assert!(json.len() + RESPONSE_OVERHEAD <= MAX_ENCAPSULATED_RESPONSE);
                assert_eq!(serde_json::from_slice::<CancelAnswer>(&json).unwrap(), a);
            }
        }
        // Not even the smallest chonk result would have fitted.
        let chonk = JobStatus {
            id: Hex([0xff; 16]),
            state: JobProgress::Ended,
            queue_position: None,
            elapsed_ms: None,
            sealed: Some(Base64Bytes(vec![0; RESULT_PAD_CHONK])),
        };
        let json = serde_json::to_vec(&chonk).unwrap();
        assert!(json.len() + RESPONSE_OVERHEAD > MAX_ENCAPSULATED_RESPONSE);
    }

    #[test]
    fn inputs_hash_separates_circuit_from_witness() {
        assert_ne!(inputs_sha256(b"ab", b"c"), inputs_sha256(b"a", b"bc"));
    }

    #[test]
    fn chonk_inputs_hash_apart_from_ultra_honk_inputs() {
        assert_ne!(chonk_inputs_sha256(b"abc"), inputs_sha256(b"abc", b""));
        assert_ne!(chonk_inputs_sha256(b"abc"), inputs_sha256(b"", b"abc"));
        assert_ne!(chonk_inputs_sha256(b"abc"), chonk_inputs_sha256(b"abd"));
    }
}
