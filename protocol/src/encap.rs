//! Encrypted request/response bodies between a client and the enclave.
//!
//! Shape of RFC 9458 (Oblivious HTTP) §4, with our own labels, on top of RFC 9180 HPKE in base
//! mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM.
//!
//! * The enclave holds a per-boot X25519 key ([`ServerKey`]); its public key is put in the
//!   attestation document, so a client that verified the document knows that only that enclave
//!   image can read what it encrypts ([`seal_request`]).
//! * The response key is exported from the same HPKE context, so only the requester can read the
//!   response, and a valid response proves it came from the holder of the attested key.
//! * The request route (e.g. `"POST /v1/ping"`) is the AEAD associated data in both directions,
//!   so a body cannot be replayed to another endpoint, nor a response passed off as another
//!   endpoint's.
//! * Not defended here: replay. As RFC 9458 notes for its own requests, a captured request
//!   can be sent again and the enclave will process it again (the replayer cannot read the
//!   response, which only the original requester can open). Endpoints with side effects need
//!   their own freshness check.
//!
//! Wire format:
//!
//! ```text
//! request  = hdr || enc || ct
//!   hdr    = key_id (1) || kem_id (2) || kdf_id (2) || aead_id (2)       big-endian
//!   info   = "sigil encapsulated request v1" || 0x00 || hdr
//!   ct     = HPKE Seal(info, aad = route, plaintext)
//! response = response_nonce (32) || AES-256-GCM(key, nonce, aad = route, status || plaintext)
//!   status = the answer's HTTP status, 2 bytes big-endian (inside the AEAD: see below)
//!   secret = Export("sigil encapsulated response v2", 32)
//!   prk    = HKDF-Extract(salt = enc || response_nonce, secret)
//!   key    = HKDF-Expand(prk, "key", 32)
//!   nonce  = HKDF-Expand(prk, "nonce", 12)
//! ```
//!
//! The outcome of a sealed answer (its status) is inside the sealed plaintext. Threat: a
//! relaying parent that rewrites the HTTP status of a sealed answer to make the client take a
//! success for a failure or the reverse, or that reads the outcome (a witness that did not
//! satisfy its circuit, a wrong owner) off the status line. The enclave sends every sealed
//! answer with HTTP 200, and the client acts only on the sealed status. (v2 of the response
//! label: a v1 peer fails to open a v2 answer instead of misreading it.)
//!
//! Sizes: a request is bounded by its endpoint's limit (`open_request`'s `max_body`, at most
//! [`MAX_ENCAPSULATED_REQUEST`]), a response by [`MAX_ENCAPSULATED_RESPONSE`]. Both are checked
//! before any parsing or crypto.

use core::convert::Infallible;
use core::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{self, AeadInOut, KeyInit};
use getrandom::SysRng;
use hkdf::Hkdf;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use rand_core::{TryCryptoRng, TryRng};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// [`CheckedRng`] for a struct with a sticky `failed: bool` and an inherent
/// `fill_or_flag(&mut self, &mut [u8])` that sets it (and outputs zeros) instead of failing;
/// integers are drawn from it little-endian.
macro_rules! checked_rng {
    ($t:ty) => {
        impl TryRng for $t {
            type Error = Infallible;

            fn try_next_u32(&mut self) -> Result<u32, Infallible> {
                let mut b = [0u8; 4];
                self.fill_or_flag(&mut b);
                Ok(u32::from_le_bytes(b))
            }

            fn try_next_u64(&mut self) -> Result<u64, Infallible> {
                let mut b = [0u8; 8];
                self.fill_or_flag(&mut b);
                Ok(u64::from_le_bytes(b))
            }

            fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
                self.fill_or_flag(dst);
                Ok(())
            }
        }

        impl TryCryptoRng for $t {}

        impl CheckedRng for $t {
            fn failed(&self) -> bool {
                self.failed
            }
        }
    };
}

#[cfg(test)]
mod tests;

