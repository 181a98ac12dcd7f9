//! The sealed record of one FROST group member ([`Kind::FrostShare`], named by the group id):
//! this member's key package (secret) and the group's public facts.
//!
//! `v u8 = 1 || participant u16 || threshold u16 || n u8 || members[n][32] || owner[32] ||
//! public_len u32 || public package || key package` (integers big-endian). The record is
//! sealed (AES-GCM under the data key, bound to its kind and name), so a parent can withhold
//! or roll it back but not change or move it.

use sigil_signing::frost::{self, FrostError};
use zeroize::Zeroizing;

use crate::seal::Kind;

pub const KIND: Kind = Kind::FrostShare;
const VERSION: u8 = 1;

/// A member's share, opened. The key package wipes itself when dropped.
pub struct Record {
    pub participant: u16,
    pub threshold: u16,
    pub members: Vec<[u8; 32]>,
    pub owner: [u8; 32],
    pub public: frost::PublicKeyPackage,
    pub key: frost::KeyPackage,
}

impl Record {
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, FrostError> {
        let public = frost::public_package_bytes(&self.public)?;
        let key = frost::key_package_bytes(&self.key)?;
        let n = u8::try_from(self.members.len())
            .map_err(|_| FrostError::Invalid("too many members".into()))?;
        let mut out = Zeroizing::new(Vec::with_capacity(
            8 + 32 * self.members.len() + 36 + public.len() + key.len(),
        ));
        out.push(VERSION);
        out.extend_from_slice(&self.participant.to_be_bytes());
        out.extend_from_slice(&self.threshold.to_be_bytes());
        out.push(n);
        for m in &self.members {
            out.extend_from_slice(m);
        }
        out.extend_from_slice(&self.owner);
        out.extend_from_slice(&(public.len() as u32).to_be_bytes());
        out.extend_from_slice(&public);
        out.extend_from_slice(&key);
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
        let public_len = u32::from_be_bytes(r.array()?) as usize;
        let public = frost::public_package(r.take(public_len)?).map_err(|e| e.to_string())?;
        let key = frost::key_package(r.0).map_err(|e| e.to_string())?;
        Ok(Record {
            participant,
            threshold,
            members,
            owner,
            public,
            key,
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
}
