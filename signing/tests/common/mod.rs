//! Test helpers: deterministic entropy, approving owners, external co-signers simulated with
//! the musig2 crate directly, and an independent libsecp256k1 check of final signatures.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use musig2::secp::{MaybePoint, Point, Scalar};
use musig2::{AggNonce, BinaryEncoding, KeyAggContext, PubNonce, SecNonce};
use sha2::{Digest, Sha256};
use sigil_signing::{
    AggregateId, AggregateInfo, AggregateSpec, Engine, EntropyError, KeyId, KeyOrder,
    MemoryRecords, MessageSpec, ParticipantSpec, SessionInfo, SessionRequest, SessionStatus,
    SignatureValue, Tweak,
};

pub const NOW: u64 = 1_700_000_000;

/// SHA-256 in counter mode: reproducible, never repeats, never zero (with overwhelming odds).
pub fn entropy(
    seed: u64,
) -> impl Fn(&mut [u8]) -> Result<(), EntropyError> + Send + Sync + 'static {
    let counter = Arc::new(AtomicU64::new(0));
    move |out: &mut [u8]| {
        for chunk in out.chunks_mut(32) {
            let c = counter.fetch_add(1, Ordering::Relaxed);
            let h = Sha256::new()
                .chain_update(seed.to_be_bytes())
                .chain_update(c.to_be_bytes())
                .finalize();
            chunk.copy_from_slice(&h[..chunk.len()]);
        }
        Ok(())
    }
}

pub fn engine(seed: u64) -> Engine<MemoryRecords> {
    Engine::new(MemoryRecords::new(), entropy(seed))
}

pub fn bytes32(tag: &str, i: u64) -> [u8; 32] {
    Sha256::new()
        .chain_update(tag.as_bytes())
        .chain_update(i.to_be_bytes())
        .finalize()
        .into()
}

/// A session over `messages`, untweaked and without an adaptor point.
pub fn plain_request(
    aggregate: AggregateId,
    messages: &[Vec<u8>],
    expires_at: u64,
) -> SessionRequest {
    SessionRequest {
        aggregate,
        messages: messages
            .iter()
            .map(|m| MessageSpec {
                message: m.clone(),
                tweak: None,
            })
            .collect(),
        adaptor_point: None,
        expires_at,
    }
}

/// An untweaked aggregate of one held key followed by one external co-signer.
pub fn held_and_external(
    engine: &Engine<MemoryRecords>,
    held: KeyId,
    external: &External,
    order: KeyOrder,
) -> AggregateInfo {
    engine
        .create_aggregate(
            &AggregateSpec {
                participants: vec![
                    ParticipantSpec::Held(held),
                    ParticipantSpec::External(external.pubkey),
                ],
                order,
                tweaks: vec![],
            },
            &engine.describe_key(&held).unwrap().owner,
            NOW,
        )
        .unwrap()
}

/// A client who owns held keys and approves sessions with BIP-340 signatures.
pub struct Owner {
    key: k256::schnorr::SigningKey,
}

impl Owner {
    pub fn new(i: u64) -> Self {
        Self {
            key: k256::schnorr::SigningKey::from_bytes(&bytes32("owner", i)).unwrap(),
        }
    }

    pub fn xonly(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes().into()
    }

    pub fn approve(&self, digest: &[u8; 32]) -> [u8; 64] {
        self.key.sign_raw(digest, &[0u8; 32]).unwrap().to_bytes()
    }
}

/// A co-signer outside the enclave, using the musig2 crate directly (not the engine).
pub struct External {
    pub seckey: Scalar,
    pub pubkey: [u8; 33],
    secnonces: Vec<Option<SecNonce>>,
    counter: u64,
}

impl External {
    pub fn new(i: u64) -> Self {
        let seckey = Scalar::try_from(bytes32("external", i)).unwrap();
        Self {
            seckey,
            pubkey: seckey.base_point_mul().serialize(),
            secnonces: Vec::new(),
            counter: i << 32,
        }
    }

