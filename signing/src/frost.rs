//! FROST threshold signing (t of n, BIP-340, Taproot) on the Zcash Foundation's
//! `frost-secp256k1-tr`: one participant's side of the distributed key generation and of
//! signing, without I/O. The packages it takes and gives are bytes, for the sealed peer
//! messages that carry them between enclaves.
//!
//! Threats handled here:
//! - a coordinator showing participants different round-1 packages (equivocation): each
//!   participant publishes a digest of every round-1 package it saw, and the key generation
//!   fails, naming who saw otherwise, unless all digests agree;
//! - a nonce used twice: a participant's commitment nonces live only in memory, inside a
//!   value that signing consumes (moved, then wiped on drop);
//! - a bad signature share: when the aggregated signature does not verify, aggregation checks
//!   the shares and names the first bad signer (frost-core's cheater detection).

use std::collections::BTreeMap;

use frost::Identifier;
pub use frost::SigningPackage;
use frost::keys::dkg::{round1, round2};
pub use frost::keys::{KeyPackage, PublicKeyPackage};
use frost_secp256k1_tr as frost;
use sha2::{Digest, Sha256};

/// Packages by participant number (what a coordinator carries for one step).
pub type Packages = BTreeMap<u16, Vec<u8>>;

/// Most participants in a group.
pub const MAX_PARTICIPANTS: u16 = 64;

/// Why a FROST step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrostError {
    /// Participant numbers, threshold or package sets are wrong (the text says which).
    Invalid(String),
    /// A package from `from` does not parse or does not verify.
    BadPackage { from: u16, reason: String },
    /// Participant `participant` saw other round-1 packages than this one did: the
    /// coordinator equivocated.
    Equivocation { participant: u16 },
    /// These signers' shares do not verify.
    BadShares { signers: Vec<u16> },
    /// The step is not the one the state machine is at.
    WrongStep(&'static str),
}

impl std::fmt::Display for FrostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrostError::Invalid(m) => write!(f, "{m}"),
            FrostError::BadPackage { from, reason } => {
                write!(
                    f,
                    "the package from participant {from} is refused: {reason}"
                )
            }
            FrostError::Equivocation { participant } => write!(
                f,
                "participant {participant} saw other round-1 packages than this one: the \
                 coordinator showed participants different packages"
            ),
            FrostError::BadShares { signers } => {
                write!(
                    f,
                    "the signature shares of signers {signers:?} do not verify"
                )
            }
            FrostError::WrongStep(m) => write!(f, "wrong step: {m}"),
        }
    }
}

impl std::error::Error for FrostError {}

fn id(n: u16) -> Result<Identifier, FrostError> {
    Identifier::try_from(n).map_err(|_| FrostError::Invalid(format!("participant {n} is not 1..")))
}

fn number(i: &Identifier, all: &[u16]) -> u16 {
    all.iter()
        .copied()
        .find(|n| Identifier::try_from(*n).ok().as_ref() == Some(i))
        .unwrap_or(0)
}

enum Step {
    Round1(round1::SecretPackage),
    Round2 {
        secret: round2::SecretPackage,
        round1: BTreeMap<Identifier, round1::Package>,
        digest: [u8; 32],
    },
    Done,
}

/// One participant's distributed key generation (frost-core's three parts), or a refresh of
/// an existing group's shares (the same three parts over a polynomial whose secret is zero:
/// every share changes, the group key does not, and old shares no longer combine with new
/// ones).
pub struct Dkg {
    me: u16,
    n: u16,
    own_round1: Vec<u8>,
    step: Step,
    /// For a refresh: this participant's current share and the group's public package.
    refresh: Option<(KeyPackage, PublicKeyPackage)>,
}

/// The outcome of a key generation: this participant's share (secret) and the group's public
/// key package (the same for all).
pub struct Generated {
    pub key_package: KeyPackage,
    pub public: PublicKeyPackage,
}

