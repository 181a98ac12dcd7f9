#![doc = include_str!("../README.md")]

pub mod cpio;
pub mod eif;
pub mod pcr;

pub use cpio::{CpioError, Entry, gzip, write_newc};
pub use eif::{
    Description, Eif, EifBuilder, EifError, Header, ImageMetadata, Section, SectionKind, build_eif,
    default_metadata, parse_eif,
};
pub use pcr::{Pcrs, compute};
