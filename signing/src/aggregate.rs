//! Aggregate keys: BIP-327 key aggregation over held and external participants, with plain,
//! x-only and BIP-341 taproot tweaks, and the sealable record that sessions reuse.

use musig2::KeyAggContext;
use musig2::secp::{MaybeScalar, Point};

use crate::codec::Reader;
use crate::error::Error;
use crate::keys::{AggregateId, KeyId};
use crate::{MAX_PARTICIPANTS, MAX_TWEAKS};

/// A tweak applied to an aggregate key, in BIP-327 terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tweak {
    /// Plain tweak: `Q' = Q + t*G`. The 32 bytes are a scalar below the curve order.
    Plain([u8; 32]),
    /// X-only tweak: `Q' = with_even_y(Q) + t*G`.
    XOnly([u8; 32]),
    /// BIP-341 taproot tweak committing to a script tree with this 32-byte merkle root.
    Taproot([u8; 32]),
    /// BIP-341 taproot tweak with no script path (BIP-86 style key-path-only output).
    TaprootUnspendable,
}

impl Tweak {
    /// `kind || 32 bytes` (zeros for the unspendable tweak); used in records and digests.
    pub fn encode(&self) -> [u8; 33] {
        let (kind, body) = match self {
            Tweak::Plain(t) => (1, *t),
            Tweak::XOnly(t) => (2, *t),
            Tweak::Taproot(root) => (3, *root),
            Tweak::TaprootUnspendable => (4, [0u8; 32]),
        };
        let mut out = [0u8; 33];
        out[0] = kind;
        out[1..].copy_from_slice(&body);
        out
    }

    /// Inverse of [`Tweak::encode`]; rejects unknown kinds and a non-zero unspendable body.
    pub fn decode(bytes: &[u8; 33]) -> Option<Tweak> {
        let mut body = [0u8; 32];
        body.copy_from_slice(&bytes[1..]);
        match bytes[0] {
            1 => Some(Tweak::Plain(body)),
            2 => Some(Tweak::XOnly(body)),
            3 => Some(Tweak::Taproot(body)),
            4 if body == [0u8; 32] => Some(Tweak::TaprootUnspendable),
            _ => None,
        }
    }

    /// Applies this tweak on top of `ctx`. `index` names the tweak in errors.
    pub(crate) fn apply(&self, ctx: KeyAggContext, index: u32) -> Result<KeyAggContext, Error> {
        let bad = |_| Error::InvalidTweak { index };
        let scalar =
            |t: &[u8; 32]| MaybeScalar::try_from(*t).map_err(|_| Error::InvalidTweak { index });
        match self {
            Tweak::Plain(t) => ctx.with_plain_tweak(scalar(t)?).map_err(bad),
            Tweak::XOnly(t) => ctx.with_xonly_tweak(scalar(t)?).map_err(bad),
            Tweak::Taproot(root) => ctx.with_taproot_tweak(root).map_err(bad),
            Tweak::TaprootUnspendable => ctx.with_unspendable_taproot_tweak().map_err(bad),
        }
    }
}

/// How participants are ordered before aggregation (the order fixes the aggregate key and each
/// signer's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrder {
    /// Exactly as given.
    AsGiven,
    /// BIP-327 `KeySort`: ascending by 33-byte compressed encoding.
    Sorted,
}

/// One participant of an aggregate key, as requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantSpec {
    /// A key held by this engine.
    Held(KeyId),
    /// Someone else's compressed SEC1 public key; they sign outside the enclave.
    External([u8; 33]),
}

/// A request to create an aggregate key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateSpec {
    pub participants: Vec<ParticipantSpec>,
    pub order: KeyOrder,
    pub tweaks: Vec<Tweak>,
}

/// A participant after ordering: its signer index, key, and the held key id if it is ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub index: u32,
    pub public_key: [u8; 33],
    pub held: Option<KeyId>,
}

/// The keys that come out of aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateKeys {
    /// The untweaked aggregate key (BIP-341 "internal key" when taproot-tweaked).
    pub internal_key: [u8; 33],
    pub internal_xonly: [u8; 32],
    /// The key after every tweak: what signatures verify under.
    pub output_key: [u8; 33],
    pub output_xonly: [u8; 32],
}

/// Public description of an aggregate key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateInfo {
    pub id: AggregateId,
    /// In signer order: `participants[i].index == i`.
    pub participants: Vec<ParticipantInfo>,
    pub order: KeyOrder,
    pub tweaks: Vec<Tweak>,
    pub keys: AggregateKeys,
    pub created: u64,
    /// The owner who created it (x-only): it counts against this owner's quota.
    pub creator: [u8; 32],
}

/// BIP-327 `KeySort`: ascending lexicographic order of the compressed encodings.
pub fn sort_keys(keys: &[[u8; 33]]) -> Vec<[u8; 33]> {
    let mut sorted = keys.to_vec();
    sorted.sort();
    sorted
}

