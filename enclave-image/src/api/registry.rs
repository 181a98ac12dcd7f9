//! `/v1/registry/...`: changes approved by the quorum's administrators, the change log, and
//! the registration of instances (see `crate::registry` for the state and the threats).

use sigil_attestation::{Policy, verify};
use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::registry::{
    Challenge, ChallengeRequest, ChangeRequest, LogRequest, LogView, MAX_LOG_PAGE, Provisioned,
    RegisterRequest, change_digest, provision_info,
};
use sigil_protocol::wire::{self, Base64Bytes, Hex};

use crate::boot::config::RegistryConfig;
use crate::registry::{self, CHALLENGE_SECS, Registry, RegistryError};
use crate::seal::quorum::check_quorum_approvals;
use crate::seal::service::Sealing;

/// The registry, when the image runs one.
pub struct RegistryCtx<'a> {
    pub config: &'a RegistryConfig,
    pub registry: &'a Registry,
    pub sealing: &'a Sealing,
    /// The per-boot key: approvals are bound to its public half, and provisions are sealed
    /// from it (HPKE auth mode), so an instance knows its provision came from the registry
    /// it attested.
    pub key: &'a sigil_protocol::encap::ServerKey,
    pub boot_key: [u8; 32],
}

fn refusal(e: RegistryError) -> ApiError {
    match e {
        RegistryError::BadChange(m) => ApiError::new(Code::BadChange, m),
        RegistryError::Stale(m) => ApiError::new(Code::Conflict, m),
        RegistryError::Approvals(m) => ApiError::new(Code::BadApproval, m),
        e @ RegistryError::NotAllowed => ApiError::new(Code::InstanceNotAllowed, e.to_string()),
        RegistryError::Busy(m) => ApiError::new(Code::LimitExceeded, m).with_status(429),
        RegistryError::Challenge(m) => ApiError::new(Code::UnknownChallenge, m),
        RegistryError::Store(s) => crate::seal::SealingError::Store(s).into(),
        RegistryError::Internal(m) => ApiError::new(Code::InternalError, m),
    }
}

/// Runs `f` on the sealed store; the registry's own errors pass through.
fn with_store<R>(
    sealing: &Sealing,
    mut f: impl FnMut(&mut crate::seal::SealedStore<sigil_sys::Stream>) -> Result<R, RegistryError>,
) -> Result<R, ApiError> {
    let mut failure = None;
    let r = sealing.with_store(|store| match f(store) {
        Ok(v) => Ok(Some(v)),
        // A store failure goes back to `with_store`, which retries one I/O error.
        Err(RegistryError::Store(e)) => Err(e),
        Err(e) => {
            failure = Some(e);
            Ok(None)
        }
    })?;
    match (r, failure) {
        (Some(v), _) => Ok(v),
        (None, Some(e)) => Err(refusal(e)),
        (None, None) => Err(ApiError::new(
            Code::InternalError,
            "the registry step failed",
        )),
    }
}

pub(super) fn change(ctx: &RegistryCtx<'_>, r: ChangeRequest) -> Result<LogView, ApiError> {
    // The quorum's current administrators, read again (see `Sealing::quorum_for_approvals`).
    let quorum = ctx
        .sealing
        .quorum_for_approvals()
        .map_err(super::quorum::refusal)?;
    let state = with_store(ctx.sealing, |store| {
        let state = registry::load(store)?;
        let head = state.head();
        if r.head.0 != head {
            // This very change, approved at `r.head`, is the last entry already: its write
            // landed and the answer was lost (an I/O retry, or the administrators' client
            // sending it again). Reported done, never applied twice.
            if let Some(last) = state.log().last()
                && last.prev == r.head
                && last.change_hash.0 == r.change.hash()
                && last.approvals == r.approvals
            {
                return Ok(state);
            }
            return Err(RegistryError::Stale(format!(
                "the log's head is {}, not {}: approve the change at the current head",
                hex::encode(head),
                hex::encode(r.head.0)
            )));
        }
        let message = wire::owner_message(&ctx.boot_key, &change_digest(&head, &r.change));
        check_quorum_approvals(quorum.threshold, &quorum.admins, &message, &r.approvals)
            .map_err(|e| RegistryError::Approvals(e.to_string()))?;
        registry::apply(store, &r.change, &r.approvals, &ctx.boot_key, now())
    })?;
    ctx.registry.set_head(state.head());
    Ok(LogView {
        head: Hex(state.head()),
        total: state.log().len() as u64,
        entries: state.log().last().cloned().into_iter().collect(),
    })
}

