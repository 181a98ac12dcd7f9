//! BIP-327 official vectors, read from the shared vectors folder, run through this crate's
//! functions (key sorting, key aggregation and tweaks, nonce aggregation, the engine's
//! aggregate records) and through the musig2 crate exactly as the engine calls it (nonce
//! generation, partial signing and verification, signature aggregation).
//!
//! Not applicable: det_sign_vectors.json (deterministic signing, which the engine never uses:
//! its nonces always mix fresh randomness).

mod common;

use musig2::secp::{MaybePoint, Point, Scalar};
use musig2::{
    AggNonce, BinaryEncoding, KeyAggContext, LiftedSignature, PartialSignature, PubNonce, SecNonce,
};
use serde_json::Value;
use sigil_signing::{
    AggregateSpec, Error, KeyOrder, ParticipantSpec, Tweak, aggregate_keys, aggregate_nonces,
    sort_keys,
};

fn load(name: &str) -> Value {
    let path = format!(
        "{}/../../shared/vectors/bip327/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    bytes(v).try_into().unwrap()
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as usize)
        .collect()
}

fn pick<const N: usize>(all: &Value, idx: &Value) -> Vec<[u8; N]> {
    indices(idx).into_iter().map(|i| arr(&all[i])).collect()
}

fn tweaks(all: &Value, case: &Value) -> Vec<Tweak> {
    indices(&case["tweak_indices"])
        .into_iter()
        .zip(case["is_xonly"].as_array().unwrap())
        .map(|(i, x)| {
            let t = arr::<32>(&all[i]);
            if x.as_bool().unwrap() {
                Tweak::XOnly(t)
            } else {
                Tweak::Plain(t)
            }
        })
        .collect()
}

fn ctx(keys: &[[u8; 33]], tweaks: &[Tweak]) -> KeyAggContext {
    sigil_signing::aggregate::key_agg_context(keys, tweaks).unwrap()
}

