//! Secret nonces: how they are made, where they live, and how each is spent at most once.
//!
//! Reusing a MuSig2 secret nonce for two different partial signatures reveals the secret key
//! (two equations, one unknown). Every rule below exists to make that impossible:
//!
//! * secret nonces live only in process memory, inside `SecretNonce`, which has no `Clone`,
//!   no `Debug`, no serialization, and is never written to a record or a log;
//! * each is consumed at most once, atomically with producing its partial signature (see
//!   `NonceSlot::sign`);
//! * sessions are memory-only, so a restart drops every secret nonce and aborts every session;
//!   clients must start a new session (a restarted engine cannot be tricked into re-signing
//!   with a nonce it already used, because it no longer has one);
//! * generation mixes fresh randomness with the secret key, the message, the aggregate key,
//!   the session id and the signer/message position (BIP-327 `NonceGen` inputs), so a weak
//!   RNG alone does not repeat a nonce.

use musig2::secp::{MaybePoint, Point, Scalar};
use musig2::{AggNonce, BinaryEncoding, KeyAggContext, PartialSignature, PubNonce, SecNonce};
use zeroize::Zeroizing;

use crate::aggregate::strict_point;
use crate::codec::tagged_hash;
use crate::error::Error;
use crate::keys::HeldKey;
use crate::session::SessionId;

/// A BIP-327 secret nonce held for one (held signer, message) pair.
///
/// The nonce sits in its own heap allocation so that moving the wrapper moves only a pointer,
/// and `Drop` overwrites that allocation in place. The musig2 crate's scalar type is `Copy`
/// without zeroize, so this wipe is best effort (copies made inside the crate's signing call
/// cannot be reached); the at-most-once rule does not depend on it.
pub(crate) struct SecretNonce(Box<SecNonce>);

impl SecretNonce {
    /// BIP-327 `NonceGen` with every optional input supplied: `seed` (fresh caller randomness),
    /// the secret key, the (tweaked) aggregate key, the message, and as `extra_in` the session
    /// id followed by the signer and message indices.
    pub(crate) fn generate(
        seed: &Zeroizing<[u8; 32]>,
        key: &HeldKey,
        aggregate_key: Point,
        message: &[u8],
        session_id: &SessionId,
        signer_index: u32,
        message_index: u32,
    ) -> Self {
        let mut extra = [0u8; 40];
        extra[..32].copy_from_slice(&session_id.0);
        extra[32..36].copy_from_slice(&signer_index.to_be_bytes());
        extra[36..].copy_from_slice(&message_index.to_be_bytes());
        let nonce = musig2::SecNonceBuilder::from_seckey(**seed, key.signing_scalar())
            .with_aggregated_pubkey(aggregate_key)
            .with_message(&message)
            .with_extra_input(&extra)
            .build();
        SecretNonce(Box::new(nonce))
    }

    pub(crate) fn public_nonce(&self) -> PubNonce {
        self.0.public_nonce()
    }
}

impl Drop for SecretNonce {
    fn drop(&mut self) {
        // Overwrite in place; `black_box` keeps the compiler from dropping the dead store.
        *self.0 = SecNonce::new(Scalar::one(), Scalar::one(), Point::generator());
        std::hint::black_box(&*self.0);
    }
}

/// Holds one secret nonce until it is spent. Once spent or discarded the slot is empty forever.
pub(crate) struct NonceSlot {
    nonce: Option<SecretNonce>,
    public: PubNonce,
}

/// What a held signer's partial signature is computed over.
pub(crate) struct SignInput<'a> {
    pub ctx: &'a KeyAggContext,
    pub key: &'a HeldKey,
    pub aggnonce: &'a AggNonce,
    pub adaptor: Option<Point>,
    pub message: &'a [u8],
}

impl NonceSlot {
    pub(crate) fn new(nonce: SecretNonce) -> Self {
        let public = nonce.public_nonce();
        Self {
            nonce: Some(nonce),
            public,
        }
    }

    pub(crate) fn public(&self) -> &PubNonce {
        &self.public
    }

    /// Threat: nonce reuse. The secret nonce is taken out of the slot *before* signing, under
    /// the caller's exclusive borrow (the session's mutex), so a second call on this slot —
    /// a retry, a replay, or a concurrent request — finds `None` and fails, whatever happens
    /// to the first call. A failed signing attempt also leaves the slot empty: a nonce is
    /// never offered to the signer twice.
    pub(crate) fn sign(&mut self, input: &SignInput<'_>) -> Result<PartialSignature, Error> {
        let nonce = self
            .nonce
            .take()
            .ok_or(Error::Internal("secret nonce already consumed"))?;
        let seckey = input.key.signing_scalar();
        let adaptor = input
            .adaptor
            .map(MaybePoint::Valid)
            .unwrap_or(MaybePoint::Infinity);
        // The crate takes the nonce by value; it receives a copy while our allocation is wiped
        // when `nonce` drops at the end of this function.
        let result = musig2::adaptor::sign_partial(
            input.ctx,
            seckey,
            (*nonce.0).clone(),
            input.aggnonce,
            adaptor,
            input.message,
        );
        drop(nonce);
        result.map_err(|_| Error::Internal("partial signing failed"))
    }

    /// Drops the secret nonce without signing (session expired, failed or aborted).
    pub(crate) fn discard(&mut self) {
        self.nonce = None;
    }

    #[cfg(test)]
    pub(crate) fn is_spent(&self) -> bool {
        self.nonce.is_none()
    }
}

