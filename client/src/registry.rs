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
    /// The whole log, page by page (`entries` all of it, `head` the last page's).
    pub fn registry_log(&self, enclave: &AttestedEnclave) -> Result<LogView, ClientError> {
        let mut page = self.call::<ep::RegistryLog>(enclave, &LogRequest { from: 0 })?;
        let mut entries = std::mem::take(&mut page.entries);
        while (entries.len() as u64) < page.total {
            page = self.call::<ep::RegistryLog>(
                enclave,
                &LogRequest {
                    from: entries.len() as u64,
                },
            )?;
            if page.entries.is_empty() {
                return Err(protocol("the registry's log ended before its total"));
            }
            entries.append(&mut page.entries);
        }
        Ok(LogView {
            head: page.head,
            total: page.total,
            entries,
        })
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

/// Checks that `log` extends what a client saw before (`pinned`: an entry count and the
/// head after them): the entry at that place must have that hash. Threat: a parent that rolls
/// the registry's sealed state back across a restart (undoing a revocation); the registry then
/// attests the old head, consistently, so only a client that remembers a later head notices.
pub fn check_log_extends(
    log: &LogView,
    pinned: Option<(u64, [u8; 32])>,
) -> Result<(), ClientError> {
    let Some((count, head)) = pinned else {
        return Ok(());
    };
    if count == 0 {
        return Ok(());
    }
    let at = usize::try_from(count - 1).unwrap_or(usize::MAX);
    match log.entries.get(at) {
        Some(e) if e.hash.0 == head => Ok(()),
        Some(_) => Err(protocol(format!(
            "the log's entry {at} is not the one seen before (head {}): the registry's history \
             was rewritten",
            hex::encode(head)
        ))),
        None => Err(protocol(format!(
            "the log has {} entries, fewer than the {count} seen before (head {}): the registry \
             was rolled back",
            log.entries.len(),
            hex::encode(head)
        ))),
    }
}

/// Opens a provision with the instance's X25519 key (the one its document carried), for the
/// registration of challenge `nonce`, sealed by `registry` (the registry's attested per-boot
/// key, `AttestedEnclave::public_key`): a provision that anyone else sealed does not open.
pub fn open_provision(
    key: &ServerKey,
    registry: &[u8; 32],
    nonce: &[u8; 32],
    p: &Provisioned,
) -> Result<Provision, ClientError> {
    let plain = Zeroizing::new(
        key.open_auth(
            registry,
            &p.enc.0,
            &provision_info(nonce),
            &[],
            &p.ciphertext.0,
        )
        .map_err(|_| {
            protocol(
                "the provision does not open: not sealed by the attested registry to this \
                     key for this challenge, or altered",
            )
        })?,
    );
    serde_json::from_slice(&plain).map_err(|e| protocol(format!("the provision: {e}")))
}
