#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::group::GroupEncoding;
use k256::{ProjectivePoint, Scalar};
use vsss_rs::{
    DefaultShare, FeldmanVerifierSet, IdentifierPrimeField, ReadableShareSet, Share as _,
    ShareVerifierGroup, ValueGroup, feldman,
};
use zeroize::Zeroizing;

type VShare = DefaultShare<IdentifierPrimeField<Scalar>, IdentifierPrimeField<Scalar>>;
type VVerifier = ShareVerifierGroup<ProjectivePoint>;

/// Most administrators in a quorum.
pub const MAX_SHARES: u8 = 32;

/// Why a sharing step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    #[error("{0}")]
    Invalid(String),
    /// Share `index` does not match the public commitments (a wrong or altered share).
    #[error("share {index} does not match the quorum's public commitments")]
    BadShare { index: u8 },
    #[error("{got} shares; the quorum needs {threshold}")]
    TooFew { got: usize, threshold: usize },
    #[error("share {index} appears twice")]
    Duplicate { index: u8 },
}

/// One administrator's share: its number (1..=n) and value. Wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    pub index: u8,
    value: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Share {{ index: {}, value: <secret> }}", self.index)
    }
}

impl Share {
    /// `index u8 || value[32]`.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 33]> {
        let mut out = Zeroizing::new([0u8; 33]);
        out[0] = self.index;
        out[1..].copy_from_slice(&self.value[..]);
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<Share, QuorumError> {
        let b: &[u8; 33] = b
            .try_into()
            .map_err(|_| QuorumError::Invalid("a share is 33 bytes".into()))?;
        if b[0] == 0 {
            return Err(QuorumError::Invalid("share number 0 does not exist".into()));
        }
        let mut value = Zeroizing::new([0u8; 32]);
        value.copy_from_slice(&b[1..]);
        // The value must be a scalar (below the group order).
        scalar(&value).ok_or(QuorumError::BadShare { index: b[0] })?;
        Ok(Share { index: b[0], value })
    }

    fn to_vsss(&self) -> Result<VShare, QuorumError> {
        let value = scalar(&self.value).ok_or(QuorumError::BadShare { index: self.index })?;
        Ok(VShare::with_identifier_and_value(
            IdentifierPrimeField(Scalar::from(u64::from(self.index))),
            IdentifierPrimeField(value),
        ))
    }
}

fn scalar(b: &[u8; 32]) -> Option<Scalar> {
    Option::from(Scalar::from_repr((*b).into()))
}

/// The public commitments of a sharing: one compressed point per coefficient of the sharing
/// polynomial, the first being the root secret times the generator (the root's public key).
/// `threshold` is their number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commitments(pub Vec<[u8; 33]>);

impl Commitments {
    pub fn threshold(&self) -> usize {
        self.0.len()
    }

    /// The root's public key (compressed).
    pub fn public_key(&self) -> Option<&[u8; 33]> {
        self.0.first()
    }

    /// Every commitment is a point of the curve.
    pub fn check(&self) -> Result<(), QuorumError> {
        self.to_vsss().map(|_| ())
    }

    /// The verifier set vsss-rs takes: the generator, then the commitments.
    fn to_vsss(&self) -> Result<Vec<VVerifier>, QuorumError> {
        let mut set = vec![ValueGroup(ProjectivePoint::GENERATOR)];
        for (i, c) in self.0.iter().enumerate() {
            let p: Option<k256::AffinePoint> = k256::AffinePoint::from_bytes(c.into()).into();
            let p = p.ok_or_else(|| {
                QuorumError::Invalid(format!("commitment {i} is not a point of the curve"))
            })?;
            set.push(ValueGroup(ProjectivePoint::from(p)));
        }
        Ok(set)
    }
}

fn point_bytes(p: &ProjectivePoint) -> Result<[u8; 33], QuorumError> {
    p.to_affine()
        .to_bytes()
        .as_slice()
        .try_into()
        .map_err(|_| QuorumError::Invalid("the identity has no compressed encoding".into()))
}

/// Checks that `secret` is the root the commitments name (its public key is the first).
pub fn check_root(
    secret: &Zeroizing<[u8; 32]>,
    commitments: &Commitments,
) -> Result<(), QuorumError> {
    let mut s = scalar(secret)
        .ok_or_else(|| QuorumError::Invalid("the root is not below the order".into()))?;
    let public = point_bytes(&(ProjectivePoint::GENERATOR * s));
    s.zeroize_scalar();
    if Some(&public?) != commitments.public_key() {
        return Err(QuorumError::Invalid(
            "the root does not match the commitments' public key".into(),
        ));
    }
    Ok(())
}

/// Splits `secret` into `n` shares, any `threshold` of which rebuild it.
pub fn split(
    secret: &Zeroizing<[u8; 32]>,
    threshold: u8,
    n: u8,
) -> Result<(Commitments, Vec<Share>), QuorumError> {
    if !(2..=MAX_SHARES).contains(&n) || !(2..=n).contains(&threshold) {
        return Err(QuorumError::Invalid(format!(
            "{threshold} of {n}: need 2 <= k <= n <= {MAX_SHARES}"
        )));
    }
    let mut s = scalar(secret)
        .filter(|s| !bool::from(s.is_zero()))
        .ok_or_else(|| QuorumError::Invalid("the secret is zero or not below the order".into()))?;
    let mut rng = rand_core::OsRng;
    let split = feldman::split_secret::<VShare, VVerifier>(
        usize::from(threshold),
        usize::from(n),
        &IdentifierPrimeField(s),
        None,
        &mut rng,
    )
    .map_err(|e| QuorumError::Invalid(format!("splitting: {e:?}")));
    s.zeroize_scalar();
    let (shares, verifiers) = split?;
    // The first verifier is the generator itself; the rest are the commitments.
    let commitments = verifiers
        .iter()
        .skip(1)
        .map(|v| point_bytes(&v.0))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(shares.len());
    for (i, sh) in shares.into_iter().enumerate() {
        let mut value = Zeroizing::new([0u8; 32]);
        value.copy_from_slice(&sh.value.0.to_repr());
        let mut sh = sh;
        sh.value.0.zeroize_scalar();
        out.push(Share {
            index: u8::try_from(i + 1).map_err(|_| QuorumError::Invalid("too many".into()))?,
            value,
        });
    }
    Ok((Commitments(commitments), out))
}