/// Key identifier of the (single, per-boot) enclave key.
pub const KEY_ID: u8 = 0;
/// RFC 9180 §7.1: DHKEM(X25519, HKDF-SHA256).
pub const KEM_ID: u16 = 0x0020;
/// RFC 9180 §7.2: HKDF-SHA256.
pub const KDF_ID: u16 = 0x0001;
/// RFC 9180 §7.3: AES-256-GCM.
pub const AEAD_ID: u16 = 0x0002;
/// Largest encapsulated request any endpoint accepts (proving inputs of 64 MiB in base64 JSON
/// fit); each endpoint has its own, usually far smaller, limit. Checked before any parsing or
/// crypto so an oversized body costs the enclave nothing (memory/CPU exhaustion).
pub const MAX_ENCAPSULATED_REQUEST: usize = 96 << 20;
/// Largest encapsulated response produced or accepted: answers are small (the largest is a
/// vault value), and the bound keeps a hostile server from making a client buffer much.
pub const MAX_ENCAPSULATED_RESPONSE: usize = 1 << 20;
/// Largest route string accepted as associated data. Routes are short constants; the bound
/// keeps a caller that forwards a parsed request line from feeding unbounded AAD.
pub const MAX_ROUTE_LEN: usize = 256;

/// Length of `hdr`: key id, KEM, KDF and AEAD ids.
const HDR_LEN: usize = 7;
/// RFC 9180 §7.1 Table 2: Nenc of DHKEM(X25519, HKDF-SHA256).
pub const ENC_LEN: usize = 32;
/// Length of an X25519 public key (Npk).
pub const PUBLIC_KEY_LEN: usize = 32;
/// AES-256-GCM tag length (Nt).
const TAG_LEN: usize = 16;
/// Exported response secret length.
const SECRET_LEN: usize = 32;
/// RFC 9458 §4.4: max(Nn, Nk) = max(12, 32) for AES-256-GCM.
const RESPONSE_NONCE_LEN: usize = 32;
const AEAD_KEY_LEN: usize = 32;
const AEAD_NONCE_LEN: usize = 12;
/// Bytes an encapsulated request adds to its plaintext.
pub const REQUEST_OVERHEAD: usize = HDR_LEN + ENC_LEN + TAG_LEN;
/// Length of the sealed status that leads a response's plaintext.
const STATUS_LEN: usize = 2;
/// Bytes an encapsulated response adds to its plaintext (the status included).
pub const RESPONSE_OVERHEAD: usize = RESPONSE_NONCE_LEN + STATUS_LEN + TAG_LEN;

const REQUEST_LABEL: &[u8] = b"sigil encapsulated request v1";
const RESPONSE_LABEL: &[u8] = b"sigil encapsulated response v2";

/// RFC 9180 §7.1.3: DeriveKeyPair input should carry at least Nsk (32) bytes of entropy;
/// §7.2.1 recommends a 64-byte cap on such inputs.
const MIN_SEED_LEN: usize = 32;
const MAX_SEED_LEN: usize = 64;
/// hpke panics when `info` approaches 2^16 bytes; every `info` we pass is far below this cap,
/// and the cap turns a future mistake into an error instead of a panic.
const MAX_INFO_LEN: usize = 256;

type SuiteKem = hpke::kem::X25519HkdfSha256;
type SuiteKdf = hpke::kdf::HkdfSha256;
type SuiteAead = hpke::aead::AesGcm256;
type PrivateKey = <SuiteKem as hpke::Kem>::PrivateKey;
type PublicKey = <SuiteKem as hpke::Kem>::PublicKey;
type EncappedKey = <SuiteKem as hpke::Kem>::EncappedKey;
type SenderCtx = hpke::aead::AeadCtxS<SuiteAead, SuiteKdf, SuiteKem>;
type ReceiverCtx = hpke::aead::AeadCtxR<SuiteAead, SuiteKdf, SuiteKem>;

// The wire ids must name exactly the suite the types implement, or a client could be told one
// suite and get another.
const _: () = assert!(
    <SuiteKem as hpke::Kem>::KEM_ID == KEM_ID
        && <SuiteKdf as hpke::kdf::Kdf>::KDF_ID == KDF_ID
        && <SuiteAead as hpke::aead::Aead>::AEAD_ID == AEAD_ID
);

