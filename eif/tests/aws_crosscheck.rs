//! Cross-check against AWS's own EIF library (aws-nitro-enclaves-image-format 0.8.1): its
//! reader must accept our images and measure the same PCRs, and its builder must write the
//! same bytes from the same inputs.

mod common;
use aws_nitro_enclaves_image_format::defs::EifIdentityInfo;
use aws_nitro_enclaves_image_format::utils::EifBuilder as AwsBuilder;
use aws_nitro_enclaves_image_format::utils::eif_reader::EifReader;
use common::*;
use sha2_aws::{Digest, Sha384};
use sigil_eif::eif::{EifBuilder, ImageMetadata};

fn ours(ramdisk_names: &[&str], metadata: &[u8]) -> EifBuilder {
    let mut b = EifBuilder::new(read("kernel.bin"), cmdline()).metadata(metadata.to_vec());
    b.ramdisks = ramdisk_names.iter().map(|n| read(n)).collect();
    b
}

/// Our metadata (not eif_build's), so the check does not lean on the golden files.
fn our_metadata() -> Vec<u8> {
    let config = String::from_utf8(read("kernel.config")).unwrap();
    ImageMetadata::new("sigil-test", "2024-05-06T07:08:09+00:00", Some(&config)).to_bytes()
}

#[test]
fn aws_reader_accepts_our_images_and_agrees_on_pcrs() {
    let tmp = tempfile::tempdir().unwrap();
    let metadata = our_metadata();
    for rds in [
        &["ramdisk1.bin"][..],
        &["ramdisk1.bin", "ramdisk2.bin"],
        &["ramdisk2.bin", "ramdisk1.bin", "kernel.bin"],
    ] {
        let b = ours(rds, &metadata);
        let path = tmp.path().join("ours.eif");
        std::fs::write(&path, b.build().unwrap()).unwrap();
        let mut r = EifReader::from_eif(path.to_str().unwrap().to_string()).unwrap();
        assert!(r.check_crc(), "AWS reader: CRC of our image");
        let m = r.get_measurements().unwrap();
        let p = b.pcrs();
        assert_eq!(m["PCR0"], hex::encode(p.pcr0), "{rds:?}");
        assert_eq!(m["PCR1"], hex::encode(p.pcr1), "{rds:?}");
        assert_eq!(m["PCR2"], hex::encode(p.pcr2), "{rds:?}");
        assert!(!m.contains_key("PCR8"));
        let meta = r.get_metadata().unwrap();
        assert_eq!(meta.img_name, "sigil-test");
        assert_eq!(meta.build_info.img_kernel, "6.12.0");
        let h = r.get_header();
        assert_eq!((h.version, h.num_sections as usize), (4, 3 + rds.len()));
    }
}

#[test]
fn aws_builder_writes_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let metadata = our_metadata();
    let info: EifIdentityInfo = serde_json::from_slice(&metadata).unwrap();
    let mut aws = AwsBuilder::new(
        &vector_path("kernel.bin"),
        cmdline(),
        None,
        Sha384::new(),
        0,
        info,
    );
    aws.add_ramdisk(&vector_path("ramdisk1.bin"));
    aws.add_ramdisk(&vector_path("ramdisk2.bin"));
    let out = tmp.path().join("aws.eif");
    let mut f = std::fs::File::create(&out).unwrap();
    let m = aws.write_to(&mut f);
    drop(f);

    let b = ours(&["ramdisk1.bin", "ramdisk2.bin"], &metadata);
    let mine = b.build().unwrap();
    assert!(
        std::fs::read(&out).unwrap() == mine,
        "AWS builder and ours differ"
    );
    let p = b.pcrs();
    assert_eq!(m["PCR0"], hex::encode(p.pcr0));
    assert_eq!(m["PCR1"], hex::encode(p.pcr1));
    assert_eq!(m["PCR2"], hex::encode(p.pcr2));
    // Only the label differs: AWS's crate now names sha2 0.10's hasher, while eif_build
    // 0.2.1 and nitro-cli print sha2 0.9's "Sha384 { ... }", which is what we print.
    println!("AWS crate HashAlgorithm label: {}", m["HashAlgorithm"]);
}

/// The image `reproducible-build/build` made (scripts/test builds it first): AWS's reader
/// measures the same PCRs that `sigil-eif describe` prints and `pcr-manifest.json` publishes.
#[test]
fn aws_reader_agrees_with_describe_on_the_built_image() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let eif = root.join("target/eif/sigil.eif");
    assert!(
        eif.exists(),
        "{} is missing: scripts/test builds it with reproducible-build/build",
        eif.display()
    );
    let bytes = std::fs::read(&eif).unwrap();
    let ours = sigil_eif::eif::parse_eif(&bytes)
        .unwrap()
        .describe()
        .unwrap();
    let ours = serde_json::to_value(&ours).unwrap();
    let mut r = EifReader::from_eif(eif.to_str().unwrap().to_string()).unwrap();
    assert!(r.check_crc());
    let aws = r.get_measurements().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("pcr-manifest.json")).unwrap())
            .unwrap();
    for pcr in ["PCR0", "PCR1", "PCR2"] {
        assert_eq!(ours["Measurements"][pcr], aws[pcr].as_str(), "{pcr}");
        assert_eq!(
            manifest["Measurements"][pcr],
            aws[pcr].as_str(),
            "{pcr} vs manifest"
        );
    }
}
