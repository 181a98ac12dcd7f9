//! The one pipeline of every endpoint: how a request becomes a typed call and its answer (or
//! error) becomes a response. Handlers never see bytes, HPKE or HTTP statuses.

use sigil_protocol::api::{ENCAPSULATED_CONTENT_TYPE, ErrorBody};
use sigil_protocol::encap::ResponseSealer;
use sigil_protocol::endpoint::Endpoint;
use sigil_protocol::error::{ApiError, Code};
use zeroize::Zeroizing;

use super::App;
use crate::http::{Request, Response};

/// An encapsulated endpoint: content type, open the request under the endpoint's route,
/// check that the sealed state is there if the endpoint needs it (from the endpoint table),
/// decode its JSON, handle it, and seal the answer back. Once the request is open every
/// answer, errors included, is sealed to the requester: what failed is nobody else's
/// business, and the relaying parent cannot substitute its own answer.
pub(super) fn sealed<E: Endpoint>(
    app: &App,
    req: &Request,
    handle: impl FnOnce(E::Request) -> Result<E::Response, ApiError>,
) -> Response {
    if let Err(r) = require_encapsulated(req) {
        return r;
    }
    let (plain, sealer) = match app.key.open_request(E::ROUTE, &req.body, E::MAX_BODY) {
        Ok(v) => v,
        Err(e) => return error(ApiError::from(e)),
    };
    if E::NEEDS_SEALED_STATE
        && let Err(e) = app.sealing.ready()
    {
        drop(Zeroizing::new(plain));
        let e = ApiError::from(e);
        let status = e.status;
        let body = serde_json::to_vec(&ErrorBody::from(e)).unwrap_or_default();
        return seal(sealer, E::ROUTE, status, &body);
    }
    // The plaintext may hold secrets (a vault value, an imported key, a witness): wiped
    // once decoded. Handlers wipe the secret fields they take out of the request.
    let plain = Zeroizing::new(plain);
    let request = serde_json::from_slice::<E::Request>(&plain).map_err(|e| {
        ApiError::new(
            Code::MalformedJson,
            format!("encapsulated body is not a {} request: {e}", E::ROUTE),
        )
    });
    drop(plain);
    // Answers may hold secrets (a vault value): encoded without leaving copies behind.
    let answer = request.and_then(handle).and_then(|r| {
        sigil_protocol::wire::to_json_secret(&r)
            .map_err(|_| ApiError::new(Code::InternalError, "answer could not be encoded"))
    });
    match answer {
        Ok(json) => seal(sealer, E::ROUTE, E::SUCCESS, &json),
        Err(e) => {
            let status = e.status;
            let body = serde_json::to_vec(&ErrorBody::from(e)).unwrap_or_default();
            seal(sealer, E::ROUTE, status, &body)
        }
    }
}

/// A plain (not encapsulated) endpoint: its JSON answer or its error.
pub(super) fn plain<E: Endpoint>(answer: Result<E::Response, ApiError>) -> Response {
    match answer {
        Ok(r) => Response::json(E::SUCCESS, &r),
        Err(e) => error(e),
    }
}

/// An error answered in the clear (before a request is open, or on a plain endpoint).
pub(super) fn error(e: ApiError) -> Response {
    Response::error(e.status, e.code.as_str(), e.message)
}

/// Seals an answer with its status inside the AEAD. The HTTP status is always 200: the
/// outcome is the requester's business, and a relaying parent can neither read it off the
/// status line nor change it (threat: a parent that flips success and failure).
fn seal(sealer: ResponseSealer, route: &str, status: u16, plain: &[u8]) -> Response {
    match sealer.seal(route, status, plain) {
        Ok(body) => Response {
            status: 200,
            content_type: ENCAPSULATED_CONTENT_TYPE,
            body,
            allow: None,
        },
        Err(e) => error(ApiError::from(e).with_status(500)),
    }
}

fn require_encapsulated(req: &Request) -> Result<(), Response> {
    let ct = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct != ENCAPSULATED_CONTENT_TYPE {
        return Err(error(ApiError::new(
            Code::UnsupportedMediaType,
            format!(
                "this endpoint takes {ENCAPSULATED_CONTENT_TYPE} bodies sealed to the attested key"
            ),
        )));
    }
    Ok(())
}
