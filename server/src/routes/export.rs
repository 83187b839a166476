//! Exports over HTTP; the formats themselves live in [`crate::export`].

use super::records::FilterQuery;
use crate::access::Access;
use crate::auth::Event;
use crate::error::ApiError;
use crate::export::{Exporter, Format};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: String,
    form: Option<String>,
    station: Option<String>,
    status: Option<String>,
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// CSV only: a repeat's table (`crew`, `seizures`) instead of the records table.
    table: Option<String>,
}

impl ExportQuery {
    fn filter(&self) -> Result<tideline_sync::Filter, ApiError> {
        FilterQuery {
            form: self.form.clone(),
            station: self.station.clone(),
            status: self.status.clone(),
            q: self.q.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
        }
        .filter()
    }
}

pub async fn export(
    state: web::Data<AppState>,
    access: Access,
    query: web::Query<ExportQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if q.format == "zip" {
        return archive(state, access, q, req).await;
    }
    let format: Format = q
        .format
        .parse()
        .map_err(|m: String| ApiError::bad_request("invalid_format", format!("{m}, or zip")))?;
    if q.table.is_some() && format != Format::Csv {
        return Err(ApiError::bad_request(
            "invalid_query",
            "table applies to CSV exports only.",
        ));
    }
    let filter = q.filter()?;
    let st = state.clone();
    let body = web::block(move || -> Result<Vec<u8>, ApiError> {
        // Refused for the role before anything about the query is judged.
        access.require(crate::access::Action::Export)?;
        let forms = st.records.forms();
        let mut exporter = Exporter::new(
            Vec::new(),
            format,
            &forms,
            q.form.as_deref(),
            q.table.as_deref(),
        )?;
        let count = access.records(&st).export(filter, |view| {
            exporter.record(view.get()).map_err(ApiError::internal)
        })?;
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

/// `format=zip`: the records in scope and the files they reference, as the
/// archive `tideline export --format zip` writes, built in an anonymous
/// temporary file (gone when the answer is sent) rather than in memory.
async fn archive(
    state: web::Data<AppState>,
    access: Access,
    q: ExportQuery,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if q.table.is_some() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "table applies to CSV exports only.",
        ));
    }
    let filter = q.filter()?;
    let st = state.clone();
    let file = web::block(move || -> Result<std::fs::File, ApiError> {
        let mut views = Vec::new();
        access.records(&st).export(filter, |view| {
            views.push(view);
            Ok(())
        })?;
        let mut file = tempfile::tempfile().map_err(ApiError::internal)?;
        let summary =
            crate::export::write_archive(std::io::BufWriter::new(&mut file), views, |sha| {
                sha.parse().ok().and_then(|h| st.blobs.path(&h))
            })
            .map_err(ApiError::internal)?;
        access.audit(
            &st,
            Event::new(access.actor(), "export").details(json!({
                "format": "zip",
                "records": summary.records,
                "files": summary.files,
            })),
        )?;
        std::io::Seek::rewind(&mut file).map_err(ApiError::internal)?;
        Ok(file)
    })
    .await??;
    let named = actix_files::NamedFile::from_file(file, "tideline-export.zip")
        .map_err(ApiError::internal)?
        .set_content_type("application/zip".parse().map_err(ApiError::internal)?)
        .set_content_disposition(actix_web::http::header::ContentDisposition::attachment(
            "tideline-export.zip",
        ))
        .use_etag(false)
        .use_last_modified(false);
    Ok(named.into_response(&req))
}
