//! `sigil-kms`: the pieces the enclave needs to call AWS KMS with a Nitro attestation
//! `Recipient` and open the answer.
//!
//! * [`sigv4`]: AWS Signature Version 4 request signing (HMAC-SHA256).
//! * [`api`]: the awsJson1_1 request/response types and the signed KMS HTTP request.
//! * [`recipient`]: the per-call RSA-2048 key whose SPKI goes in the attestation document.
//! * [`cms`]: strict parser, decryptor and (for a development KMS) builder of the CMS
//!   EnvelopedData that KMS returns as `CiphertextForRecipient`.
//! * [`client`]: the blocking client: HTTP/1.1 over TLS (rustls on ring) that terminates
//!   inside the enclave, over any byte stream a [`client::Connector`] opens.

#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod cms;
pub mod recipient;
pub mod sigv4;

pub use client::{Connector, FixedAddr, KmsClient, KmsError, Trust};
pub use cms::{CmsError, EnvelopedData};
pub use recipient::{RecipientError, RecipientKey};
pub use sigv4::{Credentials, Request, SigV4Error, SigningParams, SigningTime};
