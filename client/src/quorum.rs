//! An administrator of a quorum root: its key, fetching and checking its share, approving
//! genesis and posting its share to unlock an enclave.
//!
//! An administrator key file holds one 32-byte seed (hex, mode 0600); the BIP-340 signing key
//! and the X25519 HPKE key are derived from it with their own labels, so one secret backs up
//! both.
//!
//! A share file holds the share as the enclave sealed it (to this administrator's HPKE key)
//! with the genesis id and the commitments it was checked against: it is not secret on its
//! own, and it pins the genesis. `unlock` refuses an enclave that shows another genesis or
//! other commitments (a parent that replaced the record with one of its own).

use k256::schnorr::SigningKey;
use serde::{Deserialize, Serialize};
use sigil_protocol::encap::ServerKey;
use sigil_protocol::endpoint as ep;
use sigil_protocol::quorum::{
    Admin, Approval, ForwardRequest, GenesisRequest, QuorumView, ReceiveRequest, ReshareRequest,
    SHARE_LEN, SealedShare, ShareRequest, StatusRequest, UnlockRequest, config_digest,
    genesis_digest, reshare_digest, share_digest, share_info,
};
use sigil_protocol::wire::{Base64Bytes, Hex, SecretHex, Signature, owner_message, tagged_digest};
use sigil_quorum::{Commitments, Share};
use zeroize::Zeroizing;

use crate::owner::{read_secret_file, write_secret_file};
use crate::{AttestedEnclave, Client, ClientError};

fn protocol(m: impl Into<String>) -> ClientError {
    ClientError::Protocol(m.into())
}

/// An administrator's keys.
pub struct AdminKey {
    sign: SigningKey,
    hpke: ServerKey,
}

impl AdminKey {
    /// A fresh key from OS randomness.
    pub fn generate() -> Result<(AdminKey, Zeroizing<[u8; 32]>), ClientError> {
        loop {
            let mut seed = Zeroizing::new([0u8; 32]);
            getrandom::fill(&mut seed[..]).map_err(|e| protocol(format!("no randomness: {e}")))?;
            // A derived signing key out of range (chance 2^-128) is drawn again.
            if let Ok(k) = AdminKey::from_seed(&seed) {
                return Ok((k, seed));
            }
        }
    }

    pub fn from_seed(seed: &[u8; 32]) -> Result<AdminKey, ClientError> {
        let sign = Zeroizing::new(tagged_digest("sigil/admin-key/sign", [&seed[..]]));
        let hpke = Zeroizing::new(tagged_digest("sigil/admin-key/hpke", [&seed[..]]));
        Ok(AdminKey {
            sign: SigningKey::from_bytes(&sign[..])
                .map_err(|_| protocol("the seed derives no valid signing key"))?,
            hpke: ServerKey::from_seed(&hpke[..])
                .map_err(|e| protocol(format!("the HPKE key: {e}")))?,
        })
    }

