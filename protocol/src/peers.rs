//! Peer enclaves: what a coordinator asks one enclave about another.
//!
//! `POST /v1/peers/verify` (encapsulated): the coordinator hands an enclave another enclave's
//! attestation document (fetched from that enclave with a fresh nonce); the enclave verifies
//! it against its own measured `peers` policy (chain to the pinned root, signature, PCRs on
//! the allow-list, age) and answers, sealed, with the peer's node identity and per-boot key.
//! Nothing the coordinator or the parent says changes whom the enclave trusts.

use serde::{Deserialize, Serialize};

use crate::wire::{Base64Bytes, Hex32};

/// Largest attestation document taken (a real one is about 4.5 KiB).
pub const MAX_PEER_DOCUMENT: usize = 16 * 1024;

/// `POST /v1/peers/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyPeerRequest {
    /// The peer's COSE_Sign1 attestation document.
    pub document: Base64Bytes,
}

/// A peer this enclave accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerView {
    /// The peer's long-term node identity (x-only key, from its `user_data`).
    pub node: Hex32,
    /// The peer's per-boot X25519 key (the document's `public_key`).
    pub public_key: Hex32,
    /// Which entry of this enclave's `peers.images` allow-list the peer's PCRs match.
    pub image: u32,
    /// The peer's mode as its `user_data` says (`nitro`, `harness` or `local`).
    pub mode: String,
    /// How old the document was when verified, seconds.
    pub age_secs: u64,
}

/// Version of [`PeerMessage`].
pub const PEER_MESSAGE_VERSION: u8 = 1;
/// Longest protocol name (lowercase letters, digits and `-`).
pub const MAX_PROTOCOL_LEN: usize = 32;
/// Largest sealed payload of one message.
pub const MAX_PEER_PAYLOAD: usize = 64 * 1024;
/// Longest peer ping text.
pub const MAX_PEER_PING_TEXT: usize = 1024;
/// The label that starts every message's HPKE `info`.
pub const PEER_MESSAGE_LABEL: &[u8] = b"sigil peer message v1";

/// A message from one enclave to another, carried by anyone (the CLI, a library, the parents'
/// own network): sealed to the recipient's attested per-boot key in HPKE auth mode (RFC 9180
/// §5.1.3; X25519, HKDF-SHA256, AES-256-GCM) with the sender's attested per-boot key, so only
/// the recipient opens it and only the sender could have made it.
///
/// The header is bound into the seal: HPKE `info` is [`PEER_MESSAGE_LABEL`] `|| 0x00 ||`
/// [`PeerMessage::header`], and the AEAD's associated data is the sender's then the
/// recipient's per-boot key (32 bytes each). A message changed in any field, sent to another
/// enclave, or replayed to a later boot (new per-boot keys) does not open; a replay or a
/// reordering within a session is refused by its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerMessage {
    /// [`PEER_MESSAGE_VERSION`].
    pub v: u8,
    /// Which protocol the payload belongs to (for example `ping`).
    pub protocol: String,
    /// The protocol run, chosen by the coordinator.
    pub session: Hex32,
    /// The protocol's round.
    pub round: u16,
    /// The sender's node identity.
    pub sender: Hex32,
    /// The recipient's node identity.
    pub recipient: Hex32,
    /// Per (protocol, session, sender, recipient), from 1, increasing.
    pub seq: u64,
    /// HPKE's encapsulated key.
    pub enc: Hex32,
    /// The sealed payload.
    pub ct: Base64Bytes,
}

impl PeerMessage {
    /// `v u8 || len u8 || protocol || session[32] || round u16 || sender[32] || recipient[32]
    /// || seq u64` (integers big-endian), or why the fields are out of bounds.
    pub fn header(&self) -> Result<Vec<u8>, &'static str> {
        check_protocol(&self.protocol)?;
        let mut h = Vec::with_capacity(2 + self.protocol.len() + 32 * 3 + 10);
        h.push(self.v);
        h.push(self.protocol.len() as u8);
        h.extend_from_slice(self.protocol.as_bytes());
        h.extend_from_slice(&self.session.0);
        h.extend_from_slice(&self.round.to_be_bytes());
        h.extend_from_slice(&self.sender.0);
        h.extend_from_slice(&self.recipient.0);
        h.extend_from_slice(&self.seq.to_be_bytes());
        Ok(h)
    }

    /// HPKE `info` for this message.
    pub fn info(&self) -> Result<Vec<u8>, &'static str> {
        let mut info = PEER_MESSAGE_LABEL.to_vec();
        info.push(0);
        info.extend_from_slice(&self.header()?);
        Ok(info)
    }
}

