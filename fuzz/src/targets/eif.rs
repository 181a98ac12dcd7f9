//! Enclave image files as the EIF tools read them (an image handed to `sigil-eif describe`
//! or `pcrs` may come from anywhere).

use sigil_eif::eif::parse_eif;

pub fn run(data: &[u8]) {
    let Ok(eif) = parse_eif(data) else {
        return;
    };
    assert_eq!(eif.total_size(), data.len() as u64);
    let _ = eif.pcrs();
    if let Ok(d) = eif.describe() {
        let _ = serde_json::to_string(&d);
    }
}
