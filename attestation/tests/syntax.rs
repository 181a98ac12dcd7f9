//! Payload syntax rules (AWS §3.2.2 plus the real-document allowances), exercised on a real
//! payload and on variations of it built entry by entry.

mod common;

use common::*;
use sigil_attestation::AttestationDocument;
use sigil_attestation::cose::CoseSign1;

/// The real document 06 (all optional fields present) as editable entries.
fn base() -> (AttestationDocument, Entries) {
    let d = real_doc("06_");
    let cose = CoseSign1::parse(&d.cbor).unwrap();
    let doc = AttestationDocument::from_cbor(cose.payload).unwrap();
    let entries = entries_of(&doc);
    assert_eq!(encode_entries(&entries, false), cose.payload);
    (doc, entries)
}

fn parse(entries: &Entries) -> Result<AttestationDocument, sigil_attestation::VerifyError> {
    AttestationDocument::from_cbor(&encode_entries(entries, false))
}

#[track_caller]
fn rejected(entries: &Entries, needle: &str) {
    let e = parse(entries).unwrap_err();
    assert_eq!(e.check(), "syntax", "{e}");
    assert!(e.to_string().starts_with("syntax: "), "{e}");
    assert!(e.to_string().contains(needle), "{e} (wanted {needle:?})");
}

#[test]
fn baseline_parses() {
    let (doc, entries) = base();
    assert_eq!(parse(&entries).unwrap(), doc);
}

#[test]
fn indefinite_length_maps_and_arrays_are_accepted() {
    let (doc, mut entries) = base();
    assert_eq!(
        AttestationDocument::from_cbor(&encode_entries(&entries, true)).unwrap(),
        doc
    );
    indefinite_pcrs_and_cabundle(&mut entries, &doc);
    assert_eq!(
        AttestationDocument::from_cbor(&encode_entries(&entries, true)).unwrap(),
        doc
    );
}

#[test]
fn key_order_does_not_matter() {
    let (doc, mut entries) = base();
    entries.reverse();
    assert_eq!(parse(&entries).unwrap(), doc);
}

#[test]
fn optional_fields_may_be_null_absent_or_empty() {
    let (_, mut entries) = base();
    for key in ["public_key", "user_data", "nonce"] {
        set(&mut entries, key, null());
    }
    let doc = parse(&entries).unwrap();
    assert_eq!(
        (doc.public_key, doc.user_data, doc.nonce),
        (None, None, None)
    );
    for key in ["public_key", "user_data", "nonce"] {
        remove(&mut entries, key);
    }
    let doc = parse(&entries).unwrap();
    assert_eq!(
        (doc.public_key, doc.user_data, doc.nonce),
        (None, None, None)
    );
    let (_, mut entries) = base();
    set(&mut entries, "user_data", bstr(&[]));
    set(&mut entries, "nonce", bstr(&[]));
    let doc = parse(&entries).unwrap();
    assert_eq!(doc.user_data, Some(vec![]));
    assert_eq!(doc.nonce, Some(vec![]));
}

#[test]
fn user_fields_are_capped_at_1024_bytes() {
    for key in ["public_key", "user_data", "nonce"] {
        let (_, mut entries) = base();
        set(&mut entries, key, bstr(&[0x5a; 1024]));
        assert_eq!(
            parse(&entries).unwrap().to_cbor(),
            encode_entries(&entries, false)
        );
        set(&mut entries, key, bstr(&[0x5a; 1025]));
        rejected(&entries, &format!("{key} is 1025 bytes"));
    }
}

#[test]
fn empty_public_key_is_rejected() {
    let (_, mut entries) = base();
    set(&mut entries, "public_key", bstr(&[]));
    rejected(&entries, "public_key is 0 bytes, allowed 1..=1024");
}

#[test]
fn unknown_key_is_rejected() {
    let (_, mut entries) = base();
    entries.push(("extra".into(), uint(1)));
    rejected(&entries, "unknown key \"extra\"");
    // Even in place of an optional key.
    let (_, mut entries) = base();
    remove(&mut entries, "nonce");
    entries.push(("Nonce".into(), bstr(&[1])));
    rejected(&entries, "unknown key \"Nonce\"");
}

