//! The web interface: server-rendered pages for officers entering boardings
//! on a boat with no network, and for supervisors and analysts reviewing the
//! merged picture at a station or HQ. Pages go through the same record
//! service and the same access rules (`crate::access`) as the JSON API; they
//! are HTML built with maud, plus a little plain JavaScript (geolocation, the
//! sync indicator, the map). Every asset is compiled into the binary: nothing
//! is fetched from the internet.
//!
//! Forms post back to the server, so everything works without JavaScript
//! except taking the position from the device and the map itself. A
//! missing or expired session sends the browser to the sign-in page.
//! Cross-site requests cannot ride on the session: its cookie is
//! `SameSite=Strict`.

mod admin;
mod assets;
mod entry;
mod layout;
mod login;
mod map;
mod records;
mod storable;
mod tablet;

use crate::error::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse, ResponseError};
use maud::html;

pub use layout::Chrome;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/login", web::get().to(login::page))
        .route("/login", web::post().to(login::submit))
        .route("/logout", web::post().to(login::logout))
        .route("/assets/{name}", web::get().to(assets::serve))
        .route("/favicon.ico", web::get().to(assets::favicon))
        .route("/tablet", web::get().to(tablet::page))
        .route("/ca.pem", web::get().to(tablet::ca))
        .route("/records", web::get().to(records::list))
        .route("/records/new", web::get().to(entry::new_page))
        .route("/records/new", web::post().to(entry::create))
        .route("/records/{id}", web::get().to(records::show))
        .route("/records/{id}/edit", web::get().to(entry::edit_page))
        .route("/records/{id}/edit", web::post().to(entry::update))
        .route("/records/{id}/resolve", web::post().to(records::resolve))
        .route("/records/{id}/status", web::post().to(records::status))
        .route("/records/{id}/comment", web::post().to(records::comment))
        .route("/map", web::get().to(map::page_))
        .route("/admin", web::get().to(admin::page_))
        .route("/admin/enroll-code", web::post().to(admin::enroll_code))
        .route(
            "/admin/devices/{id}/revoke",
            web::post().to(admin::revoke_device),
        )
        .route("/admin/users", web::post().to(admin::add_person))
        .route("/admin/users/{name}", web::post().to(admin::change_person))
        .route("/sync-now", web::post().to(layout::sync_now));
}

/// Paths anyone may open: the sign-in page and what it is drawn with.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/login" | "/favicon.ico" | "/tablet" | "/ca.pem")
        || path.starts_with("/assets/")
}

/// Whether a path is a page of the web interface (a browser is sent to the
/// sign-in page without a session, where an API client gets a 401).
pub fn is_page(path: &str) -> bool {
    !(path.starts_with("/api/") || path.starts_with("/sync/v1") || path == "/healthz")
}

/// Whether a path is an entry form (a new record, or editing one): the
/// pages a sign-in after an ended session goes back to.
pub fn is_entry(path: &str) -> bool {
    path == "/records/new"
        || path
            .strip_prefix("/records/")
            .and_then(|rest| rest.strip_suffix("/edit"))
            .is_some_and(|id| !id.contains('/'))
}

/// `/`: the records, or for an admin (who manages people and devices, not
/// records) the administration page.
async fn home(access: crate::access::Access) -> HttpResponse {
    if access.require(crate::access::Action::ReadRecords).is_ok() {
        see_other("/records")
    } else {
        see_other("/admin")
    }
}

/// Redirect after a form post (303: the browser follows with a GET).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_string()))
        .finish()
}

/// An error as a page: the API's error (so the status code is decided in one
/// place) drawn as HTML, without internals for a 500.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.0.status();
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        let body = bare(
            title,
            html! {
                h1 { (title) }
                p role="alert" { (self.0.message()) }
                p { a href="/records" { "Back to the records" } }
            },
        );
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body.into_string())
    }
}

pub type PageResult = Result<HttpResponse, PageError>;

/// A page without the signed-in frame (sign-in, tablet set-up, errors):
/// `main` in a narrow column under `title`.
pub fn bare(title: &str, main: maud::Markup) -> maud::Markup {
    html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tideline" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
            }
            body { main.narrow #main { (main) } }
        }
    }
}

/// A finished page as a response.
pub fn page(markup: maud::Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
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
