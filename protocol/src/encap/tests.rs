use super::*;

use serde::Deserialize;

const VECTORS_AES256: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/hpke/base_x25519_hkdfsha256_aes256gcm.json"
));
const VECTORS_ALL_MODES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/hpke/all_modes_x25519_hkdfsha256_all_aeads.json"
));

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct Vector {
    mode: u8,
    kem_id: u16,
    kdf_id: u16,
    aead_id: u16,
    info: String,
    ikmR: String,
    ikmE: String,
    /// The sender's key, in the auth modes.
    #[serde(default)]
    ikmS: String,
    #[serde(default)]
    pkSm: String,
    skRm: String,
    pkRm: String,
    enc: String,
    encryptions: Vec<Encryption>,
    exports: Vec<Export>,
}

#[derive(Deserialize)]
struct Encryption {
    aad: String,
    ct: String,
    pt: String,
}

#[derive(Deserialize)]
struct Export {
    exporter_context: String,
    #[serde(rename = "L")]
    len: usize,
    exported_value: String,
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn arr32(s: &str) -> [u8; 32] {
    h(s).try_into().unwrap()
}

/// Test RNG: yields the given bytes once, then flags any further read. Lets the sender use
/// the vector's ikmE, which hpke feeds to DeriveKeyPair for the ephemeral key.
struct FixedRng {
    bytes: Vec<u8>,
    pos: usize,
    failed: bool,
}

impl FixedRng {
    fn new(bytes: Vec<u8>) -> Self {
        FixedRng {
            bytes,
            pos: 0,
            failed: false,
        }
    }

    fn fill_or_flag(&mut self, dst: &mut [u8]) {
        match self.bytes.get(self.pos..self.pos + dst.len()) {
            Some(src) => {
                dst.copy_from_slice(src);
                self.pos += dst.len();
            }
            None => {
                self.failed = true;
                dst.fill(0);
            }
        }
    }
}
checked_rng!(FixedRng);

/// RNG whose every read fails, as if the OS RNG were unavailable.
struct BrokenRng;
impl TryRng for BrokenRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        dst.fill(0);
        Ok(())
    }
}
impl TryCryptoRng for BrokenRng {}
impl CheckedRng for BrokenRng {
    fn failed(&self) -> bool {
        true
    }
}

fn load(json: &str) -> Vec<Vector> {
    serde_json::from_str(json).unwrap()
}

// ---------------------------------------------------------------------------------------
// (a) RFC 9180 vectors, through this module's own setup functions.

#[test]
fn rfc9180_vector_receiver() {
    let vectors = load(VECTORS_AES256);
    assert_eq!(vectors.len(), 1);
    let v = &vectors[0];
    assert_eq!(
        (v.mode, v.kem_id, v.kdf_id, v.aead_id),
        (0, KEM_ID, KDF_ID, AEAD_ID)
    );

    let key = ServerKey::from_seed(&h(&v.ikmR)).unwrap();
    assert_eq!(key.public_key().to_vec(), h(&v.pkRm));
    // The vector prints skRm unclamped; hpke stores the clamped scalar (RFC 7748 §5), which
    // is the same X25519 key.
    let mut sk = arr32(&v.skRm);
    sk[0] &= 248;
    sk[31] &= 127;
    sk[31] |= 64;
    assert_eq!(key.sk.to_bytes().to_vec(), sk.to_vec());

    let mut ctx = key.receiver_ctx(&arr32(&v.enc), &h(&v.info)).unwrap();
    assert_eq!(v.encryptions.len(), 257);
    // In order: each open advances the sequence number, so this checks nonce handling too.
    for (seq, e) in v.encryptions.iter().enumerate() {
        let pt = ctx.open(&h(&e.ct), &h(&e.aad)).unwrap();
        assert_eq!(pt, h(&e.pt), "seq {seq}");
    }
    assert_eq!(v.exports.len(), 3);
    check_exports(v, |context, out| ctx.export(context, out).unwrap());
}

/// Every exported secret of the vector, as `export(exporter_context, out)` derives it.
fn check_exports(v: &Vector, mut export: impl FnMut(&[u8], &mut [u8])) {
    for x in &v.exports {
        let mut out = vec![0u8; x.len];
        export(&h(&x.exporter_context), &mut out);
        assert_eq!(out, h(&x.exported_value));
    }
}