impl Dkg {
    /// Part 1 for participant `me` of `n` (1..=n), threshold `t`: the round-1 package to
    /// broadcast.
    pub fn start(me: u16, n: u16, t: u16) -> Result<(Dkg, Vec<u8>), FrostError> {
        if !(2..=MAX_PARTICIPANTS).contains(&n) || !(2..=n).contains(&t) || !(1..=n).contains(&me) {
            return Err(FrostError::Invalid(format!(
                "participant {me} of {n} with threshold {t}: need 2 <= t <= n <= {MAX_PARTICIPANTS}"
            )));
        }
        let (secret, package) = frost::keys::dkg::part1(id(me)?, n, t, rand_core::OsRng)
            .map_err(|e| FrostError::Invalid(e.to_string()))?;
        let bytes = package
            .serialize()
            .map_err(|e| FrostError::Invalid(e.to_string()))?;
        Ok((
            Dkg {
                me,
                n,
                own_round1: bytes.clone(),
                step: Step::Round1(secret),
                refresh: None,
            },
            bytes,
        ))
    }

    /// Part 1 of a refresh of the group of `n` whose member holds `key`: the round-1 package
    /// to broadcast. Every member of the group takes part.
    pub fn start_refresh(
        key: KeyPackage,
        public: PublicKeyPackage,
        n: u16,
    ) -> Result<(Dkg, Vec<u8>), FrostError> {
        let me = participant(&key, n);
        if me == 0 || public.verifying_shares().len() != usize::from(n) {
            return Err(FrostError::Invalid(format!(
                "the share is not one of a group of {n}"
            )));
        }
        let (secret, package) = frost::keys::refresh::refresh_dkg_part1(
            id(me)?,
            n,
            *key.min_signers(),
            rand_core::OsRng,
        )
        .map_err(|e| FrostError::Invalid(e.to_string()))?;
        let bytes = package
            .serialize()
            .map_err(|e| FrostError::Invalid(e.to_string()))?;
        Ok((
            Dkg {
                me,
                n,
                own_round1: bytes.clone(),
                step: Step::Round1(secret),
                refresh: Some((key, public)),
            },
            bytes,
        ))
    }

    /// Part 2, given every other participant's round-1 package: the round-2 package for each
    /// other participant (to be sealed to it alone) and this participant's digest of all the
    /// round-1 packages (its own included), to be shown to every other.
    pub fn round2(
        &mut self,
        others: &BTreeMap<u16, Vec<u8>>,
    ) -> Result<(Packages, [u8; 32]), FrostError> {
        let Step::Round1(_) = &self.step else {
            return Err(FrostError::WrongStep("round 2 after part 1 only"));
        };
        let expected: Vec<u16> = (1..=self.n).filter(|p| *p != self.me).collect();
        if others.keys().copied().collect::<Vec<_>>() != expected {
            return Err(FrostError::Invalid(format!(
                "round 2 needs the round-1 packages of participants {expected:?}"
            )));
        }
        let mut round1 = BTreeMap::new();
        for (from, bytes) in others {
            let p = round1::Package::deserialize(bytes).map_err(|e| FrostError::BadPackage {
                from: *from,
                reason: e.to_string(),
            })?;
            round1.insert(id(*from)?, p);
        }
        let digest = round1_digest(self.me, &self.own_round1, others);
        let Step::Round1(secret) = std::mem::replace(&mut self.step, Step::Done) else {
            return Err(FrostError::WrongStep("round 2 after part 1 only"));
        };
        let all: Vec<u16> = (1..=self.n).collect();
        let part2 = match self.refresh {
            None => frost::keys::dkg::part2(secret, &round1),
            Some(_) => frost::keys::refresh::refresh_dkg_part2(secret, &round1),
        };
        let (secret, packages) = part2.map_err(|e| match e.culprits().first() {
            Some(c) => FrostError::BadPackage {
                from: number(c, &all),
                reason: e.to_string(),
            },
            None => FrostError::Invalid(e.to_string()),
        })?;
        let mut out = BTreeMap::new();
        for (to, p) in packages {
            let bytes = p
                .serialize()
                .map_err(|e| FrostError::Invalid(e.to_string()))?;
            out.insert(number(&to, &all), bytes);
        }
        self.step = Step::Round2 {
            secret,
            round1,
            digest,
        };
        Ok((out, digest))
    }

    /// Whether the participants in `digests` saw the same round-1 packages as this one (any
    /// subset; [`Dkg::finish`] checks them all again). The first that did not is named.
    pub fn check_digests(&self, digests: &BTreeMap<u16, [u8; 32]>) -> Result<(), FrostError> {
        let Step::Round2 { digest, .. } = &self.step else {
            return Err(FrostError::WrongStep("digests after round 2 only"));
        };
        match digests.iter().find(|(_, d)| *d != digest) {
            Some((p, _)) => Err(FrostError::Equivocation { participant: *p }),
            None => Ok(()),
        }
    }

