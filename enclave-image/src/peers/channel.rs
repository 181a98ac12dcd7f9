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

/// Most (protocol, session, sender) sessions this enclave accepts messages in, per boot. A
/// record is never evicted while this per-boot key lives (that would reopen the session's old
/// messages to replay); past the bound new sessions are refused until a restart (new keys
/// make every old message unopenable). A coordinator that fills it only denies service, which
/// it can do anyway by not carrying messages.
pub const MAX_SESSIONS_ACCEPTED: usize = 65_536;
/// Most (protocol, session, recipient) send counters kept, the oldest forgotten first: a
/// forgotten counter restarts at 1, which the recipient refuses as a replay (that session
/// stops, nothing is reopened).
pub const MAX_SESSIONS_SENT: usize = 16_384;
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
    next_order: VecDeque<SessionKey>,
    /// Highest sequence number accepted, per (protocol, session, sender); never evicted.
    accepted: HashMap<SessionKey, u64>,
    /// Peers whose messages opened, by node, from their newest document.
    known: HashMap<[u8; 32], Peer>,
    known_order: VecDeque<[u8; 32]>,
}

impl State {
    fn remember_sent(&mut self, key: SessionKey) {
        self.next_order.push_back(key);
        while self.next_order.len() > MAX_SESSIONS_SENT {
            if let Some(k) = self.next_order.pop_front() {
                self.next.remove(&k);
            }
        }
    }

    /// Records `peer` after one of its messages opened; an older document never replaces a
    /// newer one (threat: a coordinator replaying a node's earlier document to roll its key
    /// back).
    fn know(&mut self, peer: &Peer) {
        match self.known.get(&peer.node) {
            Some(known) if known.issued >= peer.issued => return,
            Some(_) => {}
            None => self.known_order.push_back(peer.node),
        }
        self.known.insert(peer.node, peer.clone());
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
        if recipient.node == node {
            return Err(refused("a message to this enclave itself"));
        }
        let seq = {
            let mut st = self.lock();
            let k = (protocol.to_string(), session, recipient.node);
            let fresh = !st.next.contains_key(&k);
            let n = st.next.entry(k.clone()).or_insert(1);
            let seq = *n;
            *n += 1;
            if fresh {
                st.remember_sent(k);
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
    /// document (`sender_document`), or known from a document made within the policy's age
    /// whose message opened here before.
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
        if msg.sender.0 == node {
            return Err(refused("a message from this enclave itself"));
        }
        let sender = match sender_document {
            Some(doc) => {
                let peer = policy.verify(doc, now)?;
                if peer.node != msg.sender.0 {
                    return Err(refused("the sender's document is another node's"));
                }
                peer
            }
            None => {
                let st = self.lock();
                match st.known.get(&msg.sender.0) {
                    // The document's own age, not when it was last shown.
                    Some(peer) if now.saturating_sub(peer.issued) <= policy.max_age_secs => {
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
        let payload = self.open_from((node, key), &sender, msg)?;
        Ok((sender, payload))
    }

    /// Opens `msg` for this enclave from `sender`, a peer the caller verified (for example
    /// the members of a key generation, verified when it started).
    pub fn open_from(
        &self,
        (node, key): ([u8; 32], &ServerKey),
        sender: &Peer,
        msg: &PeerMessage,
    ) -> Result<Vec<u8>, ChannelError> {
        if msg.v != PEER_MESSAGE_VERSION {
            return Err(refused(format!(
                "message version {} is not {PEER_MESSAGE_VERSION}",
                msg.v
            )));
        }
        if msg.recipient.0 != node {
            return Err(refused("the message is addressed to another node"));
        }
        if msg.sender.0 != sender.node || sender.node == node {
            return Err(refused("the message is not from the expected sender"));
        }
        let info = msg.info().map_err(refused)?;
        let aad = peer_message_aad(&sender.public_key, &key.public_key());
        let payload = key
            .open_auth(&sender.public_key, &msg.enc.0, &info, &aad, &msg.ct.0)
            .map_err(|_| {
                refused("the message does not open: changed, or not sealed by its sender to this enclave")
            })?;
        let mut st = self.lock();
        let k = (msg.protocol.clone(), msg.session.0, msg.sender.0);
        match st.accepted.get(&k).copied() {
            Some(last) if msg.seq <= last => {
                return Err(refused(
                    "replayed or out of order: an equal or later message of this session was accepted",
                ));
            }
            None if st.accepted.len() >= MAX_SESSIONS_ACCEPTED => {
                return Err(refused(format!(
                    "this enclave follows {MAX_SESSIONS_ACCEPTED} peer sessions this boot, the most it keeps"
                )));
            }
            _ => {}
        }
        st.accepted.insert(k, msg.seq);
        // Only a sender whose message opened is remembered (a bare document proves nothing
        // about who carries it).
        st.know(sender);
        Ok(payload)
    }
}
