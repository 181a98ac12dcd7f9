//! `POST /v1/ping`: an encapsulated echo, so a client can check the whole sealed path (its
//! request opened by the attested key, the answer sealed back) before it sends anything that
//! matters.

use std::time::{SystemTime, UNIX_EPOCH};

use sigil_protocol::api::{PingRequest, PingResponse};
use sigil_protocol::error::{ApiError, Code};

/// Longest message the ping echoes.
pub const MAX_PING_MESSAGE: usize = 4096;

pub(super) fn ping(ping: PingRequest) -> Result<PingResponse, ApiError> {
    if ping.message.len() > MAX_PING_MESSAGE {
        return Err(ApiError::new(
            Code::MessageTooLong,
            format!("ping message exceeds {MAX_PING_MESSAGE} bytes"),
        ));
    }
    Ok(PingResponse {
        message: ping.message,
        enclave_time_ms: now_ms(),
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
