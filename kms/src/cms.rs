//! KMS `CiphertextForRecipient`: CMS (RFC 5652) ContentInfo / EnvelopedData in BER.
//!
//! The input arrives through the untrusted parent instance, so it is parsed with a small,
//! strict BER reader: only the exact shape KMS emits is accepted (OIDs, versions, one
//! KeyTransRecipientInfo with a subjectKeyIdentifier, RSAES-OAEP-SHA256, AES-256-CBC), every
//! length is checked against the bytes really present, nesting depth and total size are
//! bounded, and trailing bytes are refused. Indefinite lengths are supported because KMS uses
//! them (the `der` crate refuses them).

use crate::recipient::RecipientKey;
use aes::Aes256;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use rand_core::{OsRng, RngCore};
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPublicKey};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// Largest envelope accepted. KMS plaintexts are at most 4096 bytes (Decrypt) and 1024 bytes
/// (GenerateRandom), so a real envelope is below 5 KiB; this bound stops memory/CPU abuse.
pub const MAX_CMS_LEN: usize = 64 * 1024;
/// Largest plaintext `build` will wrap (mirrors the KMS 4096-byte limit with margin).
pub const MAX_PLAINTEXT: usize = 8 * 1024;
/// Maximum BER nesting. The real structure is 11 levels deep; this guards the recursion in the
/// indefinite-length scanner against stack exhaustion (threat: deeply nested input).
const MAX_DEPTH: usize = 16;

const OID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

const T_INTEGER: u8 = 0x02;
const T_OCTET_STRING: u8 = 0x04;
const T_NULL: u8 = 0x05;
const T_OID: u8 = 0x06;
const T_SEQUENCE: u8 = 0x30;
const T_SET: u8 = 0x31;
const T_CTX0_PRIM: u8 = 0x80;
const T_CTX0_CONS: u8 = 0xa0;
const T_CTX1_CONS: u8 = 0xa1;

/// Why an envelope was rejected or could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmsError {
    /// Input is larger than [`MAX_CMS_LEN`] (or the plaintext larger than [`MAX_PLAINTEXT`]).
    TooLarge,
    /// An element's header or content runs past the end of the input.
    Truncated,
    /// Length encoding is malformed, non-minimal, or indefinite on a primitive.
    BadLength,
    /// Nesting exceeds the depth bound.
    TooDeep,
    /// Bytes remain after the ContentInfo or after the last expected field of a structure.
    TrailingData(&'static str),
    /// A different tag was found where `field` was expected.
    UnexpectedTag {
        field: &'static str,
        expected: u8,
        found: u8,
    },
    /// `field` has an object identifier other than the one required.
    WrongOid(&'static str),
    /// `field` is a version other than the one KMS sends.
    WrongVersion(&'static str),
    /// A field has a size outside its allowed range (IV, key id, encrypted key, ciphertext).
    BadFieldLength(&'static str),
    /// The envelope could not be opened with this key: wrong key, tampered encrypted key,
    /// or tampered ciphertext/padding. One variant for all on purpose: distinguishing them
    /// would give the sender an RSA or CBC padding oracle.
    DecryptFailed,
    /// `build` was given an unusable recipient public key.
    BadRecipientKey,
    /// `build` could not get randomness or encrypt.
    EncryptFailed,
}

impl fmt::Display for CmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmsError::TooLarge => write!(f, "CMS input exceeds the size limit"),
            CmsError::Truncated => write!(f, "CMS input is truncated"),
            CmsError::BadLength => write!(f, "CMS length encoding is malformed"),
            CmsError::TooDeep => write!(f, "CMS nesting is too deep"),
            CmsError::TrailingData(w) => write!(f, "unexpected trailing data after {w}"),
            CmsError::UnexpectedTag {
                field,
                expected,
                found,
            } => {
                write!(
                    f,
                    "{field}: expected tag 0x{expected:02x}, found 0x{found:02x}"
                )
            }
            CmsError::WrongOid(w) => write!(f, "{w}: unexpected object identifier"),
            CmsError::WrongVersion(w) => write!(f, "{w}: unsupported version"),
            CmsError::BadFieldLength(w) => write!(f, "{w}: length out of range"),
            CmsError::DecryptFailed => write!(f, "envelope could not be decrypted with this key"),
            CmsError::BadRecipientKey => write!(f, "recipient public key is not a usable RSA SPKI"),
            CmsError::EncryptFailed => write!(f, "envelope encryption failed"),
        }
    }
}

