//! AFL driver of the `encap` target (see `sigil_fuzz::targets::encap`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sigil_fuzz::targets::encap::run(data);
    });
}