#[test]
fn rfc9180_vector_sender() {
    let v = &load(VECTORS_AES256)[0];
    let mut rng = FixedRng::new(h(&v.ikmE));
    let (enc, mut ctx) = setup_sender_ctx(&h(&v.pkRm), &h(&v.info), &mut rng).unwrap();
    // hpke draws exactly Nsk = 32 bytes and runs DeriveKeyPair on them, so ikmE reproduces
    // the vector's ephemeral key.
    assert!(!rng.failed);
    assert_eq!(rng.pos, 32);
    assert_eq!(enc.to_vec(), h(&v.enc));
    for (seq, e) in v.encryptions.iter().enumerate() {
        let ct = ctx.seal(&h(&e.pt), &h(&e.aad)).unwrap();
        assert_eq!(ct, h(&e.ct), "seq {seq}");
    }
    check_exports(v, |context, out| ctx.export(context, out).unwrap());
}

/// Extra, cheap: the other base-mode X25519/HKDF-SHA256 entries hpke is built for here
/// (AES-128-GCM is RFC 9180 A.1.1; export-only), both directions, straight through hpke.
#[test]
fn rfc9180_other_base_mode_vectors() {
    fn check<A: hpke::aead::Aead>(v: &Vector) {
        let (sk, pk) = <SuiteKem as hpke::Kem>::derive_keypair(&h(&v.ikmR));
        assert_eq!(pk.to_bytes().to_vec(), h(&v.pkRm));
        let enc = EncappedKey::from_bytes(&h(&v.enc)).unwrap();
        let mut r =
            hpke::setup_receiver::<A, SuiteKdf, SuiteKem>(&OpModeR::Base, &sk, &enc, &h(&v.info))
                .unwrap();
        let mut rng = FixedRng::new(h(&v.ikmE));
        let (enc2, mut s) = hpke::setup_sender_with_rng::<A, SuiteKdf, SuiteKem>(
            &OpModeS::Base,
            &pk,
            &h(&v.info),
            &mut rng,
        )
        .unwrap();
        assert_eq!(enc2.to_bytes().to_vec(), h(&v.enc));
        for e in &v.encryptions {
            assert_eq!(r.open(&h(&e.ct), &h(&e.aad)).unwrap(), h(&e.pt));
            assert_eq!(s.seal(&h(&e.pt), &h(&e.aad)).unwrap(), h(&e.ct));
        }
        check_exports(v, |context, out| r.export(context, out).unwrap());
        check_exports(v, |context, out| s.export(context, out).unwrap());
    }
    let mut seen = Vec::new();
    for v in load(VECTORS_ALL_MODES).iter().filter(|v| v.mode == 0) {
        match v.aead_id {
            0x0001 => check::<hpke::aead::AesGcm128>(v),
            0x0002 => check::<hpke::aead::AesGcm256>(v),
            0xFFFF => check::<hpke::aead::ExportOnlyAead>(v),
            _ => continue, // ChaCha20Poly1305: hpke's `chacha` feature is not enabled here
        }
        seen.push(v.aead_id);
    }
    assert_eq!(seen, vec![0x0001, 0x0002, 0xFFFF]);
}

// ---------------------------------------------------------------------------------------
// Known answer for our own wire format (vector keys + fixed randomness), and an independent
// re-derivation of the response layer with ring.

const ROUTE: &str = "POST /v1/ping";
const KAT_REQUEST_HEX: &str = "00002000010002\
    6c93e09869df3402d7bf231bf540fadd35cd56be14f97178f0954db94b7fc256\
    0ecdf9283ab213cb02e7773b3bdf11dd3bdbadae33e938621de0a369cc4cbcc1";

