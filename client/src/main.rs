//! `sigil`: verify attestation documents and talk to an attested enclave.

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

mod admin_cmd;
mod frost_cmd;
mod registry_cmd;

use clap::{Args, Parser, Subcommand};
use sigil_attestation::{Policy, Verified};
use sigil_client::musig2::{
    AggregateSpec, ExpectedKey, ExpectedSession, OutputKey, SessionSpec, check_session,
};
use sigil_client::{
    AttestedEnclave, Client, ClientError, OwnerKey, SignerKey, TEST_ROOT_WARNING, policy,
};
use sigil_protocol::musig2::{KeyOrder, MessageView, ParticipantSpec, SessionState, TweakSpec};
use sigil_protocol::wire::{Hex32, HexBytes, Id, Point};

#[derive(Parser)]
#[command(name = "sigil", version, about = "Verify and use sigil enclaves")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Offline operations on attestation documents.
    Attestation {
        #[command(subcommand)]
        cmd: AttestationCmd,
    },
    /// Fetch a fresh attestation from an enclave (random nonce) and verify it.
    Attest {
        #[arg(long)]
        endpoint: String,
        #[command(flatten)]
        trust: Trust,
        /// Oldest acceptable document, in seconds.
        #[arg(long, default_value_t = 300)]
        max_age: u64,
        /// Also write the raw document (CBOR) here.
        #[arg(long)]
        save_document: Option<String>,
    },
    /// Attest, then send an encapsulated ping and check the sealed echo.
    Ping {
        #[arg(long)]
        endpoint: String,
        #[command(flatten)]
        trust: Trust,
        #[arg(long, default_value = "hello from sigil")]
        message: String,
    },
    /// Ask an enclave (`--endpoint`) whether it accepts another (`--peer`) as a peer: the
    /// peer's fresh attestation document is checked by the enclave against its own measured
    /// peer policy, which answers (sealed) with the peer's node id and per-boot key.
    PeersVerify {
        #[arg(long)]
        endpoint: String,
        /// The other enclave's API.
        #[arg(long)]
        peer: String,
        #[command(flatten)]
        trust: Trust,
    },
    /// Carry a sealed ping from one enclave to another, as a coordinator (or a parent) does:
    /// each enclave checks the other's fresh attestation against its own peer policy; the
    /// message travels sealed between their attested keys.
    PeersPing {
        /// The sending enclave's API.
        #[arg(long)]
        from: String,
        /// The receiving enclave's API.
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "hello from a peer")]
        text: String,
        #[command(flatten)]
        trust: Trust,
    },
    /// FROST threshold signing (t of n) across enclaves, this CLI as the coordinator.
    Frost {
        #[command(subcommand)]
        cmd: frost_cmd::FrostCmd,
    },
    /// Quorum administrators' keys (a signing key and an HPKE key from one seed).
    AdminKey {
        #[command(subcommand)]
        cmd: admin_cmd::AdminKeyCmd,
    },
    /// A quorum administrator's part: approve genesis, fetch and check its share, post it to
    /// unlock a locked enclave, read the quorum's status.
    Admin {
        #[arg(long)]
        endpoint: String,
        #[command(flatten)]
        trust: Trust,
        #[command(subcommand)]
        cmd: admin_cmd::AdminCmd,
    },
    /// A registry: its change log, approved changes, and instances' registration.
    Registry {
        #[arg(long)]
        endpoint: String,
        #[command(flatten)]
        trust: Trust,
        #[command(subcommand)]
        cmd: registry_cmd::RegistryCmd,
    },
    /// Owner keys: the secp256k1 keys whose signatures authorize vault operations.
    OwnerKey {
        #[command(subcommand)]
        cmd: OwnerKeyCmd,
    },
    /// Prove with the enclave's bb: attest, send circuit and witness (or a chonk input stack)
    /// encrypted, wait, and write `proof`, `public_inputs`, `vk` and `vk_hash` (bb's formats;
    /// for chonk `proof` and `vk`) into --out
    Prove {
        #[arg(long)]
        endpoint: String,
        #[command(flatten)]
        trust: Trust,
        /// Noir's compiled program (target.json) or gzipped bytecode (UltraHonk).
        #[arg(long, required_unless_present = "ivc_inputs", requires = "witness")]
        circuit: Option<String>,
        /// The gzipped witness (UltraHonk).
        #[arg(long, requires = "circuit")]
        witness: Option<String>,
        /// A chonk proof instead: bb's input stack (ivc-inputs.msgpack: the circuits,
        /// witnesses and keys in folding order).
        #[arg(long, conflicts_with_all = ["circuit", "witness"])]
        ivc_inputs: Option<String>,
        /// Where the outputs go (created if absent).
        #[arg(long)]
        out: String,
        /// bb's verifier target: default (noir-recursive), evm, noir-recursive, ...
        #[arg(long, default_value = "default")]
        target: String,
        /// Which bb version proves it (one the attestation lists, e.g. 4.1.2); default: the
        /// enclave's default version.
        #[arg(long)]
        bb_version: Option<String>,
        /// Longest wait for the proof, seconds; then the job is cancelled in the enclave.
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
    },
    /// Secrets sealed by the enclave and given back only to their owner.
    Vault {
        #[arg(long)]
        endpoint: String,
        #[command(flatten)]
        trust: Trust,
        /// The owner key file (see `sigil owner-key new`).
        #[arg(long)]
        owner_key: String,
        #[command(subcommand)]
        cmd: VaultCmd,
    },
    /// Keys of external MuSig2 participants: they sign on this machine, never in the enclave.
    SignerKey {
        #[command(subcommand)]
        cmd: SignerKeyCmd,
    },
    /// MuSig2: keys held by the enclave, aggregate keys and signing sessions.
    // `musig` was this command's first name; scripts that use it keep working.
    #[command(alias = "musig")]
    Musig2 {
        #[arg(long)]
        endpoint: String,
        #[command(flatten)]
        trust: Trust,
        #[command(subcommand)]
        cmd: Musig2Cmd,
    },
}

