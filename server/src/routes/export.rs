//! Exports over HTTP; the formats themselves live in [`crate::export`].

use super::records::filter_of;
use crate::access::Access;
use crate::auth::Event;
use crate::error::ApiError;
use crate::export::{ExportError, Exporter, Format};
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: String,
    form: Option<String>,
    station: Option<String>,
    status: Option<String>,
    /// CSV only: a repeat's table (`crew`, `seizures`) instead of the records table.
    table: Option<String>,
}

pub async fn export(
    state: web::Data<AppState>,
    access: Access,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let format: Format = q
        .format
        .parse()
        .map_err(|m: String| ApiError::bad_request("invalid_format", m))?;
    if q.table.is_some() && format != Format::Csv {
        return Err(ApiError::bad_request(
            "invalid_query",
            "table applies to CSV exports only.",
        ));
    }
    let filter = filter_of(q.form.clone(), q.station, q.status.as_deref())?;
    let st = state.clone();
    let body = web::block(move || -> Result<Vec<u8>, ApiError> {
        let filter = access.records(&st).export_filter(filter)?;
        let records = &st.records;
        let mut exporter = Exporter::new(
            Vec::new(),
            format,
            records.forms(),
            q.form.as_deref(),
            q.table.as_deref(),
        )
        .map_err(|e| match e {
            ExportError::UnknownTable(_) => ApiError::bad_request("unknown_table", e.to_string()),
            other => ApiError::internal(other),
        })?;
        let mut count = 0usize;
        if let Some(filter) = filter {
            records.for_each(&filter, |view| {
                count += 1;
                exporter.record(view.get()).map_err(ApiError::internal)
            })?;
        }
        access.audit(
            &st,
            Event::new(access.actor(), "export").details(
                json!({ "format": format!("{format:?}").to_lowercase(), "records": count }),
            ),
        )?;
        exporter.finish().map_err(ApiError::internal)
    })
    .await??;
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .body(body))
}