/// Everything that can go wrong. Messages are safe to show to a remote peer: none depends on
/// secret data, and every decryption failure looks the same (no padding/decryption oracle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncapError {
    /// `hdr` names a key this enclave does not have.
    UnsupportedKeyId(u8),
    /// `hdr` names a suite other than ours (downgrade/confusion attempts end here).
    UnsupportedSuite { kem: u16, kdf: u16, aead: u16 },
    /// Body shorter than its fixed parts.
    TooShort,
    /// Body (or body to be produced) above its limit (the endpoint's, or
    /// [`MAX_ENCAPSULATED_REQUEST`] / [`MAX_ENCAPSULATED_RESPONSE`]).
    TooLarge { limit: usize },
    /// Route above [`MAX_ROUTE_LEN`].
    RouteTooLong,
    /// Server public key has the wrong length or is a low-order point.
    BadPublicKey,
    /// Seed for [`ServerKey::from_seed`] outside 32..=64 bytes.
    BadSeed,
    /// Authentication failed: wrong key, wrong route, or the body was modified.
    DecryptFailed,
    /// The OS random number generator failed.
    RandomnessUnavailable,
    /// A crypto primitive refused inputs that our own bounds should have excluded.
    Internal,
}

impl EncapError {
    /// Stable snake_case code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            EncapError::UnsupportedKeyId(_) => "encap_unsupported_key_id",
            EncapError::UnsupportedSuite { .. } => "encap_unsupported_suite",
            EncapError::TooShort => "encap_malformed",
            EncapError::TooLarge { .. } => "encap_too_large",
            EncapError::RouteTooLong => "encap_bad_route",
            EncapError::BadPublicKey => "encap_bad_public_key",
            EncapError::BadSeed => "encap_bad_seed",
            EncapError::DecryptFailed => "encap_decrypt_failed",
            EncapError::RandomnessUnavailable => "encap_randomness_unavailable",
            EncapError::Internal => "encap_internal",
        }
    }
}

impl fmt::Display for EncapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncapError::UnsupportedKeyId(id) => write!(f, "unsupported key id {id}"),
            EncapError::UnsupportedSuite { kem, kdf, aead } => write!(
                f,
                "unsupported HPKE suite kem=0x{kem:04x}, kdf=0x{kdf:04x}, aead=0x{aead:04x}"
            ),
            EncapError::TooShort => f.write_str("body too short"),
            EncapError::TooLarge { limit } => write!(f, "body too large (limit {limit} bytes)"),
            EncapError::RouteTooLong => write!(f, "route too long (limit {MAX_ROUTE_LEN} bytes)"),
            EncapError::BadPublicKey => f.write_str("bad public key"),
            EncapError::BadSeed => write!(
                f,
                "bad key seed (need {MIN_SEED_LEN} to {MAX_SEED_LEN} bytes)"
            ),
            EncapError::DecryptFailed => {
                f.write_str("decryption failed (wrong key, route or tampered body)")
            }
            EncapError::RandomnessUnavailable => f.write_str("randomness unavailable"),
            EncapError::Internal => f.write_str("internal encapsulation error"),
        }
    }
}

impl std::error::Error for EncapError {}

/// The enclave's per-boot HPKE key.
pub struct ServerKey {
    // hpke's X25519 private key wraps x25519_dalek::StaticSecret, which hpke builds with
    // x25519-dalek's `zeroize` feature: the scalar is wiped on drop (key recovery from freed
    // memory). No Clone: exactly one copy of the key exists.
    sk: PrivateKey,
    pk: [u8; PUBLIC_KEY_LEN],
}

impl fmt::Debug for ServerKey {
    // Never print the secret (leak through logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKey")
            .field("public_key", &hex::encode(self.pk))
            .finish_non_exhaustive()
    }
}

impl ServerKey {
    /// Fresh key from OS randomness.
    pub fn generate() -> Result<Self, EncapError> {
        // Zeroizing: the seed is as sensitive as the key it derives.
        let mut ikm = Zeroizing::new([0u8; MIN_SEED_LEN]);
        getrandom::fill(ikm.as_mut()).map_err(|_| EncapError::RandomnessUnavailable)?;
        Self::from_seed(ikm.as_ref())
    }

    /// RFC 9180 §7.1.3 DeriveKeyPair(ikm). For tests and vectors; `ikm` must be 32..=64 bytes.
    pub fn from_seed(ikm: &[u8]) -> Result<Self, EncapError> {
        // Refuse short seeds: a low-entropy seed means a guessable key.
        if !(MIN_SEED_LEN..=MAX_SEED_LEN).contains(&ikm.len()) {
            return Err(EncapError::BadSeed);
        }
        let (sk, pk) = <SuiteKem as hpke::Kem>::derive_keypair(ikm);
        Ok(ServerKey {
            sk,
            pk: pk.to_bytes().into(),
        })
    }