#[derive(Subcommand)]
enum SignerKeyCmd {
    /// Make a new signer key file (mode 0600, never overwritten); prints its public key.
    New {
        #[arg(long)]
        out: String,
    },
    /// Print the compressed public key of a key file.
    Show {
        #[arg(long)]
        key: String,
    },
}

#[derive(Subcommand)]
enum Musig2Cmd {
    /// Keys held by the enclave.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Aggregate keys over held keys and external participants.
    Aggregate {
        #[command(subcommand)]
        cmd: AggregateCmd,
    },
    /// Signing sessions.
    Session {
        #[command(subcommand)]
        cmd: SessionCmd,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Generate a key inside the enclave, owned by --owner-key (its secret never leaves).
    Generate {
        #[arg(long)]
        owner_key: String,
    },
    /// Import the secret of a signer key file, owned by --owner-key.
    Import {
        #[arg(long)]
        owner_key: String,
        /// A signer key file (see `sigil signer-key new`).
        #[arg(long)]
        secret_file: String,
    },
    /// List --owner-key's keys (signed by it).
    List {
        #[arg(long)]
        owner_key: String,
    },
    /// Describe one of --owner-key's keys (signed by it).
    Describe {
        id: Id,
        #[arg(long)]
        owner_key: String,
    },
    /// Delete a key (signed by its owner).
    Delete {
        id: Id,
        #[arg(long)]
        owner_key: String,
    },
}

#[derive(Subcommand)]
enum AggregateCmd {
    /// Create an aggregate key.
    Create {
        /// `held:KEY_ID` or `external:PUBKEY_HEX`, in order (repeatable).
        #[arg(long = "participant", required = true, value_parser = parse_participant)]
        participants: Vec<ParticipantSpec>,
        /// Sort the keys (BIP-327 KeySort) instead of keeping the given order.
        #[arg(long)]
        sorted: bool,
        /// `plain:HEX`, `xonly:HEX`, `taproot:MERKLE_ROOT` or `taproot_unspendable` (repeatable).
        #[arg(long = "tweak")]
        tweaks: Vec<TweakSpec>,
        /// The owner of one of the held keys, who signs the creation (it counts against its
        /// quota).
        #[arg(long)]
        owner_key: String,
    },
    /// List the aggregates --owner-key created (signed by it).
    List {
        #[arg(long)]
        owner_key: String,
    },
    /// Describe an aggregate --owner-key created or holds a key of (signed by it).
    Describe {
        id: Id,
        #[arg(long)]
        owner_key: String,
    },
    /// Delete an aggregate (signed by the owner of one of its held keys).
    Delete {
        id: Id,
        #[arg(long)]
        owner_key: String,
    },
}

#[derive(Subcommand)]
enum SessionCmd {
    /// Start a session signing --message (repeatable) with an aggregate key.
    Create {
        #[arg(long)]
        aggregate: Id,
        /// MESSAGE_HEX, or MESSAGE_HEX:TWEAK for a tweak on this message only (TWEAK as
        /// `aggregate create --tweak` takes it), in order (repeatable).
        #[arg(long = "message", required = true, value_parser = parse_message)]
        messages: Vec<MessageView>,
        /// Compressed adaptor point: the session yields adaptor pre-signatures.
        #[arg(long)]
        adaptor_point: Option<Point>,
        /// Seconds until the session expires (at most 3600).
        #[arg(long, default_value_t = 600)]
        ttl: u64,
        /// An approver, who signs the creation (it counts against its sessions in flight).
        #[arg(long)]
        owner_key: String,
    },
    /// Print the session's description and status.
    Status { session: Hex32 },
    /// Approve with an owner key file. Refuses, naming the difference, unless the session is
    /// exactly the one described (key, tweaks, messages, adaptor point, expiry); prints what
    /// is approved on stderr.
    Approve {
        session: Hex32,
        #[arg(long)]
        owner_key: String,
        #[command(flatten)]
        intent: Intent,
    },
    /// Take part as an external signer with --signer-key: nonces, round, partial signatures.
    /// The secret nonces stay in this process's memory. Refuses, as `approve` does, unless the
    /// session is exactly the one described.
    Participate {
        session: Hex32,
        #[arg(long)]
        signer_key: String,
        #[command(flatten)]
        intent: Intent,
        /// Give up waiting for the other participants after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Print the final signatures (fails unless the session completed).
    Signature { session: Hex32 },
    /// Abort a session (signed by one of its approvers).
    Abort {
        session: Hex32,
        #[arg(long)]
        owner_key: String,
    },
}

/// What an approver or external signer means to sign: every input of the approval digest.
#[derive(Args)]
struct Intent {
    /// The aggregate to sign with (its id, as `aggregate create` printed it).
    #[arg(
        long,
        required_unless_present = "output_key",
        conflicts_with = "output_key"
    )]
    aggregate: Option<Id>,
    /// Or the key the signatures verify under: the aggregate's key after its --tweak tweaks
    /// (the untweaked key if there are none), x-only (64 hex) or compressed (66 hex).
    #[arg(long)]
    output_key: Option<OutputKey>,
    /// The aggregate's tweaks in order, as `aggregate create --tweak` took them (repeatable;
    /// none if absent).
    #[arg(long = "tweak")]
    tweaks: Vec<TweakSpec>,
    /// MESSAGE_HEX or MESSAGE_HEX:TWEAK, in order, as `session create` took them (repeatable).
    #[arg(long = "message", required = true, value_parser = parse_message)]
    messages: Vec<MessageView>,
    /// The compressed adaptor point the session must carry (adaptor pre-signatures).
    #[arg(
        long,
        required_unless_present = "no_adaptor",
        conflicts_with = "no_adaptor"
    )]
    adaptor_point: Option<Point>,
    /// Or: the session must have no adaptor point (plain signatures).
    #[arg(long)]
    no_adaptor: bool,
    /// The latest acceptable expiry, in seconds from now: the approval is good until then.
    #[arg(long, default_value_t = 600)]
    max_expiry: u64,
}