impl std::error::Error for CmsError {}

/// The fields of a KMS EnvelopedData needed to decrypt it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopedData {
    /// subjectKeyIdentifier of the recipient (KMS: 32 bytes; OpenSSL: 20).
    pub rid: Vec<u8>,
    /// RSAES-OAEP encrypted content-encryption key.
    pub encrypted_key: Vec<u8>,
    /// AES-256-CBC IV.
    pub iv: [u8; 16],
    /// AES-256-CBC ciphertext (PKCS#7 padded), chunks already joined.
    pub ciphertext: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------
// BER reader

/// One element: its identifier octet and its content octets (for an indefinite-length element,
/// the bytes between the header and the end-of-contents marker).
#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
    depth: usize,
}

impl<'a> Tlv<'a> {
    fn children(&self) -> Seq<'a> {
        Seq {
            rest: self.body,
            depth: self.depth + 1,
        }
    }
}

/// Reads one element from the start of `input`, returning it and the bytes after it.
fn read_tlv(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), CmsError> {
    if depth > MAX_DEPTH {
        return Err(CmsError::TooDeep);
    }
    let (&tag, rest) = input.split_first().ok_or(CmsError::Truncated)?;
    // High tag numbers (0x1f) never occur in this structure; EOC (0x00) is only valid where
    // the indefinite-length scanner looks for it.
    if tag & 0x1f == 0x1f || tag == 0 {
        return Err(CmsError::UnexpectedTag {
            field: "element",
            expected: T_SEQUENCE,
            found: tag,
        });
    }
    let constructed = tag & 0x20 != 0;
    let (&len0, mut rest) = rest.split_first().ok_or(CmsError::Truncated)?;
    if len0 == 0x80 {
        // Indefinite length: only legal on constructed encodings (X.690 8.1.3.2).
        if !constructed {
            return Err(CmsError::BadLength);
        }
        let start = rest;
        loop {
            if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                let body = &start[..start.len() - rest.len()];
                return Ok((Tlv { tag, body, depth }, &rest[2..]));
            }
            let (_, r) = read_tlv(rest, depth + 1)?;
            rest = r;
        }
    }
    let len = if len0 < 0x80 {
        usize::from(len0)
    } else {
        // Long form. Up to 3 length octets (16 MiB) is far beyond MAX_CMS_LEN anyway; 0xff is
        // reserved. Non-minimal forms are refused so each value has one encoding.
        let n = usize::from(len0 & 0x7f);
        if n == 0 || n > 3 || rest.len() < n {
            return Err(if rest.len() < n {
                CmsError::Truncated
            } else {
                CmsError::BadLength
            });
        }
        let (lb, r) = rest.split_at(n);
        rest = r;
        if lb[0] == 0 {
            return Err(CmsError::BadLength);
        }
        let len = lb
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return Err(CmsError::BadLength);
        }
        len
    };
    if rest.len() < len {
        return Err(CmsError::Truncated);
    }
    let (body, rest) = rest.split_at(len);
    Ok((Tlv { tag, body, depth }, rest))
}

/// The children of a constructed element, read in order.
struct Seq<'a> {
    rest: &'a [u8],
    depth: usize,
}

impl<'a> Seq<'a> {
    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn expect(&mut self, tag: u8, field: &'static str) -> Result<Tlv<'a>, CmsError> {
        let (t, rest) = read_tlv(self.rest, self.depth)?;
        if t.tag != tag {
            return Err(CmsError::UnexpectedTag {
                field,
                expected: tag,
                found: t.tag,
            });
        }
        self.rest = rest;
        Ok(t)
    }

    fn expect_oid(&mut self, oid: &[u8], field: &'static str) -> Result<(), CmsError> {
        if self.expect(T_OID, field)?.body == oid {
            Ok(())
        } else {
            Err(CmsError::WrongOid(field))
        }
    }

    /// A small INTEGER, checked against the single value we accept.
    fn expect_version(&mut self, v: u8, field: &'static str) -> Result<(), CmsError> {
        if self.expect(T_INTEGER, field)?.body == [v] {
            Ok(())
        } else {
            Err(CmsError::WrongVersion(field))
        }
    }

    fn finish(self, what: &'static str) -> Result<(), CmsError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CmsError::TrailingData(what))
        }
    }
}