#[test]
fn wire_format_known_answer() {
    let v = &load(VECTORS_AES256)[0];
    let key = ServerKey::from_seed(&h(&v.ikmR)).unwrap();
    let mut rng = FixedRng::new(h(&v.ikmE));
    let (body, opener) =
        seal_request_with_rng(&key.public_key(), ROUTE, b"{\"message\":\"hi\"}", &mut rng).unwrap();

    // hdr, then enc (the vector's, since pkR and ikmE are the vector's).
    assert_eq!(body[..7], [0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x02]);
    assert_eq!(body[7..39], h(&v.enc)[..]);
    assert_eq!(body.len(), REQUEST_OVERHEAD + 16);

    // Decrypt with hpke directly and an info built by hand from the spec text.
    let mut info = b"sigil encapsulated request v1".to_vec();
    info.push(0);
    info.extend_from_slice(&body[..7]);
    let mut r = key.receiver_ctx(&arr32(&v.enc), &info).unwrap();
    assert_eq!(
        r.open(&body[39..], ROUTE.as_bytes()).unwrap(),
        b"{\"message\":\"hi\"}"
    );

    // Regression pin of the full request (deterministic given ikmE).
    assert_eq!(hex::encode(&body), KAT_REQUEST_HEX);

    // Response with a fixed nonce; re-derive key/nonce and open with ring.
    let (pt, sealer) = key
        .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
        .unwrap();
    assert_eq!(pt, b"{\"message\":\"hi\"}");
    let response_nonce = [0x5au8; 32];
    let resp = sealer
        .seal_with_nonce(ROUTE, 201, b"{\"message\":\"pong\"}", &response_nonce)
        .unwrap();
    assert_eq!(resp[..32], response_nonce);
    let ring_pt = ring_open_response(&opener.secret[..], &opener.enc, ROUTE, &resp);
    // The sealed status (201, big-endian) leads the plaintext.
    assert_eq!(ring_pt, b"\x00\xc9{\"message\":\"pong\"}");
    assert_eq!(
        opener.open(ROUTE, &resp).unwrap(),
        (201, b"{\"message\":\"pong\"}".to_vec())
    );
}

/// The response layer written again from the spec text with ring's HKDF and AES-GCM.
fn ring_open_response(secret: &[u8], enc: &[u8], route: &str, body: &[u8]) -> Vec<u8> {
    use ring::{aead as ra, hkdf as rh};
    struct Len(usize);
    impl rh::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let (nonce, ct) = body.split_at(32);
    let mut salt = enc.to_vec();
    salt.extend_from_slice(nonce);
    let prk = rh::Salt::new(rh::HKDF_SHA256, &salt).extract(secret);
    let mut key = [0u8; 32];
    prk.expand(&[b"key"], Len(32))
        .unwrap()
        .fill(&mut key)
        .unwrap();
    let mut n = [0u8; 12];
    prk.expand(&[b"nonce"], Len(12))
        .unwrap()
        .fill(&mut n)
        .unwrap();
    let k = ra::LessSafeKey::new(ra::UnboundKey::new(&ra::AES_256_GCM, &key).unwrap());
    let mut buf = ct.to_vec();
    let pt = k
        .open_in_place(
            ra::Nonce::assume_unique_for_key(n),
            ra::Aad::from(route.as_bytes()),
            &mut buf,
        )
        .unwrap();
    pt.to_vec()
}

// ---------------------------------------------------------------------------------------
// (b) round trip

#[test]
fn round_trip() {
    let key = ServerKey::generate().unwrap();
    for msg in [&b""[..], b"x", &[7u8; 5000][..]] {
        let (body, opener) = seal_request(&key.public_key(), ROUTE, msg).unwrap();
        assert_eq!(body.len(), msg.len() + REQUEST_OVERHEAD);
        let (pt, sealer) = key
            .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
            .unwrap();
        assert_eq!(pt, msg);
        let resp = sealer.seal(ROUTE, 200, b"reply").unwrap();
        assert_eq!(resp.len(), 5 + RESPONSE_OVERHEAD);
        assert_eq!(opener.open(ROUTE, &resp).unwrap(), (200, b"reply".to_vec()));
    }
}

