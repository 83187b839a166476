//! The admin's page: who has an account, which stations exist, which devices
//! are enrolled, and a one-time code to enrol a new boat or station. Changes
//! to people and devices otherwise go through the API or `tideline admin`
//! (docs/SECURITY.md).

use super::layout::{frame, when, Chrome};
use super::{page, PageResult};
use crate::access::{Access, Action};
use crate::auth::users::HQ;
use crate::auth::{devices, stations, users};
use crate::error::ApiError;
use crate::startup::AppState;
use actix_web::web;
use maud::{html, Markup};
use serde::Deserialize;

struct Lists {
    users: Vec<users::User>,
    stations: Vec<stations::Station>,
    devices: Vec<devices::Device>,
}

async fn lists(state: &web::Data<AppState>, access: &Access) -> Result<Lists, ApiError> {
    access.require(Action::ManageUsers)?;
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

fn draw(chrome: &Chrome, lists: &Lists, issued: Option<Issued<'_>>) -> Markup {
    let codes: Vec<String> = if chrome.station == HQ {
        lists.stations.iter().map(|s| s.code.clone()).collect()
    } else {
        vec![chrome.station.clone()]
    };
    let body = html! {
        h1 { "Administration" }
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
                thead { tr { th { "User" } th { "Role" } th { "Station" } th { "Since" } th { "State" } } }
                tbody {
                    @for u in &lists.users {
                        tr { td { (u.username.to_string()) } td { (u.role.to_string()) } td { (u.station) } td { (when(&u.created_at)) } td { (if u.disabled { "disabled" } else { "active" }) } }
                    }
                }
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
        section aria-labelledby="stations-h" {
            h2 #stations-h { "Stations" }
            ul { @for s in &lists.stations { li { strong { (s.code) } " — " (s.name) ", " (s.island) } } }
        }
    };
    frame("Administration", chrome, "admin", body)
}

/// `GET /admin`
pub async fn page_(state: web::Data<AppState>, access: Access) -> PageResult {
    let lists = lists(&state, &access).await?;
    Ok(page(draw(&Chrome::new(&state, &access), &lists, None)))
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
    let info = req.connection_info();
    let upstream = format!("{}://{}", info.scheme(), info.host());
    Ok(page(draw(
        &Chrome::new(&state, &access),
        &lists,
        Some(Issued {
            code: &code,
            station: &station,
            expires,
            upstream,
        }),
    )))
}

/// `POST /admin/devices/{id}/revoke`: the device's next sync is refused; its
/// own records stay on it.
pub async fn revoke_device(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
) -> PageResult {
    crate::routes::devices::revoke_device(&state, &access, &id).await?;
    Ok(super::see_other("/admin#devices-h"))
}