/// `AlgorithmIdentifier { sha256, NULL OPTIONAL }`: KMS sends the NULL, OpenSSL omits it.
fn expect_sha256_alg(alg: Tlv<'_>, field: &'static str) -> Result<(), CmsError> {
    let mut s = alg.children();
    s.expect_oid(OID_SHA256, field)?;
    if s.peek_tag() == Some(T_NULL) && !s.expect(T_NULL, field)?.body.is_empty() {
        return Err(CmsError::BadFieldLength(field));
    }
    s.finish(field)
}

/// Parses a KMS `CiphertextForRecipient` (already base64-decoded).
pub fn parse(ber: &[u8]) -> Result<EnvelopedData, CmsError> {
    if ber.len() > MAX_CMS_LEN {
        return Err(CmsError::TooLarge);
    }
    let (ci, rest) = read_tlv(ber, 0)?;
    if ci.tag != T_SEQUENCE {
        return Err(CmsError::UnexpectedTag {
            field: "ContentInfo",
            expected: T_SEQUENCE,
            found: ci.tag,
        });
    }
    if !rest.is_empty() {
        return Err(CmsError::TrailingData("ContentInfo"));
    }

    // ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content }
    let mut s = ci.children();
    s.expect_oid(OID_ENVELOPED_DATA, "ContentInfo.contentType")?;
    let explicit = s.expect(T_CTX0_CONS, "ContentInfo.content")?;
    s.finish("ContentInfo")?;
    let mut e = explicit.children();
    let ed = e.expect(T_SEQUENCE, "EnvelopedData")?;
    e.finish("ContentInfo.content")?;

    // EnvelopedData: version 2 because the recipient is identified by subjectKeyIdentifier
    // (RFC 5652 6.1). originatorInfo and unprotectedAttrs are refused: KMS never sends them and
    // accepting them would only widen what an attacker can feed the parser.
    let mut s = ed.children();
    s.expect_version(2, "EnvelopedData.version")?;
    let ris = s.expect(T_SET, "EnvelopedData.recipientInfos")?;
    let eci = s.expect(T_SEQUENCE, "EncryptedContentInfo")?;
    s.finish("EnvelopedData")?;

    // Exactly one recipient. With several, which one we "used" would be up to the sender.
    let mut r = ris.children();
    let ktri = r.expect(T_SEQUENCE, "KeyTransRecipientInfo")?;
    r.finish("recipientInfos")?;
    let (rid, encrypted_key) = parse_ktri(ktri)?;

    let (iv, ciphertext) = parse_eci(eci)?;
    Ok(EnvelopedData {
        rid,
        encrypted_key,
        iv,
        ciphertext,
    })
}

fn parse_ktri(ktri: Tlv<'_>) -> Result<(Vec<u8>, Vec<u8>), CmsError> {
    let mut s = ktri.children();
    // Version 2 <=> rid is [0] subjectKeyIdentifier (version 0 would be issuerAndSerialNumber).
    s.expect_version(2, "KeyTransRecipientInfo.version")?;
    let rid = s.expect(T_CTX0_PRIM, "KeyTransRecipientInfo.rid")?.body;
    if rid.is_empty() || rid.len() > 64 {
        return Err(CmsError::BadFieldLength("KeyTransRecipientInfo.rid"));
    }

    let alg = s.expect(T_SEQUENCE, "keyEncryptionAlgorithm")?;
    let mut a = alg.children();
    a.expect_oid(OID_RSAES_OAEP, "keyEncryptionAlgorithm")?;
    // RSAES-OAEP-params (RFC 4055 3.1). Both [0] and [1] must be explicit: if absent they
    // DEFAULT to SHA-1, and we decrypt only with SHA-256, so an omitted field would mean the
    // sender and we disagree on the parameters. [2] pSourceAlgorithm (a label) is refused.
    let params = a.expect(T_SEQUENCE, "RSAES-OAEP-params")?;
    a.finish("keyEncryptionAlgorithm")?;
    let mut p = params.children();
    let hash = p.expect(T_CTX0_CONS, "RSAES-OAEP-params.hashAlgorithm")?;
    let mgf = p.expect(T_CTX1_CONS, "RSAES-OAEP-params.maskGenAlgorithm")?;
    p.finish("RSAES-OAEP-params")?;

    let mut h = hash.children();
    expect_sha256_alg(h.expect(T_SEQUENCE, "hashAlgorithm")?, "hashAlgorithm")?;
    h.finish("hashAlgorithm")?;

    let mut m = mgf.children();
    let mgf_alg = m.expect(T_SEQUENCE, "maskGenAlgorithm")?;
    m.finish("maskGenAlgorithm")?;
    let mut ma = mgf_alg.children();
    ma.expect_oid(OID_MGF1, "maskGenAlgorithm")?;
    expect_sha256_alg(
        ma.expect(T_SEQUENCE, "mgf1.hashAlgorithm")?,
        "mgf1.hashAlgorithm",
    )?;
    ma.finish("maskGenAlgorithm")?;

    let ek = s.expect(T_OCTET_STRING, "encryptedKey")?.body;
    // RSA-2048..4096 ciphertexts; the exact size is checked against the key when decrypting.
    if !(256..=512).contains(&ek.len()) {
        return Err(CmsError::BadFieldLength("encryptedKey"));
    }
    s.finish("KeyTransRecipientInfo")?;
    Ok((rid.to_vec(), ek.to_vec()))
}

