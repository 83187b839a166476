//! Sync over HTTP: the upstream end (`POST /sync/v1`, binary) and the local
//! controls (`GET /api/v1/sync/status`, `POST /api/v1/sync/now`).

use crate::access::{Access, Action};
use crate::auth::devices::{self, Device, DeviceKind};
use crate::auth::{audit, Event};
use crate::error::ApiError;
use crate::state::AppState;
use crate::upstream::{status_json, SyncFailure};
use actix_web::{web, HttpResponse};
use serde_json::json;
use std::panic::{catch_unwind, AssertUnwindSafe};
use tideline_sync::engine::{Peer, SyncError};
use tideline_sync::protocol::{self, CodecError, Limits};

/// Largest compressed sync body accepted. A page carries at most a few MiB
/// of changes (1 MiB by default), which compress well below this.
pub const MAX_SYNC_BODY: usize = 16 * 1024 * 1024;

pub async fn exchange(
    state: web::Data<AppState>,
    device: web::ReqData<Device>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let device = device.into_inner();
    let result = answer(&state, device, payload).await;
    match &result {
        Ok((body_in, pushed, pulled, answer)) => state.metrics.sync_flow(
            "upstream",
            (*pushed as u64, *pulled as u64),
            (*body_in as u64, answer.len() as u64),
        ),
        Err(e) => state.metrics.sync_failed("upstream", e.code()),
    }
    let (_, _, _, answer) = result?;
    Ok(HttpResponse::Ok()
        .content_type(tideline_sync::protocol::CONTENT_TYPE)
        .body(answer))
}

/// One exchange: the request's size, the records it pushed and pulled, and
/// the encoded answer.
async fn answer(
    state: &web::Data<AppState>,
    device: Device,
    payload: web::Payload,
) -> Result<(usize, usize, usize, Vec<u8>), ApiError> {
    let body = super::params::read_limited(payload, MAX_SYNC_BODY, "body").await?;
    let body_len = body.len();
    let st = state.clone();
    let answer = web::block(move || {
        // A panic on hostile peer data must cost this request, not the server.
        catch_unwind(AssertUnwindSafe(|| {
            let mut request =
                protocol::decode_request(&body, &Limits::default()).map_err(codec_error)?;
            if request.instance != *device.id.as_bytes() {
                return Err(ApiError::forbidden(
                    "The request names another instance than the credential it carries.",
                ));
            }
            // What a device may pull is its enrolment's station, whatever it says.
            if request.station != device.station {
                return Err(ApiError::wrong_station(format!(
                    "This device is enrolled for station {}, not {}.",
                    device.station, request.station
                )));
            }
            let store = st.records.store().as_ref();
            let key = devices::verifying_key(&device).ok_or_else(|| {
                ApiError::internal("the device's registered key is not an ed25519 key")
            })?;
            let enrolled_here = |id: &[u8; 16]| {
                devices::get(store, &uuid::Uuid::from_bytes(*id))
                    .ok()
                    .flatten()
                    .is_some()
            };
            let peer = Peer {
                key,
                relays: device.kind == DeviceKind::Station,
                enrolled_here: &enrolled_here,
            };
            let anchored = request.audit;
            let finding = audit::anchor_finding(store, &device.id, &anchored, request.audit_check)
                .map_err(ApiError::internal)?;
            let pushed = request.push.len();
            request.station = device.station.clone();
            let result = st.upstream.handle(st.records.as_ref(), request, &peer);
            let actor = format!("device:{}", device.id);
            let refuse = |reason: &str, target: Option<String>, details: serde_json::Value| {
                let mut event = Event::new(actor.clone(), "sync.refused")
                    .details(json!({ "reason": reason, "detail": details }));
                if let Some(t) = target {
                    event = event.target(t);
                }
                st.audit
                    .append(store, event, true)
                    .map_err(ApiError::internal)
            };
            let response = match result {
                Ok(response) => response,
                Err(SyncError::ForgedAuthor {
                    record,
                    actor: forged,
                }) => {
                    refuse(
                        "forged_author",
                        Some(record.clone()),
                        json!({ "author": forged }),
                    )?;
                    return Err(ApiError::forbidden(format!(
                        "Record {record} holds a change by {forged} that no signature of its \
                         author covers; nothing was applied."
                    )));
                }
                Err(SyncError::Signature(why)) => {
                    refuse("signature", None, json!(why))?;
                    return Err(ApiError::forbidden(format!(
                        "The request's signatures do not hold: {why}; nothing was applied."
                    )));
                }
                Err(e) => return Err(ApiError::internal(e)),
            };
            // The request's signature covered its audit head: keep it, and
            // say so if the chain below the last one kept was rewritten.
            if let Some(what) = finding {
                tracing::warn!(device = %device.id, "{what}");
                st.audit
                    .append(
                        store,
                        Event::new(actor.clone(), "audit.rewritten")
                            .target(device.id.to_string())
                            .details(json!({ "finding": what, "head": anchored.seq })),
                        true,
                    )
                    .map_err(ApiError::internal)?;
            }
            audit::keep_anchor(store, &device.id, &anchored).map_err(ApiError::internal)?;
            if pushed > 0 || !response.pull.is_empty() || !response.rejected.is_empty() {
                st.audit
                    .append(
                        store,
                        Event::new(actor, "sync").details(json!({
                            "records_in": pushed,
                            "records_out": response.pull.len(),
                            "rejected": response.rejected.len(),
                        })),
                        false,
                    )
                    .map_err(ApiError::internal)?;
            }
            let pulled = response.pull.len();
            protocol::encode_response(&response)
                .map(|bytes| (pushed, pulled, bytes))
                .map_err(ApiError::internal)
        }))
        .unwrap_or_else(|_| {
            Err(ApiError::bad_request(
                "bad_sync_message",
                "The sync message could not be processed.",
            ))
        })
    })
    .await??;
    let (pushed, pulled, bytes) = answer;
    Ok((body_len, pushed, pulled, bytes))
}

fn codec_error(e: CodecError) -> ApiError {
    match e {
        CodecError::Version(_) => ApiError::bad_request("unsupported_protocol", e.to_string()),
        CodecError::TooLarge(limit) => ApiError::too_large(limit),
        CodecError::BadMagic | CodecError::Corrupt(_) => ApiError::bad_request(
            "bad_sync_message",
            format!("The sync message is not valid: {e}."),
        ),
    }
}

pub async fn status(state: web::Data<AppState>, _: Access) -> Result<HttpResponse, ApiError> {
    let records = state.records.clone();
    let agent = state.agent.clone();
    let body = web::block(move || {
        let upstream = agent.as_ref().map(|a| a.upstream.clone());
        let running = agent.as_ref().is_some_and(|a| a.is_running());
        status_json(&records, upstream.as_deref(), running)
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

pub async fn now(state: web::Data<AppState>, access: Access) -> Result<HttpResponse, ApiError> {
    access.require(Action::Sync)?;
    let Some(agent) = state.agent.clone() else {
        return Err(ApiError::conflict(
            "no_upstream",
            "This instance has no upstream to sync with; start it with --upstream URL.",
        ));
    };
    match agent.sync_now().await {
        Ok(outcome) => Ok(HttpResponse::Ok().json(outcome)),
        Err(e @ SyncFailure::Local(_)) => Err(ApiError::internal(e)),
        Err(e) => Err(ApiError::bad_gateway("upstream_failed", e.to_string())),
    }
}
