//! Every JSON request type of the endpoint table (what an anonymous client sends inside an
//! encapsulated body, or in a URL), and every response type (what the client reads; errors
//! and plain endpoints are not sealed). The selector byte picks the endpoint and the side.

use sigil_protocol::endpoint::{ENDPOINTS, Endpoint, EndpointVisitor, for_each_endpoint};

/// The selector for `endpoint`'s request (`response`: its response).
pub fn selector(endpoint: usize, response: bool) -> u8 {
    u8::try_from(endpoint * 2 + usize::from(response)).expect("fewer than 128 endpoints")
}

pub fn run(data: &[u8]) {
    if let Some((selector, json)) = crate::split_selector(data) {
        decodes(selector, json);
    }
}

/// Decodes `json` as the type `selector` picks (and checks the round trip); whether it
/// decoded.
pub fn decodes(selector: u8, json: &[u8]) -> bool {
    let pick = usize::from(selector) % (2 * ENDPOINTS.len());
    let mut d = Decode {
        index: 0,
        want: pick / 2,
        response: pick % 2 == 1,
        json,
        decoded: false,
    };
    for_each_endpoint(&mut d);
    d.decoded
}

struct Decode<'a> {
    index: usize,
    want: usize,
    response: bool,
    json: &'a [u8],
    decoded: bool,
}

impl EndpointVisitor for Decode<'_> {
    fn visit<E: Endpoint>(&mut self) {
        if self.index == self.want {
            self.decoded = if self.response {
                round_trip::<E::Response>(self.json)
            } else {
                round_trip::<E::Request>(self.json)
            };
        }
        self.index += 1;
    }
}

/// Whatever decodes re-encodes to JSON that decodes again (what the client sends and what the
/// enclave accepts are the same language).
fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(json: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<T>(json) else {
        return false;
    };
    let again = serde_json::to_vec(&v).expect("a decoded value encodes");
    if let Err(e) = serde_json::from_slice::<T>(&again) {
        panic!("re-encoded value does not decode: {e}");
    }
    true
}
