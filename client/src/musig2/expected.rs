//! What an approver (or an external signer) means to sign, checked against the session the
//! enclave describes before anything is approved or signed.
//!
//! Threat: anyone may create a session, so the session an owner is asked to approve may be a
//! counterparty's second session on the same message: without the adaptor point (an atomic
//! swap then completes without revealing its secret), on another aggregate, with another
//! tweak, or living longer than the owner agreed to. The owner states every input of the
//! approval digest ([`ExpectedSession`]); [`check_session`] compares each with the session,
//! names the first that differs, and returns the digest computed from the owner's statement,
//! never the `digest` field the session came with.

use std::fmt;
use std::str::FromStr;

use musig2::KeyAggContext;
use musig2::secp::Point as CurvePoint;
use sigil_protocol::musig2::{AggregateView, MessageView, SessionView, TweakSpec};
use sigil_protocol::wire::{Hex32, Id, Point};
use sigil_signing::{DigestInput, MessageSpec, SessionId, Tweak, session_digest};

use super::{apply, tweak_of};
use crate::ClientError;

/// The key a session must sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedKey {
    /// An aggregate of the enclave's, by id, with its untweaked key as the enclave describes it
    /// (`Client::musig2_describe_aggregate`).
    Aggregate { id: Id, internal_key: Point },
    /// The key signatures verify under: the aggregate's key after its tweaks (before any
    /// per-message tweak; with no tweak, the untweaked key).
    OutputKey(OutputKey),
}

/// An output key as the owner knows it: x-only (BIP-340, 32 bytes) or compressed (33 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKey {
    XOnly([u8; 32]),
    Compressed([u8; 33]),
}

impl OutputKey {
    fn matches(&self, compressed: &[u8; 33]) -> bool {
        match self {
            OutputKey::XOnly(x) => compressed[1..] == x[..],
            OutputKey::Compressed(c) => c == compressed,
        }
    }
}

impl fmt::Display for OutputKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputKey::XOnly(x) => f.write_str(&hex::encode(x)),
            OutputKey::Compressed(c) => f.write_str(&hex::encode(c)),
        }
    }
}

impl FromStr for OutputKey {
    type Err = String;
    /// 64 hex characters (x-only) or 66 (compressed, `02`/`03` prefix).
    fn from_str(s: &str) -> Result<Self, String> {
        let bytes = hex::decode(s).map_err(|e| format!("output key: {e}"))?;
        match bytes.len() {
            32 => Ok(OutputKey::XOnly(bytes.try_into().unwrap_or([0; 32]))),
            33 if bytes[0] == 2 || bytes[0] == 3 => {
                Ok(OutputKey::Compressed(bytes.try_into().unwrap_or([0; 33])))
            }
            33 => Err("output key: a compressed key starts with 02 or 03".into()),
            n => Err(format!(
                "output key: {n} bytes; expected 32 (x-only) or 33 (compressed)"
            )),
        }
    }
}

/// Everything an owner's approval commits to, as the owner intends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedSession {
    /// The session being approved.
    pub session: Hex32,
    pub key: ExpectedKey,
    /// The aggregate's tweaks, in order (none: an untweaked aggregate).
    pub tweaks: Vec<TweakSpec>,
    /// The messages, in order, each with its per-message tweak.
    pub messages: Vec<MessageView>,
    /// `None`: plain signatures, no adaptor point.
    pub adaptor_point: Option<Point>,
    /// The latest acceptable expiry (Unix seconds): an approval is good until the session
    /// expires, so its lifetime is the owner's to bound.
    pub expires_by: u64,
}

impl ExpectedSession {
    /// Exactly what `request` asked for on `aggregate` (as the enclave describes it): what the
    /// creator of session `session` expects of it.
    pub fn of_request(
        session: Hex32,
        aggregate: &AggregateView,
        request: &super::SessionSpec,
    ) -> ExpectedSession {
        ExpectedSession {
            session,
            key: ExpectedKey::Aggregate {
                id: aggregate.id,
                internal_key: aggregate.internal_key,
            },
            tweaks: aggregate.tweaks.clone(),
            messages: request.messages.clone(),
            adaptor_point: request.adaptor_point,
            expires_by: request.expires_at,
        }
    }
}

