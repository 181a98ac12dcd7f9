//! AFL driver of the `sealed_blob` target (see `sigil_fuzz::targets::sealed_blob`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sigil_fuzz::targets::sealed_blob::run(data);
    });
}