#[test]
fn size_limits_are_exact() {
    let key = ServerKey::from_seed(&[1u8; 32]).unwrap();
    // Requests: the arithmetic at the global cap (sealing 96 MiB here would only be slow;
    // per_route_limit_is_exact runs the real path at a limit).
    let max_req = MAX_ENCAPSULATED_REQUEST - REQUEST_OVERHEAD;
    assert_eq!(
        check_sealed_len(REQUEST_OVERHEAD, max_req, MAX_ENCAPSULATED_REQUEST),
        Ok(MAX_ENCAPSULATED_REQUEST)
    );
    assert_eq!(
        seal_request(&key.public_key(), ROUTE, &vec![0u8; max_req + 1]).unwrap_err(),
        EncapError::TooLarge {
            limit: MAX_ENCAPSULATED_REQUEST
        }
    );
    let (body, opener) = seal_request(&key.public_key(), ROUTE, b"").unwrap();
    let (_, sealer) = key
        .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
        .unwrap();
    let max_resp = MAX_ENCAPSULATED_RESPONSE - RESPONSE_OVERHEAD;
    let resp = sealer.seal(ROUTE, 200, &vec![0u8; max_resp]).unwrap();
    assert_eq!(resp.len(), MAX_ENCAPSULATED_RESPONSE);
    assert_eq!(opener.open(ROUTE, &resp).unwrap().1.len(), max_resp);

    let (body, _) = seal_request(&key.public_key(), ROUTE, b"").unwrap();
    let (_, sealer) = key
        .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
        .unwrap();
    assert_eq!(
        sealer
            .seal(ROUTE, 200, &vec![0u8; max_resp + 1])
            .unwrap_err(),
        EncapError::TooLarge {
            limit: MAX_ENCAPSULATED_RESPONSE
        }
    );
}

/// Each endpoint's own limit holds, at the byte: one byte past it is refused before any
/// crypto, and the limit never exceeds the global cap.
#[test]
fn per_route_limit_is_exact() {
    let key = ServerKey::from_seed(&[1u8; 32]).unwrap();
    let limit = 4096;
    let (at, _) = seal_request(
        &key.public_key(),
        ROUTE,
        &vec![1u8; limit - REQUEST_OVERHEAD],
    )
    .unwrap();
    assert_eq!(at.len(), limit);
    assert!(key.open_request(ROUTE, &at, limit).is_ok());
    let (past, _) = seal_request(
        &key.public_key(),
        ROUTE,
        &vec![1u8; limit + 1 - REQUEST_OVERHEAD],
    )
    .unwrap();
    assert_eq!(
        key.open_request(ROUTE, &past, limit).unwrap_err(),
        EncapError::TooLarge { limit }
    );
    let huge = vec![0u8; MAX_ENCAPSULATED_REQUEST + 1];
    assert_eq!(
        key.open_request(ROUTE, &huge, usize::MAX).unwrap_err(),
        EncapError::TooLarge {
            limit: MAX_ENCAPSULATED_REQUEST
        }
    );
}

/// The status is sealed: a flipped status byte (what a relay rewriting the outcome would
/// have to do) fails authentication, and each status comes back as sealed.
#[test]
fn status_is_inside_the_aead() {
    for status in [200u16, 201, 400, 404, 503] {
        let key = ServerKey::from_seed(&[3u8; 32]).unwrap();
        let (body, opener) = seal_request(&key.public_key(), ROUTE, b"q").unwrap();
        let (_, sealer) = key
            .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
            .unwrap();
        let resp = sealer.seal(ROUTE, status, b"{}").unwrap();
        assert_eq!(opener.open(ROUTE, &resp).unwrap(), (status, b"{}".to_vec()));
    }
    let key = ServerKey::from_seed(&[3u8; 32]).unwrap();
    let (body, opener) = seal_request(&key.public_key(), ROUTE, b"q").unwrap();
    let (_, sealer) = key
        .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
        .unwrap();
    let mut resp = sealer.seal(ROUTE, 200, b"{}").unwrap();
    resp[32] ^= 0x01;
    assert_eq!(
        opener.open(ROUTE, &resp).unwrap_err(),
        EncapError::DecryptFailed
    );
}

// ---------------------------------------------------------------------------------------
// (c) rejection, never a panic

fn setup() -> (ServerKey, Vec<u8>, ResponseOpener) {
    let key = ServerKey::from_seed(&[9u8; 32]).unwrap();
    let (body, opener) = seal_request(&key.public_key(), ROUTE, b"{\"message\":\"hi\"}").unwrap();
    (key, body, opener)
}

