//! Whom this enclave accepts as a peer: the measured `peers` policy, and the verification of
//! another enclave's attestation document against it.
//!
//! Threat: the parent (or any coordinator) presenting an enclave that is not one of ours (a
//! debug build, another image, a simulator) so that key shares or protocol messages go to it.
//! Trust comes from the measured configuration only: the chain must end in the pinned AWS root
//! (the sigil test root only where `trust_test_root` is set, which Nitro hardware refuses),
//! the COSE signature must verify, the PCRs must match an allow-listed image, the document
//! must be fresh, and it must carry a node identity and a per-boot key.

pub mod channel;

use std::collections::BTreeMap;

use sigil_attestation::{Policy, verify};
use sigil_protocol::user_data::ImageInfo;

use crate::boot::config::PeersConfig;
use crate::nsm::Mode;

/// A verified peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub node: [u8; 32],
    /// The per-boot X25519 key its document binds.
    pub public_key: [u8; 32],
    /// Index of the allow-list entry its PCRs match.
    pub image: usize,
    pub mode: String,
    pub age_secs: u64,
    /// When its document was made (unix seconds).
    pub issued: u64,
}

/// Why a document is not a peer's.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error(
        "this image accepts no peers (no peers section in its measured configuration, or one \
         refused at boot)"
    )]
    NoPeers,
    #[error("the document does not verify: {0}")]
    Document(String),
    #[error("the peer's PCRs match no image on the allow-list (peers.images)")]
    NotAllowed,
    #[error("the document carries no {0}")]
    Missing(&'static str),
    #[error(
        "this image's peers policy does not accept its own image (\"self\"), so it forwards \
         its quorum root to no one"
    )]
    NotSelf,
    #[error("the enclave is not of this image (its PCR0, PCR1 or PCR2 differ)")]
    NotSameImage,
}

/// The measured peer policy, checked against the mode once at boot.
#[derive(Clone, Debug)]
pub struct PeerPolicy {
    /// Each allowed image: PCR index -> value (PCR1 and PCR2 always, others as configured).
    images: Vec<BTreeMap<u8, Vec<u8>>>,
    pub(crate) max_age_secs: u64,
    trust_test_root: bool,
    /// This image's PCR0, PCR1 and PCR2 when the policy accepts it (`"self"`): the only
    /// image the quorum root is forwarded to.
    own: Option<BTreeMap<u8, Vec<u8>>>,
}

/// An enclave of this very image (PCR0, PCR1 and PCR2 equal to this one's), verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SameImage {
    pub public_key: [u8; 32],
    /// Its node, when its sealed state is open.
    pub node: Option<[u8; 32]>,
    pub mode: String,
}

impl PeerPolicy {
    /// No peers section: every document is refused.
    pub fn none() -> PeerPolicy {
        PeerPolicy {
            images: Vec::new(),
            max_age_secs: 0,
            trust_test_root: false,
            own: None,
        }
    }

    /// The policy `config` describes, `"self"` standing for `own` (this enclave's PCRs). The
    /// sigil test root's key is public, so trusting it on Nitro hardware would let the parent
    /// mint "peers": refused there (the boot then accepts no peers, as the stock image,
    /// made for the harness and local mode, does on hardware).
    pub fn new(
        config: &PeersConfig,
        mode: Mode,
        own: &BTreeMap<u8, Vec<u8>>,
    ) -> Result<PeerPolicy, String> {
        if config.trust_test_root && mode == Mode::Nitro {
            return Err(
                "peers.trust_test_root is set but this is Nitro hardware: the sigil test root's \
                 key is public, so anyone could forge a peer"
                    .into(),
            );
        }
        Ok(PeerPolicy {
            images: config.pcr_sets(own),
            max_age_secs: config.max_age(),
            trust_test_root: config.trust_test_root,
            own: config.names_self().then(|| {
                (0u8..3)
                    .filter_map(|i| own.get(&i).map(|v| (i, v.clone())))
                    .collect()
            }),
        })
    }

