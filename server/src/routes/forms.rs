//! Form definitions: reading them, and publishing a new version at HQ.

use crate::access::{Access, Action};
use crate::auth::Event;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
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
    access.require(Action::PublishForms)?;
    if state.agent.is_some() {
        return Err(ApiError::conflict(
            "not_hq",
            "Forms are published at HQ, which sends them to every station and boat.",
        ));
    }
    access.require_hq(Action::PublishForms)?;
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
