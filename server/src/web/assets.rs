//! The web interface's static files, compiled into the binary so that a boat
//! with no network has everything: the stylesheet, the script, the
//! vendored map library (Leaflet, BSD-2-Clause, server/assets/vendor) and
//! the Eastern Caribbean's coastlines (Natural Earth, public domain).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// Name, content type and bytes of every asset.
const ASSETS: [(&str, &str, &[u8]); 8] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/app.js"),
    ),
    // The region's land, for the map at sea (deploy/tools/coastlines.py).
    (
        "coastlines.json",
        "application/json",
        include_bytes!("../../assets/coastlines.json"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../assets/favicon.svg"),
    ),
    // Skip logic on the entry page (web/entry/render.rs).
    (
        "relevance.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/relevance.js"),
    ),
    (
        "map.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/map.js"),
    ),
    (
        "leaflet.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/leaflet/leaflet.js"),
    ),
    (
        "leaflet.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/vendor/leaflet/leaflet.css"),
    ),
];

/// `GET /assets/{name}`
pub async fn serve(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, kind, bytes)) => HttpResponse::Ok()
            .content_type(*kind)
            // Assets change only with the binary; an hour spares a slow tablet.
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(*bytes),
        None => HttpResponse::NotFound().finish(),
    }
}

/// `GET /favicon.ico`: browsers ask for it before any page says where the
/// icon is; the same picture as the pages name.
pub async fn favicon() -> HttpResponse {
    serve(web::Path::from("favicon.svg".to_string())).await
}