/// A session that matched what its approver expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSession {
    /// The approval digest, computed from the expected description.
    pub digest: [u8; 32],
    /// Per message, the x-only key its signature will verify under (computed here).
    pub output_keys: Vec<[u8; 32]>,
    summary: String,
}

impl fmt::Display for CheckedSession {
    /// What is being approved, for a person to read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary)
    }
}

fn mismatch(
    field: impl Into<String>,
    expected: impl fmt::Display,
    found: impl fmt::Display,
) -> ClientError {
    ClientError::SessionMismatch {
        field: field.into(),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

/// `kind` or `kind:value`, as the command line writes a tweak.
fn tweak_text(t: &TweakSpec) -> String {
    match &t.value {
        Some(v) => format!("{}:{v}", t.kind),
        None => t.kind.to_string(),
    }
}

fn tweaks_text(ts: &[TweakSpec]) -> String {
    if ts.is_empty() {
        return "none".into();
    }
    ts.iter().map(tweak_text).collect::<Vec<_>>().join(", ")
}

fn opt_tweak_text(t: &Option<TweakSpec>) -> String {
    t.as_ref().map(tweak_text).unwrap_or_else(|| "none".into())
}

fn adaptor_text(p: &Option<Point>) -> String {
    match p {
        None => "none".into(),
        Some(p) => p.to_string(),
    }
}

fn expiry_text(at: u64, now: u64) -> String {
    if at >= now {
        format!("{at} (in {} s)", at - now)
    } else {
        format!("{at} ({} s ago)", now - at)
    }
}

/// The engine's tweaks of `specs`, so that two spellings of one tweak compare equal.
fn tweaks_of(specs: &[TweakSpec]) -> Result<Vec<Tweak>, ClientError> {
    specs.iter().map(tweak_of).collect()
}

fn message_tweak(m: &MessageView) -> Result<Option<Tweak>, ClientError> {
    m.tweak.as_ref().map(tweak_of).transpose()
}

/// Most key aggregations [`aggregated_keys`] remembers.
const KEY_AGG_CACHE: usize = 64;

/// Key aggregations already computed, by their inputs' bytes, the most recent last.
static KEY_AGGS: std::sync::Mutex<Vec<(Vec<u8>, KeyAggContext)>> =
    std::sync::Mutex::new(Vec::new());

/// The key aggregation context of `keys` (in signer order) with `tweaks`.
///
/// An owner checks every session it approves against the aggregate's participants, and key
/// aggregation (a hash and a multiplication per key, then the tweaks) was most of that check.
/// It is a pure function of public bytes, so a result is reused for the same exact inputs:
/// nothing an enclave or a parent sends can change what given inputs aggregate to, and the
/// cache is bounded (the oldest entry goes).
fn key_agg_context(keys: &[[u8; 33]], tweaks: &[Tweak]) -> Result<KeyAggContext, ClientError> {
    let mut id = Vec::with_capacity(4 + 33 * (keys.len() + tweaks.len()));
    id.extend_from_slice(&(keys.len() as u32).to_be_bytes());
    keys.iter().for_each(|k| id.extend_from_slice(k));
    tweaks
        .iter()
        .for_each(|t| id.extend_from_slice(&t.encode()));
    let lock = || KEY_AGGS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, ctx)) = lock().iter().find(|(k, _)| *k == id) {
        return Ok(ctx.clone());
    }
    let ctx = sigil_signing::aggregate::key_agg_context(keys, tweaks)
        .map_err(|e| ClientError::Protocol(format!("the session's participants: {e}")))?;
    let mut cache = lock();
    if cache.len() >= KEY_AGG_CACHE {
        cache.remove(0);
    }
    cache.push((id, ctx.clone()));
    Ok(ctx)
}