/// Parses a 33-byte compressed point, accepting only the `0x02`/`0x03` prefixes.
///
/// Threat: the k256 backend also accepts other SEC1 tags (for example the 33-byte "compact"
/// tag `0x05`), so one point would have several accepted encodings. Stored bytes, digests and
/// duplicate checks compare encodings, so anything but the canonical form is refused.
pub(crate) fn strict_point(bytes: &[u8; 33]) -> Option<Point> {
    if bytes[0] != 0x02 && bytes[0] != 0x03 {
        return None;
    }
    Point::try_from(bytes).ok()
}

/// Parses one compressed key, naming it by index on failure.
pub(crate) fn parse_point(bytes: &[u8; 33], index: u32) -> Result<Point, Error> {
    strict_point(bytes).ok_or(Error::InvalidPublicKey { index })
}

/// BIP-327 `KeyAgg` followed by the tweaks, keys taken in the given order. Duplicate keys are
/// allowed here, as BIP-327 allows them; the engine refuses them one level up.
pub fn key_agg_context(keys: &[[u8; 33]], tweaks: &[Tweak]) -> Result<KeyAggContext, Error> {
    if keys.is_empty() {
        return Err(Error::InvalidRequest(
            "at least one participant is required",
        ));
    }
    if keys.len() > MAX_PARTICIPANTS {
        return Err(Error::LimitExceeded("too many participants"));
    }
    if tweaks.len() > MAX_TWEAKS {
        return Err(Error::LimitExceeded("too many tweaks"));
    }
    let points = keys
        .iter()
        .enumerate()
        .map(|(i, k)| parse_point(k, i as u32))
        .collect::<Result<Vec<_>, _>>()?;
    // `KeyAggContext::new` fails only if the keys sum to infinity (not reachable with honest
    // inputs, but reachable with chosen ones).
    let mut ctx = KeyAggContext::new(points)
        .map_err(|_| Error::InvalidRequest("keys aggregate to infinity"))?;
    for (i, t) in tweaks.iter().enumerate() {
        ctx = t.apply(ctx, i as u32)?;
    }
    Ok(ctx)
}

/// The internal and output keys of a context.
pub fn keys_of(ctx: &KeyAggContext) -> AggregateKeys {
    let internal: Point = ctx.aggregated_pubkey_untweaked();
    let output: Point = ctx.aggregated_pubkey();
    AggregateKeys {
        internal_key: internal.serialize(),
        internal_xonly: internal.serialize_xonly(),
        output_key: output.serialize(),
        output_xonly: output.serialize_xonly(),
    }
}

/// Convenience: aggregate and return the keys.
pub fn aggregate_keys(keys: &[[u8; 33]], tweaks: &[Tweak]) -> Result<AggregateKeys, Error> {
    key_agg_context(keys, tweaks).map(|ctx| keys_of(&ctx))
}

pub(crate) fn aggregate_record_name(id: &AggregateId) -> String {
    format!("agg/{id}")
}

/// An aggregate key with its rebuilt musig2 context, ready for sessions.
#[derive(Debug, Clone)]
pub struct AggregateRecord {
    info: AggregateInfo,
    ctx: KeyAggContext,
}

const AGG_MAGIC: &[u8; 4] = b"SGAG";
const AGG_VERSION: u8 = 2;

impl AggregateRecord {
    /// Orders the participants, refuses duplicates, aggregates and tweaks. `resolved[i]` is the
    /// public key of `spec.participants[i]` (the engine looks held keys up in its record store).
    pub(crate) fn build(
        id: AggregateId,
        spec: &AggregateSpec,
        resolved: &[[u8; 33]],
        (created, creator): (u64, [u8; 32]),
    ) -> Result<Self, Error> {
        if spec.participants.len() != resolved.len() {
            return Err(Error::Internal("participant resolution count"));
        }
        let mut entries: Vec<([u8; 33], Option<KeyId>)> = spec
            .participants
            .iter()
            .zip(resolved)
            .map(|(p, pk)| {
                (
                    *pk,
                    match p {
                        ParticipantSpec::Held(id) => Some(*id),
                        ParticipantSpec::External(_) => None,
                    },
                )
            })
            .collect();
        if spec.order == KeyOrder::Sorted {
            // Stable sort by key alone: exactly BIP-327 KeySort.
            entries.sort_by_key(|e| e.0);
        }
        Self::from_parts(
            id,
            spec.order,
            entries,
            spec.tweaks.clone(),
            (created, creator),
        )
    }