    /// The document verified under the policy's roots and age (not yet its PCRs).
    fn document(
        &self,
        document: &[u8],
        now: u64,
    ) -> Result<sigil_attestation::AttestationDocument, PeerError> {
        let mut policy = Policy::at(now);
        policy.max_age_seconds = Some(self.max_age_secs);
        policy.trust_test_root = self.trust_test_root;
        // Simulated documents (local mode, the harness) carry debug PCRs unless they claim a
        // manifest's; they exist only under the test root.
        policy.allow_debug = self.trust_test_root;
        verify(document, &policy)
            .map(|v| v.document)
            .map_err(|e| PeerError::Document(e.to_string()))
    }

    /// Its per-boot key and image description.
    fn key_and_info(
        d: &sigil_attestation::AttestationDocument,
    ) -> Result<([u8; 32], ImageInfo), PeerError> {
        let public_key: [u8; 32] = d
            .public_key
            .as_deref()
            .and_then(|k| k.try_into().ok())
            .ok_or(PeerError::Missing("32-byte per-boot public_key"))?;
        let info = d
            .user_data
            .as_deref()
            .ok_or(PeerError::Missing("user_data"))
            .and_then(|u| {
                ImageInfo::from_cbor(u).map_err(|e| PeerError::Document(e.to_string()))
            })?;
        Ok((public_key, info))
    }

    /// Verifies that `document` is a fresh one of an enclave of this very image: the same
    /// PCR0, PCR1 and PCR2 (the same kernel, code and measured configuration), under the
    /// policy's roots and age. Its sealed state need not be open (a locked enclave has no
    /// node yet). Refused unless the policy accepts this image (`"self"`).
    pub fn verify_same_image(&self, document: &[u8], now: u64) -> Result<SameImage, PeerError> {
        let own = self.own.as_ref().ok_or(PeerError::NotSelf)?;
        let d = self.document(document, now)?;
        if own.len() != 3 || own.iter().any(|(i, v)| d.pcrs.get(i) != Some(v)) {
            return Err(PeerError::NotSameImage);
        }
        let (public_key, info) = Self::key_and_info(&d)?;
        Ok(SameImage {
            public_key,
            node: info.node,
            mode: info.mode,
        })
    }

    /// Verifies `document` at `now` (unix seconds).
    pub fn verify(&self, document: &[u8], now: u64) -> Result<Peer, PeerError> {
        if self.images.is_empty() {
            return Err(PeerError::NoPeers);
        }
        let d = self.document(document, now)?;
        let image = self
            .images
            .iter()
            .position(|want| want.iter().all(|(i, value)| d.pcrs.get(i) == Some(value)))
            .ok_or(PeerError::NotAllowed)?;
        let (public_key, info) = Self::key_and_info(&d)?;
        let node = info.node.ok_or(PeerError::Missing(
            "node identity (its sealed state is not open)",
        ))?;
        Ok(Peer {
            node,
            public_key,
            image,
            mode: info.mode,
            age_secs: now.saturating_sub(d.timestamp_ms / 1000),
            issued: d.timestamp_ms / 1000,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::config::MeasuredConfig;

    fn config(trust_test_root: bool) -> PeersConfig {
        let text = format!(
            r#"{{"peers": {{"images": [{{"pcr1": "{}", "pcr2": "{}"}}], "trust_test_root": {trust_test_root}}}}}"#,
            "11".repeat(48),
            "22".repeat(48)
        );
        MeasuredConfig::parse(text.as_bytes())
            .unwrap()
            .peers
            .unwrap()
    }

    #[test]
    fn the_test_root_is_refused_on_nitro_hardware() {
        let e = PeerPolicy::new(&config(true), Mode::Nitro, &BTreeMap::new()).unwrap_err();
        assert!(e.contains("trust_test_root"), "{e}");
        assert!(PeerPolicy::new(&config(false), Mode::Nitro, &BTreeMap::new()).is_ok());
        assert!(PeerPolicy::new(&config(true), Mode::Local, &BTreeMap::new()).is_ok());
    }

    #[test]
    fn without_a_policy_nothing_is_a_peer() {
        assert_eq!(
            PeerPolicy::none().verify(b"anything", 0),
            Err(PeerError::NoPeers)
        );
        // With one, garbage is a document that does not verify.
        let p = PeerPolicy::new(&config(true), Mode::Local, &BTreeMap::new()).unwrap();
        assert!(matches!(
            p.verify(b"garbage", 0),
            Err(PeerError::Document(_))
        ));
    }
}
