//! Approvals: the owner of every held key in a session must BIP-340-sign the session digest
//! before the engine touches that key. The digest is defined here, as a pure function, so that
//! clients can recompute it from what they asked for instead of trusting the value they are
//! shown.

use crate::aggregate::Tweak;
use crate::codec::tagged_hash;
use crate::session::{MessageSpec, SessionId};

/// Tag of the approval digest; a new encoding gets a new tag.
pub const APPROVAL_TAG: &str = "sigil/musig2/approval/v1";

/// What an approval commits to.
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    pub session_id: &'a SessionId,
    /// The aggregate's untweaked key (compressed); it commits to the ordered participant list.
    pub internal_key: &'a [u8; 33],
    /// The aggregate's own tweaks, in order.
    pub tweaks: &'a [Tweak],
    /// The messages with their per-message tweaks, in order.
    pub messages: &'a [MessageSpec],
    pub adaptor_point: Option<&'a [u8; 33]>,
    pub expires_at: u64,
}

/// The session digest that owners sign:
///
/// ```text
/// tagged_hash("sigil/musig2/approval/v1",
///     session_id[32] || internal_key[33] || u8 n_tweaks || n_tweaks * tweak[33]
///     || expires_at u64 || (0x00 | 0x01 || adaptor_point[33])
///     || u32 n_messages || n_messages * (u32 len || message || (0x00 | 0x01 || tweak[33])))
/// ```
///
/// integers big-endian, `tweak = kind u8 (1 plain, 2 x-only, 3 taproot, 4 unspendable) || 32
/// bytes`. Threat: an approval must not be reusable for anything else. Every field that
/// changes what gets signed (key, tweaks, messages, adaptor point) or when (expiry) and the
/// session id (so an approval cannot be replayed into a second session) is inside, and every
/// variable-length part is length-prefixed so no two inputs encode alike.
pub fn session_digest(input: &DigestInput<'_>) -> [u8; 32] {
    let mut buf = Vec::with_capacity(
        128 + input
            .messages
            .iter()
            .map(|m| m.message.len() + 38)
            .sum::<usize>(),
    );
    buf.extend_from_slice(&input.session_id.0);
    buf.extend_from_slice(input.internal_key);
    buf.push(input.tweaks.len() as u8);
    for t in input.tweaks {
        buf.extend_from_slice(&t.encode());
    }
    buf.extend_from_slice(&input.expires_at.to_be_bytes());
    match input.adaptor_point {
        None => buf.push(0),
        Some(p) => {
            buf.push(1);
            buf.extend_from_slice(p);
        }
    }
    buf.extend_from_slice(&(input.messages.len() as u32).to_be_bytes());
    for m in input.messages {
        buf.extend_from_slice(&(m.message.len() as u32).to_be_bytes());
        buf.extend_from_slice(&m.message);
        match &m.tweak {
            None => buf.push(0),
            Some(t) => {
                buf.push(1);
                buf.extend_from_slice(&t.encode());
            }
        }
    }
    tagged_hash(APPROVAL_TAG, &[&buf])
}

/// BIP-340 verification with k256 (independent of the musig2 crate's own arithmetic). Any
/// message length is accepted, as BIP-340 allows. Invalid keys or encodings verify as false.
pub fn verify_bip340(pubkey_xonly: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = k256::schnorr::VerifyingKey::from_bytes(pubkey_xonly) else {
        return false;
    };
    let Ok(sig) = k256::schnorr::Signature::try_from(&signature[..]) else {
        return false;
    };
    key.verify_raw(message, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        id: &'a SessionId,
        key: &'a [u8; 33],
        msgs: &'a [MessageSpec],
        adaptor: Option<&'a [u8; 33]>,
    ) -> DigestInput<'a> {
        DigestInput {
            session_id: id,
            internal_key: key,
            tweaks: &[],
            messages: msgs,
            adaptor_point: adaptor,
            expires_at: 100,
        }
    }

    #[test]
    fn digest_changes_with_every_field() {
        let id = SessionId([1; 32]);
        let key = [2u8; 33];
        let msgs = vec![MessageSpec {
            message: b"ab".to_vec(),
            tweak: None,
        }];
        let base = session_digest(&input(&id, &key, &msgs, None));

        let other_id = SessionId([9; 32]);
        assert_ne!(base, session_digest(&input(&other_id, &key, &msgs, None)));
        let other_key = [3u8; 33];
        assert_ne!(base, session_digest(&input(&id, &other_key, &msgs, None)));
        let adaptor = [4u8; 33];
        assert_ne!(
            base,
            session_digest(&input(&id, &key, &msgs, Some(&adaptor)))
        );
        let mut later = input(&id, &key, &msgs, None);
        later.expires_at = 101;
        assert_ne!(base, session_digest(&later));
        let tweaks = [Tweak::TaprootUnspendable];
        let mut tweaked = input(&id, &key, &msgs, None);
        tweaked.tweaks = &tweaks;
        assert_ne!(base, session_digest(&tweaked));
        // Splitting one message into two must not collide (length prefixes).
        let split = vec![
            MessageSpec {
                message: b"a".to_vec(),
                tweak: None,
            },
            MessageSpec {
                message: b"b".to_vec(),
                tweak: None,
            },
        ];
        assert_ne!(base, session_digest(&input(&id, &key, &split, None)));
        let msg_tweak = vec![MessageSpec {
            message: b"ab".to_vec(),
            tweak: Some(Tweak::Plain([0; 32])),
        }];
        assert_ne!(base, session_digest(&input(&id, &key, &msg_tweak, None)));
    }

    #[test]
    fn verify_bip340_accepts_k256_signatures_only_for_the_signed_message() {
        let sk = k256::schnorr::SigningKey::from_bytes(&[5u8; 32]).unwrap();
        let pk: [u8; 32] = sk.verifying_key().to_bytes().into();
        let sig: [u8; 64] = sk.sign_raw(b"digest", &[0u8; 32]).unwrap().to_bytes();
        assert!(verify_bip340(&pk, b"digest", &sig));
        assert!(!verify_bip340(&pk, b"digesT", &sig));
        let mut bad = sig;
        bad[63] ^= 1;
        assert!(!verify_bip340(&pk, b"digest", &bad));
        assert!(!verify_bip340(&[0u8; 32], b"digest", &sig));
    }
}