impl Intent {
    /// The expected description of `session` (an aggregate named by id is described by the
    /// attested enclave, for its untweaked key).
    fn expected(
        self,
        client: &Client,
        enclave: &AttestedEnclave,
        owner: Option<&OwnerKey>,
        session: Hex32,
    ) -> Result<ExpectedSession, Failure> {
        let key = match (self.aggregate, self.output_key) {
            (Some(id), _) => {
                // Describing an aggregate is an owner's read; a signer with no key here names
                // the key it expects to sign for instead.
                let Some(owner) = owner else {
                    return Err(Failure::Usage(
                        "a participant without a held key names the key with --output-key".into(),
                    ));
                };
                let agg = client
                    .musig2_describe_aggregate(enclave, owner, &id)
                    .map_err(client_failure)?;
                ExpectedKey::Aggregate {
                    id,
                    internal_key: agg.internal_key,
                }
            }
            (None, Some(k)) => ExpectedKey::OutputKey(k),
            // clap requires one of the two.
            (None, None) => return Err(Failure::Usage("--aggregate or --output-key".into())),
        };
        Ok(ExpectedSession {
            session,
            key,
            tweaks: self.tweaks,
            messages: self.messages,
            adaptor_point: self.adaptor_point,
            expires_by: now().saturating_add(self.max_expiry),
        })
    }
}

#[derive(Subcommand)]
enum OwnerKeyCmd {
    /// Make a new owner key file (mode 0600, never overwritten); prints its public key.
    New {
        #[arg(long)]
        out: String,
    },
    /// Print the x-only public key of a key file.
    Show {
        #[arg(long)]
        key: String,
    },
}

#[derive(Subcommand)]
enum VaultCmd {
    /// Store a value (from --value-file, or stdin) under NAME.
    Put {
        name: String,
        #[arg(long)]
        value_file: Option<String>,
        /// The version being replaced (0 creates).
        #[arg(long, default_value_t = 0)]
        expected_version: u64,
    },
    /// Write the value of NAME to stdout (or --out).
    Get {
        name: String,
        #[arg(long)]
        out: Option<String>,
    },
    /// Delete NAME at its current version.
    Delete {
        name: String,
        #[arg(long)]
        expected_version: u64,
    },
}

#[derive(Subcommand)]
enum AttestationCmd {
    /// Verify a document (raw CBOR or base64) offline.
    Verify {
        #[arg(long)]
        document: String,
        /// Verification time (default: now).
        #[arg(long)]
        at: Option<u64>,
        #[command(flatten)]
        trust: Trust,
        /// The nonce the document must carry (hex).
        #[arg(long)]
        nonce: Option<String>,
        /// Oldest acceptable document relative to --at, in seconds.
        #[arg(long)]
        max_age: Option<u64>,
    },
}

#[derive(Args)]
struct Trust {
    /// pcr-manifest.json whose PCR0..2 the document must match.
    #[arg(long)]
    pcrs: Option<String>,
    /// Pin one PCR: INDEX=HEX (repeatable).
    #[arg(long = "pcr", value_name = "INDEX=HEX")]
    pcr: Vec<String>,
    /// Accept debug-mode documents (PCR0..2 all zero).
    #[arg(long)]
    allow_debug: bool,
    /// Talk to a genuine Nitro enclave whatever image it runs (no PCR pinned). This gives no
    /// protection: anyone can run their own image on AWS hardware.
    #[arg(long)]
    any_image: bool,
    /// Accept documents under the sigil test root (simulated NSM: local mode and the QEMU
    /// harness). Such documents are always debug-mode and are accepted as such; debug documents
    /// from AWS hardware still need --allow-debug.
    #[arg(long)]
    trust_test_root: bool,
}

impl Trust {
    fn policy(&self, at: u64) -> Result<Policy, String> {
        let mut p = Policy::at(at);
        p.expected_pcrs =
            policy::expected_pcrs(self.pcrs.as_deref(), &self.pcr).map_err(|e| e.to_string())?;
        // Test-root documents are always debug-mode, so the library is asked to accept debug
        // documents here; `enforce_debug` then refuses AWS-rooted debug documents unless
        // --allow-debug was given: trusting the test root must not relax real hardware.
        p.allow_debug = self.allow_debug || self.trust_test_root;
        p.trust_test_root = self.trust_test_root;
        Ok(p)
    }

