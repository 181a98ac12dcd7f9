//! Enclave Image Format (EIF) version 4: writer and strict reader.
//!
//! Layout (all integers big-endian), as AWS's `aws-nitro-enclaves-image-format` defines it:
//! - a 548-byte header: magic `.eif`, version u16, flags u16 (bit 0 = aarch64),
//!   default_mem u64, default_cpus u64, reserved u16, num_sections u16,
//!   `section_offsets[32]` u64, `section_sizes[32]` u64, unused u32, eif_crc32 u32;
//! - sections back to back, each a 12-byte header (type u16, flags u16, size u64) and its
//!   data. The table's offset points at the section header, its size is the data size.
//!
//! The CRC is CRC-32/ISO-HDLC over the whole file except the CRC field itself.

use crate::pcr::{self, Measurer, Pcrs};
use serde::{Deserialize, Serialize};
use std::fmt;

pub const MAGIC: [u8; 4] = *b".eif";
/// The version this crate writes (V4 added the metadata section).
pub const VERSION: u16 = 4;
/// Oldest version read: V2 added the CRC, without which nothing can be checked.
pub const MIN_READ_VERSION: u16 = 2;
pub const HEADER_LEN: usize = 548;
pub const SECTION_HEADER_LEN: usize = 12;
pub const MAX_SECTIONS: usize = 32;
/// Header flag bit: the image is for aarch64 (cleared for x86_64).
pub const FLAG_ARCH_ARM64: u16 = 0x1;
/// What eif_build writes: 1 GiB and 2 vCPUs (nitro-cli's run-enclave options override them).
pub const DEFAULT_MEM: u64 = 1 << 30;
pub const DEFAULT_CPUS: u64 = 2;
/// Largest image read or written. Images are handled in memory; 4 GiB is well past any
/// enclave image that boots in practice.
pub const MAX_EIF_SIZE: u64 = 4 << 30;
/// Sanity bound on the kernel command line (x86/arm64 kernels accept at most 2048).
pub const MAX_CMDLINE_LEN: usize = 4096;
/// Bound on the metadata JSON.
pub const MAX_METADATA_LEN: usize = 1 << 20;
/// Build time used when none is given, so default output never depends on the clock.
pub const DEFAULT_BUILD_TIME: &str = "1970-01-01T00:00:00+00:00";
/// ImageName written by [`default_metadata`].
pub const DEFAULT_IMAGE_NAME: &str = "sigil-enclave";

/// Offset of the CRC field: the last 4 bytes of the header.
const CRC_OFFSET: usize = HEADER_LEN - 4;
/// Kernel, cmdline and metadata take three of the 32 sections.
const MAX_RAMDISKS: usize = MAX_SECTIONS - 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectionKind {
    Kernel,
    Cmdline,
    Ramdisk,
    Signature,
    Metadata,
}

impl SectionKind {
    pub fn to_u16(self) -> u16 {
        match self {
            SectionKind::Kernel => 1,
            SectionKind::Cmdline => 2,
            SectionKind::Ramdisk => 3,
            SectionKind::Signature => 4,
            SectionKind::Metadata => 5,
        }
    }

    /// 0 is AWS's "invalid" type; anything above 5 is unknown.
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => SectionKind::Kernel,
            2 => SectionKind::Cmdline,
            3 => SectionKind::Ramdisk,
            4 => SectionKind::Signature,
            5 => SectionKind::Metadata,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Kernel => "Kernel",
            SectionKind::Cmdline => "Cmdline",
            SectionKind::Ramdisk => "Ramdisk",
            SectionKind::Signature => "Signature",
            SectionKind::Metadata => "Metadata",
        }
    }
}

impl fmt::Display for SectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The fixed EIF header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub magic: [u8; 4],
    pub version: u16,
    pub flags: u16,
    pub default_mem: u64,
    pub default_cpus: u64,
    pub reserved: u16,
    pub num_sections: u16,
    pub section_offsets: [u64; MAX_SECTIONS],
    pub section_sizes: [u64; MAX_SECTIONS],
    pub unused: u32,
    pub crc32: u32,
}