/// Compares every input of the approval digest in `view` with `expected` at time `now` (Unix
/// seconds), refusing the first difference by name, and returns the digest computed from
/// `expected`.
pub fn check_session(
    view: &SessionView,
    expected: &ExpectedSession,
    now: u64,
) -> Result<CheckedSession, ClientError> {
    if view.id != expected.session {
        return Err(mismatch("session id", expected.session, view.id));
    }

    // The participants, in signer order, must aggregate to the key the session names.
    let mut participants = view.participants.clone();
    participants.sort_by_key(|p| p.index);
    if participants
        .iter()
        .enumerate()
        .any(|(i, p)| p.index as usize != i)
    {
        return Err(ClientError::Protocol(
            "the session's participants are not numbered 0..n".into(),
        ));
    }
    let keys: Vec<[u8; 33]> = participants.iter().map(|p| p.public_key.0).collect();
    let want_tweaks = tweaks_of(&expected.tweaks)?;
    let base = key_agg_context(&keys, &want_tweaks)?;
    let internal: CurvePoint = base.aggregated_pubkey_untweaked();
    if internal.serialize() != view.internal_key.0 {
        return Err(mismatch(
            "internal key",
            format!(
                "the aggregate of the session's participants, {}",
                hex::encode(internal.serialize())
            ),
            view.internal_key,
        ));
    }

    // The aggregate, or the key after its tweaks.
    let output: CurvePoint = base.aggregated_pubkey();
    match &expected.key {
        ExpectedKey::Aggregate { id, internal_key } => {
            if view.aggregate != *id {
                return Err(mismatch("aggregate", id, view.aggregate));
            }
            if view.internal_key != *internal_key {
                return Err(mismatch("internal key", internal_key, view.internal_key));
            }
        }
        ExpectedKey::OutputKey(k) => {
            // With the expected tweaks on the session's key: a different tweak is named below.
            if !k.matches(&output.serialize()) {
                return Err(mismatch(
                    "output key",
                    k,
                    format!(
                        "{} (its key after the tweaks {})",
                        hex::encode(output.serialize_xonly()),
                        tweaks_text(&expected.tweaks)
                    ),
                ));
            }
        }
    }
    if tweaks_of(&view.tweaks)? != want_tweaks {
        return Err(mismatch(
            "tweaks",
            tweaks_text(&expected.tweaks),
            tweaks_text(&view.tweaks),
        ));
    }

    if view.messages.len() != expected.messages.len() {
        return Err(mismatch(
            "number of messages",
            expected.messages.len(),
            view.messages.len(),
        ));
    }
    for (i, (got, want)) in view.messages.iter().zip(&expected.messages).enumerate() {
        if got.message != want.message {
            return Err(mismatch(
                format!("message {i}"),
                &want.message,
                &got.message,
            ));
        }
        if message_tweak(got)? != message_tweak(want)? {
            return Err(mismatch(
                format!("message {i} tweak"),
                opt_tweak_text(&want.tweak),
                opt_tweak_text(&got.tweak),
            ));
        }
    }

    if view.adaptor_point != expected.adaptor_point {
        return Err(mismatch(
            "adaptor point",
            adaptor_text(&expected.adaptor_point),
            adaptor_text(&view.adaptor_point),
        ));
    }

    if view.expires_at > expected.expires_by {
        return Err(mismatch(
            "expiry",
            format!("at most {}", expiry_text(expected.expires_by, now)),
            expiry_text(view.expires_at, now),
        ));
    }
    if view.expires_at <= now {
        return Err(mismatch(
            "expiry",
            "a time to come",
            expiry_text(view.expires_at, now),
        ));
    }

    // What each message's signature will verify under, computed here (the enclave's own list
    // must agree: an external signer checks its partial signatures against these).
    let mut output_keys = Vec::with_capacity(expected.messages.len());
    for (i, m) in expected.messages.iter().enumerate() {
        let ctx = match message_tweak(m)? {
            None => base.clone(),
            Some(t) => apply(base.clone(), &t)?,
        };
        let key: CurvePoint = ctx.aggregated_pubkey();
        let key = key.serialize_xonly();
        if view.output_keys.get(i).map(|k| k.0) != Some(key) {
            return Err(mismatch(
                format!("output key of message {i}"),
                hex::encode(key),
                view.output_keys
                    .get(i)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "none".into()),
            ));
        }
        output_keys.push(key);
    }

    // The digest from the owner's statement (the expiry is the session's, within the bound).
    let messages = expected
        .messages
        .iter()
        .map(|m| {
            Ok(MessageSpec {
                message: m.message.0.clone(),
                tweak: message_tweak(m)?,
            })
        })
        .collect::<Result<Vec<_>, ClientError>>()?;
    let adaptor = expected.adaptor_point.map(|p| p.0);
    let digest = session_digest(&DigestInput {
        session_id: &SessionId(expected.session.0),
        internal_key: &internal.serialize(),
        tweaks: &want_tweaks,
        messages: &messages,
        adaptor_point: adaptor.as_ref(),
        expires_at: view.expires_at,
    });
    if view.digest.0 != digest {
        return Err(mismatch(
            "digest",
            hex::encode(digest),
            format!("{} (the enclave would refuse this approval)", view.digest),
        ));
    }

    let summary = summary(view, expected, &output_keys, now);
    Ok(CheckedSession {
        digest,
        output_keys,
        summary,
    })
}

