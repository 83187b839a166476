//! The admin's page: people (add one, reset a password — which lifts a
//! lockout —, unlock, disable), which stations exist, which devices are
//! enrolled (revoke one), a one-time code to enrol a new boat or
//! station, and phones for ODK Collect (issue one and show its QR code,
//! revoke one). Every change goes through the same checked, audited code as the
//! API (`routes::auth`, `routes::devices`; docs/SECURITY.md).

use super::layout::{frame, when, Chrome};
use super::page::{page, PageResult};
use crate::access::{Access, Action};
use crate::auth::users::HQ;
use crate::auth::{devices, phones, stations, users};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::web;
use maud::{html, Markup};
use serde::Deserialize;

struct Lists {
    users: Vec<users::User>,
    stations: Vec<stations::Station>,
    devices: Vec<devices::Device>,
    phones: Vec<phones::Phone>,
}

async fn lists(state: &web::Data<AppState>, access: &Access) -> Result<Lists, ApiError> {
    access.require(Action::ManageUsers)?;
    let phones = crate::routes::phones::list_of(state, access).await?;
    let st = state.clone();
    let own = access.station().map(str::to_string);
    web::block(move || -> Result<Lists, ApiError> {
        let store = st.records.store().as_ref();
        let mine = |station: &str| own.as_deref().is_none_or(|o| o == station);
        Ok(Lists {
            users: users::list(store)
                .map_err(ApiError::internal)?
                .into_iter()
                .filter(|u| mine(&u.station))
                .collect(),
            stations: stations::list(store).map_err(ApiError::internal)?,
            devices: devices::list(store)
                .map_err(ApiError::internal)?
                .into_iter()
                .filter(|d| mine(&d.station))
                .collect(),
            phones,
        })
    })
    .await?
}

/// An enrolment code just issued: the code, its station, until when, and
/// this instance's address as the admin's browser reached it.
struct Issued<'a> {
    code: &'a str,
    station: &'a str,
    expires: String,
    upstream: String,
}

/// What the last action on the page did, or why it was refused.
struct Notice {
    ok: bool,
    text: String,
}