    /// The X25519 public key (what goes in the attestation document).
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.pk
    }

    /// Decrypts a request for `route`, at most `max_body` bytes (the endpoint's limit; never
    /// more than [`MAX_ENCAPSULATED_REQUEST`]). Returns the plaintext and the one-shot sealer
    /// for the response. The caller owns the plaintext and should wipe it if it is sensitive.
    pub fn open_request(
        &self,
        route: &str,
        body: &[u8],
        max_body: usize,
    ) -> Result<(Vec<u8>, ResponseSealer), EncapError> {
        check_route(route)?;
        // Size first, before parsing or crypto (resource exhaustion).
        let limit = max_body.min(MAX_ENCAPSULATED_REQUEST);
        if body.len() > limit {
            return Err(EncapError::TooLarge { limit });
        }
        let (hdr, rest) = body
            .split_first_chunk::<HDR_LEN>()
            .ok_or(EncapError::TooShort)?;
        check_header(hdr)?;
        let (enc, ct) = rest
            .split_first_chunk::<ENC_LEN>()
            .ok_or(EncapError::TooShort)?;
        if ct.len() < TAG_LEN {
            return Err(EncapError::TooShort);
        }
        // hdr is part of info, so a modified header changes every key (header tampering).
        let mut ctx = self.receiver_ctx(enc, &request_info(hdr))?;
        let plaintext = ctx
            .open(ct, route.as_bytes())
            .map_err(|_| EncapError::DecryptFailed)?;
        let secret = export_response_secret(|out| ctx.export(RESPONSE_LABEL, out))?;
        Ok((plaintext, ResponseSealer { secret, enc: *enc }))
    }

    /// One message from this key to `recipient`'s in HPKE auth mode (RFC 9180 §5.1.3):
    /// only the holder of this private key could have sealed it, only the recipient's can
    /// open it. Returns `(enc, ciphertext)`. For messages between enclaves, whose attested
    /// per-boot keys are these (see `crate::peers`).
    pub fn seal_auth(
        &self,
        recipient: &[u8],
        info: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<([u8; ENC_LEN], Vec<u8>), EncapError> {
        let mut rng = CheckedSysRng::default();
        self.seal_auth_with_rng(recipient, info, aad, plaintext, &mut rng)
    }

    fn seal_auth_with_rng<R: CheckedRng>(
        &self,
        recipient: &[u8],
        info: &[u8],
        aad: &[u8],
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<([u8; ENC_LEN], Vec<u8>), EncapError> {
        if info.len() > MAX_INFO_LEN {
            return Err(EncapError::Internal);
        }
        let pk = PublicKey::from_bytes(recipient).map_err(|_| EncapError::BadPublicKey)?;
        let me = PublicKey::from_bytes(&self.pk).map_err(|_| EncapError::Internal)?;
        // The mode owns its key: a copy that is wiped when the mode drops (see `sk`).
        let mode = OpModeS::Auth((self.sk.clone(), me));
        let res =
            hpke::setup_sender_with_rng::<SuiteAead, SuiteKdf, SuiteKem>(&mode, &pk, info, rng);
        // As in `setup_sender_ctx`: nothing derived from a failed RNG may be used.
        if rng.failed() {
            return Err(EncapError::RandomnessUnavailable);
        }
        let (enc, mut ctx) = res.map_err(|_| EncapError::BadPublicKey)?;
        let ct = ctx.seal(plaintext, aad).map_err(|_| EncapError::Internal)?;
        Ok((enc.to_bytes().into(), ct))
    }

    /// Opens a [`ServerKey::seal_auth`] message that `sender`'s key sealed to this one. Every
    /// failure (another sender, another recipient, a changed `info`, `aad` or ciphertext) is
    /// the one `DecryptFailed`.
    pub fn open_auth(
        &self,
        sender: &[u8],
        enc: &[u8; ENC_LEN],
        info: &[u8],
        aad: &[u8],
        ct: &[u8],
    ) -> Result<Vec<u8>, EncapError> {
        if info.len() > MAX_INFO_LEN {
            return Err(EncapError::Internal);
        }
        let spk = PublicKey::from_bytes(sender).map_err(|_| EncapError::BadPublicKey)?;
        let enc = EncappedKey::from_bytes(enc).map_err(|_| EncapError::DecryptFailed)?;
        let mut ctx = hpke::setup_receiver::<SuiteAead, SuiteKdf, SuiteKem>(
            &OpModeR::Auth(spk),
            &self.sk,
            &enc,
            info,
        )
        .map_err(|_| EncapError::DecryptFailed)?;
        ctx.open(ct, aad).map_err(|_| EncapError::DecryptFailed)
    }

    /// Opens a [`seal_base`] message to this key. Every failure (another recipient, a changed
    /// `info`, `aad` or ciphertext) is the one `DecryptFailed`.
    pub fn open_base(
        &self,
        enc: &[u8; ENC_LEN],
        info: &[u8],
        aad: &[u8],
        ct: &[u8],
    ) -> Result<Vec<u8>, EncapError> {
        let mut ctx = self.receiver_ctx(enc, info)?;
        ctx.open(ct, aad).map_err(|_| EncapError::DecryptFailed)
    }

    /// HPKE SetupBaseR. Separate so the RFC 9180 vectors exercise the same code with their
    /// own `info`.
    fn receiver_ctx(&self, enc: &[u8; ENC_LEN], info: &[u8]) -> Result<ReceiverCtx, EncapError> {
        if info.len() > MAX_INFO_LEN {
            return Err(EncapError::Internal);
        }
        // Any 32 bytes parse as an X25519 point; a low-order `enc` makes the DH output zero,
        // which hpke rejects (RFC 9180 §7.1.4). Both map to the single decryption error so
        // an attacker learns nothing from which check failed.
        let enc = EncappedKey::from_bytes(enc).map_err(|_| EncapError::DecryptFailed)?;
        hpke::setup_receiver::<SuiteAead, SuiteKdf, SuiteKem>(&OpModeR::Base, &self.sk, &enc, info)
            .map_err(|_| EncapError::DecryptFailed)
    }
}

/// Seals the one response to an opened request. Consumed by [`ResponseSealer::seal`], so one
/// request gets at most one response (no key/nonce reuse across responses).
pub struct ResponseSealer {
    // Zeroizing: whoever reads this secret can forge or read the response.
    secret: Zeroizing<[u8; SECRET_LEN]>,
    enc: [u8; ENC_LEN],
}

impl fmt::Debug for ResponseSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseSealer").finish_non_exhaustive()
    }
}