#[test]
fn wrong_route_fails() {
    let (key, body, opener) = setup();
    assert_eq!(
        key.open_request("POST /v1/other", &body, MAX_ENCAPSULATED_REQUEST)
            .unwrap_err(),
        EncapError::DecryptFailed
    );
    let (_, sealer) = key
        .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
        .unwrap();
    let resp = sealer.seal(ROUTE, 200, b"ok").unwrap();
    assert_eq!(
        opener.open("GET /v1/attestation", &resp).unwrap_err(),
        EncapError::DecryptFailed
    );
}

#[test]
fn every_flipped_request_byte_is_rejected() {
    let (key, body, _) = setup();
    for i in 0..body.len() {
        let mut b = body.clone();
        b[i] ^= 0x01;
        let err = key
            .open_request(ROUTE, &b, MAX_ENCAPSULATED_REQUEST)
            .unwrap_err();
        let want = match i {
            0 => EncapError::UnsupportedKeyId(1),
            1..=6 => {
                let kem = u16::from_be_bytes([b[1], b[2]]);
                let kdf = u16::from_be_bytes([b[3], b[4]]);
                let aead = u16::from_be_bytes([b[5], b[6]]);
                EncapError::UnsupportedSuite { kem, kdf, aead }
            }
            _ => EncapError::DecryptFailed, // enc or ct
        };
        assert_eq!(err, want, "byte {i}");
    }
}

#[test]
fn every_flipped_response_byte_is_rejected() {
    let (key, body, _) = setup();
    let (_, sealer) = key
        .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
        .unwrap();
    let resp = sealer.seal(ROUTE, 200, b"pong").unwrap();
    for i in 0..resp.len() {
        // A fresh opener each time: openers are single-use.
        let key2 = ServerKey::from_seed(&[9u8; 32]).unwrap();
        let mut rng = FixedRng::new(vec![3u8; 32]);
        let (body2, opener2) =
            seal_request_with_rng(&key2.public_key(), ROUTE, b"q", &mut rng).unwrap();
        let (_, sealer2) = key2
            .open_request(ROUTE, &body2, MAX_ENCAPSULATED_REQUEST)
            .unwrap();
        let mut r = sealer2.seal(ROUTE, 200, b"pong").unwrap();
        r[i] ^= 0x80;
        assert_eq!(
            opener2.open(ROUTE, &r).unwrap_err(),
            EncapError::DecryptFailed,
            "byte {i}"
        );
    }
}

#[test]
fn truncated_bodies_are_rejected() {
    let (key, body, _) = setup();
    for n in 0..body.len() {
        let err = key
            .open_request(ROUTE, &body[..n], MAX_ENCAPSULATED_REQUEST)
            .unwrap_err();
        let want = if n < REQUEST_OVERHEAD {
            EncapError::TooShort
        } else {
            EncapError::DecryptFailed
        };
        assert_eq!(err, want, "len {n}");
    }
    // Truncated responses, each against a fresh opener.
    let mut rng = FixedRng::new(vec![4u8; 32]);
    let (body, _) = seal_request_with_rng(&key.public_key(), ROUTE, b"q", &mut rng).unwrap();
    let (_, sealer) = key
        .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
        .unwrap();
    let resp = sealer.seal(ROUTE, 200, b"pong").unwrap();
    for n in 0..resp.len() {
        let mut rng = FixedRng::new(vec![4u8; 32]);
        let (_, opener) = seal_request_with_rng(&key.public_key(), ROUTE, b"q", &mut rng).unwrap();
        let err = opener.open(ROUTE, &resp[..n]).unwrap_err();
        let want = if n < RESPONSE_NONCE_LEN + TAG_LEN {
            EncapError::TooShort
        } else {
            EncapError::DecryptFailed
        };
        assert_eq!(err, want, "len {n}");
    }
}

