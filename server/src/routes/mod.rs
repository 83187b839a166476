//! HTTP routes of docs/DESIGN.md §9. Handlers parse input into domain types at the
//! edge, run the (blocking, fsyncing) record service on the blocking pool, and
//! return JSON or an [`ApiError`](crate::error::ApiError).

pub(crate) mod attachments;
pub(crate) mod auth;
mod backup;
mod blob_sync;
pub(crate) mod devices;
pub(crate) mod export;
mod forms;
mod health;
pub(crate) mod params;
pub(crate) mod phones;
pub(crate) mod records;
pub mod sync;
pub(crate) mod uploads;

use crate::error::ApiError;
use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/sync/v1", web::post().to(sync::exchange))
        .route("/sync/v1/blobs/{sha256}", web::get().to(blob_sync::held))
        .route("/sync/v1/blobs/{sha256}", web::put().to(blob_sync::append))
        .route(
            "/sync/v1/blobs/{sha256}/content",
            web::get().to(blob_sync::content),
        )
        .route(
            "/sync/v1/blobs/{sha256}/finish",
            web::post().to(blob_sync::finish),
        )
        .service(
            web::scope("/api/v1")
                .route("/login", web::post().to(auth::login))
                .route("/logout", web::post().to(auth::logout))
                .route("/setup", web::post().to(auth::setup))
                .route("/me", web::get().to(auth::me))
                .route("/users", web::post().to(auth::create_user))
                .route("/users", web::get().to(auth::list_users))
                .route("/users/{name}", web::patch().to(auth::update_user))
                .route("/stations", web::post().to(auth::create_station))
                .route("/stations", web::get().to(auth::list_stations))
                .route("/audit", web::get().to(auth::audit_log))
                .route("/enroll", web::post().to(devices::enroll))
                .route("/devices", web::get().to(devices::list))
                .route("/devices/codes", web::post().to(devices::issue_code))
                .route("/devices/{id}/revoke", web::post().to(devices::revoke))
                .route("/phones", web::post().to(phones::create))
                .route("/phones", web::get().to(phones::list))
                .route("/phones/{id}/revoke", web::post().to(phones::revoke))
                .route("/forms", web::get().to(forms::list))
                .route("/forms", web::post().to(forms::publish))
                // Workbooks may be larger than the JSON bodies the API otherwise takes.
                .service(
                    web::resource("/forms/import")
                        .app_data(web::PayloadConfig::new(
                            tideline_schemas::xlsform::MAX_XLSX_BYTES,
                        ))
                        .route(web::post().to(forms::import)),
                )
                .route("/forms/{id}", web::get().to(forms::get))
                .route("/records", web::post().to(records::create))
                .route("/records", web::get().to(records::list))
                .route("/records/{id}", web::get().to(records::get))
                .route("/records/{id}", web::patch().to(records::patch))
                .route("/records/{id}/automerge", web::get().to(records::automerge))
                .route("/records/{id}/resolve", web::post().to(records::resolve))
                .route(
                    "/records/{id}/attachments",
                    web::post().to(attachments::attach),
                )
                .route("/blobs/{sha256}", web::get().to(attachments::blob))
                .route("/uploads", web::post().to(uploads::begin))
                .route("/uploads/{id}", web::get().to(uploads::status))
                .route("/uploads/{id}", web::patch().to(uploads::append))
                .route("/sync/status", web::get().to(sync::status))
                .route("/sync/now", web::post().to(sync::now))
                .route("/export", web::get().to(export::export))
                .route("/backup", web::get().to(backup::backup)),
        )
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(
        "no_route",
        "There is nothing at this address.",
    ))
}
