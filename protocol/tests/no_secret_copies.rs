//! No freed heap block may still hold a secret: a global allocator that looks, in every block
//! it frees, for a marker planted in a secret value, while the API's JSON encoding runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sigil_protocol::vault::Entry;
use sigil_protocol::wire::{Hex, SecretBase64, to_json_secret};

/// 16 bytes whose base64 (`c2lnaWwtc2VjcmV0LW1hcmtlci0...`) and raw form are both searched.
const MARKER: &[u8] = b"sigil-secret-marker-";

struct Scanning;

static WATCH: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);

fn holds(block: &[u8], needle: &[u8]) -> bool {
    block.windows(needle.len()).any(|w| w == needle)
}

// SAFETY: every call is forwarded to the system allocator unchanged; `dealloc` only reads the
// block it is handed (still owned by it) before forwarding.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCH.load(Ordering::Relaxed) {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes until System frees it.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if holds(block, b"c2lnaWwtc2VjcmV0LW1hcmtlci") || holds(block, MARKER) {
                FOUND.fetch_add(1, Ordering::Relaxed);
            }
        }
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Scanning = Scanning;

fn secret_entry() -> Entry {
    // A large value, so the JSON outgrows its first buffers several times.
    let value: Vec<u8> = MARKER.iter().copied().cycle().take(200_000).collect();
    Entry {
        name: "wallet".into(),
        value: SecretBase64::copy_of(&value),
        owner: Hex([7; 32]),
        version: 3,
    }
}

/// Copies found in blocks freed while `f` runs (one watcher at a time: this file has one test).
fn copies_freed_during(f: impl FnOnce()) -> usize {
    FOUND.store(0, Ordering::Relaxed);
    WATCH.store(true, Ordering::Relaxed);
    f();
    WATCH.store(false, Ordering::Relaxed);
    FOUND.load(Ordering::Relaxed)
}

#[test]
fn encoding_an_answer_with_a_secret_leaves_no_copy_in_freed_memory() {
    let entry = secret_entry();
    // The scan sees what plain `serde_json::to_vec` leaves behind (so a zero below is not for
    // want of looking).
    let plain = copies_freed_during(|| {
        let json = serde_json::to_vec(&entry).unwrap();
        assert!(holds(&json, b"c2lnaWwtc2VjcmV0LW1hcmtlci"));
        std::mem::forget(json);
    });
    assert!(
        plain > 0,
        "the scan found no copy left by serde_json::to_vec"
    );
    let mut encoded = None;
    let ours = copies_freed_during(|| encoded = Some(to_json_secret(&entry).unwrap()));
    assert!(holds(
        encoded.as_ref().unwrap(),
        b"c2lnaWwtc2VjcmV0LW1hcmtlci"
    ));
    assert_eq!(ours, 0, "freed blocks still held the secret");
    // And the result wipes itself.
    let secret_in_result = copies_freed_during(|| drop(encoded.take()));
    assert_eq!(secret_in_result, 0);
}