fn draw(
    chrome: &Chrome,
    lists: &Lists,
    issued: Option<Issued<'_>>,
    phone: Option<&crate::routes::phones::Issued>,
    notice: Option<&Notice>,
) -> Markup {
    let submitters: Vec<&users::User> = lists
        .users
        .iter()
        .filter(|u| phones::may_have_phone(u.role) && !u.disabled)
        .collect();
    let codes: Vec<String> = if chrome.station == HQ {
        lists.stations.iter().map(|s| s.code.clone()).collect()
    } else {
        vec![chrome.station.clone()]
    };
    let roles = ["officer", "supervisor", "analyst", "admin"];
    let people_stations: Vec<String> = if chrome.station == HQ {
        std::iter::once(HQ.to_string())
            .chain(codes.iter().cloned())
            .collect()
    } else {
        vec![chrome.station.clone()]
    };
    let body = html! {
        h1 { "Administration" }
        @if let Some(n) = notice {
            @if n.ok { p.notice #admin-notice role="status" { (n.text) } }
            @else { p.error #admin-notice role="alert" { (n.text) } }
        }
        @if let Some(i) = &issued {
            div.notice role="status" #enrol-code {
                p { "Enrolment code for a device of " strong { (i.station) } ": " code.big { (i.code) } }
                p {
                    "Valid once, until " (i.expires) ". On the new device, with the data directory it will use: "
                    code #enrol-command {
                        "tideline --data DATA_DIR --station " (i.station) " enroll --upstream " (i.upstream) " --code " (i.code)
                    }
                }
                p.muted { "Use the address the device reaches this instance at, if it is not the one above." }
            }
        }
        section aria-labelledby="enrol-h" {
            h2 #enrol-h { "Enrol a boat or station" }
            @if codes.is_empty() {
                p { "Create a station first (" code { "tideline admin create-station" } " or the API)." }
            } @else {
                form.filters method="post" action="/admin/enroll-code" {
                    div.field {
                        label for="e-station" { "Station" }
                        select #e-station name="station" { @for c in &codes { option value=(c) { (c) } } }
                    }
                    div.field {
                        label for="e-kind" { "Device" }
                        select #e-kind name="kind" {
                            option value="boat" { "A boat" }
                            option value="station" { "A station's server" }
                        }
                    }
                    div.buttons { button.primary type="submit" { "Issue a one-time code" } }
                }
            }
        }
        section aria-labelledby="users-h" {
            h2 #users-h { "People" }
            table {
                thead { tr { th { "User" } th { "Role" } th { "Station" } th { "Since" } th { "State" } th { "Change" } } }
                tbody {
                    @for u in &lists.users {
                        @let name = u.username.to_string();
                        @let action = format!("/admin/users/{name}");
                        tr data-user=(name) {
                            td { (name) } td { (u.role.to_string()) } td { (u.station) } td { (when(&u.created_at)) }
                            td { (if u.disabled { "disabled" } else { "active" }) }
                            td {
                                form.inline method="post" action=(action) {
                                    input type="hidden" name="change" value="password";
                                    label.visually-hidden for=(format!("pw-{name}")) { "New password for " (name) }
                                    input id=(format!("pw-{name}")) name="password" type="password" autocomplete="new-password"
                                        minlength="10" placeholder="new password" required;
                                    button.secondary type="submit" { "Reset password" }
                                }
                                form.inline method="post" action=(action) {
                                    input type="hidden" name="change" value="unlock";
                                    button.secondary type="submit" { "Unlock" }
                                }
                                form.inline method="post" action=(action) {
                                    input type="hidden" name="change" value=(if u.disabled { "enable" } else { "disable" });
                                    button.secondary type="submit" { (if u.disabled { "Enable" } else { "Disable" }) }
                                }
                            }
                        }
                    }
                }
            }
            h3 #add-user-h { "Add a person" }
            p.muted { "Accounts belong to this instance: each boat needs its own officers' accounts, made here on the boat." }
            form.filters method="post" action="/admin/users" aria-labelledby="add-user-h" {
                div.field {
                    label for="u-name" { "User name" }
                    input #u-name name="username" type="text" required autocapitalize="none" autocorrect="off" spellcheck="false"
                        pattern="[a-z0-9._-]+" title="Lower-case letters, digits, dots, dashes and underscores";
                }
                div.field {
                    label for="u-role" { "Role" }
                    select #u-role name="role" { @for r in roles { option value=(r) { (r) } } }
                }
                div.field {
                    label for="u-station" { "Station" }
                    select #u-station name="station" { @for c in &people_stations { option value=(c) selected[*c == chrome.station] { (c) } } }
                }
                div.field {
                    label for="u-password" { "Password (at least 10 characters)" }
                    input #u-password name="password" type="password" autocomplete="new-password" minlength="10" required;
                }
                div.buttons { button.primary type="submit" { "Add" } }
            }
        }
        section aria-labelledby="devices-h" {
            h2 #devices-h { "Enrolled devices" }
            @if lists.devices.is_empty() { p { "None yet." } }
            @else {
                table {
                    thead { tr { th { "Device" } th { "Kind" } th { "Station" } th { "Enrolled" } th { "State" } th { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for d in &lists.devices {
                            @let name = d.name.clone().unwrap_or_else(|| "(no name)".into());
                            tr data-device=(d.id) {
                                td { strong { (name) } br; code.muted { (d.id) } }
                                td { (d.kind.to_string()) }
                                td { (d.station) }
                                td { (when(&d.enrolled_at)) }
                                td { (if d.revoked { "revoked" } else { "active" }) }
                                td {
                                    @if !d.revoked {
                                        // A lost laptop is found by its name, and stopped here.
                                        form.inline method="post" action=(format!("/admin/devices/{}/revoke", d.id)) {
                                            button.secondary type="submit" { "Revoke " (name) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.muted { "To revoke a lost device: " code { "tideline admin revoke DEVICE" } " or " code { "POST /api/v1/devices/{id}/revoke" } "." }
        }
        section aria-labelledby="phones-h" {
            h2 #phones-h { "Phones (ODK Collect)" }
            @if let Some(p) = phone {
                div.notice role="status" #phone-issued {
                    p { "Phone for " strong { (p.phone.username) } ". In ODK Collect: add a project, "
                        em { "Configure with QR code" } ", and scan this. It is shown only now." }
                    figure #phone-qr {
                        (maud::PreEscaped(crate::openrosa::settings::qr_svg(&p.setup.qr_text)))
                        figcaption { "Or type the server URL: " code #phone-url { (p.setup.url) } }
                    }
                }
            }
            @if !lists.phones.is_empty() {
                table {
                    thead { tr { th { "Phone" } th { "For" } th { "Issued" } th { "State" } th { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for p in &lists.phones {
                            tr data-phone=(p.id) {
                                td { (p.label()) }
                                td { (p.username) }
                                td { (when(&p.issued_at)) }
                                td { (if p.revoked { "revoked" } else { "active" }) }
                                td {
                                    @if !p.revoked {
                                        form.inline method="post" action=(format!("/admin/phones/{}/revoke", p.id)) {
                                            button.secondary type="submit" { "Revoke " (p.label()) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if submitters.is_empty() {
                p { "Phones submit for an officer or supervisor: add one above first." }
            } @else {
                form.filters method="post" action="/admin/phones" {
                    div.field {
                        label for="p-user" { "Submits for" }
                        select #p-user name="user" { @for u in &submitters { option value=(u.username.to_string()) { (u.username.to_string()) " (" (u.role.to_string()) ")" } } }
                    }
                    div.field {
                        label for="p-name" { "Phone name (optional)" }
                        input #p-name name="name" type="text" maxlength="64" placeholder="Kestrel handset 2";
                    }
                    div.buttons { button.primary type="submit" { "Issue a phone QR code" } }
                }
            }
        }
        section aria-labelledby="stations-h" {
            h2 #stations-h { "Stations" }
            ul { @for s in &lists.stations { li { strong { (s.code) } " — " (s.name) ", " (s.island) } } }
        }
    };
    frame("Administration", chrome, "admin", body)
}

/// `GET /admin`
pub async fn page_(state: web::Data<AppState>, access: Access) -> PageResult {
    show(&state, &access, None).await
}

/// The page with `notice` on top; a refusal keeps the refusal's status.
async fn show(
    state: &web::Data<AppState>,
    access: &Access,
    notice: Option<Result<String, ApiError>>,
) -> PageResult {
    let (notice, status) = match notice {
        None => (None, actix_web::http::StatusCode::OK),
        Some(Ok(text)) => (
            Some(Notice { ok: true, text }),
            actix_web::http::StatusCode::OK,
        ),
        Some(Err(e)) if e.status().is_client_error() => (
            Some(Notice {
                ok: false,
                text: e.message().to_string(),
            }),
            e.status(),
        ),
        Some(Err(e)) => return Err(e.into()),
    };
    let lists = lists(state, access).await?;
    let mut resp = page(draw(
        &Chrome::new(state, access),
        &lists,
        None,
        None,
        notice.as_ref(),
    ));
    *resp.status_mut() = status;
    Ok(resp)
}

/// `POST /admin/users`: add a person to this instance.
pub async fn add_person(
    state: web::Data<AppState>,
    access: Access,
    form: web::Form<crate::routes::auth::NewUser>,
) -> PageResult {
    let mut new = form.into_inner();
    new.username = users::typed_name(&new.username);
    let done = crate::routes::auth::add_user(&state, &access, new)
        .await
        .map(|u| {
            format!(
                "Added {} {} of {}: they sign in on this instance with the password you gave.",
                u.role, u.username, u.station
            )
        });
    show(&state, &access, Some(done)).await
}

#[derive(Deserialize)]
pub struct PersonChangeForm {
    change: String,
    password: Option<String>,
}

/// `POST /admin/users/{name}`: reset a password (lifting any lockout), unlock,
/// disable or enable.
pub async fn change_person(
    state: web::Data<AppState>,
    access: Access,
    name: web::Path<String>,
    form: web::Form<PersonChangeForm>,
) -> PageResult {
    use crate::routes::auth::UserChange;
    let name = name.into_inner();
    let PersonChangeForm { change, password } = form.into_inner();
    let (change, said) = match change.as_str() {
        "password" => (
            UserChange {
                password,
                ..Default::default()
            },
            "has a new password and may sign in again now",
        ),
        "unlock" => (
            UserChange {
                unlock: true,
                ..Default::default()
            },
            "may sign in again now",
        ),
        "disable" => (
            UserChange {
                disabled: Some(true),
                ..Default::default()
            },
            "is disabled and signed out",
        ),
        "enable" => (
            UserChange {
                disabled: Some(false),
                ..Default::default()
            },
            "is enabled",
        ),
        other => {
            return show(
                &state,
                &access,
                Some(Err(ApiError::bad_request(
                    "invalid_request",
                    format!("There is no change called {other:?}."),
                ))),
            )
            .await
        }
    };
    let done = crate::routes::auth::change_user(&state, &access, name, change)
        .await
        .map(|u| format!("{} {said}.", u.username));
    show(&state, &access, Some(done)).await
}

#[derive(Deserialize)]
pub struct CodeForm {
    station: String,
    kind: String,
}

/// `POST /admin/enroll-code`: show a new one-time code on the page.
pub async fn enroll_code(
    state: web::Data<AppState>,
    access: Access,
    req: actix_web::HttpRequest,
    form: web::Form<CodeForm>,
) -> PageResult {
    let CodeForm { station, kind } = form.into_inner();
    let (code, expires) =
        crate::routes::devices::issue(&state, &access, &station, &kind, None).await?;
    let expires = chrono::DateTime::from_timestamp(expires, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let lists = lists(&state, &access).await?;
    let upstream = crate::links::origin(&req);
    Ok(page(draw(
        &Chrome::new(&state, &access),
        &lists,
        Some(Issued {
            code: &code,
            station: &station,
            expires,
            upstream,
        }),
        None,
        None,
    )))
}

#[derive(Deserialize)]
pub struct PhoneForm {
    user: String,
    name: Option<String>,
}

/// `POST /admin/phones`: issue a phone and show its QR code once.
pub async fn issue_phone(
    state: web::Data<AppState>,
    access: Access,
    req: actix_web::HttpRequest,
    form: web::Form<PhoneForm>,
) -> PageResult {
    let PhoneForm { user, name } = form.into_inner();
    let origin = crate::links::origin(&req);
    let issued = match crate::routes::phones::issue(&state, &access, &user, name, origin).await {
        Ok(issued) => issued,
        Err(e) => return show(&state, &access, Some(Err(e))).await,
    };
    let lists = lists(&state, &access).await?;
    Ok(page(draw(
        &Chrome::new(&state, &access),
        &lists,
        None,
        Some(&issued),
        None,
    )))
}

/// `POST /admin/phones/{id}/revoke`
pub async fn revoke_phone(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
) -> PageResult {
    let done = crate::routes::phones::revoke_phone(&state, &access, &id)
        .await
        .map(|p| {
            format!(
                "{} of {} is revoked: its next upload is refused.",
                p.label(),
                p.username
            )
        });
    show(&state, &access, Some(done)).await
}

/// `POST /admin/devices/{id}/revoke`: the device's next sync is refused; its
/// own records stay on it.
pub async fn revoke_device(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
) -> PageResult {
    crate::routes::devices::revoke_device(&state, &access, &id).await?;
    Ok(crate::links::see_other("/admin#devices-h"))
}
