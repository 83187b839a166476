//! Addresses in the web interface: a query value percent-encoded, and the
//! See Other answer that sends a browser on after a form post (also used by
//! the sign-in redirect in `access.rs`).

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
