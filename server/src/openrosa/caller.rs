//! Who an OpenRosa request is from: a phone, by the token in its URL, or a
//! person signing in with Basic over HTTPS at the root paths. Collect answers
//! a Basic challenge only over HTTPS and would send the password in the clear
//! otherwise, so over plain HTTP the root paths only say how to get a phone
//! link. Either way the caller becomes an [`Access`], so the API's role and
//! station rules apply unchanged.

use super::reply::OpenRosaError;
use crate::access::{Access, Action};
use crate::auth::devices::Refusal;
use crate::auth::sessions::SessionUser;
use crate::auth::{phones, users};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpRequest};
use base64::Engine;

/// The caller of an OpenRosa request and where its URLs start.
pub struct Caller {
    pub access: Access,
    /// `https://host/v1/key/.../projects/BB-01`, or `https://host` at the root:
    /// what the form list's download URLs start with.
    pub base: String,
}

fn unauthorised(message: &str) -> OpenRosaError {
    OpenRosaError::from(ApiError::bad_credentials(message))
}

impl Caller {
    /// Authenticate `req`, and require that the caller may submit records
    /// (what a phone is for; an analyst or admin is refused with a message).
    pub async fn of(
        state: &web::Data<AppState>,
        req: &HttpRequest,
    ) -> Result<Caller, OpenRosaError> {
        let origin = crate::links::origin(req);
        let caller = match req.match_info().get("token") {
            Some(token) => {
                let station = req.match_info().get("station").unwrap_or_default();
                let access = by_token(state, token, station).await?;
                let base = super::settings::server_url(&origin, token, station);
                Caller { access, base }
            }
            None => Caller {
                access: by_password(state, req).await?,
                base: origin,
            },
        };
        caller.access.require(Action::WriteRecords)?;
        Ok(caller)
    }
}

async fn by_token(
    state: &web::Data<AppState>,
    token: &str,
    station: &str,
) -> Result<Access, OpenRosaError> {
    let (st, token) = (state.clone(), token.to_string());
    let found = web::block(move || {
        let store = st.records.store().as_ref();
        let phone = match phones::authenticate(store, &token)? {
            Ok(phone) => phone,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let user = users::find(store, &phone.username)?;
        Ok::<_, tideline_sync::StoreError>(Ok((phone, user)))
    })
    .await?
    .map_err(ApiError::internal)?;
    let (phone, user) = match found {
        Ok(found) => found,
        Err(Refusal::Revoked(_)) => {
            return Err(unauthorised(
                "This phone's access was revoked. Ask your admin for a new QR code and scan it in Collect's project settings.",
            ))
        }
        Err(Refusal::Invalid) => {
            return Err(unauthorised(
                "This server link is not valid (mistyped, or from another server). Ask your admin for a QR code and scan it in Collect's project settings.",
            ))
        }
    };
    let user = user.filter(|u| !u.disabled).ok_or_else(|| {
        unauthorised(&format!(
            "The account {} this phone submits for is disabled. Ask your admin.",
            phone.username
        ))
    })?;
    if user.station != station {
        return Err(ApiError::wrong_station(format!(
            "This link is for station {station}, but {} now belongs to {}. Ask your admin for a new QR code.",
            user.username, user.station
        ))
        .into());
    }
    Ok(Access {
        user: SessionUser {
            username: user.username.clone(),
            role: user.role,
            station: user.station,
        },
        phone: Some(phone.label()),
    })
}

/// `Authorization: Basic` with the person's own account, over HTTPS only.
async fn by_password(
    state: &web::Data<AppState>,
    req: &HttpRequest,
) -> Result<Access, OpenRosaError> {
    if !state.tls {
        return Err(unauthorised(
            "This server signs phones in by the link in their QR code (over plain HTTP a password would travel in the clear). Ask your admin for a QR code and scan it in Collect's project settings.",
        ));
    }
    let challenge = |message: &str| OpenRosaError {
        error: ApiError::bad_credentials(message),
        basic: true,
    };
    let Some((name, password)) = basic(req) else {
        return Err(challenge(
            "Sign in with your Tideline user name and password (Collect: Settings, Server).",
        ));
    };
    let user = crate::routes::auth::check_password(state, req, name, password)
        .await
        .map_err(|e| OpenRosaError {
            basic: e.status() == actix_web::http::StatusCode::UNAUTHORIZED,
            error: e,
        })?;
    Ok(Access {
        user: SessionUser {
            username: user.username.clone(),
            role: user.role,
            station: user.station,
        },
        phone: None,
    })
}

fn basic(req: &HttpRequest) -> Option<(String, String)> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}