impl ResponseSealer {
    /// Encrypts the response for `route` (must be the request's route) with its `status`
    /// (the HTTP status the answer means) sealed in front of the plaintext.
    pub fn seal(self, route: &str, status: u16, plaintext: &[u8]) -> Result<Vec<u8>, EncapError> {
        check_route(route)?;
        check_sealed_len(
            RESPONSE_OVERHEAD,
            plaintext.len(),
            MAX_ENCAPSULATED_RESPONSE,
        )?;
        // A fresh random nonce per response, as RFC 9458 §4.4 requires: with it, the response
        // key differs even if the same request (same enc) were answered twice.
        let mut response_nonce = [0u8; RESPONSE_NONCE_LEN];
        getrandom::fill(&mut response_nonce).map_err(|_| EncapError::RandomnessUnavailable)?;
        self.seal_with_nonce(route, status, plaintext, &response_nonce)
    }

    /// Test vectors only (the `test-vectors` feature): [`ResponseSealer::seal`] with a given
    /// response nonce instead of a fresh random one. A repeated nonce for one request would
    /// reuse the response key: never in production.
    #[cfg(feature = "test-vectors")]
    #[doc(hidden)]
    pub fn seal_with_response_nonce(
        self,
        route: &str,
        status: u16,
        plaintext: &[u8],
        response_nonce: &[u8; RESPONSE_NONCE_LEN],
    ) -> Result<Vec<u8>, EncapError> {
        self.seal_with_nonce(route, status, plaintext, response_nonce)
    }

