//! The map of boardings in the caller's scope. Positions go into the page as
//! JSON and the vendored Leaflet draws them over a coordinate grid; map
//! tiles are drawn too when `map_tile_url` is set and they load. With no
//! tiles (at sea, or none configured) the grid and the points remain, and
//! without JavaScript the same positions are listed as a table.

use super::layout::{frame, when, Chrome};
use super::page::{page, PageResult};
use crate::access::Access;
use crate::error::ApiError;
use crate::routes::records::FilterQuery;
use crate::state::AppState;
use actix_web::web;
use maud::{html, PreEscaped};
use serde_json::{json, Value as Json};
use tideline_sync::records::MAX_LIMIT;

/// More points than this are not drawn (the newest are); the page says so.
const MAX_POINTS: usize = 20_000;

/// `GET /map`, with the records list's filters.
pub async fn page_(
    state: web::Data<AppState>,
    access: Access,
    query: web::Query<FilterQuery>,
) -> PageResult {
    let fq = query.into_inner();
    let filter = fq.filter()?;
    let chrome = Chrome::new(&state, &access);
    let st = state.clone();
    let (points, total) = web::block(move || -> Result<_, ApiError> {
        let scoped = access.records(&st);
        let mut points = Vec::new();
        let mut offset = 0;
        let mut total = 0;
        while offset < MAX_POINTS {
            let found = scoped.list(filter.clone(), MAX_LIMIT, offset)?;
            total = found.total;
            for view in &found.records {
                let v: Json = serde_json::from_str(view.get()).map_err(ApiError::internal)?;
                let Some(lat) = v["fields"]["position"]["lat"].as_f64() else {
                    continue;
                };
                let Some(lon) = v["fields"]["position"]["lon"].as_f64() else {
                    continue;
                };
                points.push(json!({
                    "id": v["id"],
                    "lat": lat,
                    "lon": lon,
                    "vessel": v["fields"]["vessel_name"].as_str().unwrap_or("(no vessel name)"),
                    "status": v["status"],
                    "station": v["station"],
                    "when": when(v["created_at"].as_str().unwrap_or_default()),
                }));
            }
            offset += found.records.len();
            if found.records.is_empty() || offset >= found.total {
                break;
            }
        }
        Ok((points, total))
    })
    .await??;
    // Inside a <script> element only "</" could end it early.
    let data = serde_json::to_string(&points)
        .map_err(ApiError::internal)?
        .replace('<', "\\u003c");
    let body = html! {
        h1 { "Map of boardings" }
        p #map-count { (points.len()) " position(s) from " (total) " record(s) in your scope." }
        @if total > MAX_POINTS { p { "Only the newest " (MAX_POINTS) " records are drawn; filter the list to see others." } }
        link rel="stylesheet" href="/assets/leaflet.css";
        div #map role="region" aria-label="Map of boarding positions" data-tiles=[state.map_tiles.as_deref()] {}
        p.muted #map-tiles-note {}
        script type="application/json" #points { (PreEscaped(data)) }
        script src="/assets/leaflet.js" {}
        script src="/assets/map.js" {}
        noscript {
            table.records {
                thead { tr { th { "Vessel" } th { "Latitude" } th { "Longitude" } th { "Recorded" } } }
                tbody {
                    @for p in &points {
                        tr {
                            td { a href=(format!("/records/{}", p["id"].as_str().unwrap_or_default())) { (p["vessel"].as_str().unwrap_or_default()) } }
                            td { (p["lat"]) } td { (p["lon"]) } td { (p["when"].as_str().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(frame("Map", &chrome, "map", body)))
}