impl Header {
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        let mut w = Cursor {
            buf: &mut b,
            pos: 0,
        };
        w.put(&self.magic);
        w.put(&self.version.to_be_bytes());
        w.put(&self.flags.to_be_bytes());
        w.put(&self.default_mem.to_be_bytes());
        w.put(&self.default_cpus.to_be_bytes());
        w.put(&self.reserved.to_be_bytes());
        w.put(&self.num_sections.to_be_bytes());
        for o in self.section_offsets {
            w.put(&o.to_be_bytes());
        }
        for s in self.section_sizes {
            w.put(&s.to_be_bytes());
        }
        w.put(&self.unused.to_be_bytes());
        w.put(&self.crc32.to_be_bytes());
        debug_assert_eq!(w.pos, HEADER_LEN);
        b
    }

    pub fn from_bytes(b: &[u8; HEADER_LEN]) -> Header {
        let mut r = Reader { buf: b, pos: 0 };
        let magic = r.array::<4>();
        let version = u16::from_be_bytes(r.array());
        let flags = u16::from_be_bytes(r.array());
        let default_mem = u64::from_be_bytes(r.array());
        let default_cpus = u64::from_be_bytes(r.array());
        let reserved = u16::from_be_bytes(r.array());
        let num_sections = u16::from_be_bytes(r.array());
        let mut section_offsets = [0u64; MAX_SECTIONS];
        for o in &mut section_offsets {
            *o = u64::from_be_bytes(r.array());
        }
        let mut section_sizes = [0u64; MAX_SECTIONS];
        for s in &mut section_sizes {
            *s = u64::from_be_bytes(r.array());
        }
        let unused = u32::from_be_bytes(r.array());
        let crc32 = u32::from_be_bytes(r.array());
        Header {
            magic,
            version,
            flags,
            default_mem,
            default_cpus,
            reserved,
            num_sections,
            section_offsets,
            section_sizes,
            unused,
            crc32,
        }
    }

    /// "aarch64" or "x86_64", from the flags.
    pub fn arch(&self) -> &'static str {
        if self.flags & FLAG_ARCH_ARM64 != 0 {
            "aarch64"
        } else {
            "x86_64"
        }
    }
}

struct Cursor<'a> {
    buf: &'a mut [u8; HEADER_LEN],
    pos: usize,
}

impl Cursor<'_> {
    fn put(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
}

/// Reads fixed-size fields from the header array; sizes are compile-time, so no bounds
/// can be exceeded (the field sizes add up to HEADER_LEN).
struct Reader<'a> {
    buf: &'a [u8; HEADER_LEN],
    pos: usize,
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        a
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EifError {
    Truncated {
        len: usize,
    },
    BadMagic([u8; 4]),
    UnsupportedVersion(u16),
    BadSectionCount(u16),
    /// A table slot past `num_sections` is not zero.
    StrayTableEntry {
        index: usize,
    },
    SectionOutOfBounds {
        index: usize,
        offset: u64,
        size: u64,
        file_len: usize,
    },
    SectionOverlap {
        index: usize,
        offset: u64,
        expected: u64,
    },
    SectionGap {
        index: usize,
        offset: u64,
        expected: u64,
    },
    TrailingBytes {
        end: u64,
        file_len: usize,
    },
    BadSectionType {
        index: usize,
        value: u16,
    },
    SectionSizeMismatch {
        index: usize,
        table: u64,
        header: u64,
    },
    DuplicateSection(SectionKind),
    CrcMismatch {
        stored: u32,
        computed: u32,
    },
    /// Metadata present but not JSON (describe needs to parse it).
    BadMetadata(String),
    /// Inputs the writer refuses (what and why).
    InvalidInput(String),
}