    fn from_parts(
        id: AggregateId,
        order: KeyOrder,
        entries: Vec<([u8; 33], Option<KeyId>)>,
        tweaks: Vec<Tweak>,
        (created, creator): (u64, [u8; 32]),
    ) -> Result<Self, Error> {
        // Threat: a key listed twice gives its holder two votes and makes "which signer is
        // this" ambiguous when blaming a bad partial signature; refuse it.
        for (i, (pk, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(other, _)| other == pk) {
                return Err(Error::DuplicateParticipant { index: i as u32 });
            }
        }
        let keys: Vec<[u8; 33]> = entries.iter().map(|(pk, _)| *pk).collect();
        let ctx = key_agg_context(&keys, &tweaks)?;
        let participants = entries
            .iter()
            .enumerate()
            .map(|(i, (pk, held))| ParticipantInfo {
                index: i as u32,
                public_key: *pk,
                held: *held,
            })
            .collect();
        Ok(Self {
            info: AggregateInfo {
                id,
                participants,
                order,
                tweaks,
                keys: keys_of(&ctx),
                created,
                creator,
            },
            ctx,
        })
    }

    pub fn info(&self) -> &AggregateInfo {
        &self.info
    }

    pub(crate) fn context(&self) -> &KeyAggContext {
        &self.ctx
    }

    /// `"SGAG" || 0x02 || id[16] || created u64 || creator[32] || order u8 || n u16 || n * (held u8 || pubkey[33]
    /// || [key id[16] if held]) || t u8 || t * tweak[33] || output_key[33]`, all big-endian.
    pub fn to_record(&self) -> Vec<u8> {
        let i = &self.info;
        let mut out = Vec::with_capacity(64 + i.participants.len() * 50 + i.tweaks.len() * 33);
        out.extend_from_slice(AGG_MAGIC);
        out.push(AGG_VERSION);
        out.extend_from_slice(&i.id.0);
        out.extend_from_slice(&i.created.to_be_bytes());
        out.extend_from_slice(&i.creator);
        out.push(match i.order {
            KeyOrder::AsGiven => 0,
            KeyOrder::Sorted => 1,
        });
        out.extend_from_slice(&(i.participants.len() as u16).to_be_bytes());
        for p in &i.participants {
            match p.held {
                Some(id) => {
                    out.push(1);
                    out.extend_from_slice(&p.public_key);
                    out.extend_from_slice(&id.0);
                }
                None => {
                    out.push(0);
                    out.extend_from_slice(&p.public_key);
                }
            }
        }
        out.push(i.tweaks.len() as u8);
        for t in &i.tweaks {
            out.extend_from_slice(&t.encode());
        }
        out.extend_from_slice(&i.keys.output_key);
        out
    }

