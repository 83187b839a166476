//! The one API error type. Every handler returns [`ApiError`]; this module alone
//! decides HTTP status codes and the JSON error body
//! `{"error": <machine code>, "message": <human sentence>, "details": ...}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value as Json};
use std::fmt;
use tideline_sync::RecordsError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Json,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Json::Null,
        }
    }

    pub fn with_details(mut self, details: Json) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// No credentials, or credentials that are not (or no longer) valid.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Log in first: POST /api/v1/login, then send the token as Authorization: Bearer.",
        )
    }

    /// A sync request without a valid device credential.
    pub fn unenrolled() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "not_enrolled",
            "This instance is not enrolled here, or its credential is wrong: enrol it with \
             `tideline enroll --upstream URL --code CODE` using a code from this instance's admin.",
        )
    }

    /// A sync request from a device an admin revoked.
    pub fn revoked(id: uuid::Uuid) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "device_revoked",
            format!(
                "Device {id} was revoked by this instance's admin and may not sync. Its own \
                 records stay on it and usable offline."
            ),
        )
    }

    pub fn bad_credentials(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_credentials", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// A device enrolled for another station than the one it syncs as.
    pub fn wrong_station(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "wrong_station", message)
    }

    /// Too many failed attempts; `retry_after` seconds until the next may succeed.
    pub fn too_many_attempts(retry_after: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "Too many failed attempts; try again in {}.",
                human_wait(retry_after)
            ),
        )
        .with_details(json!({ "retry_after_secs": retry_after }))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// The upstream failed us; not the caller's fault, nor an internal bug.
    pub fn bad_gateway(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, code, message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "That is more than this instance takes at once: the limit is {}.",
                human_size(limit as u64)
            ),
        )
        .with_details(json!({ "limit_bytes": limit }))
    }

    /// One file over the attachment limit, named, in MB.
    pub fn file_too_large(name: &str, size: u64, limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!(
                "{name} is {}; a file may be at most {}.",
                human_size(size),
                human_size(limit as u64)
            ),
        )
        .with_details(json!({ "limit_bytes": limit, "size": size }))
    }

    /// A file (or a submission's XML) that passed `limit` while it was still
    /// arriving, so its whole size is not known.
    pub fn over_limit(what: &str, limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!(
                "{what} is larger than {limit}; a file may be at most {limit}.",
                limit = human_size(limit as u64)
            ),
        )
        .with_details(json!({ "limit_bytes": limit }))
    }

    /// A file whose content is not an accepted type.
    pub fn unsupported_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_file_type",
            message,
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
        )
    }

    /// A failure that is ours, not the caller's: logged in full, reported without internals.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on this instance; the error has been logged.",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine code (`invalid_record`, `not_found`...).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The sentence for people; never internals (see [`ApiError::internal`]).
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn details(&self) -> &Json {
        &self.details
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.details.get("retry_after_secs") {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(json!({
            "error": self.code,
            "message": self.message,
            "details": self.details,
        }))
    }
}

