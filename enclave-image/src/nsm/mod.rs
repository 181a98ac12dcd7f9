//! The Nitro Secure Module behind one interface: the real device on Nitro hardware, and a
//! simulation for the QEMU harness and local mode that issues documents of exactly the real
//! structure under the sigil test root (never under AWS's), with zero PCRs and a module_id
//! that says "simulated".

mod hardware;
mod simulated;

use std::collections::BTreeMap;
use std::fmt;

pub use hardware::HardwareNsm;

/// The device node of the real NSM.
pub fn hardware_device() -> &'static str {
    hardware::DEVICE
}
pub use simulated::SimulatedNsm;

/// Where the enclave binary is running; it decides which NSM backs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// PID 1 in an EIF on Nitro hardware.
    Nitro,
    /// PID 1 in the QEMU harness.
    Harness,
    /// An ordinary process (development, CI).
    Local,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Nitro => "nitro",
            Mode::Harness => "harness",
            Mode::Local => "local",
        }
    }
}

/// Largest public_key, user_data or nonce the NSM signs (AWS's limit).
pub const MAX_FIELD: usize = 1024;

#[derive(Debug)]
pub enum NsmError {
    /// The device is absent or could not be opened.
    Unavailable(String),
    /// A field is over [`MAX_FIELD`] bytes.
    FieldTooLarge(&'static str, usize),
    /// The NSM (or the simulator) refused or failed.
    Failed(String),
}

impl fmt::Display for NsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NsmError::Unavailable(m) => write!(f, "NSM unavailable: {m}"),
            NsmError::FieldTooLarge(name, n) => {
                write!(f, "{name} is {n} bytes; the NSM signs at most {MAX_FIELD}")
            }
            NsmError::Failed(m) => write!(f, "NSM request failed: {m}"),
        }
    }
}

impl std::error::Error for NsmError {}

/// What an attestation document binds besides the image.
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a> {
    pub public_key: Option<&'a [u8]>,
    pub user_data: Option<&'a [u8]>,
    pub nonce: Option<&'a [u8]>,
}

pub trait Nsm: Send + Sync {
    fn mode(&self) -> Mode;

    /// A signed attestation document (COSE_Sign1) binding the given fields to the image.
    fn attest(
        &self,
        public_key: Option<&[u8]>,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError> {
        check_fields(public_key, user_data, nonce)?;
        self.attest_fields(Fields {
            public_key,
            user_data,
            nonce,
        })
    }

    /// [`Nsm::attest`] once every field is known to be within [`MAX_FIELD`].
    fn attest_fields(&self, fields: Fields<'_>) -> Result<Vec<u8>, NsmError>;

    /// Fresh random bytes from the NSM (at most 256 per call).
    fn random(&self, len: usize) -> Result<Vec<u8>, NsmError>;

    /// The current values of PCRs 0..16.
    fn describe_pcrs(&self) -> Result<BTreeMap<u8, Vec<u8>>, NsmError>;
}

fn check_fields(
    public_key: Option<&[u8]>,
    user_data: Option<&[u8]>,
    nonce: Option<&[u8]>,
) -> Result<(), NsmError> {
    for (name, v) in [
        ("public_key", public_key),
        ("user_data", user_data),
        ("nonce", nonce),
    ] {
        if let Some(v) = v
            && v.len() > MAX_FIELD
        {
            return Err(NsmError::FieldTooLarge(name, v.len()));
        }
    }
    Ok(())
}