fn parse_eci(eci: Tlv<'_>) -> Result<([u8; 16], Vec<u8>), CmsError> {
    let mut s = eci.children();
    s.expect_oid(OID_DATA, "EncryptedContentInfo.contentType")?;
    let alg = s.expect(T_SEQUENCE, "contentEncryptionAlgorithm")?;
    let mut a = alg.children();
    a.expect_oid(OID_AES256_CBC, "contentEncryptionAlgorithm")?;
    let iv_bytes = a
        .expect(T_OCTET_STRING, "contentEncryptionAlgorithm.iv")?
        .body;
    a.finish("contentEncryptionAlgorithm")?;
    let iv: [u8; 16] = iv_bytes
        .try_into()
        .map_err(|_| CmsError::BadFieldLength("contentEncryptionAlgorithm.iv"))?;

    // encryptedContent [0] IMPLICIT OCTET STRING: KMS sends it either primitive, or
    // constructed (indefinite) holding primitive OCTET STRING chunks. Nested constructed
    // chunks are legal BER but never produced, so they are refused.
    let ciphertext = match s.peek_tag() {
        Some(T_CTX0_PRIM) => s.expect(T_CTX0_PRIM, "encryptedContent")?.body.to_vec(),
        Some(T_CTX0_CONS) => {
            let cons = s.expect(T_CTX0_CONS, "encryptedContent")?;
            let mut c = cons.children();
            let mut out = Vec::with_capacity(cons.body.len());
            while c.peek_tag().is_some() {
                out.extend_from_slice(c.expect(T_OCTET_STRING, "encryptedContent chunk")?.body);
            }
            out
        }
        Some(found) => {
            return Err(CmsError::UnexpectedTag {
                field: "encryptedContent",
                expected: T_CTX0_PRIM,
                found,
            });
        }
        None => return Err(CmsError::Truncated),
    };
    s.finish("EncryptedContentInfo")?;
    // CBC with PKCS#7 always yields at least one whole block.
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
        return Err(CmsError::BadFieldLength("encryptedContent"));
    }
    Ok((iv, ciphertext))
}

/// Opens an envelope: RSA-OAEP-SHA256 unwraps the 32-byte content key, then AES-256-CBC with
/// PKCS#7 decrypts. The content key and the plaintext are zeroized when dropped.
///
/// Note the limits of this step: CBC has no integrity check and the recipient public key is
/// public (it is in the attestation document), so anyone relaying the response can replace
/// it with an envelope of their own making. Authenticity of the KMS answer must come from a
/// TLS session to KMS that terminates inside the enclave.
pub fn decrypt(env: &EnvelopedData, key: &RecipientKey) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    if env.ciphertext.len() > MAX_CMS_LEN
        || env.ciphertext.is_empty()
        || !env.ciphertext.len().is_multiple_of(16)
    {
        return Err(CmsError::BadFieldLength("encryptedContent"));
    }
    // Every failure below maps to the same DecryptFailed (threat: RSA/CBC padding oracles).
    let cek = key
        .oaep_sha256_decrypt(&env.encrypted_key)
        .map_err(|_| CmsError::DecryptFailed)?;
    if cek.len() != 32 {
        return Err(CmsError::DecryptFailed);
    }
    let dec = cbc::Decryptor::<Aes256>::new_from_slices(&cek, &env.iv)
        .map_err(|_| CmsError::DecryptFailed)?;
    let pt = dec
        .decrypt_padded_vec_mut::<Pkcs7>(&env.ciphertext)
        .map_err(|_| CmsError::DecryptFailed)?;
    Ok(Zeroizing::new(pt))
}