    /// Part 3, given the round-2 package each other participant sent this one and every
    /// other participant's digest: the key share, once all digests match this one's.
    pub fn finish(
        &mut self,
        round2: &BTreeMap<u16, Vec<u8>>,
        digests: &BTreeMap<u16, [u8; 32]>,
    ) -> Result<Generated, FrostError> {
        let Step::Round2 { digest, .. } = &self.step else {
            return Err(FrostError::WrongStep("part 3 after round 2 only"));
        };
        for (p, d) in digests {
            if d != digest {
                return Err(FrostError::Equivocation { participant: *p });
            }
        }
        let expected: Vec<u16> = (1..=self.n).filter(|p| *p != self.me).collect();
        if digests.keys().copied().collect::<Vec<_>>() != expected
            || round2.keys().copied().collect::<Vec<_>>() != expected
        {
            return Err(FrostError::Invalid(format!(
                "part 3 needs the round-2 packages and digests of participants {expected:?}"
            )));
        }
        let Step::Round2 { secret, round1, .. } = std::mem::replace(&mut self.step, Step::Done)
        else {
            return Err(FrostError::WrongStep("part 3 after round 2 only"));
        };
        let mut packages = BTreeMap::new();
        for (from, bytes) in round2 {
            let p = round2::Package::deserialize(bytes).map_err(|e| FrostError::BadPackage {
                from: *from,
                reason: e.to_string(),
            })?;
            packages.insert(id(*from)?, p);
        }
        let all: Vec<u16> = (1..=self.n).collect();
        let part3 = match self.refresh.take() {
            None => frost::keys::dkg::part3(&secret, &round1, &packages),
            Some((key, public)) => {
                frost::keys::refresh::refresh_dkg_shares(&secret, &round1, &packages, public, key)
            }
        };
        let (key_package, public) = part3.map_err(|e| match e.culprits().first() {
            Some(c) => FrostError::BadPackage {
                from: number(c, &all),
                reason: e.to_string(),
            },
            None => FrostError::Invalid(e.to_string()),
        })?;
        Ok(Generated {
            key_package,
            public,
        })
    }
}

/// SHA-256 over every participant's round-1 package, in participant order.
fn round1_digest(me: u16, own: &[u8], others: &BTreeMap<u16, Vec<u8>>) -> [u8; 32] {
    let mut all: BTreeMap<u16, &[u8]> = others.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    all.insert(me, own);
    let mut h = Sha256::new();
    h.update(b"sigil frost dkg round1 v1");
    for (p, bytes) in all {
        h.update(p.to_be_bytes());
        h.update((bytes.len() as u32).to_be_bytes());
        h.update(bytes);
    }
    h.finalize().into()
}

/// A signer's nonces for one signature: used by [`sign`] exactly once (moved in, wiped when
/// dropped), never serialized.
pub struct Nonces(frost::round1::SigningNonces);

/// Round 1 of signing: fresh nonces (kept) and their commitments (published).
pub fn commit(key: &KeyPackage) -> Result<(Nonces, Vec<u8>), FrostError> {
    let (nonces, commitments) = frost::round1::commit(key.signing_share(), &mut rand_core::OsRng);
    let bytes = commitments
        .serialize()
        .map_err(|e| FrostError::Invalid(e.to_string()))?;
    Ok((Nonces(nonces), bytes))
}

/// The signing package for `message` from the chosen signers' commitments.
pub fn signing_package(
    commitments: &BTreeMap<u16, Vec<u8>>,
    message: &[u8],
) -> Result<SigningPackage, FrostError> {
    let mut c = BTreeMap::new();
    for (from, bytes) in commitments {
        let parsed = frost::round1::SigningCommitments::deserialize(bytes).map_err(|e| {
            FrostError::BadPackage {
                from: *from,
                reason: e.to_string(),
            }
        })?;
        c.insert(id(*from)?, parsed);
    }
    Ok(SigningPackage::new(c, message))
}

