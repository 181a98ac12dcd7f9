//! KMS answers as the enclave reads them (the parent relays the TLS stream, KMS or a
//! development KMS writes them): the awsJson1_1 response and error shapes, then the CMS
//! `CiphertextForRecipient` envelope, parsed and opened with a recipient key.

use std::sync::OnceLock;

use sigil_kms::api::{
    self, DecryptResponse, GenerateDataKeyResponse, GenerateRandomResponse, KmsApiError,
    RecipientResponse,
};
use sigil_kms::cms;
use sigil_kms::recipient::RecipientKey;

/// A recipient key made for fuzzing only (public on purpose, like the test root): the seeds'
/// envelopes are sealed to it, so mutations of them reach the RSA and AES steps.
pub const RECIPIENT_KEY_PKCS8: &[u8] = include_bytes!("../../keys/recipient-rsa2048.pk8");

pub fn recipient_key() -> &'static RecipientKey {
    static KEY: OnceLock<RecipientKey> = OnceLock::new();
    KEY.get_or_init(|| RecipientKey::from_pkcs8_der(RECIPIENT_KEY_PKCS8).expect("fuzz key"))
}

pub const KINDS: u8 = 5;
pub const GENERATE_DATA_KEY: u8 = 0;
pub const DECRYPT: u8 = 1;
pub const GENERATE_RANDOM: u8 = 2;
pub const ERROR: u8 = 3;
pub const CMS: u8 = 4;

pub fn run(data: &[u8]) {
    let Some((selector, rest)) = crate::split_selector(data) else {
        return;
    };
    match selector % KINDS {
        GENERATE_DATA_KEY => recipient::<GenerateDataKeyResponse>(rest),
        DECRYPT => recipient::<DecryptResponse>(rest),
        GENERATE_RANDOM => recipient::<GenerateRandomResponse>(rest),
        ERROR => {
            if let Err(KmsApiError::Service { code, message, .. }) =
                api::parse_response::<DecryptResponse>(400, rest)
            {
                // Copied into errors and logs: bounded, no control characters.
                for s in [&code, &message] {
                    assert!(s.chars().count() <= 256);
                    assert!(!s.chars().any(char::is_control), "{s:?}");
                }
            }
        }
        _ => envelope(rest),
    }
}

fn recipient<R: RecipientResponse + serde::de::DeserializeOwned>(body: &[u8]) {
    let Ok(resp) = api::parse_response::<R>(200, body) else {
        return;
    };
    if let Ok(ber) = api::recipient_ciphertext(&resp) {
        assert!(resp.plaintext().is_none_or(|p| p.is_empty()));
        envelope(ber);
    }
}

fn envelope(ber: &[u8]) {
    if let Ok(env) = cms::parse(ber)
        && let Ok(plain) = cms::decrypt(&env, recipient_key())
    {
        assert!(plain.len() < env.ciphertext.len());
    }
}