impl fmt::Display for EifError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EifError::*;
        match self {
            Truncated { len } => write!(
                f,
                "EIF truncated: {len} bytes, shorter than the {HEADER_LEN}-byte header"
            ),
            BadMagic(m) => write!(f, "not an EIF: magic is {m:02x?}, expected \".eif\""),
            UnsupportedVersion(v) => write!(
                f,
                "unsupported EIF version {v} (supported: {MIN_READ_VERSION}..={VERSION})"
            ),
            BadSectionCount(n) => write!(
                f,
                "EIF header claims {n} sections (must be 1..={MAX_SECTIONS})"
            ),
            StrayTableEntry { index } => write!(
                f,
                "EIF section table slot {index} is past num_sections but not zero"
            ),
            SectionOutOfBounds {
                index,
                offset,
                size,
                file_len,
            } => write!(
                f,
                "EIF section {index} (offset {offset}, size {size}) runs past the end of the \
                 {file_len}-byte file (truncated or corrupt section table)"
            ),
            SectionOverlap {
                index,
                offset,
                expected,
            } => write!(
                f,
                "EIF section {index} at offset {offset} overlaps what precedes it (expected \
                 offset {expected})"
            ),
            SectionGap {
                index,
                offset,
                expected,
            } => write!(
                f,
                "EIF section {index} at offset {offset} leaves a gap (expected offset {expected})"
            ),
            TrailingBytes { end, file_len } => write!(
                f,
                "EIF has {} bytes after its last section (ends at {end}, file is {file_len})",
                (*file_len as u64).saturating_sub(*end)
            ),
            BadSectionType { index, value } => {
                write!(f, "EIF section {index} has invalid type {value}")
            }
            SectionSizeMismatch {
                index,
                table,
                header,
            } => write!(
                f,
                "EIF section {index}: header table says {table} bytes, section header says \
                 {header}"
            ),
            DuplicateSection(k) => write!(f, "EIF has more than one {k} section"),
            CrcMismatch { stored, computed } => write!(
                f,
                "EIF CRC mismatch: header has {stored:#010x}, contents give {computed:#010x} \
                 (file corrupted or modified)"
            ),
            BadMetadata(e) => write!(f, "EIF metadata section is not valid JSON: {e}"),
            InvalidInput(e) => write!(f, "cannot build EIF: {e}"),
        }
    }
}

impl std::error::Error for EifError {}

fn invalid(msg: impl Into<String>) -> EifError {
    EifError::InvalidInput(msg.into())
}

// ---------------------------------------------------------------------------------------
// Metadata

/// `BuildMetadata` in eif_build's metadata JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildMetadata {
    #[serde(rename = "BuildTime")]
    pub build_time: String,
    #[serde(rename = "BuildTool")]
    pub build_tool: String,
    #[serde(rename = "BuildToolVersion")]
    pub build_tool_version: String,
    #[serde(rename = "OperatingSystem")]
    pub operating_system: String,
    #[serde(rename = "KernelVersion")]
    pub kernel_version: String,
}

/// The metadata section as eif_build writes it; field order here is the byte order of
/// the serialized JSON, so it must stay as is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageMetadata {
    #[serde(rename = "ImageName")]
    pub image_name: String,
    #[serde(rename = "ImageVersion")]
    pub image_version: String,
    #[serde(rename = "BuildMetadata")]
    pub build: BuildMetadata,
    #[serde(rename = "DockerInfo")]
    pub docker_info: serde_json::Value,
    #[serde(rename = "CustomMetadata")]
    pub custom: serde_json::Value,
}

const UNKNOWN: &str = "Unknown";

/// OS name and kernel version from a kernel `.config`, read the way AWS's tools read it:
/// the third line (`# Linux/x86 6.12.0 Kernel Configuration`) split on ' ', '/' and '-',
/// words 1 and 3.
pub fn kernel_config_info(config: &str) -> (String, String) {
    let line = config.lines().nth(2).unwrap_or("");
    let words: Vec<&str> = line.split([' ', '/', '-']).collect();
    let get = |i: usize| words.get(i).copied().unwrap_or(UNKNOWN).to_string();
    (get(1), get(3))
}