    /// Same key as `new(i)`, but a separate nonce stream.
    pub fn with_stream(i: u64, stream: u64) -> Self {
        let mut e = Self::new(i);
        e.counter = (i << 32) ^ (stream << 48) ^ 0x5a5a;
        e
    }

    pub fn nonces(&mut self, messages: &[Vec<u8>]) -> Vec<[u8; 66]> {
        self.secnonces.clear();
        messages
            .iter()
            .map(|m| {
                self.counter += 1;
                let n =
                    SecNonce::build_with_seckey(bytes32("ext-nonce", self.counter), self.seckey)
                        .with_message(m)
                        .build();
                let public = n.public_nonce().to_bytes();
                self.secnonces.push(Some(n));
                public
            })
            .collect()
    }

    /// Partial signatures over contexts the test rebuilt itself from public data.
    pub fn sign(
        &mut self,
        ctxs: &[KeyAggContext],
        aggnonces: &[[u8; 66]],
        messages: &[Vec<u8>],
        adaptor: Option<[u8; 33]>,
    ) -> Vec<[u8; 32]> {
        let t = adaptor
            .map(|a| MaybePoint::Valid(Point::try_from(a).unwrap()))
            .unwrap_or(MaybePoint::Infinity);
        (0..messages.len())
            .map(|i| {
                let agg = AggNonce::from_bytes(&aggnonces[i]).unwrap();
                let n = self.secnonces[i].take().expect("external nonce used once");
                let s: musig2::PartialSignature =
                    musig2::adaptor::sign_partial(&ctxs[i], self.seckey, n, &agg, t, &messages[i])
                        .unwrap();
                s.serialize()
            })
            .collect()
    }
}

/// Rebuilds each message's key context from the aggregate's public description, independently
/// of the engine's own records.
pub fn contexts(info: &AggregateInfo, tweaks: &[Option<Tweak>]) -> Vec<KeyAggContext> {
    let points: Vec<Point> = info
        .participants
        .iter()
        .map(|p| Point::try_from(p.public_key).unwrap())
        .collect();
    let mut base = KeyAggContext::new(points).unwrap();
    for t in &info.tweaks {
        base = apply(base, t);
    }
    tweaks
        .iter()
        .map(|t| match t {
            None => base.clone(),
            Some(t) => apply(base.clone(), t),
        })
        .collect()
}

fn apply(ctx: KeyAggContext, t: &Tweak) -> KeyAggContext {
    match t {
        Tweak::Plain(b) => ctx.with_plain_tweak(Scalar::try_from(*b).unwrap()).unwrap(),
        Tweak::XOnly(b) => ctx.with_xonly_tweak(Scalar::try_from(*b).unwrap()).unwrap(),
        Tweak::Taproot(r) => ctx.with_taproot_tweak(r).unwrap(),
        Tweak::TaprootUnspendable => ctx.with_unspendable_taproot_tweak().unwrap(),
    }
}

/// libsecp256k1's BIP-340 verification, independent of k256 and musig2.
pub fn secp_verify(output_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(pk) = secp256k1::XOnlyPublicKey::from_byte_array(*output_key) else {
        return false;
    };
    let sig = secp256k1::schnorr::Signature::from_byte_array(*signature);
    secp256k1::SECP256K1
        .verify_schnorr(&sig, message, &pk)
        .is_ok()
}

/// What a session signs, as the test sees it.
pub struct Job<'a> {
    pub messages: &'a [Vec<u8>],
    pub tweaks: &'a [Option<Tweak>],
    pub adaptor: Option<[u8; 33]>,
}

impl<'a> Job<'a> {
    /// No adaptor point.
    pub fn plain(messages: &'a [Vec<u8>], tweaks: &'a [Option<Tweak>]) -> Self {
        Self {
            messages,
            tweaks,
            adaptor: None,
        }
    }
}

