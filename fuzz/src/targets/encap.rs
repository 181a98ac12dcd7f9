//! Encapsulated bodies: a request as the enclave opens it (anyone on the network sends one),
//! and a response as the client opens it (the relaying parent can rewrite it).

use sigil_protocol::encap::{self, REQUEST_OVERHEAD, ServerKey};
use sigil_protocol::endpoint::ENDPOINTS;

/// The fixed seed of the fuzzing server key; `make-seeds` seals its requests to it.
pub const SERVER_SEED: [u8; 32] = [0x5e; 32];

pub fn server_key() -> ServerKey {
    ServerKey::from_seed(&SERVER_SEED).expect("a 32-byte seed is valid")
}

/// The route the selector byte names: bit 0 picks request or response, the rest an endpoint.
pub fn route(selector: u8) -> &'static str {
    ENDPOINTS[usize::from(selector >> 1) % ENDPOINTS.len()].route
}

pub fn run(data: &[u8]) {
    let Some((selector, body)) = crate::split_selector(data) else {
        return;
    };
    let route = route(selector);
    if selector & 1 == 0 {
        let key = server_key();
        if let Ok((plain, sealer)) = key.open_request(route, body) {
            assert_eq!(plain.len() + REQUEST_OVERHEAD, body.len());
            sealer
                .seal(route, &plain)
                .expect("the answer to an opened request can be sealed");
        }
    } else {
        // A response to a request this client really sent: without the request's secret no
        // body may open (the parent must not be able to forge an answer).
        let (_, opener) = encap::seal_request(&server_key().public_key(), route, b"{}")
            .expect("sealing a small request");
        assert!(
            opener.open(route, body).is_err(),
            "a response nobody sealed was accepted"
        );
    }
}
