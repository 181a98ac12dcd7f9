//! The registry's clients: administrators changing it (each approving with its admin key),
//! anyone fetching and checking its log, and instances registering (a sigil image in another
//! role, or any Nitro application that can fetch an attestation document carrying the
//! challenge nonce and its X25519 key).

use sigil_protocol::encap::ServerKey;
use sigil_protocol::endpoint as ep;
use sigil_protocol::quorum::Approval;
use sigil_protocol::registry::{
    Challenge, ChallengeRequest, Change, ChangeRequest, LogRequest, LogView, Provision,
    Provisioned, RegisterRequest, change_digest, provision_info, verify_log,
};
use sigil_protocol::wire::{Base64Bytes, Hex};
use zeroize::Zeroizing;

use crate::quorum::AdminKey;
use crate::{AttestedEnclave, Client, ClientError};

fn protocol(m: impl Into<String>) -> ClientError {
    ClientError::Protocol(m.into())
}

impl Client {
    pub fn registry_log(&self, enclave: &AttestedEnclave) -> Result<LogView, ClientError> {
        self.call::<ep::RegistryLog>(enclave, &LogRequest {})
    }

    /// Applies `change` with the approvals of `keys` (at least the quorum's threshold of its
    /// current administrators), made at the log's current head for this boot.
    pub fn registry_change(
        &self,
        enclave: &AttestedEnclave,
        change: Change,
        keys: &[&AdminKey],
    ) -> Result<LogView, ClientError> {
        let head = self.registry_log(enclave)?.head;
        let view = self.quorum_status(enclave)?;
        let digest = change_digest(&head.0, &change);
        let approvals = keys
            .iter()
            .map(|k| k.approve(enclave, &view, &digest))
            .collect::<Result<Vec<Approval>, _>>()?;
        self.registry_apply(enclave, change, head.0, approvals)
    }

    /// Sends a change with approvals made elsewhere (at log head `head`).
    pub fn registry_apply(
        &self,
        enclave: &AttestedEnclave,
        change: Change,
        head: [u8; 32],
        approvals: Vec<Approval>,
    ) -> Result<LogView, ClientError> {
        self.call::<ep::RegistryChange>(
            enclave,
            &ChangeRequest {
                change,
                head: Hex(head),
                approvals,
            },
        )
    }

    /// Fetches the log and checks it: the hash chain, and its head against the head a fresh
    /// attestation document of the registry carries (taken after the log, so a log that
    /// hides a change the registry has made does not match).
    pub fn registry_log_verified(
        &self,
        enclave: &AttestedEnclave,
        policy: sigil_attestation::Policy,
    ) -> Result<LogView, ClientError> {
        let log = self.registry_log(enclave)?;
        let fresh = self.attest(policy)?;
        check_log(&log, fresh.image.registry_log)?;
        Ok(log)
    }

    pub fn registry_challenge(&self, enclave: &AttestedEnclave) -> Result<Challenge, ClientError> {
        self.call::<ep::RegistryChallenge>(enclave, &ChallengeRequest {})
    }

    /// Registers with `document` (the instance's fresh attestation document carrying the
    /// challenge nonce and its X25519 key).
    pub fn registry_register(
        &self,
        enclave: &AttestedEnclave,
        document: Vec<u8>,
    ) -> Result<Provisioned, ClientError> {
        self.call::<ep::RegistryRegister>(
            enclave,
            &RegisterRequest {
                document: Base64Bytes(document),
            },
        )
    }
}

/// Checks a fetched log: the chain, and its head against `attested` (the head a fresh
/// attestation document carries). Names the first broken entry.
pub fn check_log(log: &LogView, attested: Option<[u8; 32]>) -> Result<(), ClientError> {
    let head = verify_log(&log.entries).map_err(|e| protocol(format!("the log: {e}")))?;
    if head != log.head.0 {
        return Err(protocol(
            "the log's entries do not end at the head it names",
        ));
    }
    match attested {
        Some(a) if a == head => Ok(()),
        Some(a) => Err(protocol(format!(
            "the log ends at {} but the registry attests head {}",
            hex::encode(head),
            hex::encode(a)
        ))),
        None => Err(protocol(
            "the registry's attestation document carries no log head",
        )),
    }
}

/// Opens a provision with the instance's X25519 key (the one its document carried), for the
/// registration of challenge `nonce`.
pub fn open_provision(
    key: &ServerKey,
    nonce: &[u8; 32],
    p: &Provisioned,
) -> Result<Provision, ClientError> {
    let plain = Zeroizing::new(
        key.open_base(&p.enc.0, &provision_info(nonce), &[], &p.ciphertext.0)
            .map_err(|_| protocol("the provision does not open with this key and challenge"))?,
    );
    serde_json::from_slice(&plain).map_err(|e| protocol(format!("the provision: {e}")))
}