    /// Strict parse. The aggregation is recomputed from the participants and tweaks and must
    /// reproduce the stored output key.
    ///
    /// Threat: a substituted or corrupted record would make the engine sign for a key the
    /// participants never agreed on; the recomputation and the id check refuse it.
    pub fn from_record(bytes: &[u8], expected_id: &AggregateId) -> Result<Self, Error> {
        let bad = |reason| Error::InvalidRecord {
            kind: "aggregate",
            reason,
        };
        let t = |_| bad("truncated");
        let mut r = Reader::new(bytes);
        if r.take(4).map_err(t)? != AGG_MAGIC {
            return Err(bad("wrong magic"));
        }
        if r.u8().map_err(t)? != AGG_VERSION {
            return Err(bad("unsupported version"));
        }
        let id = AggregateId(r.array().map_err(t)?);
        if id != *expected_id {
            return Err(bad("id does not match the record name"));
        }
        let created = r.u64().map_err(t)?;
        let creator: [u8; 32] = r.array().map_err(t)?;
        crate::keys::parse_owner(&creator).map_err(|_| bad("invalid creator key"))?;
        let order = match r.u8().map_err(t)? {
            0 => KeyOrder::AsGiven,
            1 => KeyOrder::Sorted,
            _ => return Err(bad("unknown key order")),
        };
        let n = u16::from_be_bytes(r.array().map_err(t)?) as usize;
        if n == 0 || n > MAX_PARTICIPANTS {
            return Err(bad("participant count out of range"));
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let held = r.u8().map_err(t)?;
            let pk: [u8; 33] = r.array().map_err(t)?;
            let held = match held {
                0 => None,
                1 => Some(KeyId(r.array().map_err(t)?)),
                _ => return Err(bad("unknown participant kind")),
            };
            entries.push((pk, held));
        }
        let n_tweaks = r.u8().map_err(t)? as usize;
        if n_tweaks > MAX_TWEAKS {
            return Err(bad("too many tweaks"));
        }
        let mut tweaks = Vec::with_capacity(n_tweaks);
        for _ in 0..n_tweaks {
            tweaks.push(Tweak::decode(&r.array().map_err(t)?).ok_or(bad("unknown tweak kind"))?);
        }
        let output_key: [u8; 33] = r.array().map_err(t)?;
        if !r.is_empty() {
            return Err(bad("trailing bytes"));
        }
        if order == KeyOrder::Sorted && entries.windows(2).any(|w| w[0].0 > w[1].0) {
            return Err(bad("participants not sorted"));
        }
        let rec = Self::from_parts(id, order, entries, tweaks, (created, creator))
            .map_err(|_| bad("participants or tweaks do not aggregate"))?;
        if rec.info.keys.output_key != output_key {
            return Err(bad("stored output key does not match the recomputed one"));
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::parse_hex;

    fn pk(h: &str) -> [u8; 33] {
        parse_hex(h).unwrap()
    }

    fn keys() -> Vec<[u8; 33]> {
        vec![
            pk("02f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9"),
            pk("03dff1d77f2a671c5f36183726db2341be58feae1da2deced843240f7b502ba659"),
            pk("023590a94e768f8e1815c2f24b4d80a8e3149316c3518ce7b7ad338368d038ca66"),
        ]
    }

    fn spec(order: KeyOrder, tweaks: Vec<Tweak>) -> AggregateSpec {
        AggregateSpec {
            participants: vec![
                ParticipantSpec::External(keys()[0]),
                ParticipantSpec::Held(KeyId([1; 16])),
                ParticipantSpec::External(keys()[2]),
            ],
            order,
            tweaks,
        }
    }

    #[test]
    fn record_round_trip_and_sorting() {
        let tweaks = vec![
            Tweak::Plain([1; 32]),
            Tweak::XOnly([2; 32]),
            Tweak::Taproot([3; 32]),
            Tweak::TaprootUnspendable,
        ];
        let rec = AggregateRecord::build(
            AggregateId([9; 16]),
            &spec(KeyOrder::Sorted, tweaks),
            &keys(),
            (5, [7; 32]),
        )
        .unwrap();
        let info = rec.info();
        let sorted: Vec<_> = info.participants.iter().map(|p| p.public_key).collect();
        assert_eq!(sorted, sort_keys(&keys()));
        // The held key followed its public key through the sort.
        let held = info.participants.iter().find(|p| p.held.is_some()).unwrap();
        assert_eq!(held.public_key, keys()[1]);
        let back = AggregateRecord::from_record(&rec.to_record(), &info.id).unwrap();
        assert_eq!(back.info(), info);
    }

    #[test]
    fn strict_parse_rejects_tampering() {
        let rec = AggregateRecord::build(
            AggregateId([9; 16]),
            &spec(KeyOrder::AsGiven, vec![]),
            &keys(),
            (5, [7; 32]),
        )
        .unwrap();
        let bytes = rec.to_record();
        let id = rec.info().id;
        assert!(AggregateRecord::from_record(&bytes, &AggregateId([1; 16])).is_err());
        for cut in [0, 10, bytes.len() - 1] {
            assert!(AggregateRecord::from_record(&bytes[..cut], &id).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(AggregateRecord::from_record(&longer, &id).is_err());
        // Flip a bit of the stored output key: the recomputation catches it.
        let mut m = bytes.clone();
        let last = m.len() - 1;
        m[last] ^= 1;
        assert!(AggregateRecord::from_record(&m, &id).is_err());
        // Swap two participants: a different aggregate key, so the stored key no longer matches.
        let mut swapped = spec(KeyOrder::AsGiven, vec![]);
        swapped.participants.swap(0, 2);
        let mut ks = keys();
        ks.swap(0, 2);
        let other = AggregateRecord::build(id, &swapped, &ks, (5, [7; 32])).unwrap();
        let mut spliced = other.to_record();
        let n = spliced.len();
        spliced[n - 33..].copy_from_slice(&rec.info().keys.output_key);
        assert!(AggregateRecord::from_record(&spliced, &id).is_err());
    }

    #[test]
    fn duplicates_and_bad_tweaks_are_refused() {
        let mut ks = keys();
        ks[2] = ks[0];
        let err = AggregateRecord::build(
            AggregateId([9; 16]),
            &spec(KeyOrder::AsGiven, vec![]),
            &ks,
            (5, [7; 32]),
        )
        .unwrap_err();
        assert_eq!(err, Error::DuplicateParticipant { index: 2 });
        let err = aggregate_keys(&keys(), &[Tweak::Plain([0xff; 32])]).unwrap_err();
        assert_eq!(err, Error::InvalidTweak { index: 0 });
        assert!(Tweak::decode(&[4; 33]).is_none());
        assert!(Tweak::decode(&[9; 33]).is_none());
        for t in [
            Tweak::Plain([1; 32]),
            Tweak::XOnly([2; 32]),
            Tweak::Taproot([3; 32]),
            Tweak::TaprootUnspendable,
        ] {
            assert_eq!(Tweak::decode(&t.encode()), Some(t));
        }
    }
}
