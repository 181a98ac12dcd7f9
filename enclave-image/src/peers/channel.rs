//! Sealed messages between enclaves (`sigil_protocol::peers::PeerMessage`), carried by an
//! untrusted coordinator.
//!
//! Threats, and what stops each:
//! - reading or forging a message: HPKE auth mode between the two attested per-boot keys;
//! - changing its protocol, session, round, sender, recipient or sequence number: the header
//!   is the HPKE `info`, so a changed field does not open;
//! - redirecting it to another enclave: the recipient's node and per-boot key are bound, and
//!   an enclave opens only what names its own node;
//! - replaying or reordering it within a session: sequence numbers per (protocol, session,
//!   sender) must increase; across boots, new per-boot keys make old messages unopenable;
//! - a sender that is not an allowed peer: its document must pass the measured peer policy
//!   (`PeerPolicy`) before its key is used.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sigil_protocol::encap::ServerKey;
use sigil_protocol::peers::{PEER_MESSAGE_VERSION, PeerMessage, peer_message_aad};
use sigil_protocol::wire::{Base64Bytes, Hex};

use super::{Peer, PeerError, PeerPolicy};

/// Most (protocol, session, sender) sequence records kept; the oldest go first. A record
/// evicted lets a replay of that session's old messages through, so it is far above the
/// sessions a deployment runs at once.
pub const MAX_SESSIONS_REMEMBERED: usize = 16_384;
/// Most verified peers remembered (their documents' keys), the oldest forgotten first.
pub const MAX_PEERS_REMEMBERED: usize = 1024;

/// Why a message was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("{0}")]
    Refused(String),
}

fn refused(m: impl Into<String>) -> ChannelError {
    ChannelError::Refused(m.into())
}

type SessionKey = (String, [u8; 32], [u8; 32]);

#[derive(Default)]
struct State {
    /// Next sequence number to send, per (protocol, session, recipient).
    next: HashMap<SessionKey, u64>,
    /// Highest sequence number accepted, per (protocol, session, sender).
    accepted: HashMap<SessionKey, u64>,
    order: VecDeque<(bool, SessionKey)>,
    /// Peers verified recently: node -> (peer, unix seconds verified).
    known: HashMap<[u8; 32], (Peer, u64)>,
    known_order: VecDeque<[u8; 32]>,
}

impl State {
    fn remember(&mut self, sending: bool, key: SessionKey) {
        self.order.push_back((sending, key));
        while self.order.len() > MAX_SESSIONS_REMEMBERED {
            if let Some((s, k)) = self.order.pop_front() {
                if s {
                    self.next.remove(&k);
                } else {
                    self.accepted.remove(&k);
                }
            }
        }
    }

    fn know(&mut self, peer: &Peer, now: u64) {
        if self.known.insert(peer.node, (peer.clone(), now)).is_none() {
            self.known_order.push_back(peer.node);
        }
        while self.known_order.len() > MAX_PEERS_REMEMBERED {
            if let Some(n) = self.known_order.pop_front() {
                self.known.remove(&n);
            }
        }
    }
}

/// This enclave's end of the peer channels.
#[derive(Default)]
pub struct Channel {
    state: Mutex<State>,
}

impl Channel {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain maps: a panic elsewhere leaves them consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seals `payload` from this enclave (`node`, `key`) to `recipient` (verified by the
    /// caller), at the next sequence number of (protocol, session, recipient).
    pub fn seal(
        &self,
        (node, key): ([u8; 32], &ServerKey),
        recipient: &Peer,
        (protocol, session, round): (&str, [u8; 32], u16),
        payload: &[u8],
    ) -> Result<PeerMessage, ChannelError> {
        let seq = {
            let mut st = self.lock();
            let k = (protocol.to_string(), session, recipient.node);
            let fresh = !st.next.contains_key(&k);
            let n = st.next.entry(k.clone()).or_insert(1);
            let seq = *n;
            *n += 1;
            if fresh {
                st.remember(true, k);
            }
            seq
        };
        let mut msg = PeerMessage {
            v: PEER_MESSAGE_VERSION,
            protocol: protocol.to_string(),
            session: Hex(session),
            round,
            sender: Hex(node),
            recipient: Hex(recipient.node),
            seq,
            enc: Hex([0; 32]),
            ct: Base64Bytes(Vec::new()),
        };
        let info = msg.info().map_err(refused)?;
        let aad = peer_message_aad(&key.public_key(), &recipient.public_key);
        let (enc, ct) = key
            .seal_auth(&recipient.public_key, &info, &aad, payload)
            .map_err(|e| refused(format!("sealing: {e}")))?;
        msg.enc = Hex(enc);
        msg.ct = Base64Bytes(ct);
        Ok(msg)
    }

    /// Opens `msg` for this enclave (`node`, `key`): the sender is verified from its
    /// document (`sender_document`) or known from one verified within the policy's age.
    pub fn open(
        &self,
        (node, key): ([u8; 32], &ServerKey),
        policy: &PeerPolicy,
        msg: &PeerMessage,
        sender_document: Option<&[u8]>,
        now: u64,
    ) -> Result<(Peer, Vec<u8>), ChannelError> {
        if msg.v != PEER_MESSAGE_VERSION {
            return Err(refused(format!(
                "message version {} is not {PEER_MESSAGE_VERSION}",
                msg.v
            )));
        }
        if msg.recipient.0 != node {
            return Err(refused("the message is addressed to another node"));
        }
        let sender = match sender_document {
            Some(doc) => {
                let peer = policy.verify(doc, now)?;
                if peer.node != msg.sender.0 {
                    return Err(refused("the sender's document is another node's"));
                }
                self.lock().know(&peer, now);
                peer
            }
            None => {
                let st = self.lock();
                match st.known.get(&msg.sender.0) {
                    Some((peer, at)) if now.saturating_sub(*at) <= policy.max_age_secs => {
                        peer.clone()
                    }
                    _ => {
                        return Err(refused(
                            "the sender is not a peer verified recently: send its document",
                        ));
                    }
                }
            }
        };
        let info = msg.info().map_err(refused)?;
        let aad = peer_message_aad(&sender.public_key, &key.public_key());
        let payload = key
            .open_auth(&sender.public_key, &msg.enc.0, &info, &aad, &msg.ct.0)
            .map_err(|_| {
                refused("the message does not open: changed, or not sealed by its sender to this enclave")
            })?;
        let mut st = self.lock();
        let k = (msg.protocol.clone(), msg.session.0, msg.sender.0);
        let last = st.accepted.get(&k).copied().unwrap_or(0);
        if msg.seq <= last {
            return Err(refused(format!(
                "replayed or out of order: sequence {} after {last} in this session",
                msg.seq
            )));
        }
        if st.accepted.insert(k.clone(), msg.seq).is_none() {
            st.remember(false, k);
        }
        Ok((sender, payload))
    }
}