/// The associated data: the sender's then the recipient's per-boot key.
pub fn peer_message_aad(sender_key: &[u8; 32], recipient_key: &[u8; 32]) -> [u8; 64] {
    let mut aad = [0u8; 64];
    aad[..32].copy_from_slice(sender_key);
    aad[32..].copy_from_slice(recipient_key);
    aad
}

/// 1..=32 bytes of lowercase letters, digits and `-`.
pub fn check_protocol(p: &str) -> Result<(), &'static str> {
    let ok = !p.is_empty()
        && p.len() <= MAX_PROTOCOL_LEN
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err("protocol must be 1..=32 lowercase letters, digits or '-'")
    }
}

/// `POST /v1/peers/ping/send`: seal a ping to a peer (a channel check between enclaves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerPingSend {
    /// The recipient's attestation document (fresh).
    pub recipient_document: Base64Bytes,
    pub session: Hex32,
    /// At most [`MAX_PEER_PING_TEXT`] bytes.
    pub text: String,
}

/// `POST /v1/peers/ping/receive`: open a ping from a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerPingReceive {
    pub message: PeerMessage,
    /// The sender's attestation document; may be left out when this enclave verified it
    /// recently (within its `peers.max_age_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_document: Option<Base64Bytes>,
}

/// A ping opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerPingReceived {
    pub sender: Hex32,
    pub session: Hex32,
    pub seq: u64,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Hex;

    #[test]
    fn shapes_are_strict() {
        let r: VerifyPeerRequest = serde_json::from_str(r#"{"document":"AAEC"}"#).unwrap();
        assert_eq!(r.document.0, vec![0, 1, 2]);
        assert!(serde_json::from_str::<VerifyPeerRequest>(r#"{"document":"AAEC","x":1}"#).is_err());
        assert!(
            serde_json::from_str::<VerifyPeerRequest>(r#"{"document":"not base64!"}"#).is_err()
        );
    }

    #[test]
    fn the_header_binds_every_field_and_bounds_the_protocol() {
        let m = PeerMessage {
            v: PEER_MESSAGE_VERSION,
            protocol: "ping".into(),
            session: Hex([1; 32]),
            round: 2,
            sender: Hex([3; 32]),
            recipient: Hex([4; 32]),
            seq: 5,
            enc: Hex([6; 32]),
            ct: Base64Bytes(vec![7]),
        };
        let h = m.header().unwrap();
        assert_eq!(h.len(), 2 + 4 + 32 + 2 + 32 + 32 + 8);
        assert_eq!(&h[..6], b"\x01\x04ping");
        for change in [
            |m: &mut PeerMessage| m.round = 3,
            |m: &mut PeerMessage| m.seq = 6,
            |m: &mut PeerMessage| m.session.0[0] = 9,
            |m: &mut PeerMessage| m.sender.0[0] = 9,
            |m: &mut PeerMessage| m.recipient.0[0] = 9,
            |m: &mut PeerMessage| m.protocol = "pong".into(),
            |m: &mut PeerMessage| m.v = 2,
        ] {
            let mut other = m.clone();
            change(&mut other);
            assert_ne!(other.info().unwrap(), m.info().unwrap());
        }
        // enc and ct are not in the header (the seal covers them).
        for bad in ["", "Ping", "a b", &"x".repeat(33)] {
            let mut other = m.clone();
            other.protocol = bad.into();
            assert!(other.header().is_err(), "{bad:?}");
        }
        assert!(m.info().unwrap().len() <= 256);
    }
}
