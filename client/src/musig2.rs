//! The client side of MuSig2 signing: calls to the enclave's `/v1/musig2` endpoints, approving
//! a session with an owner key, and taking part in a session as an external signer whose key
//! never reaches the enclave.
//!
//! Approvals and external signatures are computed here only after the session the enclave
//! describes has been checked against what the approver or signer means to sign
//! ([`ExpectedSession`], [`check_session`]): the enclave's answer is sealed (the parent cannot
//! alter it), but anyone may create a session, so what a session signs is the approver's to
//! check.

use musig2::secp::{MaybePoint, MaybeScalar, Point, Scalar};
use musig2::{AggNonce, BinaryEncoding, KeyAggContext, PubNonce, SecNonce};
use sigil_protocol::endpoint as ep;
use sigil_protocol::musig2::{
    self as wire, AbortRequest, AggregateView, ApproveRequest, CreateAggregateRequest,
    CreateSessionRequest, DeleteAggregateRequest, DeleteKeyRequest, Deleted, GenerateKeyRequest,
    IdList, IdRequest, ImportKeyRequest, KeyOrder, KeyView, ListRequest, MessageView, NoncesView,
    Op, PartialSignaturesRequest, ParticipantNoncesView, ParticipantSpec, RoundView, SessionRef,
    SessionView, StatusView, SubmitNoncesRequest, TweakSpec,
};
use sigil_protocol::wire::{Hex, Hex32, Id, SecretHex, Signature};
use sigil_signing::{DigestInput, MessageSpec, SessionId, Tweak, session_digest};
use zeroize::Zeroizing;

/// BIP-340 verification (k256) and adaptor completion, for checking what a session returns.
pub use sigil_signing::{complete_adaptor_signature, verify_bip340};

use crate::owner::{random_secret, read_secret_file, write_secret_file};
use crate::{AttestedEnclave, Client, ClientError, Code, OwnerKey};

mod expected;
pub use expected::{CheckedSession, ExpectedKey, ExpectedSession, OutputKey, check_session};

/// `owner`'s signature over `request_digest(op, fields, not_after)` for `enclave`, with the
/// `not_after` it covers.
fn sign_request(
    owner: &OwnerKey,
    enclave: &AttestedEnclave,
    op: Op,
    fields: &[&[u8]],
) -> Result<(u64, Signature), ClientError> {
    let not_after = owner.not_after();
    let signature = owner.sign_for(enclave, &wire::request_digest(op, fields, not_after))?;
    Ok((not_after, signature))
}

fn proto(m: impl Into<String>) -> ClientError {
    ClientError::Protocol(m.into())
}

/// A tweak from its wire form (the same conversion the enclave makes, so a spec the enclave
/// would refuse is refused here first).
pub fn tweak_of(t: &TweakSpec) -> Result<Tweak, ClientError> {
    t.to_tweak().map_err(|e| proto(e.to_string()))
}

/// Parses `KIND` or `KIND:HEX` (`plain:..`, `xonly:..`, `taproot:ROOT`, `taproot_unspendable`),
/// refusing what the enclave would refuse.
pub fn parse_tweak_arg(s: &str) -> Result<TweakSpec, ClientError> {
    s.parse()
        .map_err(|e: sigil_protocol::musig2::TweakArgError| proto(e.to_string()))
}

fn apply(ctx: KeyAggContext, t: &Tweak) -> Result<KeyAggContext, ClientError> {
    let bad = |_| proto("tweak out of range");
    let scalar = |v: &[u8; 32]| MaybeScalar::try_from(*v).map_err(|_| proto("tweak out of range"));
    match t {
        Tweak::Plain(v) => ctx.with_plain_tweak(scalar(v)?).map_err(bad),
        Tweak::XOnly(v) => ctx.with_xonly_tweak(scalar(v)?).map_err(bad),
        Tweak::Taproot(r) => ctx.with_taproot_tweak(r).map_err(bad),
        Tweak::TaprootUnspendable => ctx.with_unspendable_taproot_tweak().map_err(bad),
    }
}

/// The session's messages as the engine sees them.
fn message_specs(view: &SessionView) -> Result<Vec<MessageSpec>, ClientError> {
    view.messages
        .iter()
        .map(|m| MessageSpec::try_from(m).map_err(|e| proto(e.to_string())))
        .collect()
}

