//! Form definitions: reading them, and publishing a new version at HQ.

use crate::access::{Access, Action};
use crate::auth::Event;
use crate::error::ApiError;
use crate::state::AppState;
use crate::xlsform::Imported;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;

pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    let registry = state.records.forms();
    let forms = registry.list_latest();
    HttpResponse::Ok().json(serde_json::json!({ "forms": forms }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormQuery {
    version: Option<u32>,
}

pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<FormQuery>,
) -> Result<HttpResponse, ApiError> {
    let forms = state.records.forms();
    let form = match query.version {
        Some(v) => forms.get(&id, v),
        None => forms.latest(&id),
    };
    form.map(|f| HttpResponse::Ok().json(f)).ok_or_else(|| {
        ApiError::not_found(
            "unknown_form",
            format!("There is no form called {:?}.", id.as_str()),
        )
    })
}

/// `POST /api/v1/forms` with a form definition (JSON): publish it as a new
/// version. Only at HQ (an instance with no upstream): forms flow down by
/// sync, never up, so a version made elsewhere would be unknown above; and
/// only by HQ's own admins, since the version reaches every station.
pub async fn publish(
    state: web::Data<AppState>,
    access: Access,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    may_publish(&state, &access)?;
    let json = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("bad_body", "The form must be UTF-8 JSON."))?;
    let st = state.clone();
    let form = web::block(move || -> Result<_, ApiError> {
        let (form, new) = st.records.publish_form(&json)?;
        if new {
            access.audit(
                &st,
                Event::new(access.actor(), "form.publish")
                    .target(form.id.clone())
                    .details(serde_json::json!({ "version": form.version })),
            )?;
        }
        Ok((form, new))
    })
    .await??;
    let (form, new) = form;
    let status = if new {
        actix_web::http::StatusCode::CREATED
    } else {
        actix_web::http::StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(form))
}

/// Publishing is for HQ's own admins, at HQ (an instance with no upstream).
fn may_publish(state: &AppState, access: &Access) -> Result<(), ApiError> {
    access.require(Action::PublishForms)?;
    if state.agent.is_some() {
        return Err(ApiError::conflict(
            "not_hq",
            "Forms are published at HQ, which sends them to every station and boat.",
        ));
    }
    access.require_hq(Action::PublishForms)
}

/// `POST /api/v1/forms/import` with an XLSForm workbook, as the body or as the
/// part `file` of a multipart form: publish it as the next version of its form.
/// 201 with the form when published, 200 when that form is already the latest
/// version, 422 naming the sheet, row and column of what is refused.
pub async fn import(
    state: web::Data<AppState>,
    access: Access,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    may_publish(&state, &access)?;
    let bytes = workbook_of(&req, body).await?;
    let st = state.clone();
    let imported = web::block(move || -> Result<_, ApiError> {
        let imported = crate::xlsform::publish(&st.records, &bytes)?;
        if let Imported::Published(form) = &imported {
            access.audit(
                &st,
                Event::new(access.actor(), "form.publish")
                    .target(form.id.clone())
                    .details(serde_json::json!({ "version": form.version, "from": "xlsform" })),
            )?;
        }
        Ok(imported)
    })
    .await??;
    let status = match imported {
        Imported::Published(_) => actix_web::http::StatusCode::CREATED,
        _ => actix_web::http::StatusCode::OK,
    };
    Ok(HttpResponse::build(status).json(imported.form()))
}

/// The workbook's bytes: the body itself, or the `file` part of a multipart body.
async fn workbook_of(req: &HttpRequest, body: web::Bytes) -> Result<Vec<u8>, ApiError> {
    if !super::params::is_multipart(req) {
        return Ok(body.to_vec());
    }
    let stream =
        futures_util::stream::once(async move { Ok::<_, actix_web::error::PayloadError>(body) });
    let mut parts = actix_multipart::Multipart::new(req.headers(), stream);
    let bad = |m: String| ApiError::bad_request("bad_multipart", m);
    while let Some(part) = parts.next().await {
        let mut part = part.map_err(|e| bad(format!("The multipart body cannot be read: {e}")))?;
        if part.name() != Some("file") {
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = part.next().await {
            bytes.extend_from_slice(
                &chunk.map_err(|e| bad(format!("The file part cannot be read: {e}")))?,
            );
        }
        return Ok(bytes);
    }
    Err(bad(
        "The multipart body has no part named file; send the .xlsx as file.".into(),
    ))
}
