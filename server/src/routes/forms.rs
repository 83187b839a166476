//! Form definitions, read-only.

use crate::error::ApiError;
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    let forms = state.records.forms().list_latest();
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