/// Recomputes a session's approval digest from its description (never trusting the `digest`
/// field it came with) and checks that the description says the same.
pub fn recompute_digest(view: &SessionView) -> Result<[u8; 32], ClientError> {
    let session_id = SessionId(view.id.0);
    let internal_key = view.internal_key.0;
    let tweaks = view
        .tweaks
        .iter()
        .map(tweak_of)
        .collect::<Result<Vec<_>, _>>()?;
    let messages = message_specs(view)?;
    let adaptor = view.adaptor_point.map(|p| p.0);
    let digest = session_digest(&DigestInput {
        session_id: &session_id,
        internal_key: &internal_key,
        tweaks: &tweaks,
        messages: &messages,
        adaptor_point: adaptor.as_ref(),
        expires_at: view.expires_at,
    });
    if view.digest != digest {
        return Err(proto("the session's digest does not match its description"));
    }
    Ok(digest)
}

/// The secp256k1 key of an external participant: it signs on this machine, the enclave only
/// ever sees its public key, nonces and partial signatures. Kept in a file of 64 hex
/// characters, as owner keys are.
pub struct SignerKey {
    /// Zeroized on drop by k256.
    secret: k256::SecretKey,
}

impl SignerKey {
    pub fn generate() -> Result<SignerKey, ClientError> {
        random_secret(|b| {
            k256::SecretKey::from_slice(b)
                .ok()
                .map(|secret| SignerKey { secret })
        })
    }

    pub fn from_bytes(b: &[u8]) -> Result<SignerKey, ClientError> {
        k256::SecretKey::from_slice(b)
            .map(|secret| SignerKey { secret })
            .map_err(|_| proto("not a valid secp256k1 secret key"))
    }

    /// Reads a key file (64 hex characters, surrounding whitespace ignored).
    pub fn load(path: &str) -> Result<SignerKey, ClientError> {
        SignerKey::from_bytes(&read_secret_file(path, "key")?)
    }

    /// Writes the key file, created with mode 0600 and never overwritten.
    pub fn save(&self, path: &str) -> Result<(), ClientError> {
        write_secret_file(path, "key", &self.secret.to_bytes())
    }