fn summary(
    view: &SessionView,
    expected: &ExpectedSession,
    output_keys: &[[u8; 32]],
    now: u64,
) -> String {
    let mut s = format!("session {}\n", view.id);
    s += &format!(
        "  aggregate     {} (internal key {})\n",
        view.aggregate, view.internal_key
    );
    s += &format!("  participants  {}\n", view.participants.len());
    for p in &view.participants {
        match &p.key_id {
            Some(id) => s += &format!("    {}: {} (held key {id})\n", p.index, p.public_key),
            None => s += &format!("    {}: {} (external)\n", p.index, p.public_key),
        }
    }
    s += &format!("  tweaks        {}\n", tweaks_text(&expected.tweaks));
    for (i, (m, k)) in expected.messages.iter().zip(output_keys).enumerate() {
        s += &format!(
            "  message {i}     {} ({} bytes, tweak {}), verifies under {}\n",
            m.message,
            m.message.0.len(),
            opt_tweak_text(&m.tweak),
            hex::encode(k)
        );
    }
    match &expected.adaptor_point {
        None => s += "  adaptor       none: plain BIP-340 signatures\n",
        Some(p) => {
            s += &format!(
                "  adaptor       {p}: adaptor pre-signatures, completed only with its secret\n"
            )
        }
    }
    s += &format!("  expires       {}\n", expiry_text(view.expires_at, now));
    s += &format!(
        "  approvers     {}",
        view.approvers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SignerKey;
    use sigil_protocol::musig2::{ParticipantView, SessionState, StatusView, TweakKind};
    use sigil_protocol::wire::{Hex, HexBytes};

    const NOW: u64 = 1_000_000;

    /// What an honest enclave would describe: a session over `keys` (aggregated in order)
    /// with consistent internal key, output keys and digest.
    struct Spec {
        id: [u8; 32],
        aggregate: [u8; 16],
        keys: Vec<[u8; 33]>,
        tweaks: Vec<TweakSpec>,
        messages: Vec<MessageView>,
        adaptor_point: Option<Point>,
        expires_at: u64,
    }

    fn describe(s: &Spec) -> SessionView {
        let tweaks = tweaks_of(&s.tweaks).unwrap();
        let base = sigil_signing::aggregate::key_agg_context(&s.keys, &tweaks).unwrap();
        let internal: CurvePoint = base.aggregated_pubkey_untweaked();
        let output_keys = s
            .messages
            .iter()
            .map(|m| {
                let ctx = match message_tweak(m).unwrap() {
                    None => base.clone(),
                    Some(t) => apply(base.clone(), &t).unwrap(),
                };
                let k: CurvePoint = ctx.aggregated_pubkey();
                Hex(k.serialize_xonly())
            })
            .collect();
        let specs: Vec<MessageSpec> = s
            .messages
            .iter()
            .map(|m| MessageSpec::try_from(m).unwrap())
            .collect();
        let adaptor = s.adaptor_point.map(|p| p.0);
        let digest = session_digest(&DigestInput {
            session_id: &SessionId(s.id),
            internal_key: &internal.serialize(),
            tweaks: &tweaks,
            messages: &specs,
            adaptor_point: adaptor.as_ref(),
            expires_at: s.expires_at,
        });
        SessionView {
            id: Hex(s.id),
            digest: Hex(digest),
            aggregate: Hex(s.aggregate),
            internal_key: Hex(internal.serialize()),
            tweaks: s.tweaks.clone(),
            messages: s.messages.clone(),
            adaptor_point: s.adaptor_point,
            expires_at: s.expires_at,
            approvers: vec![Hex([7; 32])],
            participants: s
                .keys
                .iter()
                .enumerate()
                .map(|(i, k)| ParticipantView {
                    index: i as u32,
                    public_key: Hex(*k),
                    key_id: (i == 0).then_some(Hex([9; 16])),
                })
                .collect(),
            output_keys,
            status: StatusView {
                session: Hex(s.id),
                state: SessionState::WaitingForApprovals,
                expires_at: s.expires_at,
                missing_approvals: vec![Hex([7; 32])],
                missing_nonces: vec![],
                missing_partial_signatures: vec![],
                failure: None,
                signatures: vec![],
            },
        }
    }

    fn key() -> [u8; 33] {
        SignerKey::generate().unwrap().public_key()
    }

    fn taproot(root: u8) -> TweakSpec {
        TweakSpec {
            kind: TweakKind::Taproot,
            value: Some(Hex([root; 32])),
        }
    }

    fn message(byte: u8) -> MessageView {
        MessageView {
            message: HexBytes(vec![byte; 32]),
            tweak: None,
        }
    }

    /// The owner's intended session (an adaptor swap on a taproot-tweaked 2-of-2), and the
    /// expected description the owner states for it.
    fn intended() -> (Spec, ExpectedSession) {
        let spec = Spec {
            id: [1; 32],
            aggregate: [2; 16],
            keys: vec![key(), key()],
            tweaks: vec![taproot(0x33)],
            messages: vec![
                message(0xa0),
                MessageView {
                    message: HexBytes(vec![0xa1; 32]),
                    tweak: Some(TweakSpec {
                        kind: TweakKind::Plain,
                        value: Some(Hex([5; 32])),
                    }),
                },
            ],
            adaptor_point: Some(Hex(key())),
            expires_at: NOW + 300,
        };
        let view = describe(&spec);
        let expected = ExpectedSession {
            session: view.id,
            key: ExpectedKey::Aggregate {
                id: view.aggregate,
                internal_key: view.internal_key,
            },
            tweaks: spec.tweaks.clone(),
            messages: spec.messages.clone(),
            adaptor_point: spec.adaptor_point,
            expires_by: NOW + 600,
        };
        (spec, expected)
    }

    /// The field `check_session` refuses `view` for.
    fn refused(view: &SessionView, expected: &ExpectedSession) -> String {
        match check_session(view, expected, NOW) {
            Err(ClientError::SessionMismatch { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// The expected output key (after the aggregate's tweaks) of `spec`'s aggregate.
    fn output_key_of(spec: &Spec) -> [u8; 33] {
        let tweaks = tweaks_of(&spec.tweaks).unwrap();
        sigil_signing::aggregate_keys(&spec.keys, &tweaks)
            .unwrap()
            .output_key
    }

    #[test]
    fn the_intended_session_passes_with_its_digest_and_output_keys() {
        let (spec, expected) = intended();
        let view = describe(&spec);
        let checked = check_session(&view, &expected, NOW).unwrap();
        assert_eq!(checked.digest, view.digest.0);
        let keys: Vec<[u8; 32]> = view.output_keys.iter().map(|k| k.0).collect();
        assert_eq!(checked.output_keys, keys);
        // A per-message tweak gives that message its own key.
        assert_ne!(keys[0], keys[1]);
        let text = checked.to_string();
        for part in [
            "adaptor pre-signatures",
            "taproot:3333",
            "tweak plain:0505",
            "in 300 s",
        ] {
            assert!(text.contains(part), "{part} not in\n{text}");
        }
        // The key named by its output key instead of the aggregate id, in both encodings.
        let out = output_key_of(&spec);
        let mut by_key = expected.clone();
        by_key.key = ExpectedKey::OutputKey(OutputKey::Compressed(out));
        check_session(&view, &by_key, NOW).unwrap();
        by_key.key = ExpectedKey::OutputKey(OutputKey::XOnly(out[1..].try_into().unwrap()));
        check_session(&view, &by_key, NOW).unwrap();
    }

    #[test]
    fn a_session_without_the_adaptor_point_is_refused() {
        let (mut spec, expected) = intended();
        spec.adaptor_point = None;
        assert_eq!(refused(&describe(&spec), &expected), "adaptor point");
        // And the other way round: plain signatures expected, an adaptor session offered.
        let (spec, mut expected) = intended();
        expected.adaptor_point = None;
        assert_eq!(refused(&describe(&spec), &expected), "adaptor point");
        // Another adaptor point.
        let (mut spec, expected) = intended();
        spec.adaptor_point = Some(Hex(key()));
        assert_eq!(refused(&describe(&spec), &expected), "adaptor point");
    }

    #[test]
    fn a_session_on_another_aggregate_is_refused() {
        let (mut spec, expected) = intended();
        // The counterparty's own aggregate over the same owner's key and a key of theirs.
        spec.aggregate = [3; 16];
        spec.keys[1] = key();
        assert_eq!(refused(&describe(&spec), &expected), "aggregate");
        // Named by output key instead: the key differs.
        let (intended_spec, mut by_key) = intended();
        by_key.key = ExpectedKey::OutputKey(OutputKey::Compressed(output_key_of(&intended_spec)));
        let mut other = intended_spec;
        other.keys[1] = key();
        assert_eq!(refused(&describe(&other), &by_key), "output key");
        // Same aggregate id, but the enclave's description of it says another key.
        let (spec, mut expected) = intended();
        expected.key = ExpectedKey::Aggregate {
            id: Hex(spec.aggregate),
            internal_key: Hex(key()),
        };
        assert_eq!(refused(&describe(&spec), &expected), "internal key");
    }

    #[test]
    fn a_session_with_another_tweak_is_refused() {
        let (mut spec, expected) = intended();
        spec.tweaks = vec![taproot(0x44)];
        assert_eq!(refused(&describe(&spec), &expected), "tweaks");
        let (mut spec, expected) = intended();
        spec.tweaks = vec![];
        assert_eq!(refused(&describe(&spec), &expected), "tweaks");
        // Named by output key, the session's aggregate untweaked: still the tweaks.
        let (spec, mut by_key) = intended();
        by_key.key = ExpectedKey::OutputKey(OutputKey::Compressed(output_key_of(&spec)));
        let mut other = spec;
        other.tweaks = vec![];
        assert_eq!(refused(&describe(&other), &by_key), "tweaks");
        // A per-message tweak dropped or changed.
        let (mut spec, expected) = intended();
        spec.messages[1].tweak = None;
        assert_eq!(refused(&describe(&spec), &expected), "message 1 tweak");
        let (mut spec, expected) = intended();
        spec.messages[0].tweak = Some(taproot(0x55));
        assert_eq!(refused(&describe(&spec), &expected), "message 0 tweak");
    }

    #[test]
    fn a_session_on_another_message_is_refused() {
        let (mut spec, expected) = intended();
        spec.messages[0] = message(0xb0);
        assert_eq!(refused(&describe(&spec), &expected), "message 0");
        let (mut spec, expected) = intended();
        spec.messages.push(message(0xa2));
        assert_eq!(refused(&describe(&spec), &expected), "number of messages");
        let (mut spec, expected) = intended();
        spec.messages.swap(0, 1);
        assert_eq!(refused(&describe(&spec), &expected), "message 0");
    }

    #[test]
    fn a_session_expiring_too_late_or_already_is_refused() {
        let (mut spec, expected) = intended();
        spec.expires_at = expected.expires_by + 1;
        assert_eq!(refused(&describe(&spec), &expected), "expiry");
        spec.expires_at = expected.expires_by;
        check_session(&describe(&spec), &expected, NOW).unwrap();
        spec.expires_at = NOW;
        assert_eq!(refused(&describe(&spec), &expected), "expiry");
    }

    #[test]
    fn another_session_id_or_a_digest_that_says_otherwise_is_refused() {
        let (mut spec, expected) = intended();
        spec.id = [8; 32];
        assert_eq!(refused(&describe(&spec), &expected), "session id");
        // The digest shown is never trusted: one over anything else is refused.
        let (spec, expected) = intended();
        let mut view = describe(&spec);
        view.digest = Hex([0; 32]);
        assert_eq!(refused(&view, &expected), "digest");
        // Output keys the enclave lists must be the ones computed here.
        let mut view = describe(&spec);
        view.output_keys[1] = view.output_keys[0];
        assert_eq!(refused(&view, &expected), "output key of message 1");
    }

    #[test]
    fn output_keys_parse_in_both_encodings() {
        let k = key();
        assert_eq!(
            hex::encode(k).parse::<OutputKey>().unwrap(),
            OutputKey::Compressed(k)
        );
        assert_eq!(
            hex::encode(&k[1..]).parse::<OutputKey>().unwrap(),
            OutputKey::XOnly(k[1..].try_into().unwrap())
        );
        assert!(
            format!("04{}", hex::encode(&k[1..]))
                .parse::<OutputKey>()
                .is_err()
        );
        assert!("abcd".parse::<OutputKey>().is_err());
    }
}
