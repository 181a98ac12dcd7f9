//! AFL driver of the `http_head` target (see `sigil_fuzz::targets::http_head`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sigil_fuzz::targets::http_head::run(data);
    });
}
