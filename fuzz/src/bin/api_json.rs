//! AFL driver of the `api_json` target (see `sigil_fuzz::targets::api_json`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sigil_fuzz::targets::api_json::run(data);
    });
}
