#![doc = include_str!("../README.md")]
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