#[test]
fn oversize_is_rejected_before_anything_else() {
    let (key, _, opener) = setup();
    // Bad key id in an oversized body: the size check must win (no parsing of huge input).
    let mut big = vec![0u8; MAX_ENCAPSULATED_REQUEST + 1];
    big[0] = 7;
    assert_eq!(
        key.open_request(ROUTE, &big, MAX_ENCAPSULATED_REQUEST)
            .unwrap_err(),
        EncapError::TooLarge {
            limit: MAX_ENCAPSULATED_REQUEST
        }
    );
    assert_eq!(
        opener
            .open(ROUTE, &big[..MAX_ENCAPSULATED_RESPONSE + 1])
            .unwrap_err(),
        EncapError::TooLarge {
            limit: MAX_ENCAPSULATED_RESPONSE
        }
    );
}

#[test]
fn wrong_key_id_and_suite() {
    let (key, body, _) = setup();
    let mut b = body.clone();
    b[0] = 7;
    let err = key
        .open_request(ROUTE, &b, MAX_ENCAPSULATED_REQUEST)
        .unwrap_err();
    assert_eq!(err, EncapError::UnsupportedKeyId(7));
    assert_eq!(err.to_string(), "unsupported key id 7");
    assert_eq!(err.code(), "encap_unsupported_key_id");

    // ChaCha20Poly1305 instead of AES-256-GCM.
    let mut b = body.clone();
    b[5..7].copy_from_slice(&0x0003u16.to_be_bytes());
    let err = key
        .open_request(ROUTE, &b, MAX_ENCAPSULATED_REQUEST)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported HPKE suite kem=0x0020, kdf=0x0001, aead=0x0003"
    );
    assert_eq!(err.code(), "encap_unsupported_suite");
    // Header checks come before the length check of enc/ct.
    assert_eq!(
        key.open_request(ROUTE, &b[..7], MAX_ENCAPSULATED_REQUEST)
            .unwrap_err()
            .code(),
        "encap_unsupported_suite"
    );
}

#[test]
fn wrong_server_key_fails() {
    let (_, body, _) = setup();
    let other = ServerKey::from_seed(&[10u8; 32]).unwrap();
    assert_eq!(
        other
            .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
            .unwrap_err(),
        EncapError::DecryptFailed
    );
}

#[test]
fn low_order_enc_is_rejected() {
    let (key, body, _) = setup();
    let mut b = body.clone();
    // The all-zero point: DH output is zero (RFC 9180 §7.1.4).
    b[7..39].fill(0);
    assert_eq!(
        key.open_request(ROUTE, &b, MAX_ENCAPSULATED_REQUEST)
            .unwrap_err(),
        EncapError::DecryptFailed
    );
}

#[test]
fn bad_public_keys() {
    for pk in [&[][..], &[1u8; 31][..], &[1u8; 33][..]] {
        assert_eq!(
            seal_request(pk, ROUTE, b"x").unwrap_err(),
            EncapError::BadPublicKey
        );
    }
    // Low-order points (0 and 1) make the shared secret all-zero: refused.
    let mut one = [0u8; 32];
    one[0] = 1;
    for pk in [[0u8; 32], one] {
        assert_eq!(
            seal_request(&pk, ROUTE, b"x").unwrap_err(),
            EncapError::BadPublicKey
        );
    }
}

#[test]
fn seed_bounds() {
    assert_eq!(
        ServerKey::from_seed(&[1u8; 31]).unwrap_err(),
        EncapError::BadSeed
    );
    assert_eq!(
        ServerKey::from_seed(&[1u8; 65]).unwrap_err(),
        EncapError::BadSeed
    );
    assert!(ServerKey::from_seed(&[1u8; 32]).is_ok());
    assert!(ServerKey::from_seed(&[1u8; 64]).is_ok());
}

#[test]
fn long_routes_are_rejected() {
    let (key, body, opener) = setup();
    let long = "x".repeat(MAX_ROUTE_LEN + 1);
    assert_eq!(
        key.open_request(&long, &body, MAX_ENCAPSULATED_REQUEST)
            .unwrap_err(),
        EncapError::RouteTooLong
    );
    assert_eq!(
        seal_request(&key.public_key(), &long, b"").unwrap_err(),
        EncapError::RouteTooLong
    );
    assert_eq!(
        opener.open(&long, &[0u8; 64]).unwrap_err(),
        EncapError::RouteTooLong
    );
}

