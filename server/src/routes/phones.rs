//! Phones for ODK Collect (docs/ODK.md): an admin issues one for a person of
//! their station and gets the server URL and the settings QR code to scan;
//! lists them; revokes one. The web admin page calls the same functions.

use crate::access::{Access, Action};
use crate::auth::phones::{self, Phone, PhoneError};
use crate::auth::{users, Event};
use crate::error::ApiError;
use crate::openrosa::settings;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

impl From<PhoneError> for ApiError {
    fn from(e: PhoneError) -> Self {
        match e {
            PhoneError::Unknown(_) => ApiError::not_found("unknown_phone", e.to_string()),
            PhoneError::Store(e) => ApiError::internal(e),
            PhoneError::Role(..) | PhoneError::Disabled(_) | PhoneError::BadName => {
                ApiError::unprocessable("invalid_phone", format!("{e}."))
            }
        }
    }
}

/// A phone just issued, with what to give it (shown once).
pub struct Issued {
    pub phone: Phone,
    pub setup: settings::Setup,
}

impl Issued {
    pub fn json(&self) -> serde_json::Value {
        json!({
            "id": self.phone.id,
            "user": self.phone.username,
            "name": self.phone.name,
            "server_url": self.setup.url,
            "settings_qr": self.setup.qr_text,
            "qr_svg": settings::qr_svg(&self.setup.qr_text),
        })
    }
}

/// Issue a phone for `username`, a person of the admin's own station.
pub async fn issue(
    state: &web::Data<AppState>,
    access: &Access,
    username: &str,
    name: Option<String>,
    origin: String,
) -> Result<Issued, ApiError> {
    access.require(Action::ManageDevices)?;
    let (st, a) = (state.clone(), access.clone());
    let username = users::typed_name(username);
    web::block(move || {
        let store = st.records.store().as_ref();
        let user = users::find(store, &username)
            .map_err(ApiError::internal)?
            .filter(|u| a.station().is_none_or(|s| s == u.station))
            .ok_or_else(|| {
                ApiError::not_found("unknown_user", format!("No user {username:?} here."))
            })?;
        let (phone, token) = phones::issue(store, &user, name.as_deref())?;
        let setup = settings::setup(&origin, &token, &user.station);
        a.audit(
            &st,
            Event::new(a.actor(), "phone.issue")
                .target(phone.id.to_string())
                .details(json!({ "user": phone.username, "name": phone.name })),
        )?;
        Ok(Issued { phone, setup })
    })
    .await?
}

/// Whether the admin's scope takes in the phones of a person of `station`
/// (at HQ, everyone's).
fn in_scope(access: &Access, station: Option<&str>) -> bool {
    access.station().is_none_or(|own| station == Some(own))
}

/// Every phone of the admin's station.
pub async fn list_of(state: &web::Data<AppState>, access: &Access) -> Result<Vec<Phone>, ApiError> {
    access.require(Action::ManageDevices)?;
    let (st, a) = (state.clone(), access.clone());
    web::block(move || {
        let store = st.records.store().as_ref();
        let stations: std::collections::HashMap<String, String> = users::list(store)
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|u| (u.username.to_string(), u.station))
            .collect();
        Ok(phones::list(store)
            .map_err(ApiError::internal)?
            .into_iter()
            .filter(|p| in_scope(&a, stations.get(&p.username).map(String::as_str)))
            .collect())
    })
    .await?
}

/// Revoke a phone: its next request is refused with a message.
pub async fn revoke_phone(
    state: &web::Data<AppState>,
    access: &Access,
    id: &str,
) -> Result<Phone, ApiError> {
    access.require(Action::ManageDevices)?;
    let id: uuid::Uuid = id
        .parse()
        .map_err(|_| ApiError::not_found("unknown_phone", format!("No phone {id:?} here.")))?;
    let (st, a) = (state.clone(), access.clone());
    web::block(move || {
        let store = st.records.store().as_ref();
        // Only phones the admin can see may be revoked by them.
        let phone = phones::get(store, &id).map_err(ApiError::internal)?;
        let station = match &phone {
            Some(p) => users::find(store, &p.username)
                .map_err(ApiError::internal)?
                .map(|u| u.station),
            None => None,
        };
        if phone.is_none() || !in_scope(&a, station.as_deref()) {
            return Err(PhoneError::Unknown(id).into());
        }
        let phone = phones::revoke(store, &id)?;
        a.audit(
            &st,
            Event::new(a.actor(), "phone.revoke").target(id.to_string()),
        )?;
        Ok(phone)
    })
    .await?
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPhone {
    user: String,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/v1/phones {"user", "name"}`: 201 with the server URL and QR code.
pub async fn create(
    state: web::Data<AppState>,
    access: Access,
    req: HttpRequest,
    body: web::Json<NewPhone>,
) -> Result<HttpResponse, ApiError> {
    let NewPhone { user, name } = body.into_inner();
    let issued = issue(&state, &access, &user, name, crate::links::origin(&req)).await?;
    Ok(HttpResponse::Created().json(issued.json()))
}

/// `GET /api/v1/phones`
pub async fn list(state: web::Data<AppState>, access: Access) -> Result<HttpResponse, ApiError> {
    let phones: Vec<_> = list_of(&state, &access)
        .await?
        .iter()
        .map(Phone::public)
        .collect();
    Ok(HttpResponse::Ok().json(phones))
}

/// `POST /api/v1/phones/{id}/revoke`
pub async fn revoke(
    state: web::Data<AppState>,
    access: Access,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(revoke_phone(&state, &access, &id).await?.public()))
}