    fn seal_with_nonce(
        &self,
        route: &str,
        status: u16,
        plaintext: &[u8],
        response_nonce: &[u8; RESPONSE_NONCE_LEN],
    ) -> Result<Vec<u8>, EncapError> {
        check_route(route)?;
        let total = check_sealed_len(
            RESPONSE_OVERHEAD,
            plaintext.len(),
            MAX_ENCAPSULATED_RESPONSE,
        )?;
        let (cipher, nonce) = response_cipher(&self.secret, &self.enc, response_nonce)?;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(response_nonce);
        out.extend_from_slice(&status.to_be_bytes());
        out.extend_from_slice(plaintext);
        let sealed = match out.get_mut(RESPONSE_NONCE_LEN..) {
            Some(buf) => cipher.encrypt_inout_detached(&nonce, route.as_bytes(), buf.into()),
            None => Err(aead::Error),
        };
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(out)
            }
            Err(_) => {
                // The buffer may still hold plaintext; do not leave it in freed memory.
                out.zeroize();
                Err(EncapError::Internal)
            }
        }
    }
}

/// Client side: encrypts `plaintext` for `route` to the enclave key `server_public_key`
/// (taken from a verified attestation document). Returns the body to send and the one-shot
/// opener for the response.
pub fn seal_request(
    server_public_key: &[u8],
    route: &str,
    plaintext: &[u8],
) -> Result<(Vec<u8>, ResponseOpener), EncapError> {
    let mut rng = CheckedSysRng::default();
    seal_request_with_rng(server_public_key, route, plaintext, &mut rng)
}

fn seal_request_with_rng<R: CheckedRng>(
    server_public_key: &[u8],
    route: &str,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, ResponseOpener), EncapError> {
    check_route(route)?;
    let total = check_sealed_len(REQUEST_OVERHEAD, plaintext.len(), MAX_ENCAPSULATED_REQUEST)?;
    let hdr = header();
    let (enc, mut ctx) = setup_sender_ctx(server_public_key, &request_info(&hdr), rng)?;
    let ct = ctx
        .seal(plaintext, route.as_bytes())
        .map_err(|_| EncapError::Internal)?;
    let secret = export_response_secret(|out| ctx.export(RESPONSE_LABEL, out))?;
    let mut body = Vec::with_capacity(total);
    body.extend_from_slice(&hdr);
    body.extend_from_slice(&enc);
    body.extend_from_slice(&ct);
    Ok((body, ResponseOpener { secret, enc }))
}

/// Test vectors only (the `test-vectors` feature, which only this crate's own tests enable):
/// [`seal_request`] with the ephemeral key derived from `ephemeral_seed` (RFC 9180 §7.1.3
/// DeriveKeyPair, exactly what hpke does with the 32 bytes it draws). A fixed ephemeral key
/// makes every request sealed with it readable to whoever knows the seed: never in production.
#[cfg(feature = "test-vectors")]
#[doc(hidden)]
pub fn seal_request_with_ephemeral_seed(
    server_public_key: &[u8],
    route: &str,
    plaintext: &[u8],
    ephemeral_seed: &[u8; 32],
) -> Result<(Vec<u8>, ResponseOpener), EncapError> {
    let mut rng = SeedRng {
        seed: Some(*ephemeral_seed),
        failed: false,
    };
    let sealed = seal_request_with_rng(server_public_key, route, plaintext, &mut rng)?;
    // hpke draws exactly Nsk = 32 bytes; anything else would not be the seed's key.
    if rng.seed.is_some() {
        return Err(EncapError::Internal);
    }
    Ok(sealed)
}

/// Yields its 32-byte seed once, then flags every further read (see
/// [`seal_request_with_ephemeral_seed`]).
#[cfg(feature = "test-vectors")]
struct SeedRng {
    seed: Option<[u8; 32]>,
    failed: bool,
}

#[cfg(feature = "test-vectors")]
impl SeedRng {
    fn fill_or_flag(&mut self, dst: &mut [u8]) {
        match self.seed.take() {
            Some(seed) if dst.len() == seed.len() => dst.copy_from_slice(&seed),
            _ => {
                self.failed = true;
                dst.fill(0);
            }
        }
    }
}

#[cfg(feature = "test-vectors")]
checked_rng!(SeedRng);

/// One message to `recipient`'s X25519 key in HPKE base mode (RFC 9180 §5.1.1): only the
/// holder of that key can open it ([`ServerKey::open_base`]); it says nothing about who
/// sealed it, so what it carries must be checkable on its own (a quorum share is checked
/// against public commitments). Returns `(enc, ciphertext)`.
pub fn seal_base(
    recipient: &[u8],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; ENC_LEN], Vec<u8>), EncapError> {
    let mut rng = CheckedSysRng::default();
    let (enc, mut ctx) = setup_sender_ctx(recipient, info, &mut rng)?;
    let ct = ctx.seal(plaintext, aad).map_err(|_| EncapError::Internal)?;
    Ok((enc, ct))
}

