//! Deterministic initramfs archives: cpio "newc" (SVR4, no CRC) as the Linux kernel unpacks
//! it, plus a fixed-parameter gzip.
//!
//! Everything that usually leaks the build host into an archive is fixed: entries are sorted
//! by path, mtime/uid/gid/dev are 0, inode numbers count from 1 in sorted order, and every
//! mode is given explicitly. The same entries therefore give the same bytes in any order.
//!
//! Parent directories are not created implicitly: a later ramdisk may add files to a
//! directory an earlier one created, and the kernel unpacks all of them into one rootfs.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::io::Write;

/// Longest path accepted (Linux PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;
/// newc stores the file size in 8 hex digits.
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
/// Permission and set-id/sticky bits; the file type bits are the writer's job.
const PERM_MASK: u32 = 0o7777;

/// One archive member. Paths are relative to the archive root; a leading `/` is stripped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    CharDev {
        path: String,
        mode: u32,
        major: u32,
        minor: u32,
    },
    /// Mode is always 0777, as for symlinks everywhere on Linux.
    Symlink {
        path: String,
        target: String,
    },
}

impl Entry {
    pub fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. }
            | Entry::File { path, .. }
            | Entry::CharDev { path, .. }
            | Entry::Symlink { path, .. } => path,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// Empty after stripping the leading `/`.
    EmptyPath,
    PathTooLong {
        path: String,
        len: usize,
    },
    /// `..`, `.`, an empty component (`a//b`, trailing `/`), a NUL byte, or the trailer name.
    BadPath {
        path: String,
        reason: &'static str,
    },
    Duplicate {
        path: String,
    },
    /// Only permission bits (0..=0o7777) may be given.
    BadMode {
        path: String,
        mode: u32,
    },
    FileTooLarge {
        path: String,
        size: u64,
    },
    BadSymlinkTarget {
        path: String,
        reason: &'static str,
    },
    TooManyEntries {
        count: usize,
    },
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpioError::EmptyPath => write!(f, "cpio: empty path"),
            CpioError::PathTooLong { path, len } => write!(
                f,
                "cpio: path is {len} bytes, over the {MAX_PATH_LEN}-byte limit: {}...",
                truncate(path)
            ),
            CpioError::BadPath { path, reason } => {
                write!(f, "cpio: bad path {:?}: {reason}", truncate(path))
            }
            CpioError::Duplicate { path } => write!(f, "cpio: duplicate path {path:?}"),
            CpioError::BadMode { path, mode } => write!(
                f,
                "cpio: mode {mode:#o} for {path:?} is not a permission mode (0..=0o7777)"
            ),
            CpioError::FileTooLarge { path, size } => write!(
                f,
                "cpio: {path:?} is {size} bytes, newc allows at most {MAX_FILE_SIZE}"
            ),
            CpioError::BadSymlinkTarget { path, reason } => {
                write!(f, "cpio: bad symlink target for {path:?}: {reason}")
            }
            CpioError::TooManyEntries { count } => {
                write!(f, "cpio: {count} entries do not fit 32-bit inode numbers")
            }
        }
    }
}

impl std::error::Error for CpioError {}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Strips a leading `/` and rejects anything that could escape or confuse the unpacker.
fn normalize(path: &str) -> Result<&str, CpioError> {
    let p = path.strip_prefix('/').unwrap_or(path);
    if p.is_empty() {
        return Err(CpioError::EmptyPath);
    }
    if p.len() > MAX_PATH_LEN {
        return Err(CpioError::PathTooLong {
            path: p.to_string(),
            len: p.len(),
        });
    }
    let bad = |reason| {
        Err(CpioError::BadPath {
            path: p.to_string(),
            reason,
        })
    };
    if p.contains('\0') {
        return bad("contains a NUL byte");
    }
    if p == TRAILER {
        return bad("is the archive trailer's name");
    }
    for c in p.split('/') {
        match c {
            "" => return bad("empty component (doubled or trailing '/')"),
            "." => return bad("'.' component"),
            ".." => return bad("'..' component"),
            _ => {}
        }
    }
    Ok(p)
}

/// Orders by path component so a directory comes right before its own subtree.
fn path_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

struct Prepared<'a> {
    path: &'a str,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: &'a [u8],
}

fn prepare(e: &Entry) -> Result<Prepared<'_>, CpioError> {
    let path = normalize(e.path())?;
    let check_mode = |mode: u32| {
        if mode & !PERM_MASK != 0 {
            Err(CpioError::BadMode {
                path: path.to_string(),
                mode,
            })
        } else {
            Ok(mode)
        }
    };
    Ok(match e {
        Entry::Dir { mode, .. } => Prepared {
            path,
            mode: S_IFDIR | check_mode(*mode)?,
            nlink: 2,
            rdev: (0, 0),
            data: &[],
        },
        Entry::File { mode, data, .. } => {
            if data.len() as u64 > MAX_FILE_SIZE {
                return Err(CpioError::FileTooLarge {
                    path: path.to_string(),
                    size: data.len() as u64,
                });
            }
            Prepared {
                path,
                mode: S_IFREG | check_mode(*mode)?,
                nlink: 1,
                rdev: (0, 0),
                data,
            }
        }
        Entry::CharDev {
            mode, major, minor, ..
        } => Prepared {
            path,
            mode: S_IFCHR | check_mode(*mode)?,
            nlink: 1,
            rdev: (*major, *minor),
            data: &[],
        },
        Entry::Symlink { target, .. } => {
            let bad = |reason| {
                Err(CpioError::BadSymlinkTarget {
                    path: path.to_string(),
                    reason,
                })
            };
            if target.is_empty() {
                return bad("empty");
            }
            if target.len() > MAX_PATH_LEN {
                return bad("longer than 4096 bytes");
            }
            if target.contains('\0') {
                return bad("contains a NUL byte");
            }
            Prepared {
                path,
                mode: S_IFLNK | 0o777,
                nlink: 1,
                rdev: (0, 0),
                data: target.as_bytes(),
            }
        }
    })
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Header fields after the magic, in newc order.
struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    filesize: u32,
    rdev: (u32, u32),
    namesize: u32,
}

