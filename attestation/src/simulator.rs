//! A simulated Nitro Secure Module issuer, for development and tests without Nitro hardware.
//!
//! Documents chain `leaf → runtime intermediate → sigil test root`. The test root's private
//! key ([`TEST_ROOT_KEY_PKCS8`]) is committed to the repository **on purpose**: anyone can
//! mint documents under it, so they prove nothing about where code runs. Verifiers accept them
//! only with [`crate::Policy::trust_test_root`], and the documents are in debug mode (PCR0..2
//! zero), so they also need [`crate::Policy::allow_debug`].

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};

use crate::chain::SIGIL_TEST_ROOT_DER;
use crate::cose;
use crate::document::{AttestationDocument, DIGEST_SHA384, MAX_USER_FIELD_BYTES};

/// PKCS#8 private key of the sigil test root. Deliberately public (see the module docs).
pub const TEST_ROOT_KEY_PKCS8: &[u8] = include_bytes!("../test-root/sigil-test-root.key.pk8");

/// Lifetime of the runtime intermediate CA.
const INTERMEDIATE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Lifetime of a leaf (like AWS's ~3 h leaves).
const LEAF_LIFETIME: Duration = Duration::from_secs(3 * 3600);
/// Certificates are replaced when they have less than this left, so a document is never
/// issued with a chain about to expire under the verifier.
const RENEW_MARGIN: Duration = Duration::from_secs(10 * 60);
/// Backdating absorbs clock differences between issuer and verifier.
const INTERMEDIATE_BACKDATE: Duration = Duration::from_secs(3600);
const LEAF_BACKDATE: Duration = Duration::from_secs(60);
/// Number of PCRs a Nitro enclave reports (0..=15).
const PCR_COUNT: u8 = 16;
const PCR_LEN: usize = 48;

/// Errors from the simulator (key loading, certificate generation, signing, clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimError(String);

impl SimError {
    fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "simulator: {}", self.0)
    }
}

impl std::error::Error for SimError {}

fn now() -> Result<Duration, SimError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SimError::new("system clock is before 1970"))
}

/// rcgen takes `time::OffsetDateTime`; build it from the epoch so this crate needs no direct
/// `time` dependency (the type is never named). Durations here are "now ± days", far from
/// the type's limits.
macro_rules! rcgen_time {
    ($since_epoch:expr) => {{
        #[allow(clippy::arithmetic_side_effects)]
        let t = date_time_ymd(1970, 1, 1) + $since_epoch;
        t
    }};
}

/// A fresh P-384 key, as PKCS#8 (for ring's raw-signature signer) and as an rcgen key (for
/// putting it in a certificate).
fn fresh_key(rng: &SystemRandom) -> Result<(Vec<u8>, KeyPair), SimError> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, rng)
        .map_err(|_| SimError::new("P-384 key generation failed"))?;
    let pkcs8 = pkcs8.as_ref().to_vec();
    let rc = KeyPair::try_from(pkcs8.as_slice())
        .map_err(|e| SimError::new(format!("loading generated key: {e}")))?;
    Ok((pkcs8, rc))
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "sigil");
    dn
}

struct Intermediate {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
    not_after: Duration,
}

struct Leaf {
    der: Vec<u8>,
    signer: EcdsaKeyPair,
    not_after: Duration,
}

struct Current {
    intermediate: Intermediate,
    leaf: Leaf,
}

/// Issues attestation documents under the sigil test root. `Send + Sync`: certificates are
/// cached behind a mutex and renewed near expiry.
pub struct SimulatedIssuer {
    root: Issuer<'static, KeyPair>,
    module_id: String,
    rng: SystemRandom,
    current: Mutex<Current>,
}

impl fmt::Debug for SimulatedIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedIssuer")
            .field("module_id", &self.module_id)
            .finish_non_exhaustive()
    }
}

impl SimulatedIssuer {
    /// Loads the test root and issues a fresh intermediate and leaf.
    pub fn new() -> Result<Self, SimError> {
        let rng = SystemRandom::new();
        let root_key = KeyPair::try_from(TEST_ROOT_KEY_PKCS8)
            .map_err(|e| SimError::new(format!("loading the test root key: {e}")))?;
        // The issuer name is taken from the committed certificate itself, so the issued
        // certificates' issuer field matches its subject byte for byte.
        let root = Issuer::from_ca_cert_der(&SIGIL_TEST_ROOT_DER.into(), root_key)
            .map_err(|e| SimError::new(format!("loading the test root certificate: {e}")))?;
        let mut id = [0u8; 8];
        rng.fill(&mut id)
            .map_err(|_| SimError::new("random module id"))?;
        let module_id = format!("sigil-simulated-nsm-{}", hex::encode(id));
        let now = now()?;
        let intermediate = Self::new_intermediate(&root, &rng, now)?;
        let leaf = Self::new_leaf(&intermediate, &rng, &module_id, now)?;
        Ok(Self {
            root,
            module_id,
            rng,
            current: Mutex::new(Current { intermediate, leaf }),
        })
    }