    /// Reads a key file (64 hex characters).
    pub fn load(path: &str) -> Result<AdminKey, ClientError> {
        let bytes = read_secret_file(path, "administrator key")?;
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            bytes[..]
                .try_into()
                .map_err(|_| protocol(format!("administrator key {path}: not 32 bytes")))?,
        );
        AdminKey::from_seed(&seed)
    }

    /// Writes a new key file (mode 0600, never overwritten) and returns the key.
    pub fn create(path: &str) -> Result<AdminKey, ClientError> {
        let (key, seed) = AdminKey::generate()?;
        write_secret_file(path, "administrator key", &seed[..])?;
        Ok(key)
    }

    /// The entry of the measured configuration's `quorum.admins` for this key.
    pub fn admin(&self, name: &str) -> Admin {
        Admin {
            name: name.to_string(),
            sign: Hex(self.sign.verifying_key().to_bytes().into()),
            hpke: Hex(self.hpke.public_key()),
        }
    }

    fn sign_for(
        &self,
        enclave: &AttestedEnclave,
        digest: &[u8; 32],
    ) -> Result<Signature, ClientError> {
        let mut aux = [0u8; 32];
        getrandom::fill(&mut aux).map_err(|e| protocol(format!("no randomness: {e}")))?;
        let sig = self
            .sign
            .sign_raw(&owner_message(&enclave.public_key, digest), &aux)
            .map_err(|e| protocol(format!("signing: {e}")))?;
        Ok(Hex(sig.to_bytes()))
    }

    /// This administrator's approval of a re-share of the enclave's current genesis (`view`,
    /// as the attested enclave answered it) to `threshold` of `admins`, for this boot.
    pub fn approve_reshare(
        &self,
        enclave: &AttestedEnclave,
        view: &QuorumView,
        threshold: u16,
        admins: &[Admin],
    ) -> Result<Approval, ClientError> {
        let genesis = view
            .genesis
            .as_ref()
            .ok_or_else(|| protocol("the enclave's quorum has no genesis"))?;
        let digest = reshare_digest(&genesis.0, &config_digest(threshold, admins));
        Ok(Approval {
            admin: self.index_in(view)?,
            signature: self.sign_for(enclave, &digest)?,
        })
    }

    /// This administrator's approval of `digest` for this boot of `enclave` (a registry
    /// change, for example).
    pub fn approve(
        &self,
        enclave: &AttestedEnclave,
        view: &QuorumView,
        digest: &[u8; 32],
    ) -> Result<Approval, ClientError> {
        Ok(Approval {
            admin: self.index_in(view)?,
            signature: self.sign_for(enclave, digest)?,
        })
    }

    /// This key's index in `view`'s administrators (1-based), found by its signing key.
    pub fn index_in(&self, view: &QuorumView) -> Result<u8, ClientError> {
        let me: [u8; 32] = self.sign.verifying_key().to_bytes().into();
        view.admins
            .iter()
            .position(|a| a.sign.0 == me)
            .and_then(|i| u8::try_from(i + 1).ok())
            .ok_or_else(|| protocol("this key is not an administrator of the enclave's quorum"))
    }

    /// Opens a sealed share and checks it against its commitments.
    fn open(&self, s: &SealedShare) -> Result<Share, ClientError> {
        let plain = Zeroizing::new(
            self.hpke
                .open_base(
                    &s.enc.0,
                    &share_info(&s.genesis.0, s.index),
                    &[],
                    &s.ciphertext.0,
                )
                .map_err(|_| {
                    protocol(format!(
                        "share {} does not open with this key (not sealed to it, or altered)",
                        s.index
                    ))
                })?,
        );
        let share = Share::from_bytes(&plain).map_err(|e| protocol(e.to_string()))?;
        if share.index != s.index {
            return Err(protocol(format!(
                "the sealed share {} holds share {}",
                s.index, share.index
            )));
        }
        let commitments = Commitments(s.commitments.iter().map(|c| c.0).collect());
        if commitments.threshold() != usize::from(s.threshold) {
            return Err(protocol("the commitments do not match the threshold"));
        }
        sigil_quorum::verify(&share, &commitments).map_err(|e| {
            protocol(format!(
                "{e}: this share is not what the genesis committed to; do not keep it"
            ))
        })?;
        Ok(share)
    }
}

/// What `sigil admin share fetch` keeps: the share as sealed, and what it was checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareFile {
    pub v: u32,
    pub share: SealedShare,
}

impl ShareFile {
    pub fn load(path: &str) -> Result<ShareFile, ClientError> {
        let text = std::fs::read(path).map_err(|e| protocol(format!("share file {path}: {e}")))?;
        serde_json::from_slice(&text).map_err(|e| protocol(format!("share file {path}: {e}")))
    }

    /// Writes the file (never overwriting one).
    pub fn save(&self, path: &str) -> Result<(), ClientError> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| protocol(format!("share file {path}: {e}")))?;
        let text = serde_json::to_vec_pretty(self).map_err(|e| protocol(e.to_string()))?;
        f.write_all(&text)
            .and_then(|_| f.sync_all())
            .map_err(|e| protocol(format!("share file {path}: {e}")))
    }
}

impl Client {
    pub fn quorum_status(&self, enclave: &AttestedEnclave) -> Result<QuorumView, ClientError> {
        self.call::<ep::QuorumStatus>(enclave, &StatusRequest {})
    }

    /// Approves genesis as `key`.
    pub fn quorum_genesis(
        &self,
        enclave: &AttestedEnclave,
        key: &AdminKey,
    ) -> Result<QuorumView, ClientError> {
        let view = self.quorum_status(enclave)?;
        let admin = key.index_in(&view)?;
        let signature = key.sign_for(enclave, &genesis_digest(&view.config.0))?;
        self.call::<ep::QuorumGenesis>(enclave, &GenesisRequest { admin, signature })
    }