    /// The secret, for importing it into an enclave (`Client::musig2_import_key`).
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes().into())
    }

    /// Compressed SEC1 public key: what goes into an aggregate as an external participant.
    pub fn public_key(&self) -> [u8; 33] {
        Point::from(self.secret.public_key()).serialize()
    }

    /// Joins `view` as the participant holding this key: builds each message's key context
    /// (checked against the session's output keys) and draws fresh secret nonces.
    pub fn join(&self, view: &SessionView) -> Result<Participation, ClientError> {
        let me = self.public_key();
        let p = view
            .participants
            .iter()
            .find(|p| p.public_key == me && p.key_id.is_none())
            .ok_or_else(|| proto("this key is not an external participant of the session"))?;
        let points = view
            .participants
            .iter()
            .map(|p| {
                Point::try_from(&p.public_key.0)
                    .map_err(|_| proto("participant key is not a point"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut base = KeyAggContext::new(points).map_err(|_| proto("keys do not aggregate"))?;
        for t in &view.tweaks {
            base = apply(base, &tweak_of(t)?)?;
        }
        let messages = message_specs(view)?;
        if messages.len() != view.output_keys.len() {
            return Err(proto("one output key per message expected"));
        }
        let session_id = view.id.0;
        let mut contexts = Vec::with_capacity(messages.len());
        let mut secnonces = Vec::with_capacity(messages.len());
        let mut pubnonces = Vec::with_capacity(messages.len());
        let seckey = Scalar::from(self.secret.clone());
        for (mi, m) in messages.iter().enumerate() {
            let ctx = match &m.tweak {
                None => base.clone(),
                Some(t) => apply(base.clone(), t)?,
            };
            let output: Point = ctx.aggregated_pubkey();
            if view.output_keys[mi] != output.serialize_xonly() {
                return Err(proto(format!(
                    "message {mi}: the output key does not match the session's"
                )));
            }
            // BIP-327 NonceGen with every input: fresh randomness, the secret key, the
            // aggregate key, the message and the session and signer (extra input). Threat: a
            // weak RNG alone repeating a nonce, which would leak the key.
            let mut seed = Zeroizing::new([0u8; 32]);
            getrandom::fill(&mut seed[..]).map_err(|e| proto(format!("no randomness: {e}")))?;
            let mut extra = session_id.to_vec();
            extra.extend_from_slice(&p.index.to_be_bytes());
            extra.extend_from_slice(&(mi as u32).to_be_bytes());
            let sn = SecNonce::generate(*seed, seckey, output, &m.message, &extra);
            pubnonces.push(sn.public_nonce());
            secnonces.push(sn);
            contexts.push(ctx);
        }
        let adaptor = match &view.adaptor_point {
            None => MaybePoint::Infinity,
            Some(p) => MaybePoint::Valid(
                Point::try_from(&p.0).map_err(|_| proto("adaptor point is not a point"))?,
            ),
        };
        Ok(Participation {
            session: view.id,
            index: p.index,
            seckey: self.secret.clone(),
            contexts,
            messages: messages.into_iter().map(|m| m.message).collect(),
            adaptor,
            held: view
                .participants
                .iter()
                .filter(|q| q.key_id.is_some())
                .map(|q| q.index)
                .collect(),
            externals: view
                .participants
                .iter()
                .filter(|q| q.key_id.is_none())
                .count(),
            pubnonces,
            secnonces: Some(secnonces),
        })
    }
}

/// One external participant's part in one session.
///
/// Threat: nonce reuse leaks the signer's key. The secret nonces exist only in this value's
/// memory: never serialized, written or sent; [`Participation::sign`] takes them out before
/// signing, so a second call (a retry, a second round) finds none and fails.
pub struct Participation {
    session: Hex32,
    index: u32,
    seckey: k256::SecretKey,
    contexts: Vec<KeyAggContext>,
    messages: Vec<Vec<u8>>,
    adaptor: MaybePoint,
    held: Vec<u32>,
    externals: usize,
    pubnonces: Vec<PubNonce>,
    secnonces: Option<Vec<SecNonce>>,
}

impl Participation {
    pub fn session(&self) -> &Hex32 {
        &self.session
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn public_nonces(&self) -> Vec<[u8; 66]> {
        self.pubnonces.iter().map(|n| n.to_bytes()).collect()
    }

    /// When this is the only external participant, the aggregated nonce must be the sum of the
    /// engine's nonces and ours: checks `round` against `engine` (the round's own `nonces`, or
    /// what `sessions/nonces` answers).
    pub fn check_round(
        &self,
        engine: &[ParticipantNoncesView],
        round: &RoundView,
    ) -> Result<(), ClientError> {
        if self.externals != 1 {
            return Ok(());
        }
        let mut got: Vec<u32> = engine.iter().map(|p| p.index).collect();
        got.sort();
        let mut want = self.held.clone();
        want.sort();
        if got != want {
            return Err(proto(
                "the engine's nonces are not for its held participants",
            ));
        }
        for (mi, agg) in round.aggregated_nonces.iter().enumerate() {
            let mut nonces = vec![
                self.pubnonces
                    .get(mi)
                    .cloned()
                    .ok_or_else(|| proto("the round has more aggregated nonces than messages"))?,
            ];
            for p in engine {
                let n = p
                    .nonces
                    .get(mi)
                    .ok_or_else(|| proto("engine nonce missing"))?;
                nonces.push(
                    PubNonce::from_bytes(&n.0).map_err(|_| proto("engine nonce does not parse"))?,
                );
            }
            if *agg != AggNonce::sum(nonces).to_bytes() {
                return Err(proto(format!(
                    "message {mi}: the aggregated nonce does not include ours"
                )));
            }
        }
        Ok(())
    }

    /// Partial signatures on every message for `round`, spending the secret nonces.
    pub fn sign(&mut self, round: &RoundView) -> Result<Vec<[u8; 32]>, ClientError> {
        if round.aggregated_nonces.len() != self.messages.len() {
            return Err(proto("one aggregated nonce per message expected"));
        }
        let secnonces = self
            .secnonces
            .take()
            .ok_or_else(|| proto("this participation has already signed"))?;
        let seckey = Scalar::from(self.seckey.clone());
        let mut out = Vec::with_capacity(self.messages.len());
        for (mi, sn) in secnonces.into_iter().enumerate() {
            let agg = AggNonce::from_bytes(&round.aggregated_nonces[mi].0)
                .map_err(|_| proto("aggregated nonce does not parse"))?;
            let psig: MaybeScalar = musig2::adaptor::sign_partial(
                &self.contexts[mi],
                seckey,
                sn,
                &agg,
                self.adaptor,
                &self.messages[mi],
            )
            .map_err(|e| proto(format!("partial signing failed: {e}")))?;
            out.push(psig.serialize());
        }
        Ok(out)
    }
}

impl Client {
    /// A key generated inside the enclave, owned by `owner`.
    pub fn musig2_generate_key(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
    ) -> Result<KeyView, ClientError> {
        let x = owner.x_only();
        let request_id = fresh_request_id()?;
        let (not_after, signature) =
            sign_request(owner, enclave, Op::GenerateKey, &[&x, &request_id])?;
        let req = GenerateKeyRequest {
            owner: Hex(x),
            request_id: Hex(request_id),
            not_after,
            signature,
        };
        let k: KeyView = self.call::<ep::KeyGenerate>(enclave, &req)?;
        if k.owner != req.owner {
            return Err(proto("the key was created for another owner"));
        }
        check_key_id(&k, &x, &request_id)?;
        Ok(k)
    }

    /// Imports `secret` (sealed to the attested enclave in transit), owned by `owner`.
    pub fn musig2_import_key(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        secret: &SignerKey,
    ) -> Result<KeyView, ClientError> {
        let x = owner.x_only();
        let public_key = secret.public_key();
        let request_id = fresh_request_id()?;
        let (not_after, signature) = sign_request(
            owner,
            enclave,
            Op::ImportKey,
            &[&x, &public_key, &request_id],
        )?;
        let req = ImportKeyRequest {
            // Wiped when `req` drops.
            secret: SecretHex::new(secret.secret_bytes()),
            owner: Hex(x),
            request_id: Hex(request_id),
            not_after,
            signature,
        };
        let k = self.call::<ep::KeyImport>(enclave, &req)?;
        if k.public_key != public_key || k.owner != req.owner {
            return Err(proto("the enclave answered for another key"));
        }
        check_key_id(&k, &x, &request_id)?;
        Ok(k)
    }

    /// `owner`'s keys.
    pub fn musig2_list_keys(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
    ) -> Result<Vec<Id>, ClientError> {
        let l: IdList =
            self.call::<ep::KeyList>(enclave, &list_request(owner, enclave, Op::ListKeys)?)?;
        Ok(l.ids)
    }

    /// One of `owner`'s keys.
    pub fn musig2_describe_key(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        id: &Id,
    ) -> Result<KeyView, ClientError> {
        self.call::<ep::KeyDescribe>(enclave, &id_request(owner, enclave, Op::DescribeKey, id)?)
    }

    /// Deletes a held key (signed by its owner).
    pub fn musig2_delete_key(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        id: &Id,
    ) -> Result<(), ClientError> {
        let (not_after, signature) = sign_request(owner, enclave, Op::DeleteKey, &[&id.0])?;
        let req = DeleteKeyRequest {
            id: *id,
            not_after,
            signature,
        };
        let _: Deleted = self.call::<ep::KeyDelete>(enclave, &req)?;
        Ok(())
    }

    /// Creates an aggregate, signed by `owner` (who must own one of its held keys; it counts
    /// against `owner`'s quota). The signature fields of `req` are filled in here.
    pub fn musig2_create_aggregate(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        req: &AggregateSpec,
    ) -> Result<AggregateView, ClientError> {
        let x = owner.x_only();
        let mut req = CreateAggregateRequest {
            participants: req.participants.clone(),
            order: req.order,
            tweaks: req.tweaks.clone(),
            owner: Hex(x),
            not_after: 0,
            signature: Hex([0; 64]),
        };
        (req.not_after, req.signature) = sign_request(
            owner,
            enclave,
            Op::CreateAggregate,
            &[&x, &req.signed_spec()],
        )?;
        self.call::<ep::AggregateCreate>(enclave, &req)
    }

    /// The aggregates `owner` created.
    pub fn musig2_list_aggregates(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
    ) -> Result<Vec<Id>, ClientError> {
        let req = list_request(owner, enclave, Op::ListAggregates)?;
        let l: IdList = self.call::<ep::AggregateList>(enclave, &req)?;
        Ok(l.ids)
    }

    /// An aggregate `owner` created or holds a key of.
    pub fn musig2_describe_aggregate(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        id: &Id,
    ) -> Result<AggregateView, ClientError> {
        let req = id_request(owner, enclave, Op::DescribeAggregate, id)?;
        self.call::<ep::AggregateDescribe>(enclave, &req)
    }

    /// Deletes an aggregate (signed by the owner of one of its held keys).
    pub fn musig2_delete_aggregate(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        id: &Id,
    ) -> Result<(), ClientError> {
        let x = owner.x_only();
        let (not_after, signature) =
            sign_request(owner, enclave, Op::DeleteAggregate, &[&id.0, &x])?;
        let req = DeleteAggregateRequest {
            id: *id,
            owner: Hex(x),
            not_after,
            signature,
        };
        let _: Deleted = self.call::<ep::AggregateDelete>(enclave, &req)?;
        Ok(())
    }

    /// Creates a session, signed by `owner` (one of its approvers; it counts against `owner`'s
    /// sessions in flight).
    pub fn musig2_create_session(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        spec: &SessionSpec,
    ) -> Result<SessionView, ClientError> {
        let x = owner.x_only();
        let mut req = CreateSessionRequest {
            aggregate: spec.aggregate,
            messages: spec.messages.clone(),
            adaptor_point: spec.adaptor_point,
            expires_at: spec.expires_at,
            owner: Hex(x),
            not_after: 0,
            signature: Hex([0; 64]),
        };
        (req.not_after, req.signature) =
            sign_request(owner, enclave, Op::CreateSession, &[&x, &req.signed_spec()])?;
        let v: SessionView = self.call::<ep::SessionCreate>(enclave, &req)?;
        if v.messages != req.messages || v.aggregate != req.aggregate {
            return Err(proto("the session was created for another request"));
        }
        recompute_digest(&v)?;
        Ok(v)
    }

    /// The session's description and current status.
    pub fn musig2_session(
        &self,
        enclave: &AttestedEnclave,
        session: &Hex32,
    ) -> Result<SessionView, ClientError> {
        self.call::<ep::SessionStatus>(enclave, &SessionRef { session: *session })
    }

    /// Approves `view` with `owner`'s key, if it is the session `expected` describes (see
    /// [`check_session`]): the signed digest is computed from `expected`.
    pub fn musig2_approve(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        view: &SessionView,
        expected: &ExpectedSession,
    ) -> Result<StatusView, ClientError> {
        let checked = check_session(view, expected, unix_now())?;
        self.musig2_approve_raw(enclave, owner, &view.id, &owner.sign(&checked.digest)?)
    }

    /// Sends an approval signature as given (tests use it to send wrong ones).
    pub fn musig2_approve_raw(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        session: &Hex32,
        signature: &Signature,
    ) -> Result<StatusView, ClientError> {
        self.call::<ep::SessionApprove>(
            enclave,
            &ApproveRequest {
                session: *session,
                owner: Hex(owner.x_only()),
                signature: *signature,
            },
        )
    }

    /// The engine's public nonces (once every approval is in).
    pub fn musig2_nonces(
        &self,
        enclave: &AttestedEnclave,
        session: &Hex32,
    ) -> Result<NoncesView, ClientError> {
        self.call::<ep::SessionNonces>(enclave, &SessionRef { session: *session })
    }

    pub fn musig2_submit_nonces(
        &self,
        enclave: &AttestedEnclave,
        session: &Hex32,
        index: u32,
        nonces: &[[u8; 66]],
    ) -> Result<StatusView, ClientError> {
        self.call::<ep::SessionSubmitNonces>(
            enclave,
            &SubmitNoncesRequest {
                session: *session,
                index,
                nonces: nonces.iter().copied().map(Hex).collect(),
            },
        )
    }

    /// The aggregated nonces and round id (once every nonce is in).
    pub fn musig2_round(
        &self,
        enclave: &AttestedEnclave,
        session: &Hex32,
    ) -> Result<RoundView, ClientError> {
        self.call::<ep::SessionRound>(enclave, &SessionRef { session: *session })
    }

    pub fn musig2_submit_partial_signatures(
        &self,
        enclave: &AttestedEnclave,
        session: &Hex32,
        round_id: &Hex32,
        index: u32,
        partial_signatures: &[[u8; 32]],
    ) -> Result<StatusView, ClientError> {
        self.call::<ep::SessionPartialSignatures>(
            enclave,
            &PartialSignaturesRequest {
                session: *session,
                round_id: *round_id,
                index,
                partial_signatures: partial_signatures.iter().copied().map(Hex).collect(),
            },
        )
    }

    /// Aborts a session (signed by one of its approvers).
    pub fn musig2_abort(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        session: &Hex32,
    ) -> Result<StatusView, ClientError> {
        let x = owner.x_only();
        let (not_after, signature) =
            sign_request(owner, enclave, Op::AbortSession, &[&session.0, &x])?;
        self.call::<ep::SessionAbort>(
            enclave,
            &AbortRequest {
                session: *session,
                owner: Hex(x),
                not_after,
                signature,
            },
        )
    }

    /// Takes part in a session as an external signer, start to finish, if it is the session
    /// `expected` describes (see [`check_session`]): joins, submits its nonces, waits (polling
    /// every `poll`) for the round, checks it, signs and submits. Returns the status after its
    /// partial signatures were accepted.
    pub fn musig2_participate(
        &self,
        enclave: &AttestedEnclave,
        signer: &SignerKey,
        view: &SessionView,
        expected: &ExpectedSession,
        poll: std::time::Duration,
        deadline: std::time::Instant,
    ) -> Result<StatusView, ClientError> {
        check_session(view, expected, unix_now())?;
        let mut part = signer.join(view)?;
        self.musig2_submit_nonces(enclave, &view.id, part.index(), &part.public_nonces())?;
        let round = loop {
            match self.musig2_round(enclave, &view.id) {
                Ok(r) => break r,
                Err(ClientError::Api {
                    status: 409, code, ..
                }) if code == Code::WrongState => {}
                Err(e) => return Err(e),
            }
            if std::time::Instant::now() >= deadline {
                return Err(proto("timed out waiting for the other participants"));
            }
            std::thread::sleep(poll);
        };
        // The round carries the engine's nonces; an older enclave's does not.
        if round.nonces.is_empty() {
            let engine = self.musig2_nonces(enclave, &view.id)?;
            part.check_round(&engine.participants, &round)?;
        } else {
            part.check_round(&round.nonces, &round)?;
        }
        let psigs = part.sign(&round)?;
        self.musig2_submit_partial_signatures(
            enclave,
            &view.id,
            &round.round_id,
            part.index(),
            &psigs,
        )
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it, which no expiry passes).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An aggregate to create: [`CreateAggregateRequest`] without its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateSpec {
    pub participants: Vec<ParticipantSpec>,
    pub order: KeyOrder,
    pub tweaks: Vec<TweakSpec>,
}

/// A session to create: [`CreateSessionRequest`] without its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    pub aggregate: Id,
    pub messages: Vec<MessageView>,
    pub adaptor_point: Option<sigil_protocol::wire::Point>,
    pub expires_at: u64,
}

fn list_request(
    owner: &OwnerKey,
    enclave: &AttestedEnclave,
    op: Op,
) -> Result<ListRequest, ClientError> {
    let x = owner.x_only();
    let (not_after, signature) = sign_request(owner, enclave, op, &[&x])?;
    Ok(ListRequest {
        owner: Hex(x),
        not_after,
        signature,
    })
}

fn id_request(
    owner: &OwnerKey,
    enclave: &AttestedEnclave,
    op: Op,
    id: &Id,
) -> Result<IdRequest, ClientError> {
    let x = owner.x_only();
    let (not_after, signature) = sign_request(owner, enclave, op, &[&id.0, &x])?;
    Ok(IdRequest {
        id: *id,
        owner: Hex(x),
        not_after,
        signature,
    })
}

/// 16 random bytes naming one key-creation request (see `GenerateKeyRequest::request_id`).
fn fresh_request_id() -> Result<[u8; 16], ClientError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| proto(format!("no randomness: {e}")))?;
    Ok(id)
}

/// The key's id must be the one the request names, so the client knows a retry or replay of
/// this request can only ever return this key.
fn check_key_id(k: &KeyView, owner: &[u8; 32], request_id: &[u8; 16]) -> Result<(), ClientError> {
    let want = sigil_signing::key_id_for_request(owner, request_id);
    if k.id != want.0 {
        return Err(proto(
            "the enclave named the key with an id its request does not derive",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_protocol::wire::HexBytes;

    #[test]
    fn tweak_arguments_parse() {
        assert_eq!(
            tweak_of(&parse_tweak_arg("taproot_unspendable").unwrap()).unwrap(),
            Tweak::TaprootUnspendable
        );
        let hex32 = "11".repeat(32);
        assert_eq!(
            tweak_of(&parse_tweak_arg(&format!("taproot:{hex32}")).unwrap()).unwrap(),
            Tweak::Taproot([0x11; 32])
        );
        assert!(parse_tweak_arg("plain").is_err());
        assert!(parse_tweak_arg("bogus:00").is_err());
        // As the enclave: an unspendable taproot tweak carries no value.
        let e = parse_tweak_arg(&format!("taproot_unspendable:{hex32}"));
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("taproot_unspendable (without)")
        );
    }

    #[test]
    fn a_participation_signs_at_most_once() {
        let a = SignerKey::generate().unwrap();
        let b = SignerKey::generate().unwrap();
        let pks = [a.public_key(), b.public_key()];
        let keys = sigil_signing::aggregate_keys(&pks, &[]).unwrap();
        let message = vec![0xab; 32];
        let view = SessionView {
            id: Hex([0; 32]),
            digest: Hex([0; 32]),
            aggregate: Hex([0; 16]),
            internal_key: Hex(keys.internal_key),
            tweaks: vec![],
            messages: vec![wire::MessageView {
                message: HexBytes(message.clone()),
                tweak: None,
            }],
            adaptor_point: None,
            expires_at: 1,
            approvers: vec![],
            participants: pks
                .iter()
                .enumerate()
                .map(|(i, pk)| wire::ParticipantView {
                    index: i as u32,
                    public_key: Hex(*pk),
                    key_id: None,
                })
                .collect(),
            output_keys: vec![Hex(keys.output_xonly)],
            status: StatusView {
                session: Hex([0; 32]),
                state: wire::SessionState::WaitingForNonces,
                expires_at: 1,
                missing_approvals: vec![],
                missing_nonces: vec![],
                missing_partial_signatures: vec![],
                failure: None,
                signatures: vec![],
            },
        };
        let mut pa = a.join(&view).unwrap();
        let mut pb = b.join(&view).unwrap();
        let agg = sigil_signing::aggregate_nonces(&[pa.public_nonces()[0], pb.public_nonces()[0]])
            .unwrap();
        let round = RoundView {
            session: view.id,
            round_id: Hex([0; 32]),
            aggregated_nonces: vec![Hex(agg)],
            nonces: vec![],
        };
        let sa = pa.sign(&round).unwrap();
        let sb = pb.sign(&round).unwrap();
        assert!(
            pa.sign(&round).is_err(),
            "a second signature with spent nonces"
        );
        // The two partial signatures aggregate into a valid BIP-340 signature.
        let ctx = KeyAggContext::new(
            pks.iter()
                .map(|k| Point::try_from(k).unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let sig: musig2::LiftedSignature = musig2::aggregate_partial_signatures(
            &ctx,
            &AggNonce::from_bytes(&agg).unwrap(),
            [
                MaybeScalar::try_from(sa[0]).unwrap(),
                MaybeScalar::try_from(sb[0]).unwrap(),
            ],
            &message,
        )
        .unwrap();
        assert!(verify_bip340(&keys.output_xonly, &message, &sig.to_bytes()));
    }
}
