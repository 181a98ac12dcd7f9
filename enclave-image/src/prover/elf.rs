//! The libraries an ELF file names (`DT_NEEDED`) and the directories it asks the loader to
//! search (`DT_RPATH`, `DT_RUNPATH`), read with bounded reads: the header, the program
//! headers, the dynamic segment and each name, never the whole file (a bb is tens of MiB).
//! 64-bit little-endian only, the one kind the image runs.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Most program headers read.
const MAX_PHDRS: u64 = 256;
/// Largest dynamic segment read.
const MAX_DYNAMIC: u64 = 64 << 10;
/// Longest library name read.
const MAX_NAME: usize = 255;
/// Most libraries one file may name.
const MAX_NEEDED: usize = 64;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// What an ELF file's dynamic segment asks of the loader.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// The `DT_NEEDED` names, in order.
    pub needed: Vec<String>,
    /// The `DT_RPATH` strings (searched before the loader's `--library-path`).
    pub rpath: Vec<String>,
    /// The `DT_RUNPATH` strings.
    pub runpath: Vec<String>,
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn read_at(f: &File, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    let len = usize::try_from(len).map_err(|_| "a length out of range".to_string())?;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset)
        .map_err(|e| format!("reading {len} bytes at {offset}: {e}"))?;
    Ok(buf)
}

/// The dynamic segment's names of the ELF file at `path`; empty for a file without a dynamic
/// segment (a static binary).
pub fn dynamic(path: &Path) -> Result<Dynamic, String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    let header = read_at(&f, 0, 64)?;
    if header.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF file".into());
    }
    if header.get(4..6) != Some([2u8, 1].as_slice()) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let bad = || "a damaged ELF header".to_string();
    let phoff = le_u64(&header, 0x20).ok_or_else(bad)?;
    let phentsize = le_u16(&header, 0x36).ok_or_else(bad)?;
    let phnum = u64::from(le_u16(&header, 0x38).ok_or_else(bad)?);
    if phentsize != 56 || phnum > MAX_PHDRS {
        return Err(format!("{phnum} program headers of {phentsize} bytes"));
    }
    let phdrs = read_at(&f, phoff, phnum * 56)?;
    // (type, offset, virtual address, size in the file)
    let segments: Vec<(u32, u64, u64, u64)> = phdrs
        .chunks_exact(56)
        .filter_map(|p| Some((le_u32(p, 0)?, le_u64(p, 8)?, le_u64(p, 16)?, le_u64(p, 32)?)))
        .collect();
    let Some(&(_, dyn_off, _, dyn_size)) = segments.iter().find(|s| s.0 == PT_DYNAMIC) else {
        return Ok(Dynamic::default());
    };
    if dyn_size > MAX_DYNAMIC {
        return Err(format!("a dynamic segment of {dyn_size} bytes"));
    }
    let dynamic = read_at(&f, dyn_off, dyn_size - dyn_size % 16)?;
    // (tag, string table offset) of every name
    let (mut strtab, mut strsz, mut names) = (None, None, Vec::new());
    for d in dynamic.chunks_exact(16) {
        let (Some(tag), Some(val)) = (le_u64(d, 0), le_u64(d, 8)) else {
            break;
        };
        match tag {
            DT_NULL => break,
            DT_NEEDED | DT_RPATH | DT_RUNPATH => names.push((tag, val)),
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = Some(val),
            _ => {}
        }
    }
    if names.is_empty() {
        return Ok(Dynamic::default());
    }
    if names.len() > MAX_NEEDED {
        return Err(format!("{} library names and search paths", names.len()));
    }
    let (Some(strtab), Some(strsz)) = (strtab, strsz) else {
        return Err("library names but no string table".into());
    };
    // DT_STRTAB is an address: the loaded segment holding it gives its place in the file.
    let strtab_off = segments
        .iter()
        .filter(|s| s.0 == PT_LOAD)
        .find(|&&(_, _, vaddr, filesz)| {
            strtab >= vaddr && strtab.checked_sub(vaddr).is_some_and(|d| d < filesz)
        })
        .and_then(|&(_, off, vaddr, _)| off.checked_add(strtab - vaddr))
        .ok_or("the string table is in no loaded segment")?;
    let mut out = Dynamic::default();
    for (tag, at) in names {
        if at >= strsz {
            return Err("a name outside the string table".to_string());
        }
        let len = (strsz - at).min(MAX_NAME as u64 + 1);
        let start = strtab_off
            .checked_add(at)
            .ok_or("a name outside the file")?;
        let bytes = read_at(&f, start, len)?;
        let end = bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or("a library name without its end")?;
        let name = String::from_utf8(bytes[..end].to_vec())
            .map_err(|_| "a name that is not UTF-8".to_string())?;
        match tag {
            DT_NEEDED => out.needed.push(name),
            DT_RPATH => out.rpath.push(name),
            _ => out.runpath.push(name),
        }
    }
    Ok(out)
}