#[test]
fn rng_failure_is_an_error_not_a_weak_key() {
    let key = ServerKey::from_seed(&[9u8; 32]).unwrap();
    assert_eq!(
        seal_request_with_rng(&key.public_key(), ROUTE, b"x", &mut BrokenRng).unwrap_err(),
        EncapError::RandomnessUnavailable
    );
    // Running out of fixed bytes counts as failure too.
    let mut short = FixedRng::new(vec![1u8; 16]);
    assert_eq!(
        seal_request_with_rng(&key.public_key(), ROUTE, b"x", &mut short).unwrap_err(),
        EncapError::RandomnessUnavailable
    );
}

#[test]
fn random_garbage_never_panics() {
    // Deterministic xorshift; a cheap stand-in for fuzzing the parsers.
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let key = ServerKey::from_seed(&[9u8; 32]).unwrap();
    let hdr = header();
    for i in 0..1000 {
        let len = (next() % 200) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 && b.len() >= 7 {
            b[..7].copy_from_slice(&hdr); // get past the header checks
        }
        assert!(
            key.open_request(ROUTE, &b, MAX_ENCAPSULATED_REQUEST)
                .is_err()
        );
        // Openers are single-use; build one directly (cheaper than a full seal_request).
        let opener = ResponseOpener {
            secret: Zeroizing::new([1u8; 32]),
            enc: [2u8; 32],
        };
        assert!(opener.open(ROUTE, &b).is_err());
    }
}

// ---------------------------------------------------------------------------------------
// (d) responses are bound to their request

#[test]
fn response_cannot_be_opened_by_another_requests_opener() {
    let key = ServerKey::from_seed(&[9u8; 32]).unwrap();
    let (body_a, opener_a) = seal_request(&key.public_key(), ROUTE, b"a").unwrap();
    let (body_b, opener_b) = seal_request(&key.public_key(), ROUTE, b"b").unwrap();
    let (_, sealer_a) = key
        .open_request(ROUTE, &body_a, MAX_ENCAPSULATED_REQUEST)
        .unwrap();
    let (_, sealer_b) = key
        .open_request(ROUTE, &body_b, MAX_ENCAPSULATED_REQUEST)
        .unwrap();
    let resp_a = sealer_a.seal(ROUTE, 200, b"for a").unwrap();
    let resp_b = sealer_b.seal(ROUTE, 200, b"for b").unwrap();
    assert_eq!(
        opener_b.open(ROUTE, &resp_a).unwrap_err(),
        EncapError::DecryptFailed
    );
    assert_eq!(
        opener_a.open(ROUTE, &resp_b).unwrap_err(),
        EncapError::DecryptFailed
    );
}

#[test]
fn responses_to_the_same_request_differ() {
    // Replaying a request yields a new sealer; its response uses a fresh nonce and key.
    let (key, body, _) = setup();
    let (_, s1) = key
        .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
        .unwrap();
    let (_, s2) = key
        .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
        .unwrap();
    let r1 = s1.seal(ROUTE, 200, b"same").unwrap();
    let r2 = s2.seal(ROUTE, 200, b"same").unwrap();
    assert_ne!(r1, r2);
}

// ---------------------------------------------------------------------------------------
// errors and Debug

#[test]
fn error_codes_are_stable_and_distinct() {
    let all = [
        EncapError::UnsupportedKeyId(1),
        EncapError::UnsupportedSuite {
            kem: 1,
            kdf: 2,
            aead: 3,
        },
        EncapError::TooShort,
        EncapError::TooLarge { limit: 1 },
        EncapError::RouteTooLong,
        EncapError::BadPublicKey,
        EncapError::BadSeed,
        EncapError::DecryptFailed,
        EncapError::RandomnessUnavailable,
        EncapError::Internal,
    ];
    let mut codes: Vec<_> = all.iter().map(|e| e.code()).collect();
    for c in &codes {
        assert!(c.starts_with("encap_"));
        assert!(c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    }
    for e in &all {
        let m = e.to_string();
        assert!(!m.is_empty() && !m.contains('\n'));
    }
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), all.len());
    assert_eq!(EncapError::TooShort.to_string(), "body too short");
    assert_eq!(EncapError::BadPublicKey.to_string(), "bad public key");
    assert_eq!(
        EncapError::DecryptFailed.to_string(),
        "decryption failed (wrong key, route or tampered body)"
    );
    assert_eq!(
        EncapError::RandomnessUnavailable.to_string(),
        "randomness unavailable"
    );
}

