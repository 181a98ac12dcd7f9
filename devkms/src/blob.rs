//! The development `CiphertextBlob` format (not AWS's):
//!
//! ```text
//! "SGDK" | version 0x01 | key_id_len (u8) | key_id | nonce (12) | AES-256-GCM(ct || tag)
//! ```
//!
//! The AAD is everything before the ciphertext followed by the canonical encryption context
//! (entries sorted by key; `u32be count`, then per entry `u32be len | key | u32be len | value`),
//! so the key id, the format header and the encryption context are all authenticated.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"SGDK";
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
/// KMS's own ciphertext limit.
pub const MAX_BLOB: usize = 6144;

/// Why a blob could not be opened; deliberately without detail (no oracle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadBlob;

/// Key id carried in a blob's header (unauthenticated until [`open`] succeeds).
pub fn key_id(blob: &[u8]) -> Result<&str, BadBlob> {
    let (id, _, _) = split(blob)?;
    Ok(id)
}

fn split(blob: &[u8]) -> Result<(&str, usize, [u8; NONCE_LEN]), BadBlob> {
    if blob.len() > MAX_BLOB || blob.len() < 6 || &blob[..4] != MAGIC || blob[4] != VERSION {
        return Err(BadBlob);
    }
    let id_len = usize::from(blob[5]);
    let id_end = 6 + id_len;
    let header_end = id_end + NONCE_LEN;
    if blob.len() < header_end + TAG_LEN {
        return Err(BadBlob);
    }
    let id = std::str::from_utf8(&blob[6..id_end]).map_err(|_| BadBlob)?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&blob[id_end..header_end]);
    Ok((id, header_end, nonce))
}

fn aad(header: &[u8], ctx: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = header.to_vec();
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
    out.extend_from_slice(&len32(ctx.len()));
    for (k, v) in ctx {
        out.extend_from_slice(&len32(k.len()));
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&len32(v.len()));
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn aead_key(master: &[u8; 32]) -> Result<LessSafeKey, BadBlob> {
    UnboundKey::new(&AES_256_GCM, master)
        .map(LessSafeKey::new)
        .map_err(|_| BadBlob)
}

/// Encrypts `plaintext` under `master`, binding `key_id` and `ctx`.
pub fn seal(
    master: &[u8; 32],
    key_id: &str,
    ctx: &BTreeMap<String, String>,
    plaintext: &[u8],
    rng: &SystemRandom,
) -> Result<Vec<u8>, BadBlob> {
    let id_len = u8::try_from(key_id.len()).map_err(|_| BadBlob)?;
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| BadBlob)?;
    let mut out = Vec::with_capacity(6 + key_id.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(id_len);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&nonce);
    let aad = aad(&out, ctx);
    let mut buf = plaintext.to_vec();
    aead_key(master)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut buf,
        )
        .map_err(|_| BadBlob)?;
    out.extend_from_slice(&buf);
    if out.len() > MAX_BLOB {
        return Err(BadBlob);
    }
    Ok(out)
}

/// Authenticates and decrypts a blob made by [`seal`] with the same master key and context.
pub fn open(
    master: &[u8; 32],
    ctx: &BTreeMap<String, String>,
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, BadBlob> {
    let (_, header_end, nonce) = split(blob)?;
    let aad = aad(&blob[..header_end], ctx);
    let mut buf = Zeroizing::new(blob[header_end..].to_vec());
    let len = aead_key(master)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut buf,
        )
        .map_err(|_| BadBlob)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let rng = SystemRandom::new();
        let k = [7u8; 32];
        let mut ctx = BTreeMap::new();
        ctx.insert("purpose".to_string(), "seal".to_string());
        let blob = seal(&k, "key-1", &ctx, b"secret", &rng).unwrap();
        assert_eq!(key_id(&blob).unwrap(), "key-1");
        assert_eq!(open(&k, &ctx, &blob).unwrap().as_slice(), b"secret");
        assert!(open(&k, &BTreeMap::new(), &blob).is_err());
        assert!(open(&[8u8; 32], &ctx, &blob).is_err());
        // Any single flipped byte is rejected, header included.
        for i in 0..blob.len() {
            let mut t = blob.clone();
            t[i] ^= 1;
            assert!(open(&k, &ctx, &t).is_err(), "byte {i}");
        }
        assert!(open(&k, &ctx, &blob[..blob.len() - 1]).is_err());
        assert!(open(&k, &ctx, &[]).is_err());
    }
}
