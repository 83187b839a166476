//! Downstream instances: enrolling with a one-time code, and the admin's view
//! of enrolment codes and devices (issue, list, revoke).

use crate::access::{Access, Action};
use crate::auth::devices::{self, DeviceError, DeviceKind};
use crate::auth::stations;
use crate::auth::users::{station_code, HQ};
use crate::auth::Event;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    code: String,
    /// The enrolling instance's id.
    instance: uuid::Uuid,
    /// Its ed25519 public key, base64.
    public_key: String,
    /// The station its data directory belongs to; a code for another station
    /// is refused without being used up. Absent for a fresh data directory,
    /// which takes the code's station (the answer names it).
    station: Option<String>,
    /// What people call the device ("Kestrel"), shown wherever it appears.
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/v1/enroll`: a downstream presents its code once and receives
/// the credential it will sync with.
pub async fn enroll(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<EnrollBody>,
) -> Result<HttpResponse, ApiError> {
    let address = format!("ip:{}", super::auth::peer(&req));
    if let Some(wait) = state.address_limits.blocked(&address) {
        return Err(ApiError::too_many_attempts(wait));
    }
    let EnrollBody {
        code,
        instance,
        public_key,
        station,
        name,
    } = body.into_inner();
    let st = state.clone();
    let result = web::block(move || {
        let store = st.records.store().as_ref();
        let enrolled = devices::enroll(
            store,
            &code,
            instance,
            &public_key,
            station.as_deref(),
            name.as_deref(),
        );
        if let Ok((device, _)) = &enrolled {
            st.audit.append(
                store,
                Event::new(format!("device:{}", device.id), "device.enroll").details(json!({
                    "station": device.station,
                    "kind": device.kind,
                })),
                true,
            )?;
        }
        Ok::<_, tideline_sync::StoreError>(enrolled)
    })
    .await?
    .map_err(ApiError::internal)?;
    match result {
        Ok((device, secret)) => Ok(HttpResponse::Created().json(json!({
            "device": device.id,
            "station": device.station,
            "kind": device.kind,
            "credential": secret,
            "upstream_instance": state.records.identity().device_id,
        }))),
        Err(e) => {
            // A wrong code counts against the address, as a wrong password does.
            if matches!(e, DeviceError::BadCode | DeviceError::Revoked(_)) {
                state.address_limits.fail(&address);
            }
            Err(e.into())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    station: String,
    kind: String,
    /// How long the code stays valid [default: 24].
    expires_hours: Option<u64>,
}

pub async fn issue_code(
    state: web::Data<AppState>,
    access: Access,
    body: web::Json<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    let CodeBody {
        station,
        kind,
        expires_hours,
    } = body.into_inner();
    let (code, expires_at) = issue(&state, &access, &station, &kind, expires_hours).await?;
    Ok(HttpResponse::Created().json(json!({ "code": code, "expires_at": expires_at })))
}

/// Check and issue a one-time enrolment code (the API and the web
/// interface's admin page); returns the code and when it expires.
pub(crate) async fn issue(
    state: &web::Data<AppState>,
    access: &Access,
    station: &str,
    kind: &str,
    expires_hours: Option<u64>,
) -> Result<(String, i64), ApiError> {
    access.require(Action::ManageDevices)?;
    let invalid = |path: &str, message: String| {
        ApiError::unprocessable("invalid_code_request", message.clone())
            .with_details(json!([{ "path": path, "message": message }]))
    };
    let station = station_code(station)?;
    let kind: DeviceKind = kind.parse()?;
    let hours = expires_hours.unwrap_or(24);
    if !(1..=24 * 30).contains(&hours) {
        return Err(invalid("expires_hours", "between 1 and 720 hours".into()));
    }
    stations::check_known(
        state.records.store().as_ref(),
        state.records.station(),
        &station,
    )?;
    if station == HQ || access.station().is_some_and(|own| own != station) {
        return Err(ApiError::forbidden(format!(
            "You may enrol devices of station {} only.",
            access.user.station
        )));
    }
    let st = state.clone();
    let actor = access.actor();
    let (code, expires_at) = web::block(move || {
        let store = st.records.store().as_ref();
        let issued = devices::issue_code(store, &station, kind, Duration::from_secs(hours * 3600))?;
        st.audit.append(
            store,
            Event::new(actor, "device.code")
                .details(json!({ "station": station, "kind": kind, "expires_at": issued.1 })),
            true,
        )?;
        Ok::<_, tideline_sync::StoreError>(issued)
    })
    .await?
    .map_err(ApiError::internal)?;
    Ok((code, expires_at))
}

pub async fn list(state: web::Data<AppState>, access: Access) -> Result<HttpResponse, ApiError> {
    access.require(Action::ManageDevices)?;
    let all = devices::list(state.records.store().as_ref()).map_err(ApiError::internal)?;
    let visible: Vec<_> = all
        .into_iter()
        .filter(|d| access.station().is_none_or(|s| s == d.station))
        .map(|d| {
            json!({
                "device": d.id,
                "station": d.station,
                "kind": d.kind,
                "public_key": d.public_key,
                "enrolled_at": d.enrolled_at,
                "revoked": d.revoked,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "devices": visible })))
}

pub async fn revoke(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let device = revoke_device(&state, &access, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "device": device.id, "revoked": device.revoked })))
}

/// Revoke a device of the caller's scope, audited: for the API and the
/// administration page alike.
pub(crate) async fn revoke_device(
    state: &web::Data<AppState>,
    access: &Access,
    id: &str,
) -> Result<devices::Device, ApiError> {
    access.require(Action::ManageDevices)?;
    let id: uuid::Uuid = id.parse().map_err(|_| {
        ApiError::bad_request("invalid_id", format!("{id:?} is not a device id (a UUID)."))
    })?;
    let st = state.clone();
    let actor = access.actor();
    let own = access.station().map(str::to_string);
    let device = web::block(move || -> Result<_, ApiError> {
        let store = st.records.store().as_ref();
        let existing = devices::get(store, &id)
            .map_err(ApiError::internal)?
            .filter(|d| own.as_ref().is_none_or(|s| *s == d.station))
            .ok_or_else(|| ApiError::not_found("not_found", format!("No device {id}.")))?;
        let device = devices::revoke(store, &existing.id).map_err(ApiError::internal)?;
        st.audit
            .append(
                store,
                Event::new(actor, "device.revoke").target(id.to_string()),
                true,
            )
            .map_err(ApiError::internal)?;
        Ok(device)
    })
    .await??;
    Ok(device)
}