#[test]
fn debug_does_not_print_secrets() {
    let key = ServerKey::from_seed(&[9u8; 32]).unwrap();
    let sk_hex = hex::encode(key.sk.to_bytes());
    let d = format!("{key:?}");
    assert!(!d.contains(&sk_hex));
    assert!(d.contains(&hex::encode(key.public_key())));
    let (body, opener) = seal_request(&key.public_key(), ROUTE, b"").unwrap();
    let secret_hex = hex::encode(*opener.secret);
    assert!(!format!("{opener:?}").contains(&secret_hex));
    let (_, sealer) = key
        .open_request(ROUTE, &body, MAX_ENCAPSULATED_REQUEST)
        .unwrap();
    assert!(!format!("{sealer:?}").contains(&secret_hex));
}

/// Auth mode (RFC 9180 §5.1.3), the suite sigil uses between enclaves: the vector's first
/// message opens with the receiver's and the sender's keys, and sealing with the vector's
/// ephemeral seed gives its bytes; any other sender, info, aad or byte is refused.
#[test]
fn auth_mode_matches_rfc9180_and_refuses_any_other_sender() {
    let v = load(VECTORS_ALL_MODES)
        .into_iter()
        .find(|v| v.mode == 2 && v.aead_id == 0x0002)
        .expect("the auth-mode AES-256-GCM vector");
    let receiver = ServerKey::from_seed(&h(&v.ikmR)).unwrap();
    assert_eq!(receiver.public_key().to_vec(), h(&v.pkRm));
    let sender = ServerKey::from_seed(&h(&v.ikmS)).unwrap();
    assert_eq!(sender.public_key().to_vec(), h(&v.pkSm));
    let first = &v.encryptions[0];
    let enc = arr32(&v.enc);
    let opened = receiver
        .open_auth(
            &h(&v.pkSm),
            &enc,
            &h(&v.info),
            &h(&first.aad),
            &h(&first.ct),
        )
        .unwrap();
    assert_eq!(opened, h(&first.pt));
    let mut rng = FixedRng::new(h(&v.ikmE));
    let (sealed_enc, ct) = sender
        .seal_auth_with_rng(
            &h(&v.pkRm),
            &h(&v.info),
            &h(&first.aad),
            &h(&first.pt),
            &mut rng,
        )
        .unwrap();
    assert_eq!((sealed_enc, ct), (enc, h(&first.ct)));

    // Another sender's key, another info or aad, a flipped byte: one error for all.
    let other = ServerKey::from_seed(&[7u8; 32]).unwrap();
    let mut flipped = h(&first.ct);
    flipped[0] ^= 1;
    for (sender_pk, info, aad, ct) in [
        (
            other.public_key().to_vec(),
            h(&v.info),
            h(&first.aad),
            h(&first.ct),
        ),
        (
            h(&v.pkSm),
            b"another info".to_vec(),
            h(&first.aad),
            h(&first.ct),
        ),
        (
            h(&v.pkSm),
            h(&v.info),
            b"another aad".to_vec(),
            h(&first.ct),
        ),
        (h(&v.pkSm), h(&v.info), h(&first.aad), flipped),
    ] {
        assert_eq!(
            receiver.open_auth(&sender_pk, &enc, &info, &aad, &ct),
            Err(EncapError::DecryptFailed)
        );
    }
    // A fresh message round-trips, and the sender itself cannot open it.
    let (enc2, ct2) = sender
        .seal_auth(&receiver.public_key(), b"info", b"aad", b"hello peer")
        .unwrap();
    assert_eq!(
        receiver
            .open_auth(&sender.public_key(), &enc2, b"info", b"aad", &ct2)
            .unwrap(),
        b"hello peer"
    );
    assert!(
        sender
            .open_auth(&sender.public_key(), &enc2, b"info", b"aad", &ct2)
            .is_err()
    );
}