impl From<RecordsError> for ApiError {
    fn from(e: RecordsError) -> Self {
        match e {
            RecordsError::UnknownForm(form) => {
                ApiError::unprocessable("unknown_form", format!("There is no form called {form:?}."))
                    .with_details(json!([{ "path": "form", "message": "unknown form" }]))
            }
            RecordsError::UnknownFormVersion { .. } => {
                ApiError::unprocessable("unknown_form_version", e.to_string())
            }
            RecordsError::NotFound(id) => {
                ApiError::not_found("not_found", format!("No record with id {id}."))
            }
            RecordsError::Invalid(violations) => ApiError::unprocessable(
                "invalid_fields",
                format!(
                    "{} field(s) have invalid values; nothing was saved.",
                    violations.len()
                ),
            )
            .with_details(json!(violations)),
            RecordsError::Incomplete { status, violations } => ApiError::unprocessable(
                "incomplete",
                format!(
                    "The record cannot be {status} until every problem is fixed ({} left); nothing was saved.",
                    violations.len()
                ),
            )
            .with_details(json!(violations)),
            RecordsError::Exists(id) => {
                ApiError::conflict("record_exists", format!("Record {id} already exists."))
            }
            RecordsError::Forbidden(id) => {
                ApiError::forbidden(format!("Record {id} is outside your scope."))
            }
            RecordsError::InvalidForm(message) => ApiError::unprocessable(
                "invalid_form",
                format!("The form cannot be published: {message}. Nothing was published."),
            ),
            RecordsError::FormVersionTaken { .. } | RecordsError::FormVersionOld { .. } => {
                ApiError::conflict("form_version_taken", format!("{e}; nothing was published."))
            }
            RecordsError::NoConflict(path) => ApiError::conflict(
                "no_conflict",
                format!("There is no conflict at {path:?} (it may already be resolved)."),
            ),
            RecordsError::Transition { from, to } => ApiError::conflict(
                "invalid_transition",
                format!("A {from} record cannot be moved to {to}."),
            )
            .with_details(json!([{ "path": "status", "message": "transition not allowed" }])),
            RecordsError::Store(_) => ApiError::internal(e),
            RecordsError::Document(_) => ApiError::internal(e),
        }
    }
}

/// A refused value, with the one field it came from.
fn invalid(code: &'static str, path: &str, e: &impl fmt::Display) -> ApiError {
    ApiError::unprocessable(code, e.to_string())
        .with_details(json!([{ "path": path, "message": e.to_string() }]))
}

impl From<crate::auth::users::UserError> for ApiError {
    fn from(e: crate::auth::users::UserError) -> Self {
        use crate::auth::users::UserError as E;
        match e {
            E::BadRole(_) => invalid("invalid_user", "role", &e),
            E::BadName(_) => invalid("invalid_user", "username", &e),
            E::WeakPassword | E::LongPassword => invalid("invalid_user", "password", &e),
            E::BadStation(_) => invalid("invalid_user", "station", &e),
            E::Exists(_) => ApiError::conflict("user_exists", e.to_string()),
            E::Store(_) | E::Hash(_) => ApiError::internal(e),
        }
    }
}

impl From<crate::auth::stations::StationError> for ApiError {
    fn from(e: crate::auth::stations::StationError) -> Self {
        use crate::auth::stations::StationError as E;
        match e {
            E::Exists(_) => ApiError::conflict("station_exists", e.to_string()),
            E::Store(_) => ApiError::internal(e),
            E::Code(_) | E::BadText | E::Unknown(_) => invalid("invalid_station", "station", &e),
        }
    }
}

impl From<crate::auth::devices::DeviceError> for ApiError {
    fn from(e: crate::auth::devices::DeviceError) -> Self {
        use crate::auth::devices::DeviceError as E;
        match e {
            E::BadCode | E::Revoked(_) => ApiError::bad_credentials(e.to_string()),
            E::WrongStation { .. } => ApiError::conflict("wrong_station", e.to_string()),
            E::BadKind(_) => invalid("invalid_enrollment", "kind", &e),
            E::BadKey => invalid("invalid_enrollment", "public_key", &e),
            E::BadName => invalid("invalid_enrollment", "name", &e),
            E::Unknown(_) => ApiError::not_found("not_found", format!("{}.", capitalised(&e))),
            E::Store(_) => ApiError::internal(e),
        }
    }
}

