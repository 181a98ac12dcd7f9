//! Benchmark: attestation verification and the encapsulated round trip.
//!
//! `cargo bench -p sigil-e2e` prints one line per measurement (median, p99, mean over N
//! runs after a warm-up). The server runs in-process on loopback TCP, in local mode, exactly
//! as `sigil-enclave --listen tcp:...` would serve it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sigil_attestation::Policy;
use sigil_client::Client;
use sigil_enclave::api::App;
use sigil_enclave::http::{Limits, Server};
use sigil_enclave::nsm::{Mode, Nsm, SimulatedNsm};
use sigil_protocol::encap::{ServerKey, seal_request};
use sigil_protocol::endpoint::{Endpoint, Ping};
use sigil_protocol::user_data::{ImageInfo, PROTOCOL_VERSION};
use sigil_sys::{Addr, Listener};

fn measure(name: &str, n: usize, mut f: impl FnMut()) {
    for _ in 0..(n / 10).max(3) {
        f();
    }
    let mut t: Vec<Duration> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    let mean = t.iter().sum::<Duration>() / n as u32;
    let p = |q: f64| t[((n as f64 * q) as usize).min(n - 1)];
    println!(
        "{name:<48} n={n:<5} median {:>9.1} us   p99 {:>9.1} us   mean {:>9.1} us",
        p(0.5).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6
    );
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
    sigil_attestation::verify(&real, &real_policy).expect("real document verifies");
    measure("verify real AWS document (4 CAs + leaf)", 300, || {
        sigil_attestation::verify(&real, &real_policy).unwrap();
    });

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
    measure("verify simulated document (test root)", 300, || {
        sigil_attestation::verify(&sim, &sim_policy).unwrap();
    });
    measure("simulated NSM: issue one document", 300, || {
        nsm.attest(Some(&[7u8; 32]), None, Some(b"nonce")).unwrap();
    });

    // In-process HPKE seal + open, the cryptographic floor of a round trip.
    let key = ServerKey::generate().unwrap();
    let pk = key.public_key();
    let msg = br#"{"message":"hello from sigil"}"#;
    measure(
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
    measure("encapsulated ping round trip (HTTP, new conn)", 500, || {
        client.ping(&enclave, "hello from sigil").unwrap();
    });
    println!("(loopback TCP, one connection per request; machine: 2 shared cores, numbers vary)");
}
