//! FROST 2-of-3 in process: the distributed key generation, signatures by any two of the three
//! checked by libsecp256k1 as BIP-340 under the Taproot output key, an equivocating
//! coordinator caught, and a bad share named.

use std::collections::BTreeMap;

use sigil_signing::frost::{self, Dkg, FrostError, Generated};

/// Runs the three parts for `n` participants with threshold `t`, the coordinator carrying
/// every package faithfully.
fn dkg(n: u16, t: u16) -> BTreeMap<u16, Generated> {
    let mut parts: BTreeMap<u16, Dkg> = BTreeMap::new();
    let mut round1: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    for p in 1..=n {
        let (d, pkg) = Dkg::start(p, n, t).unwrap();
        parts.insert(p, d);
        round1.insert(p, pkg);
    }
    rounds(parts, round1)
}

/// A refresh of every member's share of `keys`.
fn refresh(keys: &BTreeMap<u16, Generated>) -> BTreeMap<u16, Generated> {
    let n = keys.len() as u16;
    let mut parts: BTreeMap<u16, Dkg> = BTreeMap::new();
    let mut round1: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    for (p, g) in keys {
        let (d, pkg) = Dkg::start_refresh(g.key_package.clone(), g.public.clone(), n).unwrap();
        parts.insert(*p, d);
        round1.insert(*p, pkg);
    }
    rounds(parts, round1)
}

/// Parts 2 and 3, the coordinator carrying every package faithfully.
fn rounds(
    mut parts: BTreeMap<u16, Dkg>,
    round1: BTreeMap<u16, Vec<u8>>,
) -> BTreeMap<u16, Generated> {
    let mut to: BTreeMap<u16, BTreeMap<u16, Vec<u8>>> = BTreeMap::new();
    let mut digests: BTreeMap<u16, [u8; 32]> = BTreeMap::new();
    for (p, d) in parts.iter_mut() {
        let others = round1
            .iter()
            .filter(|(k, _)| *k != p)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let (out, digest) = d.round2(&others).unwrap();
        digests.insert(*p, digest);
        for (recipient, pkg) in out {
            to.entry(recipient).or_default().insert(*p, pkg);
        }
    }
    parts
        .iter_mut()
        .map(|(p, d)| {
            let others = digests
                .iter()
                .filter(|(k, _)| *k != p)
                .map(|(k, v)| (*k, *v))
                .collect();
            (*p, d.finish(&to[p], &others).unwrap())
        })
        .collect()
}

fn sign(
    keys: &BTreeMap<u16, Generated>,
    signers: &[u16],
    message: &[u8],
) -> Result<[u8; 64], FrostError> {
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for s in signers {
        let (n, c) = frost::commit(&keys[s].key_package).unwrap();
        nonces.insert(*s, n);
        commitments.insert(*s, c);
    }
    let package = frost::signing_package(&commitments, message).unwrap();
    let shares: BTreeMap<u16, Vec<u8>> = nonces
        .into_iter()
        .map(|(s, n)| {
            (
                s,
                frost::sign(n, &keys[&s].key_package, &package, None).unwrap(),
            )
        })
        .collect();
    frost::aggregate(&package, &shares, &keys[&signers[0]].public, None)
}

fn verify(keys: &BTreeMap<u16, Generated>, message: &[u8], sig: &[u8; 64]) {
    use secp256k1::{Secp256k1, XOnlyPublicKey, schnorr::Signature};
    let out = frost::output_key(&keys[&1].public, None).unwrap();
    let pk = XOnlyPublicKey::from_byte_array(out).unwrap();
    Secp256k1::verification_only()
        .verify_schnorr(&Signature::from_byte_array(*sig), message, &pk)
        .expect("a BIP-340 signature under the group's output key");
}

#[test]
fn any_two_of_three_sign_and_libsecp256k1_verifies() {
    let keys = dkg(3, 2);
    // Every participant ends with the same group key.
    let group: Vec<_> = keys
        .values()
        .map(|g| frost::output_key(&g.public, None).unwrap())
        .collect();
    assert!(group.windows(2).all(|w| w[0] == w[1]));
    let message = [0x42u8; 32];
    for signers in [[1, 2], [2, 3], [1, 3]] {
        let sig = sign(&keys, &signers, &message).unwrap();
        verify(&keys, &message, &sig);
    }
}

#[test]
fn an_equivocating_coordinator_is_caught() {
    let (n, t) = (3, 2);
    let mut parts: BTreeMap<u16, Dkg> = BTreeMap::new();
    let mut round1 = BTreeMap::new();
    for p in 1..=n {
        let (d, pkg) = Dkg::start(p, n, t).unwrap();
        parts.insert(p, d);
        round1.insert(p, pkg);
    }
    // Participant 3 is shown another round-1 package for participant 1.
    let (_, forged) = Dkg::start(1, n, t).unwrap();
    let mut digests = BTreeMap::new();
    let mut to: BTreeMap<u16, BTreeMap<u16, Vec<u8>>> = BTreeMap::new();
    for (p, d) in parts.iter_mut() {
        let mut others: BTreeMap<u16, Vec<u8>> = round1
            .iter()
            .filter(|(k, _)| *k != p)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        if *p == 3 {
            others.insert(1, forged.clone());
        }
        let (out, digest) = d.round2(&others).unwrap();
        digests.insert(*p, digest);
        for (r, pkg) in out {
            to.entry(r).or_default().insert(*p, pkg);
        }
    }
    let others = |p: u16| -> BTreeMap<u16, [u8; 32]> {
        digests
            .iter()
            .filter(|(k, _)| **k != p)
            .map(|(k, v)| (*k, *v))
            .collect()
    };
    let e = parts
        .get_mut(&2)
        .unwrap()
        .finish(&to[&2], &others(2))
        .err()
        .unwrap();
    assert_eq!(e, FrostError::Equivocation { participant: 3 });
    let e = parts
        .get_mut(&3)
        .unwrap()
        .finish(&to[&3], &others(3))
        .err()
        .unwrap();
    assert!(matches!(e, FrostError::Equivocation { .. }), "{e}");
}

