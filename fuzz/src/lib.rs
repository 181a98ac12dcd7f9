//! The fuzz targets: one function per parser family that the network or the parent instance
//! can feed. Each takes arbitrary bytes, must never panic, and asserts what must hold of
//! whatever the parser accepts (round trips, bounds, printable error text). The AFL binaries
//! (`src/bin/*.rs`) and the replay test (`tests/replay.rs`) call the same functions.

pub mod targets;

/// A target's name (its binary, corpus and regression folder) and its function.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `scripts/fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "attestation",
        run: targets::attestation::run,
    },
    Target {
        name: "encap",
        run: targets::encap::run,
    },
    Target {
        name: "http_head",
        run: targets::http_head::run,
    },
    Target {
        name: "parent_frames",
        run: targets::parent_frames::run,
    },
    Target {
        name: "sealed_blob",
        run: targets::sealed_blob::run,
    },
    Target {
        name: "kms",
        run: targets::kms::run,
    },
    Target {
        name: "eif",
        run: targets::eif::run,
    },
    Target {
        name: "api_json",
        run: targets::api_json::run,
    },
];

/// The first byte chooses what the rest is fed to (a selector the fuzzer mutates like any
/// other byte); empty input selects nothing.
pub fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}
