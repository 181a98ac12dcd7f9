//! AFL driver of the `kms` target (see `sigil_fuzz::targets::kms`).

fn main() {
    // Parsed once, before the fork server starts, not once per forked child.
    let _ = sigil_fuzz::targets::kms::recipient_key();
    afl::fuzz!(|data: &[u8]| {
        sigil_fuzz::targets::kms::run(data);
    });
}