impl ImageMetadata {
    /// Metadata with this crate as build tool, version "1.0" and no Docker/custom info.
    pub fn new(image_name: &str, build_time: &str, kernel_config: Option<&str>) -> Self {
        let (operating_system, kernel_version) = match kernel_config {
            Some(c) => kernel_config_info(c),
            None => (UNKNOWN.to_string(), UNKNOWN.to_string()),
        };
        ImageMetadata {
            image_name: image_name.to_string(),
            image_version: "1.0".to_string(),
            build: BuildMetadata {
                build_time: build_time.to_string(),
                build_tool: env!("CARGO_PKG_NAME").to_string(),
                build_tool_version: env!("CARGO_PKG_VERSION").to_string(),
                operating_system,
                kernel_version,
            },
            docker_info: serde_json::Value::Null,
            custom: serde_json::Value::Null,
        }
    }

    /// Compact JSON, as eif_build serializes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and JSON values cannot fail.
        serde_json::to_vec(self).expect("metadata serializes")
    }
}

/// Metadata JSON in eif_build's shape, image name [`DEFAULT_IMAGE_NAME`], build tool
/// sigil-eif. `kernel_config` is the kernel `.config` text (OS and kernel version come from
/// it, else "Unknown"). Nothing host- or clock-dependent goes in.
pub fn default_metadata(build_time: &str, kernel_config: Option<&str>) -> Vec<u8> {
    ImageMetadata::new(DEFAULT_IMAGE_NAME, build_time, kernel_config).to_bytes()
}

// ---------------------------------------------------------------------------------------
// Writer

/// Everything that goes into an image. `metadata` is written verbatim (must be JSON).
#[derive(Clone, Debug)]
pub struct EifBuilder {
    pub kernel: Vec<u8>,
    pub cmdline: String,
    pub ramdisks: Vec<Vec<u8>>,
    pub metadata: Vec<u8>,
    /// Bytes.
    pub default_mem: u64,
    pub default_cpus: u64,
    pub flags: u16,
}

impl EifBuilder {
    /// eif_build's defaults: x86_64, 1 GiB, 2 vCPUs, [`default_metadata`] at the epoch.
    pub fn new(kernel: Vec<u8>, cmdline: impl Into<String>) -> Self {
        EifBuilder {
            kernel,
            cmdline: cmdline.into(),
            ramdisks: Vec::new(),
            metadata: default_metadata(DEFAULT_BUILD_TIME, None),
            default_mem: DEFAULT_MEM,
            default_cpus: DEFAULT_CPUS,
            flags: 0,
        }
    }

    pub fn ramdisk(mut self, data: Vec<u8>) -> Self {
        self.ramdisks.push(data);
        self
    }

    pub fn metadata(mut self, metadata: Vec<u8>) -> Self {
        self.metadata = metadata;
        self
    }

    pub fn build(&self) -> Result<Vec<u8>, EifError> {
        let ramdisks: Vec<&[u8]> = self.ramdisks.iter().map(Vec::as_slice).collect();
        write_eif(&Parts {
            kernel: &self.kernel,
            cmdline: &self.cmdline,
            ramdisks: &ramdisks,
            metadata: &self.metadata,
            default_mem: self.default_mem,
            default_cpus: self.default_cpus,
            flags: self.flags,
        })
    }

    pub fn pcrs(&self) -> Pcrs {
        let ramdisks: Vec<&[u8]> = self.ramdisks.iter().map(Vec::as_slice).collect();
        pcr::compute(&self.kernel, self.cmdline.as_bytes(), &ramdisks)
    }
}

