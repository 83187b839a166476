//! ODK Collect's server API, OpenRosa 1.0 (docs/ODK.md): the form list, form
//! downloads and submissions, under a phone's own prefix
//! (`/v1/key/{token}/projects/{station}`, the shape ODK Central gives Collect)
//! and at the root for people who sign in with their own account (Basic,
//! over HTTPS only).
//!
//! Every reply carries `X-OpenRosa-Version: 1.0`, and every refusal is an
//! `OpenRosaResponse` message a person can read on the phone; the status of
//! each refusal is the API's (`crate::error`).

mod caller;
mod forms;
mod reply;
pub mod settings;
mod submit;

use actix_web::web;

pub use reply::{OpenRosaError, VERSION_HEADER};

/// The endpoints, under a phone's prefix and at the root alike.
fn endpoints(cfg: &mut web::ServiceConfig) {
    cfg.route("/formList", web::get().to(forms::list))
        .route("/forms/{file}", web::get().to(forms::download))
        .route("/forms/{id}/manifest", web::get().to(forms::manifest))
        .service(
            web::resource("/submission")
                .route(web::head().to(submit::head))
                .route(web::post().to(submit::post)),
        );
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/v1/key/{token}/projects/{station}").configure(endpoints))
        .configure(endpoints);
}
