//! The real NSM (`/dev/nsm`) through aws-nitro-enclaves-nsm-api.

use std::collections::BTreeMap;

use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver;
use serde_bytes::ByteBuf;

use super::{Fields, Mode, Nsm, NsmError};

pub const DEVICE: &str = "/dev/nsm";

pub struct HardwareNsm {
    fd: i32,
}

impl HardwareNsm {
    pub fn open() -> Result<HardwareNsm, NsmError> {
        if !std::path::Path::new(DEVICE).exists() {
            return Err(NsmError::Unavailable(format!("{DEVICE} does not exist")));
        }
        let fd = driver::nsm_init();
        if fd < 0 {
            return Err(NsmError::Unavailable(format!(
                "{DEVICE} could not be opened"
            )));
        }
        Ok(HardwareNsm { fd })
    }

    fn call(&self, req: Request) -> Result<Response, NsmError> {
        match driver::nsm_process_request(self.fd, req) {
            Response::Error(code) => Err(NsmError::Failed(format!("{code:?}"))),
            other => Ok(other),
        }
    }
}

impl Drop for HardwareNsm {
    fn drop(&mut self) {
        driver::nsm_exit(self.fd);
    }
}

impl Nsm for HardwareNsm {
    fn mode(&self) -> Mode {
        Mode::Nitro
    }

    fn attest_fields(&self, fields: Fields<'_>) -> Result<Vec<u8>, NsmError> {
        let buf = |v: Option<&[u8]>| v.map(|b| ByteBuf::from(b.to_vec()));
        match self.call(Request::Attestation {
            user_data: buf(fields.user_data),
            nonce: buf(fields.nonce),
            public_key: buf(fields.public_key),
        })? {
            Response::Attestation { document } => Ok(document),
            other => Err(NsmError::Failed(format!("unexpected response {other:?}"))),
        }
    }

    fn random(&self, len: usize) -> Result<Vec<u8>, NsmError> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            match self.call(Request::GetRandom)? {
                Response::GetRandom { random } if !random.is_empty() => {
                    let take = (len - out.len()).min(random.len());
                    out.extend_from_slice(&random[..take]);
                }
                other => return Err(NsmError::Failed(format!("unexpected response {other:?}"))),
            }
        }
        Ok(out)
    }

    fn describe_pcrs(&self) -> Result<BTreeMap<u8, Vec<u8>>, NsmError> {
        let mut pcrs = BTreeMap::new();
        for index in 0u8..16 {
            match self.call(Request::DescribePCR {
                index: index.into(),
            })? {
                Response::DescribePCR { data, .. } => {
                    pcrs.insert(index, data);
                }
                other => return Err(NsmError::Failed(format!("unexpected response {other:?}"))),
            }
        }
        Ok(pcrs)
    }
}