/// An image with eif_build's defaults (x86_64, 1 GiB, 2 vCPUs) and the given metadata.
pub fn build_eif(
    kernel: &[u8],
    cmdline: &str,
    ramdisks: &[Vec<u8>],
    metadata: &[u8],
) -> Result<Vec<u8>, EifError> {
    let ramdisks: Vec<&[u8]> = ramdisks.iter().map(Vec::as_slice).collect();
    write_eif(&Parts {
        kernel,
        cmdline,
        ramdisks: &ramdisks,
        metadata,
        default_mem: DEFAULT_MEM,
        default_cpus: DEFAULT_CPUS,
        flags: 0,
    })
}

struct Parts<'a> {
    kernel: &'a [u8],
    cmdline: &'a str,
    ramdisks: &'a [&'a [u8]],
    metadata: &'a [u8],
    default_mem: u64,
    default_cpus: u64,
    flags: u16,
}

fn write_eif(p: &Parts<'_>) -> Result<Vec<u8>, EifError> {
    if p.kernel.is_empty() {
        return Err(invalid("the kernel is empty"));
    }
    if p.cmdline.len() > MAX_CMDLINE_LEN {
        return Err(invalid(format!(
            "the cmdline is {} bytes, over the {MAX_CMDLINE_LEN}-byte limit",
            p.cmdline.len()
        )));
    }
    // The kernel gets the cmdline as a C string.
    if p.cmdline.contains('\0') {
        return Err(invalid("the cmdline contains a NUL byte"));
    }
    if p.ramdisks.is_empty() {
        return Err(invalid("at least one ramdisk is needed"));
    }
    if p.ramdisks.len() > MAX_RAMDISKS {
        return Err(invalid(format!(
            "{} ramdisks, at most {MAX_RAMDISKS} fit the section table",
            p.ramdisks.len()
        )));
    }
    if p.metadata.len() > MAX_METADATA_LEN {
        return Err(invalid(format!(
            "metadata is {} bytes, over the {MAX_METADATA_LEN}-byte limit",
            p.metadata.len()
        )));
    }
    // nitro-cli describe-eif fails on non-JSON metadata, so refuse to write it.
    serde_json::from_slice::<serde::de::IgnoredAny>(p.metadata)
        .map_err(|e| invalid(format!("metadata is not valid JSON: {e}")))?;

    // eif_build's order: kernel, cmdline, metadata, ramdisks.
    let mut sections: Vec<(SectionKind, &[u8])> = vec![
        (SectionKind::Kernel, p.kernel),
        (SectionKind::Cmdline, p.cmdline.as_bytes()),
        (SectionKind::Metadata, p.metadata),
    ];
    sections.extend(p.ramdisks.iter().map(|r| (SectionKind::Ramdisk, *r)));

    let total = sections.iter().try_fold(HEADER_LEN as u64, |acc, (_, d)| {
        acc.checked_add((SECTION_HEADER_LEN + d.len()) as u64)
    });
    let total = match total {
        Some(t) if t <= MAX_EIF_SIZE => t,
        _ => {
            return Err(invalid(format!(
                "the image would exceed the {MAX_EIF_SIZE}-byte limit"
            )));
        }
    };

    let mut header = Header {
        magic: MAGIC,
        version: VERSION,
        flags: p.flags,
        default_mem: p.default_mem,
        default_cpus: p.default_cpus,
        reserved: 0,
        num_sections: sections.len() as u16,
        section_offsets: [0; MAX_SECTIONS],
        section_sizes: [0; MAX_SECTIONS],
        unused: 0,
        crc32: 0,
    };
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    for (i, (kind, data)) in sections.iter().enumerate() {
        header.section_offsets[i] = out.len() as u64;
        header.section_sizes[i] = data.len() as u64;
        out.extend_from_slice(&kind.to_u16().to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&(data.len() as u64).to_be_bytes());
        out.extend_from_slice(data);
    }
    out[..HEADER_LEN].copy_from_slice(&header.to_bytes());
    let crc = crc_of(&out);
    out[CRC_OFFSET..HEADER_LEN].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// CRC of the whole image minus the CRC field.
fn crc_of(image: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&image[..CRC_OFFSET]);
    h.update(&image[HEADER_LEN..]);
    h.finalize()
}

