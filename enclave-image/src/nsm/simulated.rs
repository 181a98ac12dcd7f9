//! The simulated NSM for the QEMU harness and local mode.
//!
//! Its documents chain to the sigil test root, whose private key is public by design: a
//! verifier accepts them only when told to trust that root, and says loudly that the document
//! is not from AWS hardware. PCRs are all zero, as in a debug-mode enclave.

use std::collections::BTreeMap;

use sigil_attestation::simulator::SimulatedIssuer;

use super::{Fields, Mode, Nsm, NsmError};

pub struct SimulatedNsm {
    mode: Mode,
    issuer: SimulatedIssuer,
    /// PCR values to claim instead of zeros (local mode's `--simulated-pcrs`), so tests can
    /// play two different images against a key policy. Still under the test root: a verifier
    /// that does not trust that root refuses these documents whatever PCRs they claim.
    pcrs: Option<BTreeMap<u8, Vec<u8>>>,
}

impl SimulatedNsm {
    pub fn new(mode: Mode) -> Result<SimulatedNsm, NsmError> {
        let issuer = SimulatedIssuer::new().map_err(|e| NsmError::Failed(e.to_string()))?;
        Ok(SimulatedNsm {
            mode,
            issuer,
            pcrs: None,
        })
    }

    /// Claims these PCRs (index -> 48 bytes) in every document; the others stay zero.
    pub fn with_pcrs(mut self, pcrs: BTreeMap<u8, Vec<u8>>) -> Result<SimulatedNsm, NsmError> {
        if let Some((i, v)) = pcrs.iter().find(|(i, v)| **i > 15 || v.len() != 48) {
            return Err(NsmError::Failed(format!(
                "simulated PCR{i} must be index 0..15 with 48 bytes, not {} bytes",
                v.len()
            )));
        }
        self.pcrs = Some(pcrs);
        Ok(self)
    }
}

impl Nsm for SimulatedNsm {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn attest_fields(&self, fields: Fields<'_>) -> Result<Vec<u8>, NsmError> {
        let Fields {
            public_key,
            user_data,
            nonce,
        } = fields;
        let failed = |e: sigil_attestation::simulator::SimError| NsmError::Failed(e.to_string());
        let Some(pcrs) = &self.pcrs else {
            return self
                .issuer
                .attest(public_key, user_data, nonce)
                .map_err(failed);
        };
        let mut doc = self
            .issuer
            .document(public_key, user_data, nonce)
            .map_err(failed)?;
        for (i, v) in pcrs {
            doc.pcrs.insert(*i, v.clone());
        }
        self.issuer.sign_document(&doc).map_err(failed)
    }

    fn random(&self, len: usize) -> Result<Vec<u8>, NsmError> {
        // The kernel's CSPRNG stands in for the NSM's hardware source.
        let mut out = vec![0u8; len];
        getrandom::fill(&mut out).map_err(|e| NsmError::Failed(format!("getrandom: {e}")))?;
        Ok(out)
    }

    fn describe_pcrs(&self) -> Result<BTreeMap<u8, Vec<u8>>, NsmError> {
        let mut all: BTreeMap<u8, Vec<u8>> = (0u8..16).map(|i| (i, vec![0u8; 48])).collect();
        if let Some(pcrs) = &self.pcrs {
            all.extend(pcrs.clone());
        }
        Ok(all)
    }
}
