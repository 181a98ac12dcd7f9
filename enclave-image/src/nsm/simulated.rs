//! The simulated NSM for the QEMU harness and local mode.
//!
//! Its documents chain to the sigil test root, whose private key is public by design: a
//! verifier accepts them only when told to trust that root, and says loudly that the document
//! is not from AWS hardware. PCRs are all zero, as in a debug-mode enclave.

use std::collections::BTreeMap;

use sigil_attestation::simulator::SimulatedIssuer;

use super::{Mode, Nsm, NsmError, check_fields};

pub struct SimulatedNsm {
    mode: Mode,
    issuer: SimulatedIssuer,
}

impl SimulatedNsm {
    pub fn new(mode: Mode) -> Result<SimulatedNsm, NsmError> {
        let issuer = SimulatedIssuer::new().map_err(|e| NsmError::Failed(e.to_string()))?;
        Ok(SimulatedNsm { mode, issuer })
    }
}

impl Nsm for SimulatedNsm {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn attest(
        &self,
        public_key: Option<&[u8]>,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError> {
        check_fields(public_key, user_data, nonce)?;
        self.issuer
            .attest(public_key, user_data, nonce)
            .map_err(|e| NsmError::Failed(e.to_string()))
    }

    fn random(&self, len: usize) -> Result<Vec<u8>, NsmError> {
        // The kernel's CSPRNG stands in for the NSM's hardware source.
        let mut out = vec![0u8; len];
        getrandom::fill(&mut out).map_err(|e| NsmError::Failed(format!("getrandom: {e}")))?;
        Ok(out)
    }

    fn describe_pcrs(&self) -> Result<BTreeMap<u8, Vec<u8>>, NsmError> {
        Ok((0u8..16).map(|i| (i, vec![0u8; 48])).collect())
    }
}