    /// The module id every document from this issuer carries.
    pub fn module_id(&self) -> &str {
        &self.module_id
    }

    fn new_intermediate(
        root: &Issuer<'static, KeyPair>,
        rng: &SystemRandom,
        now: Duration,
    ) -> Result<Intermediate, SimError> {
        let (_, key) = fresh_key(rng)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("sigil simulated intermediate (NOT AWS)");
        params.not_before = rcgen_time!(now.saturating_sub(INTERMEDIATE_BACKDATE));
        let not_after = now.saturating_add(INTERMEDIATE_LIFETIME);
        params.not_after = rcgen_time!(not_after);
        // pathLen 0: it may only issue leaves, like AWS's last intermediate.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, root)
            .map_err(|e| SimError::new(format!("issuing the intermediate: {e}")))?;
        Ok(Intermediate {
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
            not_after,
        })
    }

    fn new_leaf(
        intermediate: &Intermediate,
        rng: &SystemRandom,
        module_id: &str,
        now: Duration,
    ) -> Result<Leaf, SimError> {
        let (pkcs8, key) = fresh_key(rng)?;
        let signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &pkcs8, rng)
            .map_err(|_| SimError::new("loading the leaf key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&format!("{module_id} (NOT AWS)"));
        params.not_before = rcgen_time!(now.saturating_sub(LEAF_BACKDATE));
        let not_after = now.saturating_add(LEAF_LIFETIME);
        params.not_after = rcgen_time!(not_after);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &intermediate.issuer)
            .map_err(|e| SimError::new(format!("issuing the leaf: {e}")))?;
        // The certificate must carry the key that signs documents.
        if signer.public_key().as_ref() != key.public_key_raw() {
            return Err(SimError::new("leaf key mismatch"));
        }
        Ok(Leaf {
            der: cert.der().to_vec(),
            signer,
            not_after,
        })
    }

    /// Runs `f` with a chain that is valid for at least [`RENEW_MARGIN`], renewing first if
    /// needed. The intermediate is renewed while it still outlives a fresh leaf, so a leaf
    /// never outlives its issuer.
    fn with_current<R>(
        &self,
        f: impl FnOnce(&Current) -> Result<R, SimError>,
    ) -> Result<R, SimError> {
        // State is only ever replaced wholesale, so a poisoned lock still holds a consistent
        // value.
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now()?;
        let horizon = now.saturating_add(RENEW_MARGIN);
        if current.intermediate.not_after < horizon.saturating_add(LEAF_LIFETIME) {
            current.intermediate = Self::new_intermediate(&self.root, &self.rng, now)?;
            current.leaf = Self::new_leaf(&current.intermediate, &self.rng, &self.module_id, now)?;
        } else if current.leaf.not_after < horizon {
            current.leaf = Self::new_leaf(&current.intermediate, &self.rng, &self.module_id, now)?;
        }
        f(&current)
    }

    fn build(
        &self,
        current: &Current,
        timestamp_ms: u64,
        fields: &Fields<'_>,
    ) -> AttestationDocument {
        AttestationDocument {
            module_id: self.module_id.clone(),
            timestamp_ms,
            digest: DIGEST_SHA384.to_string(),
            // Debug mode, as without hardware: there is no measured image.
            pcrs: (0..PCR_COUNT).map(|i| (i, vec![0u8; PCR_LEN])).collect(),
            certificate: current.leaf.der.clone(),
            cabundle: vec![
                SIGIL_TEST_ROOT_DER.to_vec(),
                current.intermediate.der.clone(),
            ],
            public_key: fields.public_key.map(<[u8]>::to_vec),
            user_data: fields.user_data.map(<[u8]>::to_vec),
            nonce: fields.nonce.map(<[u8]>::to_vec),
        }
    }

    fn sign(&self, current: &Current, payload: &[u8]) -> Result<Vec<u8>, SimError> {
        cose::sign_es384(&current.leaf.signer, &self.rng, payload)
            .map_err(|_| SimError::new("ES384 signing failed"))
    }

    /// The document [`Self::attest`] would sign right now (current chain, current time), for
    /// callers that want to modify it before [`Self::sign_document`].
    pub fn document(
        &self,
        public_key: Option<&[u8]>,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
    ) -> Result<AttestationDocument, SimError> {
        let fields = Fields::new(public_key, user_data, nonce)?;
        let ts = now_ms()?;
        self.with_current(|current| Ok(self.build(current, ts, &fields)))
    }

