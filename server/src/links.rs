//! Addresses in the web interface: a query value percent-encoded, the
//! See Other answer that sends a browser on after a form post (also used by
//! the sign-in redirect in `access.rs`), and this instance's own address as
//! a client reached it.

use actix_web::http::header;
use actix_web::HttpResponse;

/// Redirect after a form post (303: the browser follows with a GET).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

/// Percent-encode a query-string value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The address the client reached this instance at (`https://host:port`),
/// for links it is given to use: enrolment commands, phone URLs.
pub fn origin(req: &actix_web::HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}
