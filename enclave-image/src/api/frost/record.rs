//! The sealed record of one FROST group member ([`Kind::FrostShare`], named by the group id):
//! this member's key package (secret) and the group's public facts, and the share a refresh
//! made that is not committed yet.
//!
//! `v u8 = 2 || participant u16 || threshold u16 || n u8 || members[n][32] || owner[32] ||
//! public || key || pending public || pending key`, each of the last four a `u32` length then
//! its bytes (length 0 for no pending share); integers big-endian. The record is sealed
//! (AES-GCM under the data key, bound to its kind and name), so a parent can withhold or roll
//! it back but not change or move it.

use sigil_signing::frost::{self, FrostError};
use zeroize::Zeroizing;

use crate::seal::Kind;

pub const KIND: Kind = Kind::FrostShare;
const VERSION: u8 = 2;

/// A share and the group's public package it belongs to.
pub struct Share {
    pub public: frost::PublicKeyPackage,
    pub key: frost::KeyPackage,
}

/// A member's share, opened. Key packages wipe themselves when dropped.
pub struct Record {
    pub participant: u16,
    pub threshold: u16,
    pub members: Vec<[u8; 32]>,
    pub owner: [u8; 32],
    pub public: frost::PublicKeyPackage,
    pub key: frost::KeyPackage,
    /// A refresh's new share, used only once the owner commits it.
    pub pending: Option<Share>,
}

/// The generation of a group's shares: SHA-256 of its public key package (every verifying
/// share), which changes with each refresh.
pub fn generation(public: &frost::PublicKeyPackage) -> Result<[u8; 32], FrostError> {
    let bytes = frost::public_package_bytes(public)?;
    let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Ok(out)
}

fn section(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

impl Record {
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, FrostError> {
        let n = u8::try_from(self.members.len())
            .map_err(|_| FrostError::Invalid("too many members".into()))?;
        let mut out = Zeroizing::new(Vec::new());
        out.push(VERSION);
        out.extend_from_slice(&self.participant.to_be_bytes());
        out.extend_from_slice(&self.threshold.to_be_bytes());
        out.push(n);
        for m in &self.members {
            out.extend_from_slice(m);
        }
        out.extend_from_slice(&self.owner);
        section(&mut out, &frost::public_package_bytes(&self.public)?);
        section(&mut out, &frost::key_package_bytes(&self.key)?);
        match &self.pending {
            Some(p) => {
                section(&mut out, &frost::public_package_bytes(&p.public)?);
                section(&mut out, &frost::key_package_bytes(&p.key)?);
            }
            None => {
                section(&mut out, &[]);
                section(&mut out, &[]);
            }
        }
        Ok(out)
    }

    /// Only this enclave can seal a record, so a malformed one is a bug (or another version).
    pub fn decode(b: &[u8]) -> Result<Record, String> {
        let mut r = Reader(b);
        if r.take(1)? != [VERSION] {
            return Err("the FROST share record is of another version".into());
        }
        let participant = r.u16()?;
        let threshold = r.u16()?;
        let n = r.take(1)?[0] as usize;
        let mut members = Vec::with_capacity(n);
        for _ in 0..n {
            members.push(r.array()?);
        }
        let owner = r.array()?;
        let public = frost::public_package(r.section()?).map_err(|e| e.to_string())?;
        let key = frost::key_package(r.section()?).map_err(|e| e.to_string())?;
        let (pending_public, pending_key) = (r.section()?, r.section()?);
        let pending = if pending_public.is_empty() {
            None
        } else {
            Some(Share {
                public: frost::public_package(pending_public).map_err(|e| e.to_string())?,
                key: frost::key_package(pending_key).map_err(|e| e.to_string())?,
            })
        };
        Ok(Record {
            participant,
            threshold,
            members,
            owner,
            public,
            key,
            pending,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("the FROST share record is truncated".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn section(&mut self) -> Result<&'a [u8], String> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_with_and_without_a_pending_share() {
        // A 2-of-2 key generation in process, for real packages.
        let (mut d1, p1) = frost::Dkg::start(1, 2, 2).unwrap();
        let (mut d2, p2) = frost::Dkg::start(2, 2, 2).unwrap();
        let (s1, g1) = d1.round2(&[(2, p2)].into()).unwrap();
        let (s2, g2) = d2.round2(&[(1, p1)].into()).unwrap();
        let k1 = d1
            .finish(&[(2, s2[&1].clone())].into(), &[(2, g2)].into())
            .unwrap();
        let _ = d2
            .finish(&[(1, s1[&2].clone())].into(), &[(1, g1)].into())
            .unwrap();
        let mut rec = Record {
            participant: 1,
            threshold: 2,
            members: vec![[1; 32], [2; 32]],
            owner: [3; 32],
            public: k1.public.clone(),
            key: k1.key_package.clone(),
            pending: None,
        };
        let back = Record::decode(&rec.encode().unwrap()).unwrap();
        assert!(back.pending.is_none());
        assert_eq!(back.members, rec.members);
        assert_eq!(back.key, rec.key);
        rec.pending = Some(Share {
            public: k1.public.clone(),
            key: k1.key_package.clone(),
        });
        let back = Record::decode(&rec.encode().unwrap()).unwrap();
        assert_eq!(back.pending.unwrap().key, rec.key);
        let bytes = rec.encode().unwrap();
        assert!(Record::decode(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(
            generation(&k1.public).unwrap(),
            generation(&back.public).unwrap()
        );
    }
}
