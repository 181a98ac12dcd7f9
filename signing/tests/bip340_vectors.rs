//! BIP-340 official vectors against the verifier the engine uses for approvals and final
//! signatures (`verify_bip340`, k256), cross-checked with libsecp256k1; signing rows also
//! check the k256 signer the tests' owners use.

mod common;

#[test]
fn bip340_vectors() {
    let path = format!(
        "{}/../../shared/vectors/bip340/test-vectors.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut rows = 0;
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let (index, secret, public, aux, message, signature, result) =
            (f[0], f[1], f[2], f[3], f[4], f[5], f[6]);
        let pk: [u8; 32] = hex::decode(public).unwrap().try_into().unwrap();
        let msg = hex::decode(message).unwrap();
        let sig: [u8; 64] = hex::decode(signature).unwrap().try_into().unwrap();
        let expected = result == "TRUE";
        assert_eq!(
            sigil_signing::verify_bip340(&pk, &msg, &sig),
            expected,
            "vector {index}"
        );
        assert_eq!(
            common::secp_verify(&pk, &msg, &sig),
            expected,
            "libsecp256k1, vector {index}"
        );
        if !secret.is_empty() {
            let sk = k256::schnorr::SigningKey::from_bytes(&hex::decode(secret).unwrap()).unwrap();
            let aux: [u8; 32] = hex::decode(aux).unwrap().try_into().unwrap();
            assert_eq!(
                sk.sign_raw(&msg, &aux).unwrap().to_bytes(),
                sig,
                "signing vector {index}"
            );
            let own: [u8; 32] = sk.verifying_key().to_bytes().into();
            assert_eq!(own, pk);
        }
        rows += 1;
    }
    assert_eq!(rows, 19);
}