pub(super) fn log(ctx: &RegistryCtx<'_>, r: LogRequest) -> Result<LogView, ApiError> {
    let state = with_store(ctx.sealing, registry::load)?;
    ctx.registry.set_head(state.head());
    let from = usize::try_from(r.from)
        .unwrap_or(usize::MAX)
        .min(state.log().len());
    Ok(LogView {
        head: Hex(state.head()),
        total: state.log().len() as u64,
        entries: state.log()[from..]
            .iter()
            .take(MAX_LOG_PAGE)
            .cloned()
            .collect(),
    })
}

pub(super) fn challenge(
    ctx: &RegistryCtx<'_>,
    _r: ChallengeRequest,
    now: u64,
) -> Result<Challenge, ApiError> {
    let nonce = ctx.registry.challenge(now).map_err(refusal)?;
    Ok(Challenge {
        nonce: Hex(nonce),
        expires_in_secs: CHALLENGE_SECS,
    })
}

pub(super) fn register(
    ctx: &RegistryCtx<'_>,
    r: RegisterRequest,
    now: u64,
) -> Result<Provisioned, ApiError> {
    let refused = |m: String| ApiError::new(Code::InstanceDocumentRefused, m);
    let mut policy = Policy::at(now);
    policy.max_age_seconds = Some(ctx.config.max_age());
    policy.trust_test_root = ctx.config.trust_test_root;
    // Simulated documents exist only under the test root; a debug enclave is refused on AWS.
    policy.allow_debug = ctx.config.trust_test_root;
    let doc = verify(&r.document.0, &policy)
        .map_err(|e| refused(format!("the document does not verify: {e}")))?
        .document;
    let nonce: [u8; 32] = doc
        .nonce
        .as_deref()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| refused("the document carries no 32-byte nonce".into()))?;
    let instance_key: [u8; 32] = doc
        .public_key
        .as_deref()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| refused("the document carries no 32-byte X25519 public_key".into()))?;
    let provision = with_store(ctx.sealing, |store| {
        let state = registry::load(store)?;
        let allowed = state
            .lookup(&doc.pcrs)
            .cloned()
            .ok_or(RegistryError::NotAllowed)?;
        // Used once the instance is known to be allowed (a document that is not allowed gets
        // nothing however often it is sent, and cannot fill the table of used challenges);
        // before anything is issued, so a challenge answers one registration.
        ctx.registry.consume(&nonce, now)?;
        registry::provision(store, &state, &allowed, &instance_key, now)
    })?;
    let json = wire::to_json_secret(&provision)
        .map_err(|e| ApiError::new(Code::InternalError, e.to_string()))?;
    // Auth mode: only the instance can open it, and it opens only as sealed by this
    // registry's attested key. Threat: whoever relays the answer (the parent, a coordinator)
    // swapping in a provision of its own (its CA, configuration, secrets).
    let (enc, ct) = ctx
        .key
        .seal_auth(&instance_key, &provision_info(&nonce), &[], &json)
        .map_err(|e| refused(format!("sealing to the instance's key: {e}")))?;
    crate::log::info(format_args!(
        "registry: provisioned an instance of {} as {}",
        provision.app, provision.role
    ));
    Ok(Provisioned {
        app: provision.app.clone(),
        role: provision.role.clone(),
        enc: Hex(enc),
        ciphertext: Base64Bytes(ct),
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
