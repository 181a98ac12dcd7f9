//! Malformed images: every one must give a specific, one-line error and never panic.

mod common;
use common::*;
use sigil_eif::eif::{EifError, HEADER_LEN, SectionKind};
use sigil_eif::{EifBuilder, parse_eif};

fn golden() -> Vec<u8> {
    read(TWO)
}

fn err(b: &[u8]) -> EifError {
    let e = parse_eif(b).expect_err("malformed image accepted");
    let msg = e.to_string();
    assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
    e
}

/// The golden image changed by `edit`, its CRC fixed up: the (one-line) error it gives.
fn tampered(edit: impl FnOnce(&mut Vec<u8>)) -> EifError {
    let mut b = golden();
    edit(&mut b);
    fix_crc(&mut b);
    err(&b)
}

#[test]
fn flipped_byte_in_any_section_is_a_crc_error() {
    let g = golden();
    let e = parse_eif(&g).unwrap();
    for s in &e.sections {
        // Inside the data, not the section header (that one has its own checks).
        for at in [
            s.offset as usize + 12,
            s.offset as usize + 12 + s.data.len() / 2,
        ] {
            let mut b = g.clone();
            b[at] ^= 0x01;
            assert!(
                matches!(err(&b), EifError::CrcMismatch { .. }),
                "{:?} at {at}",
                s.kind
            );
        }
    }
    // A flip in the header's unused field is covered by the CRC too.
    let mut b = g.clone();
    b[541] ^= 0x80;
    assert!(matches!(err(&b), EifError::CrcMismatch { .. }));
    // And in the CRC field itself.
    let mut b = g;
    b[547] ^= 0x01;
    assert!(matches!(err(&b), EifError::CrcMismatch { .. }));
}

#[test]
fn truncated() {
    let g = golden();
    for len in [0, 1, 4, 100, HEADER_LEN - 1] {
        assert_eq!(err(&g[..len]), EifError::Truncated { len });
    }
    for len in [HEADER_LEN, HEADER_LEN + 5, 70000, g.len() - 1] {
        assert!(
            matches!(err(&g[..len]), EifError::SectionOutOfBounds { .. }),
            "len {len}"
        );
    }
}

#[test]
fn bad_magic_and_version() {
    let mut b = golden();
    b[0..4].copy_from_slice(b"ELF\x7f");
    assert!(matches!(err(&b), EifError::BadMagic(_)));
    assert!(err(&b).to_string().contains("not an EIF"));
    for v in [0u16, 1, 5, 0xffff] {
        let e = tampered(|b| b[4..6].copy_from_slice(&v.to_be_bytes()));
        assert_eq!(e, EifError::UnsupportedVersion(v));
    }
}

#[test]
fn absurd_section_count() {
    for n in [0u16, 33, 1000, 0xffff] {
        let e = tampered(|b| b[26..28].copy_from_slice(&n.to_be_bytes()));
        assert_eq!(e, EifError::BadSectionCount(n));
    }
}

#[test]
fn section_table_pointing_past_the_end() {
    let len = golden().len() as u64;
    for (slot, value, is_size) in [
        (4, len, false),
        (4, u64::MAX, false),
        (4, u64::MAX - 5, true),
        (0, 1 << 40, true),
        (0, u64::MAX, true),
    ] {
        let at = if is_size {
            size_slot(slot)
        } else {
            offset_slot(slot)
        };
        assert!(
            matches!(tampered(|b| put_u64(b, at, value)), EifError::SectionOutOfBounds { index, .. } if index == slot),
            "slot {slot} value {value}"
        );
    }
}

#[test]
fn overlapping_and_gapped_sections() {
    let g = golden();
    let e = parse_eif(&g).unwrap();
    // Cmdline starting inside the kernel.
    let kernel = e.sections[0].offset;
    let t = tampered(|b| put_u64(b, offset_slot(1), kernel + 100));
    assert!(matches!(t, EifError::SectionOverlap { index: 1, .. }));
    // Two table entries for the same bytes.
    let t = tampered(|b| {
        put_u64(b, offset_slot(4), e.sections[3].offset);
        put_u64(b, size_slot(4), e.sections[3].data.len() as u64);
    });
    assert!(matches!(t, EifError::SectionOverlap { index: 4, .. }));
    // A section overlapping the header.
    let t = tampered(|b| put_u64(b, offset_slot(0), 100));
    assert!(matches!(t, EifError::SectionOverlap { index: 0, .. }));
    // Four stray bytes between kernel and cmdline, the table shifted to match.
    let t = tampered(|b| {
        let at = e.sections[1].offset as usize;
        b.splice(at..at, [0u8; 4]);
        for i in 1..e.sections.len() {
            put_u64(b, offset_slot(i), e.sections[i].offset + 4);
        }
    });
    assert!(matches!(t, EifError::SectionGap { index: 1, .. }));
}

#[test]
fn section_headers_must_agree_with_the_table() {
    let g = golden();
    let e = parse_eif(&g).unwrap();
    let cmd = e.sections[1].offset as usize;
    for t in [0u16, 6, 0xffff] {
        let e = tampered(|b| b[cmd..cmd + 2].copy_from_slice(&t.to_be_bytes()));
        assert_eq!(e, EifError::BadSectionType { index: 1, value: t });
    }
    assert_eq!(
        tampered(|b| put_u64(b, cmd + 4, 118)),
        EifError::SectionSizeMismatch {
            index: 1,
            table: 119,
            header: 118
        }
    );
    // The cmdline relabelled as a second kernel.
    assert_eq!(
        tampered(|b| b[cmd..cmd + 2].copy_from_slice(&1u16.to_be_bytes())),
        EifError::DuplicateSection(SectionKind::Kernel)
    );
}

#[test]
fn trailing_bytes_and_stray_table_entries() {
    let e = tampered(|b| b.extend_from_slice(&[0u8; 12]));
    assert!(matches!(e, EifError::TrailingBytes { .. }));
    let e = tampered(|b| put_u64(b, size_slot(31), 1));
    assert_eq!(e, EifError::StrayTableEntry { index: 31 });
}

/// Pseudo-random corruption of a small image (header bytes, section bytes, lengths):
/// parse must return an error or an image, never panic.
#[test]
fn random_corruption_never_panics() {
    let img = EifBuilder::new(b"kernel-bytes".to_vec(), "console=ttyS0")
        .ramdisk(b"first ramdisk".to_vec())
        .ramdisk(b"second".to_vec())
        .build()
        .unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..3000 {
        let mut b = img.clone();
        let flips = 1 + next() % 4;
        for _ in 0..flips {
            let at = (next() as usize) % b.len();
            b[at] ^= (next() as u8) | 1;
        }
        if round % 3 == 0 {
            fix_crc(&mut b);
        }
        if round % 5 == 0 {
            let cut = (next() as usize) % (b.len() + 1);
            b.truncate(cut);
        }
        if let Err(e) = parse_eif(&b) {
            assert!(!e.to_string().contains('\n'));
        }
    }
}