    /// Fetches this administrator's sealed share and checks it against the commitments
    /// before it is returned for keeping.
    pub fn quorum_share_fetch(
        &self,
        enclave: &AttestedEnclave,
        key: &AdminKey,
    ) -> Result<ShareFile, ClientError> {
        let view = self.quorum_status(enclave)?;
        let index = key.index_in(&view)?;
        let sealed = self.call::<ep::QuorumShare>(enclave, &ShareRequest { index })?;
        if Some(&sealed.genesis) != view.genesis.as_ref() || sealed.commitments != view.commitments
        {
            return Err(protocol(
                "the share's genesis or commitments differ from the enclave's status",
            ));
        }
        key.open(&sealed)?;
        Ok(ShareFile {
            v: 1,
            share: sealed,
        })
    }

    /// Posts this administrator's share to unlock the enclave; refuses an enclave that shows
    /// another genesis or other commitments than the share file pinned.
    pub fn quorum_unlock(
        &self,
        enclave: &AttestedEnclave,
        key: &AdminKey,
        file: &ShareFile,
    ) -> Result<QuorumView, ClientError> {
        let view = self.quorum_status(enclave)?;
        let pinned = &file.share;
        if view.genesis.as_ref() != Some(&pinned.genesis) || view.commitments != pinned.commitments
        {
            return Err(protocol(format!(
                "the enclave shows genesis {} but this share is for genesis {}: refusing to \
                 post it (the parent may have replaced the quorum record)",
                view.genesis
                    .as_ref()
                    .map(|g| hex::encode(g.0))
                    .unwrap_or_else(|| "none".into()),
                hex::encode(pinned.genesis.0)
            )));
        }
        let share = key.open(pinned)?;
        let bytes: Zeroizing<[u8; SHARE_LEN]> = share.to_bytes();
        self.quorum_post_share(enclave, key, pinned.genesis.0, &bytes)
    }

    /// Re-shares the enclave's quorum to `threshold` of `admins`, with the current
    /// administrators' `approvals` (at least the current threshold of them).
    pub fn quorum_reshare(
        &self,
        enclave: &AttestedEnclave,
        threshold: u16,
        admins: Vec<Admin>,
        approvals: Vec<Approval>,
    ) -> Result<QuorumView, ClientError> {
        self.call::<ep::QuorumReshare>(
            enclave,
            &ReshareRequest {
                threshold,
                admins,
                approvals,
            },
        )
    }

    /// Posts share bytes as they are (no check): what `quorum_unlock` sends after its checks.
    /// Public so tests can post a bad share and see it refused.
    pub fn quorum_post_share(
        &self,
        enclave: &AttestedEnclave,
        key: &AdminKey,
        genesis: [u8; 32],
        share: &Zeroizing<[u8; SHARE_LEN]>,
    ) -> Result<QuorumView, ClientError> {
        let index = share[0];
        let signature = key.sign_for(enclave, &share_digest(&genesis, index, share))?;
        self.call::<ep::QuorumUnlock>(
            enclave,
            &UnlockRequest {
                genesis: Hex(genesis),
                index,
                share: SecretHex::new(share.clone()),
                signature,
            },
        )
    }
}

/// Opens a share file with the administrator's key (for tests and tools that need the share
/// itself, e.g. to alter it).
pub fn open_share(
    key: &AdminKey,
    file: &ShareFile,
) -> Result<Zeroizing<[u8; SHARE_LEN]>, ClientError> {
    Ok(key.open(&file.share)?.to_bytes())
}

/// Key forwarding, as the coordinator: `from` (holding the quorum root) seals it to `to` (an
/// enclave of the same image, locked or not) for `to`'s fresh attestation document; `to` opens
/// it after checking `from`'s fresh document. Each enclave does every check itself; the
/// coordinator only carries the documents and the sealed root.
pub fn forward(
    from: (&Client, &AttestedEnclave),
    to: (&Client, &AttestedEnclave),
) -> Result<QuorumView, ClientError> {
    let fresh = |c: &Client| -> Result<Vec<u8>, ClientError> {
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce).map_err(|e| protocol(format!("no randomness: {e}")))?;
        c.attestation_document(&nonce)
    };
    let forwarded = from.0.call::<ep::QuorumForward>(
        from.1,
        &ForwardRequest {
            document: Base64Bytes(fresh(to.0)?),
        },
    )?;
    to.0.call::<ep::QuorumReceive>(
        to.1,
        &ReceiveRequest {
            document: Base64Bytes(fresh(from.0)?),
            forwarded,
        },
    )
}