/// HPKE SetupBaseS. Separate so the RFC 9180 vectors exercise the same code with their own
/// `info` and a fixed ephemeral seed.
fn setup_sender_ctx<R: CheckedRng>(
    server_public_key: &[u8],
    info: &[u8],
    rng: &mut R,
) -> Result<([u8; ENC_LEN], SenderCtx), EncapError> {
    if info.len() > MAX_INFO_LEN {
        return Err(EncapError::Internal);
    }
    // from_bytes checks the length (32); any 32 bytes are a point.
    let pk = PublicKey::from_bytes(server_public_key).map_err(|_| EncapError::BadPublicKey)?;
    let res = hpke::setup_sender_with_rng::<SuiteAead, SuiteKdf, SuiteKem>(
        &OpModeS::Base,
        &pk,
        info,
        rng,
    );
    // Check before using the result: if the OS RNG failed, the ephemeral key came from
    // zeros and is predictable; nothing derived from it may be used (ciphertext readable by
    // anyone).
    if rng.failed() {
        return Err(EncapError::RandomnessUnavailable);
    }
    // hpke's only error here is an all-zero DH output: a low-order server "public key" that
    // would make the shared secret public (RFC 9180 §7.1.4).
    let (enc, ctx) = res.map_err(|_| EncapError::BadPublicKey)?;
    Ok((enc.to_bytes().into(), ctx))
}

/// Opens the one response to a sealed request. Consumed by [`ResponseOpener::open`].
pub struct ResponseOpener {
    // Zeroizing: this secret reads and authenticates the response.
    secret: Zeroizing<[u8; SECRET_LEN]>,
    enc: [u8; ENC_LEN],
}

impl fmt::Debug for ResponseOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseOpener").finish_non_exhaustive()
    }
}

impl ResponseOpener {
    /// Decrypts and authenticates the response for `route` (must be the request's route):
    /// its sealed status and its plaintext. Success proves the response came from the holder
    /// of the key the request was sealed to.
    pub fn open(self, route: &str, body: &[u8]) -> Result<(u16, Vec<u8>), EncapError> {
        check_route(route)?;
        // Size first: a hostile server or network cannot make the client buffer unboundedly.
        if body.len() > MAX_ENCAPSULATED_RESPONSE {
            return Err(EncapError::TooLarge {
                limit: MAX_ENCAPSULATED_RESPONSE,
            });
        }
        let (response_nonce, sealed) = body
            .split_first_chunk::<RESPONSE_NONCE_LEN>()
            .ok_or(EncapError::TooShort)?;
        let ct_len = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(EncapError::TooShort)?;
        let (ct, tag) = sealed
            .split_at_checked(ct_len)
            .ok_or(EncapError::TooShort)?;
        let tag = aead::Tag::<Aes256Gcm>::try_from(tag).map_err(|_| EncapError::TooShort)?;
        let (cipher, nonce) = response_cipher(&self.secret, &self.enc, response_nonce)?;
        let mut out = ct.to_vec();
        // AES-GCM checks the tag before decrypting, so on failure `out` holds only ciphertext
        // (no unauthenticated plaintext is released).
        cipher
            .decrypt_inout_detached(&nonce, route.as_bytes(), out.as_mut_slice().into(), &tag)
            .map_err(|_| EncapError::DecryptFailed)?;
        // Authenticated, so a short plaintext came from the key holder itself: malformed.
        let Some((&[s0, s1], _)) = out.split_first_chunk::<STATUS_LEN>() else {
            out.zeroize();
            return Err(EncapError::TooShort);
        };
        out.drain(..STATUS_LEN);
        Ok((u16::from_be_bytes([s0, s1]), out))
    }
}