impl From<crate::export::ExportError> for ApiError {
    fn from(e: crate::export::ExportError) -> Self {
        match e {
            crate::export::ExportError::UnknownTable(_) => {
                ApiError::bad_request("unknown_table", e.to_string())
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<tideline_sync::blobs::BlobError> for ApiError {
    fn from(e: tideline_sync::blobs::BlobError) -> Self {
        use tideline_sync::blobs::BlobError as E;
        match e {
            E::Offset { offset, held } => ApiError::conflict(
                "offset_mismatch",
                format!("The upload continues at byte {held}, not {offset}."),
            )
            .with_details(json!({ "held": held })),
            E::Mismatch(_) => ApiError::unprocessable("hash_mismatch", e.to_string()),
            E::TooLarge(_) | E::Io(_) => ApiError::internal(e),
        }
    }
}

impl From<crate::uploads::UploadError> for ApiError {
    fn from(e: crate::uploads::UploadError) -> Self {
        use crate::uploads::UploadError as E;
        match e {
            E::NotFound(_) => ApiError::not_found("no_upload", format!("{}.", capitalised(&e))),
            E::Offset { held, .. } => {
                ApiError::conflict("offset_mismatch", format!("{}.", capitalised(&e)))
                    .with_details(json!({ "held": held }))
            }
            E::PastEnd { .. } => ApiError::bad_request("past_end", format!("{}.", capitalised(&e))),
            E::Io(_) => ApiError::internal(e),
        }
    }
}

fn capitalised(e: &impl fmt::Display) -> String {
    let s = e.to_string();
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => s,
    }
}

impl From<crate::xlsform::ImportFailure> for ApiError {
    fn from(e: crate::xlsform::ImportFailure) -> Self {
        use tideline_schemas::xlsform::ImportError;
        match e {
            crate::xlsform::ImportFailure::Publish(e) => e.into(),
            crate::xlsform::ImportFailure::Workbook(ImportError::TooLarge { max }) => {
                ApiError::too_large(max)
            }
            crate::xlsform::ImportFailure::Workbook(e) => {
                ApiError::unprocessable("invalid_xlsform", e.to_string())
            }
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::internal(e)
    }
}

/// Map actix's JSON extractor failures onto the API's error body.
pub fn json_error(err: actix_web::error::JsonPayloadError, limit: usize) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::Overflow { .. } | E::OverflowKnownLength { .. } => ApiError::too_large(limit),
        E::ContentType => ApiError::unsupported_media_type(),
        E::Deserialize(e) if e.is_data() => ApiError::bad_request(
            "invalid_request",
            format!("The request body does not have the expected shape: {e}."),
        ),
        E::Deserialize(e) => ApiError::bad_request(
            "malformed_json",
            format!("The request body is not valid JSON: {e}."),
        ),
        other => ApiError::bad_request(
            "bad_body",
            format!("The request body could not be read: {other}."),
        ),
    }
}

/// Map query-string failures onto the API's error body.
pub fn query_error(err: actix_web::error::QueryPayloadError) -> ApiError {
    ApiError::bad_request(
        "invalid_query",
        format!("The query string is not valid: {err}."),
    )
}

/// A size as people read it: `25 MB` (MiB, as the limits are set), `1.5 MB`,
/// `300 KB` below one.
pub fn human_size(bytes: u64) -> String {
    const MB: u64 = 1024 * 1024;
    if bytes >= MB {
        let tenths = (bytes * 10 + MB / 2) / MB;
        match tenths % 10 {
            0 => format!("{} MB", tenths / 10),
            t => format!("{}.{t} MB", tenths / 10),
        }
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

/// A wait as people read it: `15 minutes`, `1 minute`, `40 seconds`.
pub fn human_wait(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} second{}", if secs == 1 { "" } else { "s" }),
        _ => {
            let minutes = secs.div_ceil(60);
            format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_in_megabytes_and_minutes() {
        assert_eq!(human_size(25 * 1024 * 1024), "25 MB");
        assert_eq!(human_size(1024 * 1024 + 512 * 1024), "1.5 MB");
        assert_eq!(human_size(300 * 1024), "300 KB");
        assert_eq!(human_wait(899), "15 minutes");
        assert_eq!(human_wait(60), "1 minute");
        assert_eq!(human_wait(1), "1 second");
        assert_eq!(human_wait(40), "40 seconds");
    }
}
