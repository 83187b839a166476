//! Creating, reading, editing and listing records.

use super::params::record_id;
use crate::access::Access;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value as Json};
use tideline_sync::records::{DEFAULT_LIMIT, MAX_LIMIT};
use tideline_sync::{Filter, Patch, Status};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    form: String,
    #[serde(default)]
    fields: Map<String, Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    fields: Option<Map<String, Json>>,
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    path: String,
    value: Json,
}

#[derive(Serialize)]
struct ListBody<'a> {
    records: &'a [Box<RawValue>],
    total: usize,
    limit: usize,
    offset: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    form: Option<String>,
    station: Option<String>,
    status: Option<String>,
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

pub(crate) fn parse_status(raw: &str) -> Result<Status, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::unprocessable(
            "invalid_status",
            format!("{raw:?} is not a status; use draft, submitted, reviewed or closed."),
        )
        .with_details(json!([{ "path": "status", "message": "unknown status" }]))
    })
}

/// What a list, export or page asks for, as it arrives in a query string.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct FilterQuery {
    pub form: Option<String>,
    pub station: Option<String>,
    pub status: Option<String>,
    /// Text to find in the records' text fields.
    pub q: Option<String>,
    /// First and last day (UTC, `YYYY-MM-DD`) the records were created on.
    pub from: Option<String>,
    pub to: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl FilterQuery {
    pub fn filter(&self) -> Result<Filter, ApiError> {
        let day =
            |name: &str, raw: Option<String>| -> Result<Option<chrono::NaiveDate>, ApiError> {
                raw.map(|d| {
                    chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| {
                        ApiError::bad_request(
                            "invalid_query",
                            format!("{name} must be a date like 2026-11-20, not {d:?}."),
                        )
                    })
                })
                .transpose()
            };
        let from = day("from", nonempty(&self.from))?;
        let to = day("to", nonempty(&self.to))?;
        Ok(Filter {
            form: nonempty(&self.form),
            station: nonempty(&self.station),
            status: nonempty(&self.status)
                .as_deref()
                .map(parse_status)
                .transpose()?,
            text: nonempty(&self.q),
            created_since: from.map(|d| d.format("%Y-%m-%d").to_string()),
            // The last day is included: stop before the next one starts.
            created_before: to
                .and_then(|d| d.succ_opt())
                .map(|d| d.format("%Y-%m-%d").to_string()),
        })
    }
}

pub async fn create(
    state: web::Data<AppState>,
    access: Access,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let CreateBody { form, fields } = body.into_inner();
    let st = state.clone();
    let written = web::block(move || access.records(&st).create(&form, &fields)).await??;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/records/{}", written.id)))
        .json(written.view))
}

pub async fn list(
    state: web::Data<AppState>,
    access: Access,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}."),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    let filter = FilterQuery {
        form: q.form,
        station: q.station,
        status: q.status,
        q: q.q,
        from: q.from,
        to: q.to,
    }
    .filter()?;
    let st = state.clone();
    let page = web::block(move || access.records(&st).list(filter, limit, offset)).await??;
    // The cached views go out as they are stored: building a JSON value from
    // them would parse every view again (20 MB for a page of 10,000).
    Ok(HttpResponse::Ok().json(ListBody {
        records: &page.records,
        total: page.total,
        limit,
        offset,
    }))
}

pub async fn get(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = record_id(&id)?;
    let st = state.clone();
    let view = web::block(move || access.records(&st).get(&id)).await??;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn patch(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
    body: web::Json<PatchBody>,
) -> Result<HttpResponse, ApiError> {
    let id = record_id(&id)?;
    let PatchBody { fields, status } = body.into_inner();
    if fields.is_none() && status.is_none() {
        return Err(ApiError::bad_request(
            "empty_patch",
            "Send \"fields\" and/or \"status\" to change.",
        ));
    }
    let patch = Patch {
        fields,
        status: status.as_deref().map(parse_status).transpose()?,
    };
    let st = state.clone();
    let view = web::block(move || access.records(&st).patch(&id, &patch)).await??;
    Ok(HttpResponse::Ok().json(view))
}

/// Resolve a conflict by writing one value at its path (relative to `fields`).
pub async fn resolve(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
    body: web::Json<ResolveBody>,
) -> Result<HttpResponse, ApiError> {
    let id = record_id(&id)?;
    let ResolveBody { path, value } = body.into_inner();
    let st = state.clone();
    let view = web::block(move || access.records(&st).resolve(&id, &path, &value)).await??;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn automerge(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = record_id(&id)?;
    let st = state.clone();
    let bytes = web::block(move || access.records(&st).automerge_bytes(&id)).await??;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(bytes))
}