// ---------------------------------------------------------------------------------------------
// BER writer (development KMS)

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn definite(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

fn indefinite(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![tag, 0x80];
    for p in parts {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

fn sha256_alg_with_null() -> Vec<u8> {
    definite(
        T_SEQUENCE,
        &[definite(T_OID, OID_SHA256), vec![T_NULL, 0]].concat(),
    )
}

/// Builds a KMS-shaped `CiphertextForRecipient` for `plaintext`, for a development KMS and
/// tests: BER with indefinite lengths, EnvelopedData v2, KTRI v2 with `rid` as the
/// subjectKeyIdentifier, RSAES-OAEP-SHA256 and AES-256-CBC, content in a constructed [0].
pub fn build(plaintext: &[u8], recipient_spki_der: &[u8], rid: &[u8]) -> Result<Vec<u8>, CmsError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(CmsError::TooLarge);
    }
    if rid.is_empty() || rid.len() > 64 {
        return Err(CmsError::BadFieldLength("KeyTransRecipientInfo.rid"));
    }
    if recipient_spki_der.len() > 4096 {
        return Err(CmsError::BadRecipientKey);
    }
    let pk = RsaPublicKey::from_public_key_der(recipient_spki_der)
        .map_err(|_| CmsError::BadRecipientKey)?;
    if !(2048..=4096).contains(&pk.n().bits()) {
        return Err(CmsError::BadRecipientKey);
    }

    let mut cek = Zeroizing::new([0u8; 32]);
    let mut iv = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut *cek)
        .map_err(|_| CmsError::EncryptFailed)?;
    OsRng
        .try_fill_bytes(&mut iv)
        .map_err(|_| CmsError::EncryptFailed)?;
    let ek = pk
        .encrypt(&mut OsRng, Oaep::new::<Sha256>(), &*cek)
        .map_err(|_| CmsError::EncryptFailed)?;
    let enc = cbc::Encryptor::<Aes256>::new_from_slices(&*cek, &iv)
        .map_err(|_| CmsError::EncryptFailed)?;
    let ct = enc.encrypt_padded_vec_mut::<Pkcs7>(plaintext);

    let oaep_params = definite(
        T_SEQUENCE,
        &[
            definite(T_CTX0_CONS, &sha256_alg_with_null()),
            definite(
                T_CTX1_CONS,
                &definite(
                    T_SEQUENCE,
                    &[definite(T_OID, OID_MGF1), sha256_alg_with_null()].concat(),
                ),
            ),
        ]
        .concat(),
    );
    let ktri = definite(
        T_SEQUENCE,
        &[
            definite(T_INTEGER, &[2]),
            definite(T_CTX0_PRIM, rid),
            definite(
                T_SEQUENCE,
                &[definite(T_OID, OID_RSAES_OAEP), oaep_params].concat(),
            ),
            definite(T_OCTET_STRING, &ek),
        ]
        .concat(),
    );
    // Content in 1 KiB chunks inside an indefinite constructed [0], like KMS.
    let chunks: Vec<Vec<u8>> = ct
        .chunks(1024)
        .map(|c| definite(T_OCTET_STRING, c))
        .collect();
    let chunk_refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let eci = indefinite(
        T_SEQUENCE,
        &[
            &definite(T_OID, OID_DATA),
            &definite(
                T_SEQUENCE,
                &[
                    definite(T_OID, OID_AES256_CBC),
                    definite(T_OCTET_STRING, &iv),
                ]
                .concat(),
            ),
            &indefinite(T_CTX0_CONS, &chunk_refs),
        ],
    );
    let ed = indefinite(
        T_SEQUENCE,
        &[&definite(T_INTEGER, &[2]), &definite(T_SET, &ktri), &eci],
    );
    Ok(indefinite(
        T_SEQUENCE,
        &[
            &definite(T_OID, OID_ENVELOPED_DATA),
            &indefinite(T_CTX0_CONS, &[&ed]),
        ],
    ))
}