    /// Before anything is sent to an enclave: a genuine AWS document proves only that *some*
    /// enclave answered; which image it runs is what PCR0 says. Without a pin, any image on
    /// anyone's instance would be trusted with sealed data.
    fn require_pinned_image(&self, v: &Verified, expected: &Policy) -> Result<(), Failure> {
        let aws = matches!(v.root, sigil_attestation::TrustedRoot::AwsNitroRootG1);
        if aws && !expected.expected_pcrs.contains_key(&0) && !self.any_image {
            return Err(Failure::Check(
                "attestation rejected: pcr: no image pinned: pass --pcrs pcr-manifest.json or \
                 --pcr 0=HEX (or --any-image, which trusts whatever image answers)"
                    .into(),
            ));
        }
        Ok(())
    }

    fn enforce_debug(&self, v: &Verified) -> Result<(), Failure> {
        let aws = matches!(v.root, sigil_attestation::TrustedRoot::AwsNitroRootG1);
        if aws && v.debug && !self.allow_debug {
            return Err(Failure::Check(
                "attestation rejected: debug: PCR0, PCR1 and PCR2 are all zero: the enclave runs in \
                 debug mode, where the parent instance can read its memory (--allow-debug to accept)"
                    .into(),
            ));
        }
        Ok(())
    }
}