/// A share checked against the quorum's public commitments.
pub fn verify(share: &Share, commitments: &Commitments) -> Result<(), QuorumError> {
    let set = commitments.to_vsss()?;
    let mut v = share.to_vsss()?;
    let r = set
        .verify_share(&v)
        .map_err(|_| QuorumError::BadShare { index: share.index });
    v.value.0.zeroize_scalar();
    r
}

/// The root secret from at least `threshold` shares, each verified first (a bad one named),
/// and the result checked against the root's public key.
pub fn combine(
    shares: &[Share],
    commitments: &Commitments,
) -> Result<Zeroizing<[u8; 32]>, QuorumError> {
    let threshold = commitments.threshold();
    if shares.len() < threshold {
        return Err(QuorumError::TooFew {
            got: shares.len(),
            threshold,
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut vs = Vec::with_capacity(shares.len());
    for s in shares {
        if !seen.insert(s.index) {
            return Err(QuorumError::Duplicate { index: s.index });
        }
        verify(s, commitments)?;
        vs.push(s.to_vsss()?);
    }
    let combined = vs
        .combine()
        .map_err(|e| QuorumError::Invalid(format!("combining: {e:?}")));
    for v in &mut vs {
        v.value.0.zeroize_scalar();
    }
    let mut secret = combined?;
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&secret.0.to_repr());
    let public = point_bytes(&(ProjectivePoint::GENERATOR * secret.0));
    secret.0.zeroize_scalar();
    if Some(&public?) != commitments.public_key() {
        return Err(QuorumError::Invalid(
            "the combined secret does not match the quorum's public key".into(),
        ));
    }
    Ok(out)
}

/// Overwrites a scalar held by vsss-rs once it is no longer needed.
trait ZeroizeScalar {
    fn zeroize_scalar(&mut self);
}

impl ZeroizeScalar for Scalar {
    fn zeroize_scalar(&mut self) {
        // Volatile writes (zeroize), which the optimizer may not remove as dead stores.
        zeroize::Zeroize::zeroize(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::Field;

    fn secret() -> Zeroizing<[u8; 32]> {
        let s = Scalar::random(&mut rand_core::OsRng);
        let mut b = Zeroizing::new([0u8; 32]);
        b.copy_from_slice(&s.to_repr());
        b
    }

    #[test]
    fn any_k_of_n_rebuild_the_root_and_fewer_do_not() {
        let root = secret();
        let (commitments, shares) = split(&root, 2, 3).unwrap();
        assert_eq!(commitments.threshold(), 2);
        // The first commitment is the root's public key.
        let s = scalar(&root).unwrap();
        assert_eq!(
            commitments.public_key(),
            Some(&point_bytes(&(ProjectivePoint::GENERATOR * s)).unwrap())
        );
        for s in &shares {
            verify(s, &commitments).unwrap();
        }
        for pair in [[0, 1], [0, 2], [1, 2]] {
            let two = [shares[pair[0]].clone(), shares[pair[1]].clone()];
            assert_eq!(*combine(&two, &commitments).unwrap(), *root);
        }
        assert_eq!(
            combine(&shares[..1], &commitments),
            Err(QuorumError::TooFew {
                got: 1,
                threshold: 2
            })
        );
        assert_eq!(*combine(&shares, &commitments).unwrap(), *root);
        // The root is what the commitments name; another secret is not.
        check_root(&root, &commitments).unwrap();
        assert!(check_root(&secret(), &commitments).is_err());
    }

    #[test]
    fn a_bad_share_is_named_and_refused() {
        let (commitments, shares) = split(&secret(), 2, 3).unwrap();
        let mut bytes = *shares[1].to_bytes();
        bytes[32] ^= 1;
        let bad = Share::from_bytes(&bytes).unwrap();
        assert_eq!(
            verify(&bad, &commitments),
            Err(QuorumError::BadShare { index: 2 })
        );
        assert_eq!(
            combine(&[shares[0].clone(), bad], &commitments),
            Err(QuorumError::BadShare { index: 2 })
        );
        // Another sharing's share does not verify either.
        let (_, other) = split(&secret(), 2, 3).unwrap();
        assert!(verify(&other[0], &commitments).is_err());
        // Twice the same share is not two shares.
        assert_eq!(
            combine(&[shares[0].clone(), shares[0].clone()], &commitments),
            Err(QuorumError::Duplicate { index: 1 })
        );
    }

    #[test]
    fn encodings_round_trip_and_bounds_hold() {
        let (_, shares) = split(&secret(), 3, 5).unwrap();
        let back = Share::from_bytes(&shares[4].to_bytes()[..]).unwrap();
        assert_eq!(back, shares[4]);
        assert_eq!(back.index, 5);
        assert!(Share::from_bytes(&[0u8; 33]).is_err());
        assert!(Share::from_bytes(&[1u8; 32]).is_err());
        assert!(split(&secret(), 1, 3).is_err());
        assert!(split(&secret(), 4, 3).is_err());
        assert!(split(&Zeroizing::new([0u8; 32]), 2, 3).is_err());
        assert!(format!("{:?}", shares[0]).contains("<secret>"));
    }
}