// ---------------------------------------------------------------------------------------
// Reader

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    pub flags: u16,
    /// File offset of the section header (what the header's table holds).
    pub offset: u64,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eif {
    pub header: Header,
    /// In file order.
    pub sections: Vec<Section>,
}

/// Parses and checks an image: magic, version, section count, that the table describes
/// sections lying back to back from the end of the header to the end of the file, that each
/// section header agrees with the table, at most one kernel/cmdline/metadata/signature
/// section, and the CRC.
///
/// Contiguity is required because AWS's reader walks sections sequentially while the
/// loader uses the table: only when both views coincide is the image unambiguous.
pub fn parse_eif(bytes: &[u8]) -> Result<Eif, EifError> {
    let Some(head) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(EifError::Truncated { len: bytes.len() });
    };
    let header = Header::from_bytes(head);
    if header.magic != MAGIC {
        return Err(EifError::BadMagic(header.magic));
    }
    if !(MIN_READ_VERSION..=VERSION).contains(&header.version) {
        return Err(EifError::UnsupportedVersion(header.version));
    }
    let n = header.num_sections as usize;
    if n == 0 || n > MAX_SECTIONS {
        return Err(EifError::BadSectionCount(header.num_sections));
    }
    if let Some(index) =
        (n..MAX_SECTIONS).find(|&i| header.section_offsets[i] != 0 || header.section_sizes[i] != 0)
    {
        return Err(EifError::StrayTableEntry { index });
    }

    let file_len = bytes.len();
    let mut expected = HEADER_LEN as u64;
    let mut sections = Vec::with_capacity(n);
    let mut seen: Vec<SectionKind> = Vec::new();
    for index in 0..n {
        let offset = header.section_offsets[index];
        let size = header.section_sizes[index];
        let end = offset
            .checked_add(SECTION_HEADER_LEN as u64)
            .and_then(|e| e.checked_add(size))
            .filter(|&e| e <= file_len as u64);
        let Some(end) = end else {
            return Err(EifError::SectionOutOfBounds {
                index,
                offset,
                size,
                file_len,
            });
        };
        if offset < expected {
            return Err(EifError::SectionOverlap {
                index,
                offset,
                expected,
            });
        }
        if offset > expected {
            return Err(EifError::SectionGap {
                index,
                offset,
                expected,
            });
        }
        // end <= file_len, so these fit usize and lie inside `bytes`.
        let start = offset as usize;
        let sh = &bytes[start..start + SECTION_HEADER_LEN];
        let type_raw = u16::from_be_bytes([sh[0], sh[1]]);
        let flags = u16::from_be_bytes([sh[2], sh[3]]);
        let mut size_raw = [0u8; 8];
        size_raw.copy_from_slice(&sh[4..12]);
        let header_size = u64::from_be_bytes(size_raw);
        let kind = SectionKind::from_u16(type_raw).ok_or(EifError::BadSectionType {
            index,
            value: type_raw,
        })?;
        if header_size != size {
            return Err(EifError::SectionSizeMismatch {
                index,
                table: size,
                header: header_size,
            });
        }
        if kind != SectionKind::Ramdisk {
            if seen.contains(&kind) {
                return Err(EifError::DuplicateSection(kind));
            }
            seen.push(kind);
        }
        sections.push(Section {
            kind,
            flags,
            offset,
            data: bytes[start + SECTION_HEADER_LEN..end as usize].to_vec(),
        });
        expected = end;
    }
    if expected != file_len as u64 {
        return Err(EifError::TrailingBytes {
            end: expected,
            file_len,
        });
    }
    let computed = crc_of(bytes);
    if computed != header.crc32 {
        return Err(EifError::CrcMismatch {
            stored: header.crc32,
            computed,
        });
    }
    Ok(Eif { header, sections })
}