    /// Issues a signed document like the NSM's `Attestation` request: module_id
    /// `sigil-simulated-nsm-<16 hex>`, timestamp now, PCR0..15 all zero (debug mode),
    /// certificate = leaf, cabundle = [test root, intermediate]; untagged COSE_Sign1 with
    /// protected `{1: -35}`, empty unprotected map and an ES384 signature.
    ///
    /// Like the NSM, refuses fields over 1024 bytes (and an empty public_key).
    pub fn attest(
        &self,
        public_key: Option<&[u8]>,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
    ) -> Result<Vec<u8>, SimError> {
        let fields = Fields::new(public_key, user_data, nonce)?;
        let ts = now_ms()?;
        // Building and signing under one lock: the document's certificate is the signing leaf.
        self.with_current(|current| {
            let doc = self.build(current, ts, &fields);
            self.sign(current, &doc.to_cbor())
        })
    }

    /// Signs a caller-chosen document (any timestamp, PCRs, fields) with the current leaf key.
    /// Nothing is validated, so tests can produce stale or malformed documents; the
    /// document's `certificate` must be the current leaf (as from [`Self::document`]) for the
    /// signature to verify.
    pub fn sign_document(&self, doc: &AttestationDocument) -> Result<Vec<u8>, SimError> {
        self.sign_payload(&doc.to_cbor())
    }

    /// Signs arbitrary payload bytes (e.g. a document re-encoded with an indefinite-length
    /// map) with the current leaf key.
    pub fn sign_payload(&self, payload: &[u8]) -> Result<Vec<u8>, SimError> {
        self.with_current(|current| self.sign(current, payload))
    }
}

fn now_ms() -> Result<u64, SimError> {
    u64::try_from(now()?.as_millis()).map_err(|_| SimError::new("clock out of range"))
}

/// The caller-supplied optional fields, checked against the limits the NSM enforces.
struct Fields<'a> {
    public_key: Option<&'a [u8]>,
    user_data: Option<&'a [u8]>,
    nonce: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    fn new(
        public_key: Option<&'a [u8]>,
        user_data: Option<&'a [u8]>,
        nonce: Option<&'a [u8]>,
    ) -> Result<Self, SimError> {
        check_field("public_key", public_key, 1)?;
        check_field("user_data", user_data, 0)?;
        check_field("nonce", nonce, 0)?;
        Ok(Self {
            public_key,
            user_data,
            nonce,
        })
    }
}

fn check_field(name: &str, value: Option<&[u8]>, min: usize) -> Result<(), SimError> {
    match value {
        Some(v) if v.len() < min || v.len() > MAX_USER_FIELD_BYTES => Err(SimError::new(format!(
            "{name} is {} bytes, allowed {min}..={MAX_USER_FIELD_BYTES}",
            v.len()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, verify};

    fn dev_policy() -> Policy {
        let mut p = Policy::at(now().unwrap().as_secs());
        p.trust_test_root = true;
        p.allow_debug = true;
        p
    }

    fn chain_of(sim: &SimulatedIssuer) -> (Vec<u8>, Vec<u8>) {
        let doc = sim.document(None, None, None).unwrap();
        (doc.certificate, doc.cabundle[1].clone())
    }

    #[test]
    fn leaf_is_cached_then_renewed_near_expiry() {
        let sim = SimulatedIssuer::new().unwrap();
        let (leaf, inter) = chain_of(&sim);
        assert_eq!(chain_of(&sim), (leaf.clone(), inter.clone()), "cached");

        // Leaf with 11 minutes left: still used.
        sim.current.lock().unwrap().leaf.not_after = now().unwrap() + Duration::from_secs(660);
        assert_eq!(chain_of(&sim).0, leaf);
        // Leaf with 9 minutes left: replaced, intermediate kept.
        sim.current.lock().unwrap().leaf.not_after = now().unwrap() + Duration::from_secs(540);
        let (leaf2, inter2) = chain_of(&sim);
        assert_ne!(leaf2, leaf);
        assert_eq!(inter2, inter);
        verify(&sim.attest(None, None, None).unwrap(), &dev_policy()).unwrap();

        // Intermediate that would not outlive a fresh leaf: both replaced.
        sim.current.lock().unwrap().intermediate.not_after =
            now().unwrap() + LEAF_LIFETIME + Duration::from_secs(60);
        let (leaf3, inter3) = chain_of(&sim);
        assert_ne!(leaf3, leaf2);
        assert_ne!(inter3, inter);
        verify(&sim.attest(None, None, None).unwrap(), &dev_policy()).unwrap();
    }

    #[test]
    fn module_id_is_stable_per_issuer_and_distinct_across_issuers() {
        let a = SimulatedIssuer::new().unwrap();
        let b = SimulatedIssuer::new().unwrap();
        assert_ne!(a.module_id(), b.module_id());
        assert!(a.module_id().contains("simulated"));
        assert_eq!(
            a.document(None, None, None).unwrap().module_id,
            a.module_id()
        );
    }
}