#[test]
fn key_sort() {
    let v = load("key_sort_vectors.json");
    let keys: Vec<[u8; 33]> = v["pubkeys"].as_array().unwrap().iter().map(arr).collect();
    let sorted: Vec<[u8; 33]> = v["sorted_pubkeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(arr)
        .collect();
    assert_eq!(sort_keys(&keys), sorted);
}

#[test]
fn key_agg() {
    let v = load("key_agg_vectors.json");
    let engine = common::engine(327);
    for case in v["valid_test_cases"].as_array().unwrap() {
        let keys = pick::<33>(&v["pubkeys"], &case["key_indices"]);
        let expected = arr::<32>(&case["expected"]);
        assert_eq!(aggregate_keys(&keys, &[]).unwrap().internal_xonly, expected);
        // The engine refuses to store these (no key it holds, so nobody here could sign or
        // delete them); the records' round trip is tested with held keys elsewhere.
        let distinct = keys.iter().enumerate().all(|(i, k)| !keys[..i].contains(k));
        if distinct {
            let err = engine
                .create_aggregate(
                    &AggregateSpec {
                        participants: keys.iter().map(|k| ParticipantSpec::External(*k)).collect(),
                        order: KeyOrder::AsGiven,
                        tweaks: vec![],
                    },
                    &common::Owner::new(1).xonly(),
                    common::NOW,
                )
                .unwrap_err();
            assert_eq!(err, sigil_signing::Error::NoHeldParticipant);
        }
    }
    for case in v["error_test_cases"].as_array().unwrap() {
        let keys = pick::<33>(&v["pubkeys"], &case["key_indices"]);
        let err = aggregate_keys(&keys, &tweaks(&v["tweaks"], case)).unwrap_err();
        let expected = match case["error"]["type"].as_str().unwrap() {
            "invalid_contribution" => Error::InvalidPublicKey {
                index: case["error"]["signer"].as_u64().unwrap() as u32,
            },
            _ => Error::InvalidTweak { index: 0 },
        };
        assert_eq!(err, expected, "{}", case["comment"]);
    }
}

#[test]
fn nonce_agg() {
    let v = load("nonce_agg_vectors.json");
    for case in v["valid_test_cases"].as_array().unwrap() {
        let nonces = pick::<66>(&v["pnonces"], &case["pnonce_indices"]);
        assert_eq!(
            aggregate_nonces(&nonces).unwrap(),
            arr::<66>(&case["expected"])
        );
    }
    for case in v["error_test_cases"].as_array().unwrap() {
        let nonces = pick::<66>(&v["pnonces"], &case["pnonce_indices"]);
        let signer = case["error"]["signer"].as_u64().unwrap() as u32;
        assert_eq!(
            aggregate_nonces(&nonces).unwrap_err(),
            Error::InvalidNonce { index: signer },
            "{}",
            case["comment"]
        );
    }
}

#[test]
fn nonce_gen() {
    let v = load("nonce_gen_vectors.json");
    for case in v["test_cases"].as_array().unwrap() {
        let rand = arr::<32>(&case["rand_"]);
        let pk = Point::try_from(arr::<33>(&case["pk"])).unwrap();
        let mut b = match case["sk"].as_str() {
            Some(_) => musig2::SecNonceBuilder::from_seckey(
                rand,
                Scalar::try_from(arr::<32>(&case["sk"])).unwrap(),
            ),
            None => musig2::SecNonceBuilder::from_pubkey(rand, pk),
        };
        if case["aggpk"].is_string() {
            b = b.with_aggregated_pubkey(Point::lift_x(arr::<32>(&case["aggpk"])).unwrap());
        }
        let msg = case["msg"].as_str().map(|_| bytes(&case["msg"]));
        if let Some(m) = &msg {
            b = b.with_message(m);
        }
        let extra = case["extra_in"].as_str().map(|_| bytes(&case["extra_in"]));
        if let Some(e) = &extra {
            b = b.with_extra_input(e);
        }
        // Compare public halves: the expected secret nonce is turned into its public nonce,
        // so no secret nonce is ever serialized here.
        let expected_secret = bytes(&case["expected_secnonce"]);
        let k1 = Scalar::try_from(&expected_secret[..32]).unwrap();
        let k2 = Scalar::try_from(&expected_secret[32..64]).unwrap();
        let expected = PubNonce::new(k1.base_point_mul(), k2.base_point_mul());
        let built = b.build().public_nonce();
        assert_eq!(built, expected);
        assert_eq!(built.to_bytes(), arr::<66>(&case["expected_pubnonce"]));
    }
}

/// One partial signature computed the way `NonceSlot::sign` computes it.
fn sign(
    keys: &[[u8; 33]],
    tw: &[Tweak],
    sk: Scalar,
    secnonce: SecNonce,
    aggnonce: &AggNonce,
    msg: &[u8],
) -> Result<[u8; 32], musig2::errors::SigningError> {
    let c = sigil_signing::aggregate::key_agg_context(keys, tw).unwrap();
    let s: PartialSignature =
        musig2::adaptor::sign_partial(&c, sk, secnonce, aggnonce, MaybePoint::Infinity, msg)?;
    Ok(s.serialize())
}

/// Checks `psig` the engine's way, with its own nonce parser and then `verify_partial`, against
/// the case's public nonces; returns them.
fn verify_partial(
    v: &Value,
    case: &Value,
    keys: &[[u8; 33]],
    tw: &[Tweak],
    psig: [u8; 32],
    aggnonce: &AggNonce,
    msg: &[u8],
) -> Vec<[u8; 66]> {
    let nonces = pick::<66>(&v["pnonces"], &case["nonce_indices"]);
    let signer = case["signer_index"].as_u64().unwrap() as usize;
    let pubnonce =
        sigil_signing::nonce::parse_public_nonce(&nonces[signer], signer as u32).unwrap();
    musig2::verify_partial(
        &ctx(keys, tw),
        PartialSignature::try_from(psig).unwrap(),
        aggnonce,
        Point::try_from(keys[signer]).unwrap(),
        &pubnonce,
        msg,
    )
    .unwrap();
    nonces
}

#[test]
fn sign_verify() {
    let v = load("sign_verify_vectors.json");
    let sk = Scalar::try_from(arr::<32>(&v["sk"])).unwrap();
    let secnonce = |i: usize| SecNonce::from_bytes(&bytes(&v["secnonces"][i]));
    for case in v["valid_test_cases"].as_array().unwrap() {
        let keys = pick::<33>(&v["pubkeys"], &case["key_indices"]);
        let aggnonce = AggNonce::from_bytes(&bytes(
            &v["aggnonces"][case["aggnonce_index"].as_u64().unwrap() as usize],
        ))
        .unwrap();
        let msg = bytes(&v["msgs"][case["msg_index"].as_u64().unwrap() as usize]);
        let psig = sign(&keys, &[], sk, secnonce(0).unwrap(), &aggnonce, &msg).unwrap();
        assert_eq!(psig, arr::<32>(&case["expected"]));

        // The engine's verification path: our nonce parser, then verify_partial.
        let nonces = verify_partial(&v, case, &keys, &[], psig, &aggnonce, &msg);
        assert_eq!(
            AggNonce::sum(nonces.iter().map(|n| PubNonce::from_bytes(n).unwrap())),
            aggnonce
        );
    }
    for case in v["sign_error_test_cases"].as_array().unwrap() {
        let comment = case["comment"].as_str().unwrap();
        let keys = pick::<33>(&v["pubkeys"], &case["key_indices"]);
        if let Some(signer) = case["error"]["signer"]
            .as_u64()
            .filter(|_| case["error"]["contrib"] == "pubkey")
        {
            assert_eq!(
                aggregate_keys(&keys, &[]).unwrap_err(),
                Error::InvalidPublicKey {
                    index: signer as u32
                },
                "{comment}"
            );
            continue;
        }
        let aggnonce = AggNonce::from_bytes(&bytes(
            &v["aggnonces"][case["aggnonce_index"].as_u64().unwrap() as usize],
        ));
        let Ok(aggnonce) = aggnonce else {
            assert_eq!(case["error"]["contrib"], "aggnonce", "{comment}");
            continue;
        };
        let Ok(sn) = secnonce(case["secnonce_index"].as_u64().unwrap() as usize) else {
            assert!(comment.contains("Secnonce is invalid"), "{comment}");
            continue;
        };
        let msg = bytes(&v["msgs"][case["msg_index"].as_u64().unwrap() as usize]);
        assert!(
            sign(&keys, &[], sk, sn, &aggnonce, &msg).is_err(),
            "{comment}"
        );
    }
    for (cases, expect_parse_error) in [
        (&v["verify_fail_test_cases"], false),
        (&v["verify_error_test_cases"], true),
    ] {
        for case in cases.as_array().unwrap() {
            let comment = case["comment"].as_str().unwrap();
            let keys = pick::<33>(&v["pubkeys"], &case["key_indices"]);
            let nonces = pick::<66>(&v["pnonces"], &case["nonce_indices"]);
            let signer = case["signer_index"].as_u64().unwrap() as usize;
            let msg = bytes(&v["msgs"][case["msg_index"].as_u64().unwrap() as usize]);
            let parsed = (|| -> Result<_, Error> {
                let c = sigil_signing::aggregate::key_agg_context(&keys, &[])?;
                let pubnonces = nonces
                    .iter()
                    .enumerate()
                    .map(|(i, n)| sigil_signing::nonce::parse_public_nonce(n, i as u32))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((c, pubnonces))
            })();
            match parsed {
                Err(e) => {
                    assert!(expect_parse_error, "{comment}");
                    let signer = case["error"]["signer"].as_u64().unwrap() as u32;
                    let expected = if case["error"]["contrib"] == "pubkey" {
                        Error::InvalidPublicKey { index: signer }
                    } else {
                        Error::InvalidNonce { index: signer }
                    };
                    assert_eq!(e, expected, "{comment}");
                }
                Ok((c, pubnonces)) => {
                    assert!(!expect_parse_error, "{comment}");
                    let aggnonce = AggNonce::sum(&pubnonces);
                    let ok = PartialSignature::try_from(arr::<32>(&case["sig"])).is_ok_and(|s| {
                        musig2::verify_partial(
                            &c,
                            s,
                            &aggnonce,
                            Point::try_from(keys[signer]).unwrap(),
                            &pubnonces[signer],
                            &msg,
                        )
                        .is_ok()
                    });
                    assert!(!ok, "{comment}");
                }
            }
        }
    }
}

#[test]
fn tweak() {
    let v = load("tweak_vectors.json");
    let sk = Scalar::try_from(arr::<32>(&v["sk"])).unwrap();
    let aggnonce = AggNonce::from_bytes(&bytes(&v["aggnonce"])).unwrap();
    let msg = bytes(&v["msg"]);
    for case in v["valid_test_cases"].as_array().unwrap() {
        let keys = pick::<33>(&v["pubkeys"], &case["key_indices"]);
        let tw = tweaks(&v["tweaks"], case);
        let secnonce = SecNonce::from_bytes(&bytes(&v["secnonce"])).unwrap();
        let psig = sign(&keys, &tw, sk, secnonce, &aggnonce, &msg).unwrap();
        assert_eq!(psig, arr::<32>(&case["expected"]), "{}", case["comment"]);
        verify_partial(&v, case, &keys, &tw, psig, &aggnonce, &msg);
    }
    for case in v["error_test_cases"].as_array().unwrap() {
        let keys = pick::<33>(&v["pubkeys"], &case["key_indices"]);
        assert_eq!(
            aggregate_keys(&keys, &tweaks(&v["tweaks"], case)).unwrap_err(),
            Error::InvalidTweak { index: 0 }
        );
    }
}

#[test]
fn sig_agg() {
    let v = load("sig_agg_vectors.json");
    let msg = bytes(&v["msg"]);
    for case in v["valid_test_cases"].as_array().unwrap() {
        let keys = pick::<33>(&v["pubkeys"], &case["key_indices"]);
        let tw = tweaks(&v["tweaks"], case);
        let aggnonce_bytes = arr::<66>(&case["aggnonce"]);
        let nonces = pick::<66>(&v["pnonces"], &case["nonce_indices"]);
        assert_eq!(aggregate_nonces(&nonces).unwrap(), aggnonce_bytes);
        let aggnonce = AggNonce::from_bytes(&aggnonce_bytes).unwrap();
        let psigs: Vec<PartialSignature> = pick::<32>(&v["psigs"], &case["psig_indices"])
            .into_iter()
            .map(|s| PartialSignature::try_from(s).unwrap())
            .collect();
        let c = ctx(&keys, &tw);
        let sig: LiftedSignature =
            musig2::aggregate_partial_signatures(&c, &aggnonce, psigs, &msg).unwrap();
        let sig = sig.to_bytes();
        assert_eq!(sig, arr::<64>(&case["expected"]));
        let output = aggregate_keys(&keys, &tw).unwrap().output_xonly;
        assert!(sigil_signing::verify_bip340(&output, &msg, &sig));
        assert!(common::secp_verify(&output, &msg, &sig));
    }
    for case in v["error_test_cases"].as_array().unwrap() {
        let signer = case["error"]["signer"].as_u64().unwrap() as usize;
        let psigs = pick::<32>(&v["psigs"], &case["psig_indices"]);
        // The engine's parse of a submitted partial signature rejects exactly that signer's.
        let bad: Vec<usize> = psigs
            .iter()
            .enumerate()
            .filter(|(_, s)| PartialSignature::try_from(**s).is_err())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(bad, vec![signer]);
    }
}