/// One row of [`Description::sections`].
#[derive(Clone, Debug, Serialize)]
pub struct SectionInfo {
    #[serde(rename = "Kind")]
    pub kind: &'static str,
    #[serde(rename = "Offset")]
    pub offset: u64,
    #[serde(rename = "Size")]
    pub size: u64,
}

/// `sigil-eif describe` output: nitro-cli describe-eif's names where it has them
/// (EifVersion, Measurements, IsSigned, CheckCRC, ImageName, ImageVersion), plus layout.
/// Field order is the JSON key order.
#[derive(Clone, Debug, Serialize)]
pub struct Description {
    #[serde(rename = "EifVersion")]
    pub version: u16,
    #[serde(rename = "Measurements")]
    pub measurements: serde_json::Value,
    #[serde(rename = "IsSigned")]
    pub is_signed: bool,
    /// Always true: [`parse_eif`] refuses an image whose CRC does not match.
    #[serde(rename = "CheckCRC")]
    pub check_crc: bool,
    #[serde(rename = "ImageName", skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    #[serde(rename = "ImageVersion", skip_serializing_if = "Option::is_none")]
    pub image_version: Option<String>,
    #[serde(rename = "Arch")]
    pub arch: &'static str,
    #[serde(rename = "Flags")]
    pub flags: u16,
    #[serde(rename = "DefaultMemory")]
    pub default_mem: u64,
    #[serde(rename = "DefaultCpus")]
    pub default_cpus: u64,
    #[serde(rename = "TotalSize")]
    pub total_size: u64,
    #[serde(rename = "KernelSize")]
    pub kernel_size: u64,
    #[serde(rename = "CmdlineSize")]
    pub cmdline_size: u64,
    #[serde(rename = "RamdiskSizes")]
    pub ramdisk_sizes: Vec<u64>,
    #[serde(rename = "MetadataSize")]
    pub metadata_size: u64,
    #[serde(rename = "Sections")]
    pub sections: Vec<SectionInfo>,
    #[serde(rename = "Metadata")]
    pub metadata: serde_json::Value,
}

