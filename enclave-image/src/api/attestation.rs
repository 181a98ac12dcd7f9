//! `GET /v1/attestation?nonce=HEX`: a fresh NSM document binding the per-boot HPKE key (its
//! `public_key`), the image description (`user_data`, with the node identity once the sealed
//! state is open) and the caller's nonce to the image's PCRs. It is public: everything secret
//! is sealed to the key it carries.

use sigil_protocol::api::{AttestationResponse, MAX_NONCE_LEN};
use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::wire::Base64Bytes;

use super::App;
use crate::log;

pub(super) fn attestation(app: &App, query: Option<&str>) -> Result<AttestationResponse, ApiError> {
    let nonce = parse_nonce(query)?;
    let public_key = app.key.public_key();
    let mut info = app.image_info.clone();
    info.node = app.sealing.node_id();
    info.registry_log = app.registry_head();
    match app
        .nsm
        .attest(Some(&public_key), Some(&info.to_cbor()), nonce.as_deref())
    {
        Ok(doc) => Ok(AttestationResponse {
            document: Base64Bytes(doc),
            mode: app.nsm.mode().as_str().to_string(),
        }),
        Err(e) => {
            log::warn(format_args!("attestation failed: {e}"));
            Err(ApiError::new(
                Code::NsmFailed,
                format!("attestation failed: {e}"),
            ))
        }
    }
}

/// `nonce=HEX` is the only query parameter; anything else is an error, not ignored, so a
/// typo cannot silently produce a document without the caller's nonce.
fn parse_nonce(query: Option<&str>) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    let mut nonce = None;
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "nonce" {
            return Err(ApiError::new(
                Code::BadQuery,
                format!("unknown query parameter {k:?}; only nonce=HEX is accepted"),
            ));
        }
        if nonce.is_some() {
            return Err(ApiError::new(Code::BadQuery, "nonce given twice"));
        }
        if v.len() > 2 * MAX_NONCE_LEN {
            return Err(ApiError::new(
                Code::NonceTooLong,
                format!("nonce exceeds {MAX_NONCE_LEN} bytes"),
            ));
        }
        let bytes = hex::decode(v)
            .map_err(|e| ApiError::new(Code::BadNonce, format!("nonce is not hex: {e}")))?;
        nonce = Some(bytes);
    }
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_parsing() {
        assert_eq!(parse_nonce(None).unwrap(), None);
        assert_eq!(parse_nonce(Some("")).unwrap(), None);
        assert_eq!(parse_nonce(Some("nonce=00ff")).unwrap(), Some(vec![0, 255]));
        for (q, code) in [
            ("nonce=zz", "bad_nonce"),
            ("nonce=abc", "bad_nonce"),
            ("foo=1", "bad_query"),
            ("nonce=00&nonce=01", "bad_query"),
        ] {
            let r = parse_nonce(Some(q)).unwrap_err();
            assert_eq!(r.status, 400);
            assert_eq!(r.code.as_str(), code, "{q}");
        }
        let long = format!("nonce={}", "00".repeat(MAX_NONCE_LEN + 1));
        let r = parse_nonce(Some(&long)).unwrap_err();
        assert_eq!(r.code, Code::NonceTooLong);
        let max = format!("nonce={}", "00".repeat(MAX_NONCE_LEN));
        assert_eq!(
            parse_nonce(Some(&max)).unwrap().unwrap().len(),
            MAX_NONCE_LEN
        );
    }
}