enum Failure {
    /// A check failed: exit 1 with one line naming it.
    Check(String),
    /// Bad usage or an unreadable input: exit 2.
    Usage(String),
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn verified_json(v: &Verified) -> serde_json::Value {
    let mut json: serde_json::Value =
        serde_json::from_str(&v.to_json()).unwrap_or(serde_json::Value::Null);
    if matches!(v.root, sigil_attestation::TrustedRoot::SigilTestRoot)
        && let Some(obj) = json.as_object_mut()
    {
        obj.insert("warning".into(), TEST_ROOT_WARNING.into());
    }
    json
}

fn warn_if_test_root(v: &Verified) {
    if matches!(v.root, sigil_attestation::TrustedRoot::SigilTestRoot) {
        eprintln!("WARNING: {TEST_ROOT_WARNING}");
    }
}

/// A printable answer as JSON.
fn json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, Failure> {
    serde_json::to_value(v).map_err(|e| Failure::Check(e.to_string()))
}

fn client_failure(e: ClientError) -> Failure {
    match e {
        ClientError::Verify(v) => Failure::Check(format!("attestation rejected: {v}")),
        other => Failure::Check(other.to_string()),
    }
}

fn attest(client: &Client, trust: &Trust, max_age: u64) -> Result<AttestedEnclave, Failure> {
    let mut policy = trust.policy(now()).map_err(Failure::Usage)?;
    policy.max_age_seconds = Some(max_age);
    let enclave = client.attest(policy.clone()).map_err(client_failure)?;
    trust.enforce_debug(&enclave.verified)?;
    trust.require_pinned_image(&enclave.verified, &policy)?;
    warn_if_test_root(&enclave.verified);
    Ok(enclave)
}

/// A client for `endpoint` and its attested enclave.
fn connect(
    endpoint: &str,
    trust: &Trust,
    max_age: u64,
) -> Result<(Client, AttestedEnclave), Failure> {
    let client = Client::new(endpoint).map_err(|e| Failure::Usage(e.to_string()))?;
    let enclave = attest(&client, trust, max_age)?;
    Ok((client, enclave))
}

/// `owner-key` and `signer-key`: makes a new key file at `path` (`new`) or reads the one
/// there, then prints the file and the key's public form under `public_name`.
fn key_file_command<K>(
    new: bool,
    path: String,
    generate: impl Fn() -> Result<K, ClientError>,
    save: impl Fn(&K, &str) -> Result<(), ClientError>,
    load: impl Fn(&str) -> Result<K, ClientError>,
    public_name: &str,
    public: impl Fn(&K) -> String,
) -> Result<(), Failure> {
    let key = if new {
        let key = generate().map_err(client_failure)?;
        save(&key, &path).map_err(client_failure)?;
        key
    } else {
        load(&path).map_err(client_failure)?
    };
    let mut out = serde_json::Map::new();
    out.insert("key_file".into(), path.into());
    out.insert(public_name.into(), public(&key).into());
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.cmd {
        Cmd::Attestation {
            cmd:
                AttestationCmd::Verify {
                    document,
                    at,
                    trust,
                    nonce,
                    max_age,
                },
        } => {
            let raw = std::fs::read(&document)
                .map_err(|e| Failure::Usage(format!("--document {document}: {e}")))?;
            let mut policy = trust
                .policy(at.unwrap_or_else(now))
                .map_err(Failure::Usage)?;
            policy.max_age_seconds = max_age;
            if let Some(n) = nonce {
                policy.nonce =
                    Some(hex::decode(&n).map_err(|e| Failure::Usage(format!("--nonce: {e}")))?);
            }
            let bytes = sigil_attestation::decode_input(&raw)
                .map_err(|e| Failure::Check(format!("attestation rejected: {e}")))?;
            let v = sigil_attestation::verify(&bytes, &policy)
                .map_err(|e| Failure::Check(format!("attestation rejected: {e}")))?;
            trust.enforce_debug(&v)?;
            warn_if_test_root(&v);
            println!("{}", verified_json(&v));
            Ok(())
        }
        Cmd::Attest {
            endpoint,
            trust,
            max_age,
            save_document,
        } => {
            let (_, enclave) = connect(&endpoint, &trust, max_age)?;
            if let Some(path) = save_document {
                std::fs::write(&path, &enclave.raw)
                    .map_err(|e| Failure::Usage(format!("--save-document {path}: {e}")))?;
            }
            let mut out = verified_json(&enclave.verified);
            if let Some(obj) = out.as_object_mut() {
                obj.insert("endpoint".into(), endpoint.into());
                obj.insert("image".into(), enclave.image.to_json());
            }
            println!("{out}");
            Ok(())
        }
        Cmd::PeersVerify {
            endpoint,
            peer,
            trust,
        } => {
            let (client, enclave) = connect(&endpoint, &trust, 300)?;
            let peer_client = Client::new(&peer).map_err(client_failure)?;
            let mut nonce = [0u8; 32];
            getrandom::fill(&mut nonce).map_err(|e| Failure::Usage(format!("random: {e}")))?;
            let document = peer_client
                .attestation_document(&nonce)
                .map_err(client_failure)?;
            let view = client
                .peers_verify(&enclave, &document)
                .map_err(client_failure)?;
            let out = serde_json::json!({
                "endpoint": endpoint,
                "peer": peer,
                "node": view.node,
                "public_key": view.public_key,
                "image": view.image,
                "mode": view.mode,
                "age_secs": view.age_secs,
            });
            println!("{out}");
            Ok(())
        }
        Cmd::PeersPing {
            from,
            to,
            text,
            trust,
        } => {
            let (from_client, from_enclave) = connect(&from, &trust, 300)?;
            let (to_client, to_enclave) = connect(&to, &trust, 300)?;
            let mut nonce = [0u8; 32];
            getrandom::fill(&mut nonce).map_err(|e| Failure::Usage(format!("random: {e}")))?;
            let to_doc = to_client
                .attestation_document(&nonce)
                .map_err(client_failure)?;
            let from_doc = from_client
                .attestation_document(&nonce)
                .map_err(client_failure)?;
            let mut session = [0u8; 32];
            getrandom::fill(&mut session).map_err(|e| Failure::Usage(format!("random: {e}")))?;
            let t = Instant::now();
            let message = from_client
                .peers_ping_send(&from_enclave, &to_doc, session, &text)
                .map_err(client_failure)?;
            let got = to_client
                .peers_ping_receive(&to_enclave, &message, Some(&from_doc))
                .map_err(client_failure)?;
            let out = serde_json::json!({
                "from": from,
                "to": to,
                "sender": got.sender,
                "recipient": message.recipient,
                "session": got.session,
                "seq": got.seq,
                "text": got.text,
                "sealed_bytes": message.ct.0.len(),
                "round_trip_ms": t.elapsed().as_secs_f64() * 1e3,
            });
            println!("{out}");
            Ok(())
        }
        Cmd::Ping {
            endpoint,
            trust,
            message,
        } => {
            let (client, enclave) = connect(&endpoint, &trust, 300)?;
            let t = Instant::now();
            let resp = client.ping(&enclave, &message).map_err(client_failure)?;
            let out = serde_json::json!({
                "message": resp.message,
                "enclave_time_ms": resp.enclave_time_ms,
                "round_trip_ms": t.elapsed().as_secs_f64() * 1e3,
                "sealed_to": hex::encode(enclave.public_key),
            });
            println!("{out}");
            Ok(())
        }
        Cmd::OwnerKey { cmd } => {
            let (new, path) = match cmd {
                OwnerKeyCmd::New { out } => (true, out),
                OwnerKeyCmd::Show { key } => (false, key),
            };
            let (generate, save, load) = (OwnerKey::generate, OwnerKey::save, OwnerKey::load);
            key_file_command(new, path, generate, save, load, "owner", |k| {
                hex::encode(k.x_only())
            })
        }
        Cmd::SignerKey { cmd } => {
            let (new, path) = match cmd {
                SignerKeyCmd::New { out } => (true, out),
                SignerKeyCmd::Show { key } => (false, key),
            };
            let (generate, save, load) = (SignerKey::generate, SignerKey::save, SignerKey::load);
            key_file_command(new, path, generate, save, load, "public_key", |k| {
                hex::encode(k.public_key())
            })
        }
        Cmd::Frost { cmd } => {
            println!("{}", frost_cmd::run(cmd)?);
            Ok(())
        }
        Cmd::Registry {
            endpoint,
            trust,
            cmd,
        } => {
            println!("{}", registry_cmd::run(&endpoint, &trust, cmd)?);
            Ok(())
        }
        Cmd::AdminKey { cmd } => {
            println!("{}", admin_cmd::run_key(cmd)?);
            Ok(())
        }
        Cmd::Admin {
            endpoint,
            trust,
            cmd,
        } => {
            println!("{}", admin_cmd::run(&endpoint, &trust, cmd)?);
            Ok(())
        }
        Cmd::Musig2 {
            endpoint,
            trust,
            cmd,
        } => {
            let (client, enclave) = connect(&endpoint, &trust, 300)?;
            println!("{}", musig2(&client, &enclave, cmd)?);
            Ok(())
        }
        Cmd::Prove {
            endpoint,
            trust,
            circuit,
            witness,
            ivc_inputs,
            out,
            target,
            bb_version,
            timeout,
        } => {
            let read = |f: &str| std::fs::read(f).map_err(|e| Failure::Usage(format!("{f}: {e}")));
            enum Inputs {
                UltraHonk(Vec<u8>, Vec<u8>),
                Chonk(Vec<u8>),
            }
            // clap guarantees one of the two forms.
            let inputs = match (ivc_inputs, circuit, witness) {
                (Some(ivc), _, _) => Inputs::Chonk(read(&ivc)?),
                (None, Some(c), Some(w)) => Inputs::UltraHonk(read(&c)?, read(&w)?),
                _ => {
                    return Err(Failure::Usage(
                        "--circuit and --witness, or --ivc-inputs".into(),
                    ));
                }
            };
            let chonk = matches!(inputs, Inputs::Chonk(_));
            if chonk && target != "default" {
                return Err(Failure::Usage(
                    "--target does not apply to chonk proofs (they have one verifier)".into(),
                ));
            }
            let (client, enclave) = connect(&endpoint, &trust, 300)?;
            let t = Instant::now();
            let job = match &inputs {
                Inputs::UltraHonk(c, w) => {
                    client.prove_submit_with(&enclave, c, w, &target, bb_version.as_deref())
                }
                Inputs::Chonk(ivc) => {
                    client.prove_submit_chonk_with(&enclave, ivc, bb_version.as_deref())
                }
            }
            .map_err(client_failure)?;
            eprintln!("job {} submitted", job.submitted.id);
            let mut last = String::new();
            let proof = client
                .prove_wait(&job, std::time::Duration::from_secs(timeout), |s| {
                    let line = match (s.state.as_str(), s.queue_position, s.elapsed_ms) {
                        ("queued", Some(p), _) => format!("queued ({p} ahead)"),
                        ("running", _, Some(ms)) => format!("running {:.1} s", ms as f64 / 1e3),
                        (state, _, _) => state.to_string(),
                    };
                    if line != last {
                        eprintln!("  {line}");
                        last = line;
                    }
                })
                .map_err(|e| {
                    // Giving up (the timeout; a lost connection is retried inside the wait)
                    // would leave bb running in the enclave and the job holding its place:
                    // cancel it, best effort. Any other error is the job's own end.
                    if matches!(e, ClientError::Timeout(_)) {
                        let id = job.submitted.id;
                        match client.prove_cancel(&enclave, &job) {
                            Ok(a)
                                if a.cancelled
                                    && a.state == sigil_protocol::prove::JobProgress::Cancelled =>
                            {
                                eprintln!("job {id} cancelled")
                            }
                            Ok(a) if a.cancelled => {
                                eprintln!("job {id} cancelled (still {}, being stopped)", a.state)
                            }
                            Ok(a) => eprintln!(
                                "job {id} not cancelled: it is {} (its result stays in its status)",
                                a.state
                            ),
                            Err(c) => eprintln!("job {id} not cancelled: {c}"),
                        }
                    }
                    client_failure(e)
                })?;
            std::fs::create_dir_all(&out).map_err(|e| Failure::Usage(format!("{out}: {e}")))?;
            // A chonk proof comes without public_inputs and vk_hash files, as bb writes it.
            for (name, bytes) in [
                ("proof", &proof.proof),
                ("public_inputs", &proof.public_inputs),
                ("vk", &proof.vk),
                ("vk_hash", &proof.vk_hash),
            ] {
                if chonk && bytes.is_empty() && name != "proof" && name != "vk" {
                    continue;
                }
                let p = std::path::Path::new(&out).join(name);
                std::fs::write(&p, bytes)
                    .map_err(|e| Failure::Check(format!("{}: {e}", p.display())))?;
            }
            let r = &proof.result;
            println!(
                "{}",
                serde_json::json!({
                    "job": r.id,
                    "out": out,
                    "circuit_size": r.circuit_size,
                    "vk_hash": hex::encode(&proof.vk_hash),
                    "queued_ms": r.queued_ms,
                    "prove_ms": r.prove_ms,
                    "total_ms": t.elapsed().as_millis() as u64,
                    "bb_version": r.bb_version,
                })
            );
            Ok(())
        }
        Cmd::Vault {
            endpoint,
            trust,
            owner_key,
            cmd,
        } => {
            let owner = OwnerKey::load(&owner_key).map_err(client_failure)?;
            let (client, enclave) = connect(&endpoint, &trust, 300)?;
            match cmd {
                VaultCmd::Put {
                    name,
                    value_file,
                    expected_version,
                } => {
                    let value = match value_file {
                        Some(f) => {
                            std::fs::read(&f).map_err(|e| Failure::Usage(format!("{f}: {e}")))?
                        }
                        None => {
                            let mut v = Vec::new();
                            std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                                .map_err(|e| Failure::Usage(format!("stdin: {e}")))?;
                            v
                        }
                    };
                    let w = client
                        .vault_put(&enclave, &owner, &name, &value, expected_version)
                        .map_err(client_failure)?;
                    println!(
                        "{}",
                        serde_json::json!({"name": w.name, "version": w.version})
                    );
                }
                VaultCmd::Get { name, out } => {
                    let (value, version) = client
                        .vault_get(&enclave, &owner, &name)
                        .map_err(client_failure)?;
                    match out {
                        Some(f) => {
                            std::fs::write(&f, &value)
                                .map_err(|e| Failure::Check(format!("{f}: {e}")))?;
                            println!(
                                "{}",
                                serde_json::json!({"name": name, "version": version, "bytes": value.len()})
                            );
                        }
                        None => std::io::Write::write_all(&mut std::io::stdout(), &value)
                            .map_err(|e| Failure::Check(format!("stdout: {e}")))?,
                    }
                }
                VaultCmd::Delete {
                    name,
                    expected_version,
                } => {
                    client
                        .vault_delete(&enclave, &owner, &name, expected_version)
                        .map_err(client_failure)?;
                    println!("{}", serde_json::json!({"name": name, "deleted": true}));
                }
            }
            Ok(())
        }
    }
}

fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A client call's answer as JSON.
fn json_of(r: Result<impl serde::Serialize, ClientError>) -> Result<String, Failure> {
    Ok(to_json(&r.map_err(client_failure)?))
}

/// What a delete prints once it is done.
fn deleted(r: Result<(), ClientError>, id: &impl serde::Serialize) -> Result<String, Failure> {
    r.map_err(client_failure)?;
    Ok(serde_json::json!({"id": id, "deleted": true}).to_string())
}

fn musig2(client: &Client, enclave: &AttestedEnclave, cmd: Musig2Cmd) -> Result<String, Failure> {
    let owner = |path: &str| OwnerKey::load(path).map_err(client_failure);
    let f = client_failure;
    Ok(match cmd {
        Musig2Cmd::Key { cmd } => match cmd {
            KeyCmd::Generate { owner_key } => to_json(
                &client
                    .musig2_generate_key(enclave, &owner(&owner_key)?)
                    .map_err(f)?,
            ),
            KeyCmd::Import {
                owner_key,
                secret_file,
            } => {
                let secret = SignerKey::load(&secret_file).map_err(f)?;
                to_json(
                    &client
                        .musig2_import_key(enclave, &owner(&owner_key)?, &secret)
                        .map_err(f)?,
                )
            }
            KeyCmd::List { owner_key } => {
                json_of(client.musig2_list_keys(enclave, &owner(&owner_key)?))?
            }
            KeyCmd::Describe { id, owner_key } => {
                json_of(client.musig2_describe_key(enclave, &owner(&owner_key)?, &id))?
            }
            KeyCmd::Delete { id, owner_key } => {
                let done = client.musig2_delete_key(enclave, &owner(&owner_key)?, &id);
                deleted(done, &id)?
            }
        },
        Musig2Cmd::Aggregate { cmd } => match cmd {
            AggregateCmd::Create {
                participants,
                sorted,
                tweaks,
                owner_key,
            } => {
                let req = AggregateSpec {
                    participants,
                    order: if sorted {
                        KeyOrder::Sorted
                    } else {
                        KeyOrder::AsGiven
                    },
                    tweaks,
                };
                let owner = owner(&owner_key)?;
                to_json(
                    &client
                        .musig2_create_aggregate(enclave, &owner, &req)
                        .map_err(f)?,
                )
            }
            AggregateCmd::List { owner_key } => {
                json_of(client.musig2_list_aggregates(enclave, &owner(&owner_key)?))?
            }
            AggregateCmd::Describe { id, owner_key } => {
                json_of(client.musig2_describe_aggregate(enclave, &owner(&owner_key)?, &id))?
            }
            AggregateCmd::Delete { id, owner_key } => {
                let done = client.musig2_delete_aggregate(enclave, &owner(&owner_key)?, &id);
                deleted(done, &id)?
            }
        },
        Musig2Cmd::Session { cmd } => match cmd {
            SessionCmd::Create {
                aggregate,
                messages,
                adaptor_point,
                ttl,
                owner_key,
            } => {
                let req = SessionSpec {
                    aggregate,
                    messages,
                    adaptor_point,
                    expires_at: now() + ttl,
                };
                let owner = owner(&owner_key)?;
                to_json(
                    &client
                        .musig2_create_session(enclave, &owner, &req)
                        .map_err(f)?,
                )
            }
            SessionCmd::Status { session } => {
                to_json(&client.musig2_session(enclave, &session).map_err(f)?)
            }
            SessionCmd::Approve {
                session,
                owner_key,
                intent,
            } => {
                let owner = owner(&owner_key)?;
                let view = client.musig2_session(enclave, &session).map_err(f)?;
                let expected = intent.expected(client, enclave, Some(&owner), session)?;
                let checked = check_session(&view, &expected, now()).map_err(f)?;
                eprintln!("approving {checked}");
                to_json(
                    &client
                        .musig2_approve(enclave, &owner, &view, &expected)
                        .map_err(f)?,
                )
            }
            SessionCmd::Participate {
                session,
                signer_key,
                intent,
                timeout,
            } => {
                let signer = SignerKey::load(&signer_key).map_err(f)?;
                let view = client.musig2_session(enclave, &session).map_err(f)?;
                let expected = intent.expected(client, enclave, None, session)?;
                let checked = check_session(&view, &expected, now()).map_err(f)?;
                eprintln!("signing as an external participant in {checked}");
                let deadline = Instant::now() + std::time::Duration::from_secs(timeout);
                to_json(
                    &client
                        .musig2_participate(
                            enclave,
                            &signer,
                            &view,
                            &expected,
                            std::time::Duration::from_millis(500),
                            deadline,
                        )
                        .map_err(f)?,
                )
            }
            SessionCmd::Signature { session } => {
                let view = client.musig2_session(enclave, &session).map_err(f)?;
                if view.status.state != SessionState::Completed {
                    return Err(Failure::Check(format!(
                        "session {session} is {}{}",
                        view.status.state,
                        view.status
                            .failure
                            .map(|r| format!(": {}", r.message))
                            .unwrap_or_default()
                    )));
                }
                // Checked here too, not only by the enclave: a client acts on what it verified.
                let mut out = Vec::new();
                for sig in &view.status.signatures {
                    let mut v = serde_json::to_value(sig)
                        .map_err(|e| Failure::Check(format!("signature: {e}")))?;
                    if let Some(bytes) = &sig.signature {
                        let msg = view.messages.get(sig.message_index as usize);
                        let ok = matches!(msg, Some(m)
                            if sigil_client::musig2::verify_bip340(
                                &sig.output_key.0, &m.message.0, &bytes.0));
                        if !ok {
                            return Err(Failure::Check(format!(
                                "the enclave returned a signature for message {} that does not verify",
                                sig.message_index
                            )));
                        }
                        v["verified"] = serde_json::Value::Bool(true);
                    }
                    out.push(v);
                }
                to_json(&out)
            }
            SessionCmd::Abort { session, owner_key } => to_json(
                &client
                    .musig2_abort(enclave, &owner(&owner_key)?, &session)
                    .map_err(f)?,
            ),
        },
    })
}

/// `held:KEY_ID` or `external:PUBKEY_HEX`.
fn parse_participant(s: &str) -> Result<ParticipantSpec, String> {
    match s.split_once(':') {
        Some(("held", id)) => id
            .parse()
            .map(ParticipantSpec::Held)
            .map_err(|e| format!("key id: {e}")),
        Some(("external", pk)) => pk
            .parse()
            .map(ParticipantSpec::External)
            .map_err(|e| format!("public key: {e}")),
        _ => Err("use held:KEY_ID or external:PUBKEY_HEX".into()),
    }
}

/// A message to sign, `MESSAGE_HEX` (either case; the wire form is lowercase) or
/// `MESSAGE_HEX:TWEAK` with a tweak on this message only (`KIND` or `KIND:HEX`).
fn parse_message(s: &str) -> Result<MessageView, String> {
    let (message, tweak) = match s.split_once(':') {
        Some((m, t)) => (m, Some(t)),
        None => (s, None),
    };
    let message: HexBytes = message
        .to_ascii_lowercase()
        .parse()
        .map_err(|e| format!("message: {e}"))?;
    let tweak = tweak
        .map(|t| {
            t.parse::<TweakSpec>()
                .map_err(|e| format!("message tweak: {e}"))
        })
        .transpose()?;
    Ok(MessageView { message, tweak })
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Check(m)) => {
            eprintln!("sigil: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(m)) => {
            eprintln!("sigil: {m}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_attestation::{AttestationDocument, TrustedRoot};

    fn verified(root: TrustedRoot, debug: bool) -> Verified {
        Verified {
            document: AttestationDocument {
                module_id: "m".into(),
                timestamp_ms: 1,
                digest: "SHA384".into(),
                pcrs: Default::default(),
                certificate: vec![1],
                cabundle: vec![vec![1]],
                public_key: None,
                user_data: None,
                nonce: None,
            },
            root,
            debug,
        }
    }

    fn trust(allow_debug: bool, trust_test_root: bool) -> Trust {
        Trust {
            pcrs: None,
            pcr: vec![],
            allow_debug,
            any_image: false,
            trust_test_root,
        }
    }

    #[test]
    fn trusting_the_test_root_does_not_accept_debug_documents_from_aws_hardware() {
        let t = trust(false, true);
        assert!(
            t.enforce_debug(&verified(TrustedRoot::SigilTestRoot, true))
                .is_ok()
        );
        assert!(
            t.enforce_debug(&verified(TrustedRoot::AwsNitroRootG1, true))
                .is_err()
        );
        assert!(
            t.enforce_debug(&verified(TrustedRoot::AwsNitroRootG1, false))
                .is_ok()
        );
        let t = trust(true, true);
        assert!(
            t.enforce_debug(&verified(TrustedRoot::AwsNitroRootG1, true))
                .is_ok()
        );
    }

    #[test]
    fn an_aws_document_is_used_only_with_a_pinned_image() {
        let mut t = trust(false, false);
        let unpinned = Policy::at(0);
        let mut pinned = Policy::at(0);
        pinned.expected_pcrs.insert(0, vec![1; 48]);
        let aws = verified(TrustedRoot::AwsNitroRootG1, false);
        assert!(t.require_pinned_image(&aws, &unpinned).is_err());
        assert!(t.require_pinned_image(&aws, &pinned).is_ok());
        // Simulated documents have zero PCRs; pinning them means nothing.
        let sim = verified(TrustedRoot::SigilTestRoot, true);
        assert!(t.require_pinned_image(&sim, &unpinned).is_ok());
        t.any_image = true;
        assert!(t.require_pinned_image(&aws, &unpinned).is_ok());
    }
}