#[test]
fn duplicate_key_is_rejected() {
    for key in ["nonce", "module_id", "pcrs", "public_key"] {
        let (_, mut entries) = base();
        let copy = entries.iter().find(|(k, _)| k == key).unwrap().clone();
        entries.push(copy);
        rejected(&entries, &format!("duplicate key \"{key}\""));
        let e = AttestationDocument::from_cbor(&encode_entries(&entries, true)).unwrap_err();
        assert!(e.to_string().contains("duplicate key"), "{e}");
    }
}

#[test]
fn missing_or_null_mandatory_keys_are_rejected() {
    for key in [
        "module_id",
        "digest",
        "timestamp",
        "pcrs",
        "certificate",
        "cabundle",
    ] {
        let (_, mut entries) = base();
        remove(&mut entries, key);
        rejected(&entries, &format!("mandatory key \"{key}\" is missing"));
        let (_, mut entries) = base();
        set(&mut entries, key, null());
        rejected(&entries, key);
    }
}

#[test]
fn field_values_are_checked() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("module_id", tstr(""), "module_id is 0 bytes"),
        ("module_id", bstr(b"i-1"), "module_id"),
        (
            "module_id",
            tstr(&"x".repeat(257)),
            "module_id is 257 bytes",
        ),
        ("digest", tstr("SHA256"), "digest is \"SHA256\""),
        ("digest", tstr("sha384"), "digest is \"sha384\""),
        ("timestamp", uint(0), "timestamp is 0"),
        ("timestamp", nint(5), "timestamp"),
        ("timestamp", tstr("1722457107047"), "timestamp"),
        ("certificate", bstr(&[]), "certificate is 0 bytes"),
        (
            "certificate",
            bstr(&[0x30; 1025]),
            "certificate is 1025 bytes",
        ),
        ("cabundle", array(&[], false), "cabundle is empty"),
        (
            "cabundle",
            array(&[bstr(&[])], false),
            "cabundle[0] is 0 bytes",
        ),
        (
            "cabundle",
            array(&[bstr(&[1]), bstr(&[2; 1025])], false),
            "cabundle[1] is 1025 bytes",
        ),
        (
            "cabundle",
            array(&vec![bstr(&[1]); 9], false),
            "cabundle has 9 entries, more than 8",
        ),
        (
            "cabundle",
            array(&vec![bstr(&[1]); 9], true),
            "cabundle has more than 8 entries",
        ),
        ("cabundle", bstr(&[1]), "cabundle"),
        ("pcrs", map(&[], false), "pcrs is empty"),
        ("pcrs", map(&[], true), "pcrs is empty"),
        (
            "pcrs",
            map(&[(uint(32), bstr(&[0; 48]))], false),
            "pcrs index 32 is not in 0..32",
        ),
        (
            "pcrs",
            map(&[(uint(256), bstr(&[0; 48]))], false),
            "pcrs index 256",
        ),
        (
            "pcrs",
            map(&[(nint(1), bstr(&[0; 48]))], false),
            "pcrs index",
        ),
        (
            "pcrs",
            map(&[(tstr("0"), bstr(&[0; 48]))], false),
            "pcrs index",
        ),
        (
            "pcrs",
            map(&[(uint(0), bstr(&[0; 47]))], false),
            "PCR0 is 47 bytes",
        ),
        (
            "pcrs",
            map(&[(uint(0), bstr(&[0; 0]))], false),
            "PCR0 is 0 bytes",
        ),
        ("pcrs", map(&[(uint(3), tstr("00"))], false), "pcrs value"),
        (
            "pcrs",
            map(
                &[(uint(1), bstr(&[0; 48])), (uint(1), bstr(&[1; 48]))],
                false,
            ),
            "pcrs index 1 appears twice",
        ),
        (
            "pcrs",
            map(
                &(0..33)
                    .map(|i| (uint(i), bstr(&[0; 48])))
                    .collect::<Vec<_>>(),
                false,
            ),
            "pcrs has 33 entries, more than 32",
        ),
        (
            "pcrs",
            map(
                &(0..33)
                    .map(|i| (uint(i % 32), bstr(&[0; 48])))
                    .collect::<Vec<_>>(),
                true,
            ),
            "pcrs",
        ),
        ("nonce", tstr("abc"), "nonce"),
        ("user_data", uint(1), "user_data"),
        // Chunked (indefinite-length) byte strings are not used by Nitro.
        ("nonce", vec![0x5f, 0x41, 0x01, 0xff], "nonce"),
        // Tagged values are not part of the format.
        ("nonce", [&[0xc2][..], &bstr(&[1])].concat(), "nonce"),
    ];
    for (key, value, needle) in cases {
        let (_, mut entries) = base();
        set(&mut entries, key, value);
        rejected(&entries, needle);
    }
}

