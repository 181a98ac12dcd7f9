//! Benchmark: attestation verification and the encapsulated round trip.
//!
//! `cargo bench -p sigil-e2e` prints one line per measurement (median, p99, mean over N
//! runs after a warm-up). The server runs in-process on loopback TCP, in local mode, exactly
//! as `sigil-enclave --listen tcp:...` would serve it.
//!
//! Verification is measured against its floor: the two P-384 verifications no cache can skip
//! (the leaf certificate by its issuer, the COSE signature by the leaf). The variants are timed
//! in interleaved rounds, so load on the (shared) machine weighs on all of them alike and their
//! ratio means something.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::signature::{ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use sigil_attestation::cose::CoseSign1;
use sigil_attestation::{AttestationDocument, ChainCache, Policy, verify_with};
use sigil_client::Client;
use sigil_enclave::api::App;
use sigil_enclave::http::{Limits, Server};
use sigil_enclave::nsm::{Mode, Nsm, SimulatedNsm};
use sigil_protocol::encap::{ServerKey, seal_request};
use sigil_protocol::endpoint::{Endpoint, Ping};
use sigil_protocol::user_data::{ImageInfo, PROTOCOL_VERSION};
use sigil_sys::{Addr, Listener};

struct Summary {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

fn summarize(mut t: Vec<Duration>) -> Summary {
    t.sort();
    let n = t.len().max(1);
    let p = |q: f64| t.get(((n as f64 * q) as usize).min(n - 1)).copied();
    Summary {
        median: p(0.5).unwrap_or_default(),
        p99: p(0.99).unwrap_or_default(),
        mean: t.iter().sum::<Duration>() / n as u32,
    }
}

fn print(name: &str, n: usize, s: &Summary) {
    println!(
        "{name:<48} n={n:<5} median {:>9.1} us   p99 {:>9.1} us   mean {:>9.1} us",
        s.median.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        s.mean.as_secs_f64() * 1e6
    );
}

/// Reports a ratio for scripts/bench's table (`ratio<TAB>VALUE<TAB>TARGET<TAB>WHAT`).
fn ratio(value: f64, target: &str, what: &str) {
    println!("ratio\t{value:.2}\t{target}\t{what}");
}

fn measure(name: &str, n: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..(n / 10).max(3) {
        f();
    }
    let t: Vec<Duration> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    let s = summarize(t);
    print(name, n, &s);
    s.median
}

/// Times each variant `rounds` times `per_round` runs, the variants taking turns each round;
/// prints each and returns the medians in order.
fn interleaved(
    variants: &mut [(&str, &mut dyn FnMut())],
    rounds: usize,
    per_round: usize,
) -> Vec<Duration> {
    for (_, f) in variants.iter_mut() {
        for _ in 0..per_round.max(3) {
            f();
        }
    }
    let mut times: Vec<Vec<Duration>> = variants.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for ((_, f), t) in variants.iter_mut().zip(&mut times) {
            for _ in 0..per_round {
                let s = Instant::now();
                f();
                t.push(s.elapsed());
            }
        }
    }
    variants
        .iter()
        .zip(times)
        .map(|((name, _), t)| {
            let n = t.len();
            let s = summarize(t);
            print(name, n, &s);
            s.median
        })
        .collect()
}

/// The inputs of the two P-384 verifications every document needs, whatever is cached.
struct Floor {
    issuer_key: Vec<u8>,
    leaf_tbs: Vec<u8>,
    leaf_signature: Vec<u8>,
    leaf_key: Vec<u8>,
    sig_structure: Vec<u8>,
    cose_signature: Vec<u8>,
}

impl Floor {
    fn of(document: &[u8]) -> Self {
        let cose = CoseSign1::parse(document).unwrap();
        let doc = AttestationDocument::from_cbor(cose.payload).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&doc.certificate).unwrap();
        let (_, issuer) =
            x509_parser::parse_x509_certificate(doc.cabundle.last().unwrap()).unwrap();
        Self {
            issuer_key: issuer.public_key().subject_public_key.data.to_vec(),
            leaf_tbs: leaf.tbs_certificate.as_ref().to_vec(),
            leaf_signature: leaf.signature_value.data.to_vec(),
            leaf_key: leaf.public_key().subject_public_key.data.to_vec(),
            sig_structure: cose.sig_structure(),
            cose_signature: cose.signature.to_vec(),
        }
    }

    fn verify(&self) {
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &self.issuer_key)
            .verify(&self.leaf_tbs, &self.leaf_signature)
            .unwrap();
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &self.leaf_key)
            .verify(&self.sig_structure, &self.cose_signature)
            .unwrap();
    }
}