fn write_record(out: &mut Vec<u8>, h: &Header, name: &str, data: &[u8]) {
    out.extend_from_slice(MAGIC.as_bytes());
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    let fields = [
        h.ino, h.mode, 0, 0, h.nlink, 0, h.filesize, 0, 0, h.rdev.0, h.rdev.1, h.namesize, 0,
    ];
    for v in fields {
        out.extend_from_slice(format!("{v:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// Writes `entries` as a deterministic newc archive (see the module docs).
pub fn write_newc(entries: &[Entry]) -> Result<Vec<u8>, CpioError> {
    // Inode 0 is the trailer's, so real entries need count+1 numbers.
    if entries.len() >= u32::MAX as usize {
        return Err(CpioError::TooManyEntries {
            count: entries.len(),
        });
    }
    let mut prepared = entries.iter().map(prepare).collect::<Result<Vec<_>, _>>()?;
    prepared.sort_by(|a, b| path_order(a.path, b.path));
    let mut seen = HashSet::with_capacity(prepared.len());
    for p in &prepared {
        if !seen.insert(p.path) {
            return Err(CpioError::Duplicate {
                path: p.path.to_string(),
            });
        }
    }

    let mut out = Vec::new();
    for (i, p) in prepared.iter().enumerate() {
        // Lengths were bounded in prepare(); the casts cannot truncate.
        let h = Header {
            ino: i as u32 + 1,
            mode: p.mode,
            nlink: p.nlink,
            filesize: p.data.len() as u32,
            rdev: p.rdev,
            namesize: p.path.len() as u32 + 1,
        };
        write_record(&mut out, &h, p.path, p.data);
    }
    let trailer = Header {
        ino: 0,
        mode: 0,
        nlink: 1,
        filesize: 0,
        rdev: (0, 0),
        namesize: TRAILER.len() as u32 + 1,
    };
    write_record(&mut out, &trailer, TRAILER, &[]);
    Ok(out)
}

/// gzip with every header field fixed (mtime 0, no name, OS = Unix) at level 9, so equal
/// input gives equal output for a given locked flate2/miniz_oxide.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(Vec::new(), flate2::Compression::new(9));
    // Writing into a Vec cannot fail.
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(p: &str) -> Entry {
        Entry::Dir {
            path: p.into(),
            mode: 0o755,
        }
    }

    #[test]
    fn layout_of_one_file() {
        let out = write_newc(&[Entry::File {
            path: "/init".into(),
            mode: 0o755,
            data: b"hello".to_vec(),
        }])
        .unwrap();
        let hdr = std::str::from_utf8(&out[..110]).unwrap();
        assert_eq!(
            hdr,
            "070701\
             00000001000081ED000000000000000000000001000000000000000500000000\
             00000000000000000000000000000005\
             00000000"
        );
        // 110 + "init\0" = 115 -> padded to 116, then 5 data bytes padded to 8.
        assert_eq!(&out[110..116], b"init\0\0");
        assert_eq!(&out[116..124], b"hello\0\0\0");
        assert_eq!(&out[124..130], b"070701");
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(11).any(|w| w == b"TRAILER!!!\0"));
    }

    #[test]
    fn order_is_by_component() {
        let a = write_newc(&[dir("a-b"), dir("a/b"), dir("a")]).unwrap();
        let pos = |n: &[u8]| a.windows(n.len()).position(|w| w == n).unwrap();
        assert!(pos(b"a\0") < pos(b"a/b\0"));
        assert!(pos(b"a/b\0") < pos(b"a-b\0"));
    }

    #[test]
    fn rejects_bad_paths_and_modes() {
        let bad = [
            dir(""),
            dir("/"),
            dir("a/../b"),
            dir(".."),
            dir("./a"),
            dir("a//b"),
            dir("a/"),
            dir("TRAILER!!!"),
            dir(&"x".repeat(MAX_PATH_LEN + 1)),
            Entry::Dir {
                path: "d".into(),
                mode: 0o40755,
            },
            Entry::Symlink {
                path: "l".into(),
                target: String::new(),
            },
        ];
        for e in bad {
            assert!(write_newc(std::slice::from_ref(&e)).is_err(), "{e:?}");
        }
        assert_eq!(
            write_newc(&[dir("/a"), dir("a")]),
            Err(CpioError::Duplicate { path: "a".into() })
        );
        assert!(write_newc(&[dir(&"x".repeat(MAX_PATH_LEN))]).is_ok());
    }
}