/// Round 2: this signer's share, consuming its nonces. `merkle_root`: the Taproot script
/// tree (`None`: key path only, BIP-86).
pub fn sign(
    nonces: Nonces,
    key: &KeyPackage,
    package: &SigningPackage,
    merkle_root: Option<&[u8]>,
) -> Result<Vec<u8>, FrostError> {
    let share = frost::round2::sign_with_tweak(package, &nonces.0, key, merkle_root)
        .map_err(|e| FrostError::Invalid(e.to_string()))?;
    drop(nonces);
    Ok(share.serialize())
}

/// The signature from the shares, verified; if it does not verify, the shares are checked and
/// the first bad one's signer named. The
/// result is a BIP-340 signature under the group's Taproot output key.
pub fn aggregate(
    package: &SigningPackage,
    shares: &BTreeMap<u16, Vec<u8>>,
    public: &PublicKeyPackage,
    merkle_root: Option<&[u8]>,
) -> Result<[u8; 64], FrostError> {
    let mut s = BTreeMap::new();
    for (from, bytes) in shares {
        let share = frost::round2::SignatureShare::deserialize(bytes).map_err(|e| {
            FrostError::BadPackage {
                from: *from,
                reason: e.to_string(),
            }
        })?;
        s.insert(id(*from)?, share);
    }
    let all: Vec<u16> = shares.keys().copied().collect();
    let sig = frost::aggregate_with_tweak(package, &s, public, merkle_root).map_err(|e| {
        let culprits = e.culprits();
        if culprits.is_empty() {
            FrostError::Invalid(e.to_string())
        } else {
            FrostError::BadShares {
                signers: culprits.iter().map(|c| number(c, &all)).collect(),
            }
        }
    })?;
    let bytes = sig
        .serialize()
        .map_err(|e| FrostError::Invalid(e.to_string()))?;
    bytes
        .try_into()
        .map_err(|_| FrostError::Invalid("a signature is 64 bytes".into()))
}

/// The x-only Taproot output key the group's signatures verify under.
pub fn output_key(
    public: &PublicKeyPackage,
    merkle_root: Option<&[u8]>,
) -> Result<[u8; 32], FrostError> {
    use frost::keys::Tweak;
    let tweaked = public.clone().tweak(merkle_root);
    let bytes = tweaked
        .verifying_key()
        .serialize()
        .map_err(|e| FrostError::Invalid(e.to_string()))?;
    // Compressed SEC1: the x coordinate follows the parity byte.
    bytes
        .get(1..33)
        .and_then(|x| x.try_into().ok())
        .ok_or_else(|| FrostError::Invalid("a verifying key is 33 bytes".into()))
}

/// The group's public facts, as bytes: its verifying key (33-byte compressed point), its
/// threshold and each participant's verifying share (33 bytes each, by participant number).
pub struct GroupFacts {
    pub verifying_key: [u8; 33],
    pub threshold: u16,
    pub verifying_shares: BTreeMap<u16, [u8; 33]>,
}

fn point(bytes: Vec<u8>) -> Result<[u8; 33], FrostError> {
    bytes
        .try_into()
        .map_err(|_| FrostError::Invalid("a point is 33 bytes".into()))
}

/// The public facts of `public`, a group of `n` participants.
pub fn facts(public: &PublicKeyPackage, n: u16) -> Result<GroupFacts, FrostError> {
    let all: Vec<u16> = (1..=n).collect();
    let verifying_key = point(
        public
            .verifying_key()
            .serialize()
            .map_err(|e| FrostError::Invalid(e.to_string()))?,
    )?;
    let mut verifying_shares = BTreeMap::new();
    for (i, share) in public.verifying_shares() {
        let p = number(i, &all);
        if p == 0 {
            return Err(FrostError::Invalid(format!(
                "a verifying share belongs to no participant 1..={n}"
            )));
        }
        verifying_shares.insert(
            p,
            point(
                share
                    .serialize()
                    .map_err(|e| FrostError::Invalid(e.to_string()))?,
            )?,
        );
    }
    let threshold = public
        .min_signers()
        .ok_or_else(|| FrostError::Invalid("the group has no threshold".into()))?;
    Ok(GroupFacts {
        verifying_key,
        threshold,
        verifying_shares,
    })
}

