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
mod page;
mod records;

mod tablet;

use crate::links::see_other;
use actix_web::{web, HttpResponse};

pub use layout::Chrome;
pub use page::{PageError, PageResult};

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
        .route("/admin/phones", web::post().to(admin::issue_phone))
        .route(
            "/admin/phones/{id}/revoke",
            web::post().to(admin::revoke_phone),
        )
        .route("/admin/users", web::post().to(admin::add_person))
        .route("/admin/users/{name}", web::post().to(admin::change_person))
        .route("/sync-now", web::post().to(layout::sync_now));
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
