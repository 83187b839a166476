//! Liveness (`/healthz`: the process answers), readiness (`/readyz`: it can
//! serve, its store and attachment storage are usable) and metrics
//! (`/metrics`, Prometheus text format). None needs a login; none says
//! anything about records beyond their number.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when a store read and the attachment directory work,
/// 503 naming what failed otherwise (the reasons go to the log).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let st = state.clone();
    let checks = web::block(move || {
        let store = st.records.store().get_meta("station").map(|_| ());
        let files = std::fs::metadata(st.data_dir.join("attachments")).map(|_| ());
        if let Err(e) = &store {
            tracing::warn!(error = %e, "not ready: the store cannot be read");
        }
        if let Err(e) = &files {
            tracing::warn!(error = %e, "not ready: the attachment directory is missing");
        }
        (store.is_ok(), files.is_ok())
    })
    .await
    .unwrap_or((false, false));
    let state_of = |ok: bool| if ok { "ok" } else { "failing" };
    let body = json!({
        "status": if checks.0 && checks.1 { "ready" } else { "not_ready" },
        "store": state_of(checks.0),
        "attachments": state_of(checks.1),
    });
    if checks.0 && checks.1 {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let st = state.clone();
    web::block(move || {
        let count = st.records.store().count()?;
        st.metrics.records.set(count as i64);
        st.metrics
            .store_bytes
            .set(crate::metrics::dir_size(&st.data_dir));
        Ok::<_, tideline_sync::StoreError>(())
    })
    .await?
    .map_err(ApiError::internal)?;
    let text = state.metrics.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}
