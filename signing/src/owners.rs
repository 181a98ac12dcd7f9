//! Each owner's index: the ids of the keys it owns and of the aggregates it created, sealed
//! like every record. Lists of an owner's things read it (so a listing never opens a key
//! record), and the per-owner quotas count it.
//!
//! Threat: anyone filling the sealed store. Every key and every aggregate is charged to an
//! owner who signed for it, and an owner holds at most [`MAX_KEYS_PER_OWNER`] keys and
//! [`MAX_AGGREGATES_PER_OWNER`] aggregates; deleting frees the place.

use crate::codec::{Reader, hex32};
use crate::error::Error;
use crate::keys::{AggregateId, KeyId};

/// Most keys one owner holds.
pub const MAX_KEYS_PER_OWNER: usize = 256;
/// Most aggregates one owner has created (and not deleted).
pub const MAX_AGGREGATES_PER_OWNER: usize = 256;

const MAGIC: &[u8; 4] = b"SGOW";
const VERSION: u8 = 1;

/// Record name of an owner's index.
pub(crate) fn owner_record_name(owner: &[u8; 32]) -> String {
    format!("owner/{}", hex32(owner))
}

/// One owner's keys and aggregates, in the order they were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnerIndex {
    pub owner: [u8; 32],
    pub keys: Vec<KeyId>,
    pub aggregates: Vec<AggregateId>,
}

impl OwnerIndex {
    pub(crate) fn empty(owner: [u8; 32]) -> Self {
        Self {
            owner,
            keys: Vec::new(),
            aggregates: Vec::new(),
        }
    }

    /// Adds a key unless it is there already; refuses past the quota.
    pub(crate) fn add_key(&mut self, id: KeyId) -> Result<bool, Error> {
        add(
            &mut self.keys,
            id,
            MAX_KEYS_PER_OWNER,
            "keys held by this owner",
        )
    }

    pub(crate) fn add_aggregate(&mut self, id: AggregateId) -> Result<bool, Error> {
        add(
            &mut self.aggregates,
            id,
            MAX_AGGREGATES_PER_OWNER,
            "aggregates created by this owner",
        )
    }

    /// `"SGOW" || 0x01 || owner[32] || u16 n || n * key_id[16] || u16 m || m * aggregate_id[16]`.
    pub(crate) fn to_record(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(41 + 16 * (self.keys.len() + self.aggregates.len()));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.owner);
        out.extend_from_slice(&(self.keys.len() as u16).to_be_bytes());
        for k in &self.keys {
            out.extend_from_slice(&k.0);
        }
        out.extend_from_slice(&(self.aggregates.len() as u16).to_be_bytes());
        for a in &self.aggregates {
            out.extend_from_slice(&a.0);
        }
        out
    }

    /// Strict parse: the owner must be the one asked for, counts within the quotas, no id
    /// twice.
    pub(crate) fn from_record(bytes: &[u8], owner: &[u8; 32]) -> Result<Self, Error> {
        let bad = |reason| Error::InvalidRecord {
            kind: "owner index",
            reason,
        };
        let t = |_| bad("truncated");
        let mut r = Reader::new(bytes);
        if r.take(4).map_err(t)? != MAGIC {
            return Err(bad("wrong magic"));
        }
        if r.u8().map_err(t)? != VERSION {
            return Err(bad("unsupported version"));
        }
        if r.array::<32>().map_err(t)? != *owner {
            return Err(bad("owner does not match the record name"));
        }
        let mut ids = |max: usize| -> Result<Vec<[u8; 16]>, Error> {
            let n = u16::from_be_bytes(r.array().map_err(t)?) as usize;
            if n > max {
                return Err(bad("count above the quota"));
            }
            let mut v: Vec<[u8; 16]> = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.array().map_err(t)?;
                if v.contains(&id) {
                    return Err(bad("id listed twice"));
                }
                v.push(id);
            }
            Ok(v)
        };
        let keys = ids(MAX_KEYS_PER_OWNER)?.into_iter().map(KeyId).collect();
        let aggregates = ids(MAX_AGGREGATES_PER_OWNER)?
            .into_iter()
            .map(AggregateId)
            .collect();
        if !r.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            owner: *owner,
            keys,
            aggregates,
        })
    }
}

fn add<T: PartialEq>(
    list: &mut Vec<T>,
    id: T,
    max: usize,
    what: &'static str,
) -> Result<bool, Error> {
    if list.contains(&id) {
        return Ok(false);
    }
    if list.len() >= max {
        return Err(Error::OwnerQuota(what));
    }
    list.push(id);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_quota_and_strict_parse() {
        let mut idx = OwnerIndex::empty([3; 32]);
        assert!(idx.add_key(KeyId([1; 16])).unwrap());
        assert!(!idx.add_key(KeyId([1; 16])).unwrap());
        idx.add_aggregate(AggregateId([2; 16])).unwrap();
        let rec = idx.to_record();
        assert_eq!(OwnerIndex::from_record(&rec, &[3; 32]).unwrap(), idx);
        assert!(OwnerIndex::from_record(&rec, &[4; 32]).is_err());
        assert!(OwnerIndex::from_record(&rec[..rec.len() - 1], &[3; 32]).is_err());
        let mut longer = rec.clone();
        longer.push(0);
        assert!(OwnerIndex::from_record(&longer, &[3; 32]).is_err());
        for i in 1..MAX_AGGREGATES_PER_OWNER {
            idx.add_aggregate(AggregateId([
                (i % 256) as u8,
                (i / 256) as u8,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
            ]))
            .unwrap();
        }
        assert!(matches!(
            idx.add_aggregate(AggregateId([0; 16])),
            Err(Error::OwnerQuota(_))
        ));
    }
}
