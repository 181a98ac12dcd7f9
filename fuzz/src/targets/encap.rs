//! Encapsulated bodies: a request as the enclave opens it (anyone on the network sends one),
//! and a response as the client opens it (the relaying parent can rewrite it).

use sigil_protocol::encap::{
    self, MAX_ENCAPSULATED_RESPONSE, REQUEST_OVERHEAD, RESPONSE_OVERHEAD, ServerKey,
};
use sigil_protocol::endpoint::ENDPOINTS;

/// The fixed seed of the fuzzing server key; `make-seeds` seals its requests to it.
pub const SERVER_SEED: [u8; 32] = [0x5e; 32];

pub fn server_key() -> ServerKey {
    ServerKey::from_seed(&SERVER_SEED).expect("a 32-byte seed is valid")
}

/// The route the selector byte names: bit 0 picks request or response, the rest an endpoint.
pub fn route(selector: u8) -> &'static str {
    endpoint(selector).route
}

fn endpoint(selector: u8) -> &'static sigil_protocol::endpoint::EndpointInfo {
    &ENDPOINTS[usize::from(selector >> 1) % ENDPOINTS.len()]
}

pub fn run(data: &[u8]) {
    let Some((selector, body)) = crate::split_selector(data) else {
        return;
    };
    let route = route(selector);
    if selector & 1 == 0 {
        let key = server_key();
        let limit = endpoint(selector).max_body;
        if let Ok((plain, sealer)) = key.open_request(route, body, limit) {
            assert!(
                body.len() <= limit,
                "a body over the route's limit was opened"
            );
            assert_eq!(plain.len() + REQUEST_OVERHEAD, body.len());
            if plain.len() + RESPONSE_OVERHEAD <= MAX_ENCAPSULATED_RESPONSE {
                sealer
                    .seal(route, 200, &plain)
                    .expect("the answer to an opened request can be sealed");
            }
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
