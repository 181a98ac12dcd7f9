//! AFL driver of the `eif` target (see `sigil_fuzz::targets::eif`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sigil_fuzz::targets::eif::run(data);
    });
}
