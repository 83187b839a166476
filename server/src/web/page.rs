//! A finished page as a response, a page without the signed-in frame, and
//! errors drawn as pages.

use crate::error::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use maud::html;

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
            (head(title, false))
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

/// A page's head: its title, the style sheet and icon, and (for pages in
/// the signed-in frame) the script.
pub fn head(title: &str, script: bool) -> maud::Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Tideline" }
            link rel="stylesheet" href="/assets/app.css";
            link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
            @if script { script src="/assets/app.js" defer {} }
        }
    }
}
