//! AFL driver of the `attestation` target (see `sigil_fuzz::targets::attestation`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sigil_fuzz::targets::attestation::run(data);
    });
}
