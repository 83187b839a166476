//! Parsing what a request carries, at the edge: ids from the path, and
//! bodies read whole within a limit.

use crate::error::ApiError;
use serde::Deserialize;
use tideline_schemas::RecordId;

/// Parse a record id from the path, refusing anything that is not a UUID.
pub(crate) fn record_id(raw: &str) -> Result<RecordId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_id",
            format!("{raw:?} is not a valid record id (a UUID)."),
        )
    })
}

/// Read a body (a sync message, a chunk, a file: `what`) up to `limit`
/// bytes, refusing rather than buffering anything larger; only a body that
/// arrived whole is returned.
pub(crate) async fn read_limited(
    payload: actix_web::web::Payload,
    limit: usize,
    what: &str,
) -> Result<actix_web::web::Bytes, ApiError> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(ApiError::bad_request(
            "bad_body",
            format!("The {what} could not be read: {e}."),
        )),
        Err(_) => Err(ApiError::too_large(limit)),
    }
}

/// Whether the body is `multipart/form-data` (a file upload).
pub(crate) fn is_multipart(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"))
}

/// `?offset=N`: where an appended chunk goes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OffsetQuery {
    pub offset: u64,
}