/// Parses a 66-byte public nonce; `index` names the participant in errors.
/// Both halves must be canonical compressed points (see `aggregate::strict_point` for why).
pub fn parse_public_nonce(bytes: &[u8; 66], index: u32) -> Result<PubNonce, Error> {
    let mut r1 = [0u8; 33];
    let mut r2 = [0u8; 33];
    r1.copy_from_slice(&bytes[..33]);
    r2.copy_from_slice(&bytes[33..]);
    match (strict_point(&r1), strict_point(&r2)) {
        (Some(r1), Some(r2)) => Ok(PubNonce::new(r1, r2)),
        _ => Err(Error::InvalidNonce { index }),
    }
}

/// BIP-327 `NonceAgg` over 66-byte public nonces in signer order. An invalid nonce is blamed on
/// its signer index. The result may contain the point at infinity (encoded as 33 zero bytes),
/// as BIP-327 specifies.
pub fn aggregate_nonces(nonces: &[[u8; 66]]) -> Result<[u8; 66], Error> {
    let parsed = nonces
        .iter()
        .enumerate()
        .map(|(i, n)| parse_public_nonce(n, i as u32))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AggNonce::sum(&parsed).to_bytes())
}

/// Tag of the round id.
pub const ROUND_TAG: &str = "sigil/musig2/round/v1";

/// The round id commits the session id to every participant's public nonces for every
/// message: `tagged_hash(ROUND_TAG, session_id || for each message, for each signer in index
/// order: pubnonce[66])`. Partial signatures are accepted only together with this id.
///
/// Threat: a partial signature computed for another nonce set (a stale retry, a replay from an
/// earlier or parallel session) must not be mixed into this aggregation; the id pins the exact
/// nonces a submission was made against.
pub(crate) fn round_id(session_id: &SessionId, per_message: &[Vec<PubNonce>]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(32 + per_message.iter().map(|m| m.len() * 66).sum::<usize>());
    buf.extend_from_slice(&session_id.0);
    for nonces in per_message {
        for n in nonces {
            buf.extend_from_slice(&n.to_bytes());
        }
    }
    tagged_hash(ROUND_TAG, &[&buf])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyId;

    fn held() -> HeldKey {
        let owner = k256::schnorr::SigningKey::from_bytes(&[9u8; 32]).unwrap();
        HeldKey::from_secret(
            KeyId([1; 16]),
            &Zeroizing::new([0x42u8; 32]),
            owner.verifying_key().to_bytes().into(),
            0,
        )
        .unwrap()
    }

    #[test]
    fn a_slot_signs_once_then_refuses() {
        let key = held();
        let pk = Point::try_from(key.public_key()).unwrap();
        let ctx = KeyAggContext::new([pk]).unwrap();
        let agg: Point = ctx.aggregated_pubkey();
        let sid = SessionId([3; 32]);
        let nonce = SecretNonce::generate(&Zeroizing::new([5; 32]), &key, agg, b"m", &sid, 0, 0);
        let mut slot = NonceSlot::new(nonce);
        let aggnonce = AggNonce::sum([slot.public().clone()]);
        let input = SignInput {
            ctx: &ctx,
            key: &key,
            aggnonce: &aggnonce,
            adaptor: None,
            message: b"m",
        };
        let psig = slot.sign(&input).unwrap();
        assert!(slot.is_spent());
        assert!(slot.sign(&input).is_err());
        let sig: [u8; 64] = musig2::aggregate_partial_signatures::<_, musig2::LiftedSignature>(
            &ctx,
            &aggnonce,
            [psig],
            b"m",
        )
        .unwrap()
        .to_bytes();
        assert!(crate::approval::verify_bip340(
            &agg.serialize_xonly(),
            b"m",
            &sig
        ));
    }

    #[test]
    fn every_input_changes_the_nonce() {
        let key = held();
        let g = Point::generator();
        let sid = SessionId([3; 32]);
        let base = SecretNonce::generate(&Zeroizing::new([5; 32]), &key, g, b"m", &sid, 0, 0)
            .public_nonce();
        let variants = [
            SecretNonce::generate(&Zeroizing::new([6; 32]), &key, g, b"m", &sid, 0, 0),
            SecretNonce::generate(&Zeroizing::new([5; 32]), &key, g, b"n", &sid, 0, 0),
            SecretNonce::generate(
                &Zeroizing::new([5; 32]),
                &key,
                g,
                b"m",
                &SessionId([4; 32]),
                0,
                0,
            ),
            SecretNonce::generate(&Zeroizing::new([5; 32]), &key, g, b"m", &sid, 1, 0),
            SecretNonce::generate(&Zeroizing::new([5; 32]), &key, g, b"m", &sid, 0, 1),
            SecretNonce::generate(
                &Zeroizing::new([5; 32]),
                &key,
                Scalar::two().base_point_mul(),
                b"m",
                &sid,
                0,
                0,
            ),
        ];
        for v in &variants {
            assert_ne!(v.public_nonce(), base);
        }
    }

    #[test]
    fn nonce_aggregation_names_the_bad_signer() {
        let good = SecNonce::new(Scalar::one(), Scalar::two(), Point::generator())
            .public_nonce()
            .to_bytes();
        let mut bad = good;
        bad[0] = 5;
        assert_eq!(
            aggregate_nonces(&[good, bad]).unwrap_err(),
            Error::InvalidNonce { index: 1 }
        );
        assert!(aggregate_nonces(&[good, good]).is_ok());
    }
}
