//! Signing in and out of the web interface. The checks, throttling and audit
//! are the API's own (`routes::auth::sign_in`); this only draws the page and
//! keeps the session in its cookie.

use super::page::PageResult;
use crate::access::Access;
use crate::links::see_other;
use crate::routes::auth::{session_cookie, sign_in, sign_out};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    /// Set when a form was posted after the session had ended.
    expired: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

/// Only a path of this instance: never send someone elsewhere after sign-in.
///
/// Browsers drop tabs and newlines anywhere in a URL and read `\` as `/`, so
/// `/\host` and `/<TAB>/host` both mean `//host`: another site. A `next` is
/// taken only when it is, as sent and once percent-decoded, a path that
/// starts with exactly one `/` and holds no backslash and no control
/// character; anything else signs in to the start page.
fn safe_next(next: Option<&str>) -> String {
    fn local_path(p: &str) -> bool {
        p.starts_with('/')
            && !p.starts_with("//")
            && !p.contains('\\')
            && !p.chars().any(char::is_control)
    }
    next.filter(|n| {
        let decoded = percent_encoding::percent_decode_str(n).decode_utf8();
        local_path(n) && decoded.is_ok_and(|d| local_path(&d)) && !n.starts_with("/login")
    })
    .unwrap_or("/")
    .to_string()
}

fn form(next: &str, username: &str, error: Option<&str>, expired: bool) -> maud::Markup {
    super::page::bare(
        "Sign in",
        html! {
            h1 { "Tideline" }
            p { "Sign in with the account your station's admin gave you." }
            @if expired {
                p.notice #expired role="status" {
                    "Your session ended, so that last save did not reach the server. "
                    "What you typed is kept in this browser: sign in and it comes back."
                }
            }
            @if let Some(e) = error {
                p.error #login-error role="alert" { (e) }
            }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                div.field {
                    label for="username" { "User name" }
                    input #username name="username" type="text" autocomplete="username"
                        autocapitalize="none" autocorrect="off" spellcheck="false"
                        required autofocus value=(username);
                }
                div.field {
                    label for="password" { "Password" }
                    input #password name="password" type="password"
                        autocomplete="current-password" required;
                }
                button.primary type="submit" { "Sign in" }
            }
        },
    )
}

/// `GET /login`
pub async fn page(query: web::Query<NextQuery>) -> HttpResponse {
    super::page::page(form(
        &safe_next(query.next.as_deref()),
        "",
        None,
        query.expired.is_some(),
    ))
}

/// `POST /login`
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Form<LoginForm>,
) -> PageResult {
    let LoginForm {
        username,
        password,
        next,
    } = body.into_inner();
    let next = safe_next(next.as_deref());
    match sign_in(&state, &req, username.clone(), password).await {
        Ok((_, token)) => {
            let mut to = see_other(&next);
            to.add_cookie(&session_cookie(&token, &state))
                .map_err(crate::error::ApiError::internal)?;
            Ok(to)
        }
        Err(e) if e.status() == StatusCode::INTERNAL_SERVER_ERROR => Err(e.into()),
        Err(e) => {
            let mut resp = super::page::page(form(&next, &username, Some(e.message()), false));
            *resp.status_mut() = e.status();
            Ok(resp)
        }
    }
}

/// `POST /logout`
pub async fn logout(state: web::Data<AppState>, access: Access, req: HttpRequest) -> PageResult {
    let gone = sign_out(&state, &access, &req)?;
    let mut to = see_other("/login");
    to.add_cookie(&gone)
        .map_err(crate::error::ApiError::internal)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_only_ever_a_path_of_this_instance() {
        for elsewhere in [
            "/\\evil.example/",
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/%5Cevil.example/",
            "/%5cevil.example/",
            "/%2F/evil.example/",
            "/%09/evil.example/",
            "//evil.example/",
            "https://evil.example/",
            "javascript:alert(1)",
            "evil.example",
            "",
            "/login?next=/records",
            "/%FF",
        ] {
            assert_eq!(safe_next(Some(elsewhere)), "/", "{elsewhere:?}");
        }
        assert_eq!(safe_next(None), "/");
        for here in [
            "/records?station=BB-01&page=2",
            "/records/0190/edit",
            "/map",
            "/",
        ] {
            assert_eq!(safe_next(Some(here)), here);
        }
    }
}