#[test]
fn pcr_sizes_32_48_64_and_indices_0_to_31_are_accepted() {
    let (_, mut entries) = base();
    let pcrs: Vec<_> = (0..32u64)
        .map(|i| (uint(i), bstr(&vec![i as u8; [32, 48, 64][i as usize % 3]])))
        .collect();
    set(&mut entries, "pcrs", map(&pcrs, false));
    let doc = parse(&entries).unwrap();
    assert_eq!(doc.pcrs.len(), 32);
    assert_eq!(doc.pcrs[&31].len(), 48);
    assert_eq!(doc.pcrs[&2].len(), 64);
}

#[test]
fn cabundle_of_eight_is_accepted() {
    let (_, mut entries) = base();
    set(
        &mut entries,
        "cabundle",
        array(&vec![bstr(&[1; 1024]); 8], false),
    );
    assert_eq!(parse(&entries).unwrap().cabundle.len(), 8);
}

#[test]
fn envelope_level_problems_are_rejected() {
    let (_, entries) = base();
    let good = encode_entries(&entries, false);
    let mut trailing = good.clone();
    trailing.push(0x00);
    let e = AttestationDocument::from_cbor(&trailing).unwrap_err();
    assert_eq!(e.check(), "syntax");
    assert!(e.to_string().contains("1 trailing bytes"), "{e}");
    // Missing break byte of an indefinite map.
    let mut open = encode_entries(&entries, true);
    open.pop();
    assert_eq!(
        AttestationDocument::from_cbor(&open).unwrap_err().check(),
        "syntax"
    );
    // Not a map; a map claiming more than nine entries; non-text keys.
    for bad in [
        array(&[], false),
        vec![0xaa],
        map(&[(uint(1), uint(1))], false),
        vec![],
        vec![0xff],
    ] {
        assert_eq!(
            AttestationDocument::from_cbor(&bad).unwrap_err().check(),
            "syntax"
        );
    }
    let huge = vec![0u8; sigil_attestation::document::MAX_PAYLOAD_BYTES + 1];
    let e = AttestationDocument::from_cbor(&huge).unwrap_err();
    assert!(
        e.to_string().contains("exceeds the 16384-byte limit"),
        "{e}"
    );
}

#[test]
fn every_truncation_of_a_real_payload_is_a_syntax_error() {
    let (_, entries) = base();
    let good = encode_entries(&entries, false);
    for n in 0..good.len() {
        assert_eq!(
            AttestationDocument::from_cbor(&good[..n])
                .unwrap_err()
                .check(),
            "syntax",
            "len {n}"
        );
    }
}

#[test]
fn is_debug_follows_pcr0_to_2() {
    let (mut doc, _) = base();
    assert!(!doc.is_debug());
    for i in 0..=2 {
        doc.pcrs.insert(i, vec![0; 48]);
    }
    assert!(doc.is_debug());
    doc.pcrs
        .insert(1, vec![0; 47].into_iter().chain([1]).collect());
    assert!(!doc.is_debug());
}