/// Drives a session with every owner approving and every external co-signing. Returns the
/// final status.
pub fn run_session(
    engine: &Engine<MemoryRecords>,
    session: &SessionInfo,
    agg: &AggregateInfo,
    owners: &[&Owner],
    externals: &mut [(u32, &mut External)],
    job: &Job<'_>,
) -> SessionStatus {
    let Job {
        messages,
        tweaks,
        adaptor,
    } = *job;
    let mut status = session.status.clone();
    for o in owners {
        status = engine
            .approve(&session.id, &o.xonly(), &o.approve(&session.digest), NOW)
            .unwrap();
    }
    for (index, ext) in externals.iter_mut() {
        let nonces = ext.nonces(messages);
        status = engine
            .submit_nonces(&session.id, *index, &nonces, NOW)
            .unwrap();
    }
    if externals.is_empty() {
        return status;
    }
    let round = engine.nonce_round(&session.id, NOW).unwrap();
    let ctxs = contexts(agg, tweaks);
    for (index, ext) in externals.iter_mut() {
        let psigs = ext.sign(&ctxs, &round.aggregated, messages, adaptor);
        status = engine
            .submit_partial_signatures(&session.id, &round.round_id, *index, &psigs, NOW)
            .unwrap();
    }
    status
}

/// The signer index of `external` in the aggregate.
pub fn index_of(agg: &AggregateInfo, external: &External) -> u32 {
    agg.participants
        .iter()
        .find(|p| p.public_key == external.pubkey)
        .unwrap()
        .index
}

/// `run_session` (each external at its own index), then `assert_all_valid`: returns the
/// checked signatures.
pub fn run_and_verify(
    engine: &Engine<MemoryRecords>,
    agg: &AggregateInfo,
    session: &SessionInfo,
    owners: &[&Owner],
    externals: &mut [&mut External],
    job: &Job<'_>,
) -> Vec<[u8; 64]> {
    let mut indexed: Vec<(u32, &mut External)> = externals
        .iter_mut()
        .map(|e| (index_of(agg, e), &mut **e))
        .collect();
    let status = run_session(engine, session, agg, owners, &mut indexed, job);
    assert_all_valid(&status, agg, job.messages, job.tweaks)
}

/// Checks every final signature with k256 (through the crate) and libsecp256k1, and that the
/// output keys are the ones the test computed itself.
pub fn assert_all_valid(
    status: &SessionStatus,
    agg: &AggregateInfo,
    messages: &[Vec<u8>],
    tweaks: &[Option<Tweak>],
) -> Vec<[u8; 64]> {
    let sigil_signing::SessionState::Completed { signatures } = &status.state else {
        panic!("session not completed: {:?}", status.state);
    };
    assert_eq!(signatures.len(), messages.len());
    let ctxs = contexts(agg, tweaks);
    signatures
        .iter()
        .enumerate()
        .map(|(i, s)| {
            assert_eq!(s.message_index as usize, i);
            let expected_key: Point = ctxs[i].aggregated_pubkey();
            assert_eq!(s.output_key, expected_key.serialize_xonly());
            let SignatureValue::Schnorr(sig) = s.value else {
                panic!("expected a BIP-340 signature");
            };
            assert!(sigil_signing::verify_bip340(
                &s.output_key,
                &messages[i],
                &sig
            ));
            assert!(
                secp_verify(&s.output_key, &messages[i], &sig),
                "libsecp256k1 rejects message {i}"
            );
            sig
        })
        .collect()
}

pub fn pubnonce_bytes(n: &PubNonce) -> [u8; 66] {
    n.to_bytes()
}

/// The owner of the aggregate's first held key: an approver, who may create its sessions.
pub fn creator(engine: &Engine<MemoryRecords>, aggregate: AggregateId) -> [u8; 32] {
    let agg = engine.describe_aggregate(&aggregate).unwrap();
    let held = agg.participants.iter().find_map(|p| p.held).unwrap();
    engine.describe_key(&held).unwrap().owner
}