impl Eif {
    fn section(&self, kind: SectionKind) -> Option<&[u8]> {
        self.sections
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.data.as_slice())
    }

    pub fn kernel(&self) -> Option<&[u8]> {
        self.section(SectionKind::Kernel)
    }

    pub fn cmdline_bytes(&self) -> Option<&[u8]> {
        self.section(SectionKind::Cmdline)
    }

    /// None if absent or not UTF-8 (see [`Eif::cmdline_bytes`]).
    pub fn cmdline(&self) -> Option<&str> {
        self.cmdline_bytes()
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// In file order; the first is the bootstrap ramdisk (PCR1).
    pub fn ramdisks(&self) -> Vec<&[u8]> {
        self.sections
            .iter()
            .filter(|s| s.kind == SectionKind::Ramdisk)
            .map(|s| s.data.as_slice())
            .collect()
    }

    pub fn metadata(&self) -> Option<&[u8]> {
        self.section(SectionKind::Metadata)
    }

    pub fn signature(&self) -> Option<&[u8]> {
        self.section(SectionKind::Signature)
    }

    /// PCR0/1/2, measuring sections in file order as AWS's reader does.
    pub fn pcrs(&self) -> Pcrs {
        let mut m = Measurer::new();
        for s in &self.sections {
            match s.kind {
                SectionKind::Kernel | SectionKind::Cmdline => m.boot_section(&s.data),
                SectionKind::Ramdisk => m.ramdisk(&s.data),
                SectionKind::Signature | SectionKind::Metadata => {}
            }
        }
        m.finish()
    }

    pub fn total_size(&self) -> u64 {
        self.sections.iter().fold(HEADER_LEN as u64, |acc, s| {
            acc + (SECTION_HEADER_LEN + s.data.len()) as u64
        })
    }

    /// Summary in the shape of `nitro-cli describe-eif`; fails only if metadata is not JSON.
    pub fn describe(&self) -> Result<Description, EifError> {
        let metadata: serde_json::Value = match self.metadata() {
            Some(m) => {
                serde_json::from_slice(m).map_err(|e| EifError::BadMetadata(e.to_string()))?
            }
            None => serde_json::Value::Null,
        };
        let text = |k: &str| metadata.get(k).and_then(|v| v.as_str()).map(String::from);
        let len = |k| self.section(k).map_or(0, |d| d.len() as u64);
        Ok(Description {
            version: self.header.version,
            measurements: self.pcrs().to_measurements_json(),
            is_signed: self.signature().is_some(),
            check_crc: true,
            image_name: text("ImageName"),
            image_version: text("ImageVersion"),
            arch: self.header.arch(),
            flags: self.header.flags,
            default_mem: self.header.default_mem,
            default_cpus: self.header.default_cpus,
            total_size: self.total_size(),
            kernel_size: len(SectionKind::Kernel),
            cmdline_size: len(SectionKind::Cmdline),
            ramdisk_sizes: self.ramdisks().iter().map(|r| r.len() as u64).collect(),
            metadata_size: len(SectionKind::Metadata),
            sections: self
                .sections
                .iter()
                .map(|s| SectionInfo {
                    kind: s.kind.name(),
                    offset: s.offset,
                    size: s.data.len() as u64,
                })
                .collect(),
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_size() {
        let mut h = Header {
            magic: MAGIC,
            version: 4,
            flags: 1,
            default_mem: 5,
            default_cpus: 6,
            reserved: 7,
            num_sections: 2,
            section_offsets: [0; MAX_SECTIONS],
            section_sizes: [0; MAX_SECTIONS],
            unused: 8,
            crc32: 0xdeadbeef,
        };
        h.section_offsets[0] = 548;
        h.section_sizes[31] = 9;
        let b = h.to_bytes();
        assert_eq!(&b[..4], b".eif");
        assert_eq!(&b[544..], &0xdeadbeefu32.to_be_bytes());
        assert_eq!(Header::from_bytes(&b), h);
        assert_eq!(h.arch(), "aarch64");
    }

    #[test]
    fn kernel_config_words() {
        let c = "#\n# x\n# Linux/x86_64 4.14.177-104.253.amzn2.x86_64 Kernel Configuration\n";
        assert_eq!(
            kernel_config_info(c),
            ("Linux".to_string(), "4.14.177".to_string())
        );
        assert_eq!(
            kernel_config_info("short"),
            ("Unknown".to_string(), "Unknown".to_string())
        );
    }

    #[test]
    fn writer_rejects_bad_inputs() {
        let ok = |b: EifBuilder| b.build();
        let base = EifBuilder::new(b"k".to_vec(), "c").ramdisk(b"r".to_vec());
        assert!(ok(base.clone()).is_ok());
        assert!(ok(EifBuilder::new(b"k".to_vec(), "c")).is_err());
        assert!(
            ok(EifBuilder {
                kernel: vec![],
                ..base.clone()
            })
            .is_err()
        );
        assert!(
            ok(EifBuilder {
                cmdline: "a\0b".into(),
                ..base.clone()
            })
            .is_err()
        );
        assert!(
            ok(EifBuilder {
                cmdline: "x".repeat(MAX_CMDLINE_LEN + 1),
                ..base.clone()
            })
            .is_err()
        );
        assert!(ok(base.clone().metadata(b"{not json".to_vec())).is_err());
        let mut many = base.clone();
        many.ramdisks = vec![vec![1]; MAX_RAMDISKS + 1];
        assert!(ok(many.clone()).is_err());
        many.ramdisks.pop();
        let eif = parse_eif(&ok(many).unwrap()).unwrap();
        assert_eq!(eif.sections.len(), MAX_SECTIONS);
    }
}