/// A key package as bytes, for sealing; the buffer is wiped when dropped.
pub fn key_package_bytes(key: &KeyPackage) -> Result<zeroize::Zeroizing<Vec<u8>>, FrostError> {
    key.serialize()
        .map(zeroize::Zeroizing::new)
        .map_err(|e| FrostError::Invalid(e.to_string()))
}

/// A key package from its bytes.
pub fn key_package(bytes: &[u8]) -> Result<KeyPackage, FrostError> {
    KeyPackage::deserialize(bytes).map_err(|e| FrostError::Invalid(e.to_string()))
}

/// A public key package as bytes.
pub fn public_package_bytes(public: &PublicKeyPackage) -> Result<Vec<u8>, FrostError> {
    public
        .serialize()
        .map_err(|e| FrostError::Invalid(e.to_string()))
}

/// A public key package from its bytes.
pub fn public_package(bytes: &[u8]) -> Result<PublicKeyPackage, FrostError> {
    PublicKeyPackage::deserialize(bytes).map_err(|e| FrostError::Invalid(e.to_string()))
}

/// This participant's number, from its key package.
pub fn participant(key: &KeyPackage, n: u16) -> u16 {
    let all: Vec<u16> = (1..=n).collect();
    number(key.identifier(), &all)
}

/// Repairing a lost share (frost-core's repairable threshold scheme): `t` helpers rebuild the
/// share of participant `lost` for a new holder, without the group key or any other share
/// changing and without any helper learning the repaired share.
///
/// Part 1, at helper `key`: one delta for each helper (its own included), each to be sealed
/// to that helper alone. Deltas are secret.
pub fn repair_deltas(
    helpers: &[u16],
    key: &KeyPackage,
    lost: u16,
) -> Result<BTreeMap<u16, zeroize::Zeroizing<Vec<u8>>>, FrostError> {
    if helpers.contains(&lost) {
        return Err(FrostError::Invalid(format!(
            "participant {lost} cannot help repair its own share"
        )));
    }
    let ids = helpers
        .iter()
        .map(|h| id(*h))
        .collect::<Result<Vec<_>, _>>()?;
    let deltas = frost::keys::repairable::repair_share_part1::<frost::Secp256K1Sha256TR, _>(
        &ids,
        key,
        &mut rand_core::OsRng,
        id(lost)?,
    )
    .map_err(|e| FrostError::Invalid(e.to_string()))?;
    Ok(deltas
        .into_iter()
        .map(|(to, d)| (number(&to, helpers), zeroize::Zeroizing::new(d.serialize())))
        .collect())
}

/// Part 2, at a helper: its sigma (secret, for the new holder alone) from the delta every
/// helper sent it (its own included).
pub fn repair_sigma(
    deltas: &BTreeMap<u16, zeroize::Zeroizing<Vec<u8>>>,
) -> Result<zeroize::Zeroizing<Vec<u8>>, FrostError> {
    let parsed = deltas
        .iter()
        .map(|(from, d)| {
            frost::keys::repairable::Delta::deserialize(d).map_err(|e| FrostError::BadPackage {
                from: *from,
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(zeroize::Zeroizing::new(
        frost::keys::repairable::repair_share_part2(&parsed).serialize(),
    ))
}

/// Part 3, at the new holder of participant `lost`'s share: the key package from every
/// helper's sigma, refused unless it matches the group's verifying share for `lost` (a helper
/// that sent a wrong value, or a group package that is not the group's, is caught here).
pub fn repair_finish(
    sigmas: &BTreeMap<u16, zeroize::Zeroizing<Vec<u8>>>,
    lost: u16,
    public: &PublicKeyPackage,
) -> Result<KeyPackage, FrostError> {
    let parsed = sigmas
        .iter()
        .map(|(from, s)| {
            frost::keys::repairable::Sigma::deserialize(s).map_err(|e| FrostError::BadPackage {
                from: *from,
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let key = frost::keys::repairable::repair_share_part3(&parsed, id(lost)?, public)
        .map_err(|e| FrostError::Invalid(e.to_string()))?;
    match public.verifying_shares().get(&id(lost)?) {
        Some(share) if share == key.verifying_share() => Ok(key),
        _ => Err(FrostError::Invalid(format!(
            "the repaired share does not match participant {lost}'s verifying share: a helper \
             sent a wrong value"
        ))),
    }
}