#[test]
fn a_bad_share_is_named() {
    let keys = dkg(3, 2);
    let message = b"pay 1 BTC";
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for s in [1u16, 3] {
        let (n, c) = frost::commit(&keys[&s].key_package).unwrap();
        nonces.insert(s, n);
        commitments.insert(s, c);
    }
    let package = frost::signing_package(&commitments, message).unwrap();
    let mut shares: BTreeMap<u16, Vec<u8>> = nonces
        .into_iter()
        .map(|(s, n)| {
            (
                s,
                frost::sign(n, &keys[&s].key_package, &package, None).unwrap(),
            )
        })
        .collect();
    // Signer 3's share is replaced by signer 1's.
    let one = shares[&1].clone();
    shares.insert(3, one);
    let e = frost::aggregate(&package, &shares, &keys[&1].public, None).unwrap_err();
    assert_eq!(e, FrostError::BadShares { signers: vec![3] });
}

#[test]
fn parameters_and_steps_are_checked() {
    assert!(Dkg::start(1, 3, 1).is_err());
    assert!(Dkg::start(4, 3, 2).is_err());
    assert!(Dkg::start(0, 3, 2).is_err());
    let (mut d, _) = Dkg::start(1, 3, 2).unwrap();
    // Part 3 before round 2.
    assert!(matches!(
        d.finish(&BTreeMap::new(), &BTreeMap::new()),
        Err(FrostError::WrongStep(_))
    ));
    // Round 2 with a package missing.
    let (_, p2) = Dkg::start(2, 3, 2).unwrap();
    assert!(matches!(
        d.round2(&BTreeMap::from([(2, p2)])),
        Err(FrostError::Invalid(_))
    ));
    // Garbage is named by its sender.
    let (_, p2) = Dkg::start(2, 3, 2).unwrap();
    let e = d
        .round2(&BTreeMap::from([(2, p2), (3, b"garbage".to_vec())]))
        .unwrap_err();
    assert!(matches!(e, FrostError::BadPackage { from: 3, .. }), "{e}");
}

/// Participant 3's state is lost: participants 1 and 2 rebuild its share for a new holder;
/// the group key is unchanged and the new holder signs with either of them. A helper that
/// sends a wrong value is caught by the new holder.
#[test]
fn a_lost_share_is_repaired_without_changing_the_group_key() {
    let mut keys = dkg(3, 2);
    let public = keys[&1].public.clone();
    let helpers = [1u16, 2];
    let deltas: BTreeMap<u16, _> = helpers
        .iter()
        .map(|h| {
            (
                *h,
                frost::repair_deltas(&helpers, &keys[h].key_package, 3).unwrap(),
            )
        })
        .collect();
    // Each helper's sigma, from the delta every helper made for it.
    let sigma = |h: u16| {
        let to_h = helpers
            .iter()
            .map(|from| (*from, deltas[from][&h].clone()))
            .collect();
        frost::repair_sigma(&to_h).unwrap()
    };
    let sigmas: BTreeMap<u16, _> = helpers.iter().map(|h| (*h, sigma(*h))).collect();

    // A wrong sigma (one helper's sent twice): caught.
    let wrong: BTreeMap<u16, _> = [(1, sigmas[&1].clone()), (2, sigmas[&1].clone())].into();
    assert!(frost::repair_finish(&wrong, 3, &public).is_err());
    // A participant does not help repair itself.
    assert!(frost::repair_deltas(&[1, 3], &keys[&1].key_package, 3).is_err());

    let repaired = frost::repair_finish(&sigmas, 3, &public).unwrap();
    let old = keys.remove(&3).unwrap();
    assert_eq!(
        repaired.verifying_share(),
        old.key_package.verifying_share()
    );
    keys.insert(
        3,
        Generated {
            key_package: repaired,
            public: public.clone(),
        },
    );
    for signers in [[1, 3], [2, 3]] {
        let sig = sign(&keys, &signers, b"after the repair").unwrap();
        verify(&keys, b"after the repair", &sig);
    }
}

/// A refresh changes every share and keeps the group key: new shares sign together, an old
/// share no longer combines with new ones (its signer is named).
#[test]
fn a_refresh_changes_every_share_and_keeps_the_group_key() {
    let old = dkg(3, 2);
    let new = refresh(&old);
    let before = frost::output_key(&old[&1].public, None).unwrap();
    for p in 1..=3u16 {
        assert_eq!(frost::output_key(&new[&p].public, None).unwrap(), before);
        assert_ne!(
            new[&p].key_package.verifying_share(),
            old[&p].key_package.verifying_share()
        );
    }
    let sig = sign(&new, &[1, 3], b"after the refresh").unwrap();
    verify(&new, b"after the refresh", &sig);
    // Participant 3 still holding its old share: the aggregate under the new package fails.
    let mut mixed = BTreeMap::new();
    mixed.insert(
        1,
        Generated {
            key_package: new[&1].key_package.clone(),
            public: new[&1].public.clone(),
        },
    );
    mixed.insert(
        3,
        Generated {
            key_package: old[&3].key_package.clone(),
            public: new[&1].public.clone(),
        },
    );
    assert_eq!(
        sign(&mixed, &[1, 3], b"mixed"),
        Err(FrostError::BadShares { signers: vec![3] })
    );
}