/// Fresh chain (no cache, and a cold cache: miss + insert), cached chain, and the P-384
/// floor, for one document; then the cached/floor ratio.
fn verification(name: &str, document: &[u8], policy: &Policy) {
    let floor = Floor::of(document);
    floor.verify();
    let cold = ChainCache::new(1);
    let warm = ChainCache::new(1);
    verify_with(document, policy, None).expect("document verifies");
    let names = [
        format!("verify {name}: fresh chain, no cache"),
        format!("verify {name}: fresh chain, cold cache"),
        format!("verify {name}: cached chain"),
        format!("verify {name}: P-384 floor (leaf + COSE)"),
    ];
    let mut fresh = || {
        verify_with(document, policy, None).unwrap();
    };
    let mut miss = || {
        cold.clear();
        verify_with(document, policy, Some(&cold)).unwrap();
    };
    let mut hit = || {
        verify_with(document, policy, Some(&warm)).unwrap();
    };
    let mut p384 = || floor.verify();
    let medians = interleaved(
        &mut [
            (names[0].as_str(), &mut fresh as &mut dyn FnMut()),
            (names[1].as_str(), &mut miss),
            (names[2].as_str(), &mut hit),
            (names[3].as_str(), &mut p384),
        ],
        30,
        10,
    );
    assert!(warm.stats().hits > 0 && cold.stats().hits == 0);
    if let [fresh, _, cached, floor] = medians[..] {
        let over_floor = cached.as_secs_f64() / floor.as_secs_f64();
        println!(
            "verify {name}: cached / floor = {over_floor:.2} (target <= 1.2), fresh / cached = {:.2}",
            fresh.as_secs_f64() / cached.as_secs_f64()
        );
        ratio(
            over_floor,
            "<=x1.2",
            &format!("verify {name} from a cached chain / its two P-384 verifications"),
        );
    }
}

fn shared(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel)
}

fn main() {
    // Offline verification of a real Nitro document at its own time.
    let real = std::fs::read(shared(
        "vectors/nitro/docs/06_eternis_2024-07-31_use1_prod.cbor",
    ))
    .expect("real document");
    let real_policy = Policy::at(1_722_457_107);
    // 4 CAs + leaf: 5 P-384 verifications without the cache, 2 with it.
    verification("AWS doc", &real, &real_policy);

    let nsm = SimulatedNsm::new(Mode::Local).unwrap();
    let sim = nsm.attest(Some(&[7u8; 32]), None, Some(b"nonce")).unwrap();
    let mut sim_policy = Policy::at(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    sim_policy.trust_test_root = true;
    sim_policy.allow_debug = true;
    // Test root, 1 CA + leaf: 3 P-384 verifications without the cache, 2 with it.
    verification("simulated doc", &sim, &sim_policy);
    measure("simulated NSM: issue one document", 300, || {
        nsm.attest(Some(&[7u8; 32]), None, Some(b"nonce")).unwrap();
    });

    // In-process HPKE seal + open, the cryptographic floor of a round trip.
    let key = ServerKey::generate().unwrap();
    let pk = key.public_key();
    let msg = br#"{"message":"hello from sigil"}"#;
    let hpke = measure(
        "HPKE seal request + open + seal/open response",
        1000,
        || {
            let (body, opener) = seal_request(&pk, Ping::ROUTE, msg).unwrap();
            let (plain, sealer) = key
                .open_request(Ping::ROUTE, &body, Ping::MAX_BODY)
                .unwrap();
            let resp = sealer.seal(Ping::ROUTE, 200, &plain).unwrap();
            opener.open(Ping::ROUTE, &resp).unwrap();
        },
    );

    // The service over loopback TCP.
    let listener = Listener::bind(&"tcp:127.0.0.1:0".parse::<Addr>().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = Server::new(listener, Limits::default());
    let info = ImageInfo {
        protocol: PROTOCOL_VERSION,
        sigil_version: "bench".into(),
        mode: "local".into(),
        capabilities: vec!["attestation".into(), "encapsulated-ping".into()],
        bb: None,
        bb_served: Vec::new(),
        node: None,
        registry_log: None,
    };
    let app = App::new(
        Arc::new(nsm),
        ServerKey::generate().unwrap(),
        info,
        sigil_enclave::seal::service::Sealing::disabled(),
    );
    std::thread::spawn(move || server.serve(Arc::new(app)));
    let client = Client::new(&format!("http://{}", addr.trim_start_matches("tcp:"))).unwrap();
    let policy = || {
        let mut p = sim_policy.clone();
        p.max_age_seconds = Some(300);
        p
    };
    let enclave = client.attest(policy()).unwrap();
    measure("GET /v1/attestation + verify (fresh nonce)", 200, || {
        client.attest(policy()).unwrap();
    });
    let kept = measure(
        "encapsulated ping round trip (kept-alive conn)",
        500,
        || {
            client.ping(&enclave, "hello from sigil").unwrap();
        },
    );
    let endpoint = format!("http://{}", addr.trim_start_matches("tcp:"));
    let fresh = measure("encapsulated ping round trip (new conn)", 300, || {
        Client::new(&endpoint)
            .unwrap()
            .ping(&enclave, "hello from sigil")
            .unwrap();
    });
    println!(
        "(loopback TCP, direct to the enclave's server; machine: 2 shared cores, numbers vary)"
    );
    ratio(
        kept.as_secs_f64() / hpke.as_secs_f64(),
        "-",
        "encapsulated ping over a kept-alive connection / its HPKE work in-process",
    );
    ratio(
        fresh.as_secs_f64() / kept.as_secs_f64(),
        "-",
        "encapsulated ping, new connection / kept-alive connection",
    );
}
