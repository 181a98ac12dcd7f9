//! AFL driver of the `parent_frames` target (see `sigil_fuzz::targets::parent_frames`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sigil_fuzz::targets::parent_frames::run(data);
    });
}
