//! `POST /v1/peers/verify`: another enclave's attestation document, verified against this
//! enclave's measured peer policy (`crate::peers`); the answer is sealed to the coordinator,
//! so what it reports (the peer's node and per-boot key) is this enclave's word.
//!
//! `POST /v1/peers/ping/send` and `/receive`: a channel check between two enclaves through
//! the coordinator, on the sealed peer messages of `crate::peers::channel`.

use sigil_protocol::encap::ServerKey;
use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::peers::{
    MAX_PEER_DOCUMENT, MAX_PEER_PING_TEXT, PeerMessage, PeerPingReceive, PeerPingReceived,
    PeerPingSend, PeerView, VerifyPeerRequest,
};
use sigil_protocol::wire::Hex;

use crate::peers::channel::{Channel, ChannelError};
use crate::peers::{PeerError, PeerPolicy};

pub(super) fn verify(
    policy: &PeerPolicy,
    r: VerifyPeerRequest,
    now: u64,
) -> Result<PeerView, ApiError> {
    check_document(&r.document.0)?;
    let peer = policy.verify(&r.document.0, now).map_err(peer_refusal)?;
    Ok(PeerView {
        node: Hex(peer.node),
        public_key: Hex(peer.public_key),
        image: peer.image as u32,
        mode: peer.mode,
        age_secs: peer.age_secs,
    })
}

/// Documents are bounded before any parsing (the body limit bounds them too, loosely).
fn check_document(doc: &[u8]) -> Result<(), ApiError> {
    if doc.len() > MAX_PEER_DOCUMENT {
        return Err(ApiError::new(
            Code::PeerDocumentRefused,
            format!(
                "the document is {} bytes; at most {MAX_PEER_DOCUMENT}",
                doc.len()
            ),
        ));
    }
    Ok(())
}

/// This enclave's node and per-boot key; the node exists once the sealed state is open.
fn me(node: Option<[u8; 32]>, key: &ServerKey) -> Result<([u8; 32], &ServerKey), ApiError> {
    let node = node.ok_or_else(|| {
        ApiError::new(
            Code::SealingUnavailable,
            "no node identity yet: the sealed state is not open",
        )
    })?;
    Ok((node, key))
}

/// A document that is not a peer's: 403 when the policy refuses it, 400 when it is no
/// valid document.
pub(super) fn peer_refusal(p: PeerError) -> ApiError {
    let code = match p {
        PeerError::NoPeers
        | PeerError::NotAllowed
        | PeerError::NotSelf
        | PeerError::NotSameImage => Code::PeerNotAllowed,
        PeerError::Document(_) | PeerError::Missing(_) => Code::PeerDocumentRefused,
    };
    ApiError::new(code, p.to_string())
}

pub(super) fn channel_refusal(e: ChannelError) -> ApiError {
    match e {
        ChannelError::Peer(p) => peer_refusal(p),
        ChannelError::Refused(m) => ApiError::new(Code::PeerMessageRefused, m),
    }
}

/// What the protocols that run between enclaves (FROST, MuSig2 across enclaves) need from
/// this one: its node and per-boot key, its peer policy and channel, the sealed store and the
/// owner check.
pub struct PeerCtx<'a> {
    pub node: Option<[u8; 32]>,
    pub key: &'a ServerKey,
    pub policy: &'a PeerPolicy,
    pub channel: &'a Channel,
    pub sealing: &'a crate::seal::Sealing,
    pub owners: &'a super::owner::OwnerCheck,
}

impl PeerCtx<'_> {
    /// This enclave's node and per-boot key; the node exists once the sealed state is open.
    pub fn me(&self) -> Result<([u8; 32], &ServerKey), ApiError> {
        me(self.node, self.key)
    }
}

/// The protocol name of peer pings.
const PING: &str = "ping";

pub(super) fn ping_send(
    (policy, channel): (&PeerPolicy, &Channel),
    me_: (Option<[u8; 32]>, &sigil_protocol::encap::ServerKey),
    r: PeerPingSend,
    now: u64,
) -> Result<PeerMessage, ApiError> {
    if r.text.len() > MAX_PEER_PING_TEXT {
        return Err(ApiError::new(
            Code::MessageTooLong,
            format!(
                "text is {} bytes; at most {MAX_PEER_PING_TEXT}",
                r.text.len()
            ),
        ));
    }
    let me_ = me(me_.0, me_.1)?;
    check_document(&r.recipient_document.0)?;
    let recipient = policy
        .verify(&r.recipient_document.0, now)
        .map_err(|e| channel_refusal(e.into()))?;
    channel
        .seal(me_, &recipient, (PING, r.session.0, 0), r.text.as_bytes())
        .map_err(channel_refusal)
}

pub(super) fn ping_receive(
    (policy, channel): (&PeerPolicy, &Channel),
    me_: (Option<[u8; 32]>, &sigil_protocol::encap::ServerKey),
    r: PeerPingReceive,
    now: u64,
) -> Result<PeerPingReceived, ApiError> {
    if r.message.protocol != PING {
        return Err(ApiError::new(
            Code::PeerMessageRefused,
            format!("a {:?} message is not a ping", r.message.protocol),
        ));
    }
    let me_ = me(me_.0, me_.1)?;
    if let Some(d) = &r.sender_document {
        check_document(&d.0)?;
    }
    let (sender, payload) = channel
        .open(
            me_,
            policy,
            &r.message,
            r.sender_document.as_ref().map(|d| d.0.as_slice()),
            now,
        )
        .map_err(channel_refusal)?;
    let text = String::from_utf8(payload)
        .map_err(|_| ApiError::new(Code::PeerMessageRefused, "the ping is not UTF-8"))?;
    Ok(PeerPingReceived {
        sender: Hex(sender.node),
        session: r.message.session,
        seq: r.message.seq,
        text,
    })
}
