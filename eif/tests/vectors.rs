//! The golden EIFs made by AWS's eif_build 0.2.1: our writer must reproduce them byte for
//! byte, our reader must read them back, and both must give the expected PCRs.

mod common;
use common::*;
use sigil_eif::eif::{self, ImageMetadata, SectionKind};
use sigil_eif::{EifBuilder, build_eif, parse_eif, pcr};

fn expected_pcrs(name: &str) -> [String; 3] {
    let e = &expected()[name];
    ["PCR0", "PCR1", "PCR2"].map(|k| e[k].as_str().unwrap().to_string())
}

fn hex3(p: &pcr::Pcrs) -> [String; 3] {
    [
        hex::encode(p.pcr0),
        hex::encode(p.pcr1),
        hex::encode(p.pcr2),
    ]
}

#[test]
fn vector_files_match_expected_sha256() {
    for name in [ONE, TWO] {
        assert_eq!(
            sha256_hex(&read(name)),
            expected()[name]["sha256"].as_str().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn writer_reproduces_vectors_byte_for_byte() {
    let kernel = read("kernel.bin");
    for name in [ONE, TWO] {
        let golden = read(name);
        let metadata = parse_eif(&golden).unwrap().metadata().unwrap().to_vec();
        let ramdisks = ramdisks_for(name);
        let ours = build_eif(&kernel, &cmdline(), &ramdisks, &metadata).unwrap();
        assert_eq!(ours.len(), golden.len(), "{name}: length");
        assert!(ours == golden, "{name}: bytes differ");
        assert_eq!(
            sha256_hex(&ours),
            expected()[name]["sha256"].as_str().unwrap()
        );
        let refs: Vec<&[u8]> = ramdisks.iter().map(Vec::as_slice).collect();
        let p = pcr::compute(&kernel, cmdline().as_bytes(), &refs);
        assert_eq!(hex3(&p), expected_pcrs(name), "{name}");
    }
}

/// Our metadata generator, told to claim eif_build 0.2.1, writes eif_build's exact JSON.
#[test]
fn generated_metadata_matches_eif_build() {
    let config = String::from_utf8(read("kernel.config")).unwrap();
    let mut m = ImageMetadata::new("kernel.bin", eif::DEFAULT_BUILD_TIME, Some(&config));
    m.build.build_tool = "eif_build".into();
    m.build.build_tool_version = "0.2.1".into();
    let golden = read(TWO);
    assert_eq!(
        m.to_bytes(),
        parse_eif(&golden).unwrap().metadata().unwrap(),
        "metadata JSON"
    );
    let mut b = EifBuilder::new(read("kernel.bin"), cmdline()).metadata(m.to_bytes());
    b.ramdisks = ramdisks_for(TWO);
    assert!(b.build().unwrap() == golden);
    assert_eq!(hex3(&b.pcrs()), expected_pcrs(TWO));
}

#[test]
fn default_metadata_is_deterministic_json() {
    let a = eif::default_metadata("2020-01-01T00:00:00+00:00", None);
    assert_eq!(a, eif::default_metadata("2020-01-01T00:00:00+00:00", None));
    let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(v["ImageName"], eif::DEFAULT_IMAGE_NAME);
    assert_eq!(v["BuildMetadata"]["BuildTime"], "2020-01-01T00:00:00+00:00");
    assert_eq!(v["BuildMetadata"]["BuildTool"], "sigil-eif");
    assert_eq!(v["BuildMetadata"]["OperatingSystem"], "Unknown");
    assert!(v["DockerInfo"].is_null() && v["CustomMetadata"].is_null());
    let config = String::from_utf8(read("kernel.config")).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&eif::default_metadata("t", Some(&config))).unwrap();
    assert_eq!(v["BuildMetadata"]["OperatingSystem"], "Linux");
    assert_eq!(v["BuildMetadata"]["KernelVersion"], "6.12.0");
}

#[test]
fn reader_parses_vectors() {
    for name in [ONE, TWO] {
        let e = parse_eif(&read(name)).unwrap();
        assert_eq!(hex3(&e.pcrs()), expected_pcrs(name), "{name}");
        assert_eq!(e.header.version, 4);
        assert_eq!(e.header.flags, 0);
        assert_eq!(e.header.default_mem, 1 << 30);
        assert_eq!(e.header.default_cpus, 2);
        assert_eq!(e.kernel().unwrap(), read("kernel.bin"));
        assert_eq!(e.cmdline().unwrap(), cmdline());
        let want = ramdisks_for(name);
        let got: Vec<Vec<u8>> = e.ramdisks().iter().map(|r| r.to_vec()).collect();
        assert_eq!(got, want);
        let kinds: Vec<SectionKind> = e.sections.iter().map(|s| s.kind).collect();
        let mut expect_kinds = vec![
            SectionKind::Kernel,
            SectionKind::Cmdline,
            SectionKind::Metadata,
        ];
        expect_kinds.extend(want.iter().map(|_| SectionKind::Ramdisk));
        assert_eq!(kinds, expect_kinds);
        assert_eq!(e.total_size(), read(name).len() as u64);
        assert!(e.signature().is_none());
    }
}

#[test]
fn one_ramdisk_has_empty_application_pcr2() {
    use ring::digest::{Context, SHA384, digest};
    let mut c = Context::new(&SHA384);
    c.update(&[0u8; 48]);
    c.update(digest(&SHA384, b"").as_ref());
    let empty_app = hex::encode(c.finish());
    let [p0, p1, p2] = expected_pcrs(ONE);
    assert_eq!(p2, empty_app);
    assert_eq!(p0, p1);
    // PCR1 depends only on kernel, cmdline and the first ramdisk.
    assert_eq!(expected_pcrs(TWO)[1], p1);
}

#[test]
fn describe_has_nitro_cli_fields() {
    let e = parse_eif(&read(TWO)).unwrap();
    let d = serde_json::to_value(e.describe().unwrap()).unwrap();
    assert_eq!(d["EifVersion"], 4);
    assert_eq!(d["IsSigned"], false);
    assert_eq!(d["CheckCRC"], true);
    assert_eq!(d["Measurements"]["HashAlgorithm"], "Sha384 { ... }");
    let [p0, p1, p2] = expected_pcrs(TWO);
    assert_eq!(d["Measurements"]["PCR0"], p0);
    assert_eq!(d["Measurements"]["PCR1"], p1);
    assert_eq!(d["Measurements"]["PCR2"], p2);
    assert_eq!(d["ImageName"], "kernel.bin");
    assert_eq!(d["ImageVersion"], "1.0");
    assert_eq!(d["Arch"], "x86_64");
    assert_eq!(d["TotalSize"], 105541);
    assert_eq!(d["KernelSize"], 70000);
    assert_eq!(d["CmdlineSize"], 119);
    assert_eq!(d["RamdiskSizes"], serde_json::json!([33333, 1234]));
    assert_eq!(d["Metadata"]["BuildMetadata"]["BuildTool"], "eif_build");
    let secs = d["Sections"].as_array().unwrap();
    let rows: Vec<(&str, u64, u64)> = secs
        .iter()
        .map(|s| {
            (
                s["Kind"].as_str().unwrap(),
                s["Offset"].as_u64().unwrap(),
                s["Size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("Kernel", 548, 70000),
            ("Cmdline", 70560, 119),
            ("Metadata", 70691, 247),
            ("Ramdisk", 70950, 33333),
            ("Ramdisk", 104295, 1234),
        ]
    );
}

#[test]
fn builder_header_fields_roundtrip() {
    let mut b = EifBuilder::new(b"kernel".to_vec(), "console=ttyS0").ramdisk(b"r1".to_vec());
    b.default_mem = 512 << 20;
    b.default_cpus = 4;
    b.flags = eif::FLAG_ARCH_ARM64;
    let e = parse_eif(&b.build().unwrap()).unwrap();
    assert_eq!(e.header.default_mem, 512 << 20);
    assert_eq!(e.header.default_cpus, 4);
    assert_eq!(e.header.arch(), "aarch64");
    assert_eq!(e.pcrs(), b.pcrs());
    assert_eq!(
        e.metadata().unwrap(),
        eif::default_metadata(eif::DEFAULT_BUILD_TIME, None)
    );
}
