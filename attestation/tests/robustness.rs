//! No input may panic: deterministic random mutations of real documents and random byte soup
//! must all end in a named error (or, for a no-op mutation, success).

mod common;

use common::*;
use sigil_attestation::cose::CoseSign1;
use sigil_attestation::{AttestationDocument, Policy, decode_input, verify};

const CHECKS: [&str; 10] = [
    "input",
    "cose",
    "syntax",
    "chain",
    "root",
    "signature",
    "pcr",
    "nonce",
    "freshness",
    "debug",
];

/// xorshift64*: reproducible, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_real_documents_fail_cleanly() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for d in real_docs() {
        let policy = Policy::at(d.at);
        for _ in 0..150 {
            let mut m = d.cbor.clone();
            match rng.below(4) {
                0 => {
                    let i = rng.below(m.len());
                    m[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = rng.below(m.len());
                    m[i] = rng.next() as u8;
                }
                2 => {
                    let i = rng.below(m.len());
                    m.insert(i, rng.next() as u8);
                }
                _ => {
                    let i = rng.below(m.len());
                    m.remove(i);
                }
            }
            match verify(&m, &policy) {
                Ok(_) => assert_eq!(m, d.cbor, "only an unchanged document may verify"),
                Err(e) => {
                    assert!(CHECKS.contains(&e.check()));
                    assert!(!e.to_string().contains('\n'));
                    assert!(e.to_string().starts_with(&format!("{}: ", e.check())));
                }
            }
        }
    }
}

#[test]
fn random_bytes_never_panic_the_parsers() {
    let mut rng = Rng(0xfeed_face_cafe_beef);
    let real = real_doc("06_");
    let payload = CoseSign1::parse(&real.cbor).unwrap().payload.to_vec();
    for _ in 0..20_000 {
        let len = rng.below(64);
        let mut soup: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = AttestationDocument::from_cbor(&soup);
        let _ = CoseSign1::parse(&soup);
        let _ = decode_input(&soup);
        // Splice random bytes into a real payload so parsing gets deep before failing.
        let mut p = payload.clone();
        let at = rng.below(p.len());
        p.splice(at..(at + soup.len().min(p.len() - at)), soup.drain(..));
        let _ = AttestationDocument::from_cbor(&p);
    }
}
