//! Parsing what a path carries, at the edge, into domain types.

use crate::error::ApiError;
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