/// RFC 9458 §4.4 key schedule with our label: returns the AEAD and its nonce.
fn response_cipher(
    secret: &[u8; SECRET_LEN],
    enc: &[u8; ENC_LEN],
    response_nonce: &[u8; RESPONSE_NONCE_LEN],
) -> Result<(Aes256Gcm, aead::Nonce<Aes256Gcm>), EncapError> {
    // salt = enc || response_nonce binds the key to this request and this response.
    let mut salt = [0u8; ENC_LEN + RESPONSE_NONCE_LEN];
    let (a, b) = salt.split_at_mut(ENC_LEN);
    a.copy_from_slice(enc);
    b.copy_from_slice(response_nonce);
    let (mut prk, hk) = Hkdf::<Sha256>::extract(Some(&salt), secret);
    // The PRK is a key; wipe our copy (hk's HMAC state wipes itself via sha2's `zeroize`).
    prk.as_mut_slice().zeroize();
    let mut key = Zeroizing::new([0u8; AEAD_KEY_LEN]);
    let mut nonce = [0u8; AEAD_NONCE_LEN];
    hk.expand(b"key", key.as_mut())
        .map_err(|_| EncapError::Internal)?;
    hk.expand(b"nonce", &mut nonce)
        .map_err(|_| EncapError::Internal)?;
    // aes-gcm is built with `zeroize`: the key schedule is wiped when the cipher drops.
    let cipher = Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| EncapError::Internal)?;
    Ok((cipher, aead::Nonce::<Aes256Gcm>::from(nonce)))
}

fn export_response_secret(
    export: impl FnOnce(&mut [u8]) -> Result<(), hpke::HpkeError>,
) -> Result<Zeroizing<[u8; SECRET_LEN]>, EncapError> {
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    export(secret.as_mut()).map_err(|_| EncapError::Internal)?;
    Ok(secret)
}

fn header() -> [u8; HDR_LEN] {
    let [k0, k1] = KEM_ID.to_be_bytes();
    let [f0, f1] = KDF_ID.to_be_bytes();
    let [a0, a1] = AEAD_ID.to_be_bytes();
    [KEY_ID, k0, k1, f0, f1, a0, a1]
}

/// Rejects any key or suite but ours, before crypto (algorithm downgrade/confusion).
fn check_header(hdr: &[u8; HDR_LEN]) -> Result<(), EncapError> {
    let [key_id, k0, k1, f0, f1, a0, a1] = *hdr;
    if key_id != KEY_ID {
        return Err(EncapError::UnsupportedKeyId(key_id));
    }
    let kem = u16::from_be_bytes([k0, k1]);
    let kdf = u16::from_be_bytes([f0, f1]);
    let aead = u16::from_be_bytes([a0, a1]);
    if (kem, kdf, aead) != (KEM_ID, KDF_ID, AEAD_ID) {
        return Err(EncapError::UnsupportedSuite { kem, kdf, aead });
    }
    Ok(())
}

/// info = label || 0x00 || hdr: the label separates our use of HPKE from any other
/// (cross-protocol key reuse); hdr in info authenticates the header.
fn request_info(hdr: &[u8; HDR_LEN]) -> Vec<u8> {
    let mut info = Vec::with_capacity(REQUEST_LABEL.len() + 1 + HDR_LEN);
    info.extend_from_slice(REQUEST_LABEL);
    info.push(0);
    info.extend_from_slice(hdr);
    info
}

fn check_route(route: &str) -> Result<(), EncapError> {
    if route.len() > MAX_ROUTE_LEN {
        return Err(EncapError::RouteTooLong);
    }
    Ok(())
}

/// Total sealed length, or TooLarge if above `limit` (so we never emit a body the peer must
/// reject, and overflow cannot wrap the size).
fn check_sealed_len(
    overhead: usize,
    plaintext_len: usize,
    limit: usize,
) -> Result<usize, EncapError> {
    match plaintext_len.checked_add(overhead) {
        Some(n) if n <= limit => Ok(n),
        _ => Err(EncapError::TooLarge { limit }),
    }
}

/// An infallible-typed RNG that records failure instead of panicking. hpke wants an
/// infallible `CryptoRng`; the usual adapter (`UnwrapErr`) would panic on an OS RNG error.
trait CheckedRng: rand_core::CryptoRng {
    fn failed(&self) -> bool;
}

/// The OS RNG behind [`CheckedRng`]: on error it outputs zeros and sets a sticky flag that
/// the caller checks before using anything derived from the output.
#[derive(Default)]
struct CheckedSysRng {
    failed: bool,
}

impl CheckedSysRng {
    fn fill_or_flag(&mut self, dst: &mut [u8]) {
        if self.failed || SysRng.try_fill_bytes(dst).is_err() {
            self.failed = true;
            dst.fill(0);
        }
    }
}

checked_rng!(CheckedSysRng);
