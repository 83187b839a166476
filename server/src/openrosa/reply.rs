//! OpenRosa replies: the header every reply carries, XML bodies, and the
//! API's errors told as `OpenRosaResponse` messages Collect shows.

use crate::error::ApiError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use tideline_schemas::xform::escape;

/// The header every OpenRosa reply carries.
pub const VERSION_HEADER: (&str, &str) = ("X-OpenRosa-Version", "1.0");
const XML: &str = "text/xml; charset=utf-8";

/// A reply with the OpenRosa header and an XML body.
pub(super) fn reply(status: StatusCode) -> HttpResponseBuilder {
    let mut r = HttpResponse::build(status);
    r.insert_header(VERSION_HEADER)
        .content_type(XML)
        .insert_header(("Cache-Control", "no-store"));
    r
}

/// An `OpenRosaResponse` body with one message; `nature` is what Collect
/// shows it as.
pub(super) fn message(nature: &str, text: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<OpenRosaResponse xmlns=\"http://openrosa.org/http/response\">\
         <message nature=\"{nature}\">{}</message></OpenRosaResponse>\n",
        escape(text)
    )
}

/// An API error told as Collect shows it: the same status, the message as
/// an `OpenRosaResponse`. `basic` asks for a Basic sign-in (root paths over
/// HTTPS only).
#[derive(Debug)]
pub struct OpenRosaError {
    pub error: ApiError,
    pub basic: bool,
}

impl From<ApiError> for OpenRosaError {
    fn from(error: ApiError) -> Self {
        OpenRosaError {
            error,
            basic: false,
        }
    }
}

impl From<actix_web::error::BlockingError> for OpenRosaError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        OpenRosaError::from(ApiError::from(e))
    }
}

impl std::fmt::Display for OpenRosaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for OpenRosaError {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.error.status();
        if status.is_server_error() {
            tracing::error!(
                code = self.error.code(),
                "openrosa request failed: {}",
                self.error
            );
        }
        let mut reply = reply(status);
        if self.basic {
            reply.insert_header((
                actix_web::http::header::WWW_AUTHENTICATE,
                "Basic realm=\"Tideline\", charset=\"UTF-8\"",
            ));
        }
        if let Some(wait) = self.error.details()["retry_after_secs"].as_u64() {
            reply.insert_header((actix_web::http::header::RETRY_AFTER, wait));
        }
        reply.body(message("error", self.error.message()))
    }
}
