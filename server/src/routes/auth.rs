//! Logging in and out, setting up the first admin, managing people, and
//! reading the audit log.

use crate::access::{presented_token, Access, Action, SESSION_COOKIE};
use crate::auth::stations;
use crate::auth::users::{self, Role, Username, HQ};
use crate::auth::{audit, Event};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

pub(crate) fn session_cookie(token: &str, state: &AppState) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token.to_string())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.tls)
        .max_age(actix_web::cookie::time::Duration::seconds(
            state.sessions.idle().as_secs() as i64,
        ))
        .finish()
}

/// The client's address, as login throttling and the audit log name it.
pub(super) fn peer(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn audit_now(state: &AppState, event: Event) -> Result<(), ApiError> {
    state
        .audit
        .append(state.records.store().as_ref(), event, false)
        .map(|_| ())
        .map_err(ApiError::internal)
}

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let LoginBody { username, password } = body.into_inner();
    let (user, token) = sign_in(&state, &req, username, password).await?;
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&token, &state))
        .json(json!({
            "token": token,
            "username": user.username,
            "role": user.role,
            "station": user.station,
            "idle_timeout_secs": state.sessions.idle().as_secs(),
        })))
}

/// Check a password, with throttling and auditing, and start a session: the
/// API's login and the web interface's sign-in page both come here.
pub(crate) async fn sign_in(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    username: String,
    password: String,
) -> Result<(users::User, String), ApiError> {
    let user = check_password(state, req, username, password).await?;
    let token = state.sessions.start(&user).map_err(ApiError::internal)?;
    audit_now(
        state,
        Event::new(format!("user:{}", user.username), "login.success")
            .details(json!({ "address": peer(req) })),
    )?;
    Ok((user, token))
}

/// The user whose password this is, with throttling (per account and per
/// address) and an audited failure: signing in, and phones that sign in with
/// Basic on every request.
pub(crate) async fn check_password(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    username: String,
    password: String,
) -> Result<users::User, ApiError> {
    // User names are lower case; a tablet that capitalises the first letter
    // must neither fail nor count towards the lockout.
    let username = users::typed_name(&username);
    let account = format!("user:{username}");
    let address = format!("ip:{}", peer(req));
    let blocked = state
        .account_limits
        .blocked(&account)
        .or_else(|| state.address_limits.blocked(&address));
    if let Some(wait) = blocked {
        return Err(ApiError::too_many_attempts(wait));
    }
    let st = state.clone();
    let name = username.clone();
    let user =
        web::block(move || users::authenticate(st.records.store().as_ref(), &name, &password))
            .await?
            .map_err(ApiError::internal)?;
    let Some(user) = user else {
        state.account_limits.fail(&account);
        state.address_limits.fail(&address);
        audit_now(
            state,
            Event::new("anonymous", "login.failure")
                .target(username.chars().take(64).collect::<String>())
                .details(json!({ "address": peer(req) })),
        )?;
        return Err(ApiError::bad_credentials("Unknown user or wrong password."));
    };
    state.account_limits.clear(&account);
    Ok(user)
}

/// End the caller's session; returns the cookie that removes it from the browser.
pub(crate) fn sign_out(
    state: &AppState,
    access: &Access,
    req: &HttpRequest,
) -> Result<actix_web::cookie::Cookie<'static>, ApiError> {
    if let Some(token) = presented_token(req) {
        state.sessions.end(&token).map_err(ApiError::internal)?;
    }
    audit_now(state, Event::new(access.actor(), "logout"))?;
    let mut gone = session_cookie("", state);
    gone.make_removal();
    Ok(gone)
}

pub async fn logout(
    state: web::Data<AppState>,
    access: Access,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let gone = sign_out(&state, &access, &req)?;
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

pub async fn me(access: Access) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "username": access.user.username,
        "role": access.user.role,
        "station": access.user.station,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    code: String,
    username: String,
    password: String,
}

/// Create the first admin with the one-time code printed at start.
pub async fn setup(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<SetupBody>,
) -> Result<HttpResponse, ApiError> {
    let SetupBody {
        code,
        username,
        password,
    } = body.into_inner();
    let address = format!("ip:{}", peer(&req));
    if let Some(wait) = state.address_limits.blocked(&address) {
        return Err(ApiError::too_many_attempts(wait));
    }
    let name = Username::try_from(username)?;
    let st = state.clone();
    let created = web::block(move || -> Result<_, ApiError> {
        let store = st.records.store().as_ref();
        let mut setup = st.setup.lock().unwrap_or_else(|p| p.into_inner());
        if users::any_exist(store).map_err(ApiError::internal)? {
            *setup = None;
            return Err(ApiError::conflict(
                "already_set_up",
                "This instance already has users; ask an admin for an account.",
            ));
        }
        let valid = setup.as_ref().is_some_and(|s| {
            s.expires > std::time::Instant::now()
                && bool::from(s.code.as_bytes().ct_eq(code.trim().as_bytes()))
        });
        if !valid {
            return Ok(None);
        }
        // The first admin works for the instance's own station; at HQ, for all.
        let station = st.records.station().to_string();
        let user = users::create(store, name, Role::Admin, &station, &password)?;
        *setup = None;
        st.audit
            .append(
                store,
                Event::new("setup", "user.create")
                    .target(user.username.to_string())
                    .details(json!({ "role": user.role, "station": user.station })),
                true,
            )
            .map_err(ApiError::internal)?;
        Ok(Some(user))
    })
    .await??;
    match created {
        Some(user) => Ok(HttpResponse::Created().json(json!({
            "username": user.username,
            "role": user.role,
            "station": user.station,
        }))),
        None => {
            state.address_limits.fail(&address);
            Err(ApiError::bad_credentials(
                "The setup code is wrong, used or expired; restart the instance for a new one.",
            ))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub role: String,
    pub station: Option<String>,
    pub password: String,
}

pub async fn create_user(
    state: web::Data<AppState>,
    access: Access,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let user = add_user(&state, &access, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(json!({
        "username": user.username,
        "role": user.role,
        "station": user.station,
    })))
}

/// Create a person, checked and audited: for the API and the
/// administration page alike.
pub(crate) async fn add_user(
    state: &web::Data<AppState>,
    access: &Access,
    new: NewUser,
) -> Result<users::User, ApiError> {
    access.require(Action::ManageUsers)?;
    let NewUser {
        username,
        role,
        station,
        password,
    } = new;
    let name = Username::try_from(username)?;
    let role: Role = role.parse()?;
    let station = station.unwrap_or_else(|| state.records.station().to_string());
    stations::check_known(
        state.records.store().as_ref(),
        state.records.station(),
        &station,
    )?;
    // An admin of one station manages that station's people only.
    if access.station().is_some_and(|own| own != station)
        || (station == HQ && access.station().is_some())
    {
        return Err(ApiError::forbidden(format!(
            "You manage the people of station {} only.",
            access.user.station
        )));
    }
    let st = state.clone();
    let actor = access.actor();
    let user = web::block(move || -> Result<_, ApiError> {
        let store = st.records.store().as_ref();
        let user = users::create(store, name, role, &station, &password)?;
        st.audit
            .append(
                store,
                Event::new(actor, "user.create")
                    .target(user.username.to_string())
                    .details(json!({ "role": user.role, "station": user.station })),
                true,
            )
            .map_err(ApiError::internal)?;
        Ok(user)
    })
    .await??;
    Ok(user)
}

pub async fn list_users(
    state: web::Data<AppState>,
    access: Access,
) -> Result<HttpResponse, ApiError> {
    access.require(Action::ManageUsers)?;
    let all = users::list(state.records.store().as_ref()).map_err(ApiError::internal)?;
    let visible: Vec<_> = all
        .into_iter()
        .filter(|u| access.station().is_none_or(|s| s == u.station))
        .map(|u| {
            json!({
                "username": u.username,
                "role": u.role,
                "station": u.station,
                "created_at": u.created_at,
                "disabled": u.disabled,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "users": visible })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

pub async fn audit_log(
    state: web::Data<AppState>,
    access: Access,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    access.require(Action::ReadAudit)?;
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 10000.",
        ));
    }
    let query = audit::Query {
        actor: q.actor,
        action: q.action,
        target: q.target,
        after: q.after.unwrap_or(0),
        limit,
    };
    let st = state.clone();
    let entries = web::block(move || audit::list(st.records.store().as_ref(), &query))
        .await?
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({ "entries": entries })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(Default)]
pub struct UserChange {
    pub role: Option<String>,
    pub station: Option<String>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
    /// Lift a lockout after failed sign-ins (a new password does too).
    #[serde(default)]
    pub unlock: bool,
}

/// Change a user's role, station, password, or lock them out; their sessions
/// end, so the change applies at once.
pub async fn update_user(
    state: web::Data<AppState>,
    access: Access,
    name: web::Path<String>,
    body: web::Json<UserChange>,
) -> Result<HttpResponse, ApiError> {
    let user = change_user(&state, &access, name.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({
        "username": user.username,
        "role": user.role,
        "station": user.station,
        "disabled": user.disabled,
    })))
}

/// Change a person, checked and audited; a new password or `unlock` lifts a
/// lockout after failed sign-ins, since at sea nobody can wait it out.
pub(crate) async fn change_user(
    state: &web::Data<AppState>,
    access: &Access,
    name: String,
    change: UserChange,
) -> Result<users::User, ApiError> {
    access.require(Action::ManageUsers)?;
    let name =
        Username::try_from(name).map_err(|e| ApiError::not_found("not_found", e.to_string()))?;
    let UserChange {
        role,
        station,
        disabled,
        password,
        unlock,
    } = change;
    let lift = unlock || password.is_some();
    // Unlocking alone changes nothing the person's sessions depend on.
    let ends_sessions =
        role.is_some() || station.is_some() || disabled.is_some() || password.is_some();
    let role = role.map(|r| r.parse::<Role>()).transpose()?;
    if let Some(s) = &station {
        stations::check_known(state.records.store().as_ref(), state.records.station(), s)?;
        if access.station().is_some_and(|own| own != s) {
            return Err(ApiError::forbidden(
                "You may not move people to another station.",
            ));
        }
    }
    let details = json!({
        "role": role,
        "station": station,
        "disabled": disabled,
        "password_changed": password.is_some(),
        "unlocked": lift,
    });
    let st = state.clone();
    let actor = access.actor();
    let own = access.station().map(str::to_string);
    let user = web::block(move || -> Result<_, ApiError> {
        let store = st.records.store().as_ref();
        // An admin of one station changes that station's people only.
        match users::get(store, &name).map_err(ApiError::internal)? {
            Some(u) if own.as_ref().is_none_or(|s| *s == u.station) => {}
            _ => return Err(ApiError::not_found("not_found", format!("No user {name}."))),
        }
        let change = users::Change {
            role,
            station,
            disabled,
            password,
        };
        let user = users::update(store, &name, change)?
            .ok_or_else(|| ApiError::not_found("not_found", format!("No user {name}.")))?;
        if ends_sessions {
            st.sessions
                .end_all_of(&user.username)
                .map_err(ApiError::internal)?;
        }
        st.audit
            .append(
                store,
                Event::new(actor, "user.update")
                    .target(user.username.to_string())
                    .details(details),
                true,
            )
            .map_err(ApiError::internal)?;
        Ok(user)
    })
    .await??;
    if lift {
        state
            .account_limits
            .clear(&format!("user:{}", user.username));
    }
    Ok(user)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStation {
    code: String,
    name: String,
    island: String,
}

/// Stations are HQ's to define.
pub async fn create_station(
    state: web::Data<AppState>,
    access: Access,
    body: web::Json<NewStation>,
) -> Result<HttpResponse, ApiError> {
    access.require(Action::ManageUsers)?;
    if access.station().is_some() {
        return Err(ApiError::forbidden("Stations are created by admins at HQ."));
    }
    let NewStation { code, name, island } = body.into_inner();
    let st = state.clone();
    let actor = access.actor();
    let station = web::block(move || -> Result<_, ApiError> {
        let store = st.records.store().as_ref();
        let station = stations::create(store, &code, &name, &island)?;
        st.audit
            .append(
                store,
                Event::new(actor, "station.create").target(station.code.clone()),
                true,
            )
            .map_err(ApiError::internal)?;
        Ok(station)
    })
    .await??;
    Ok(HttpResponse::Created().json(station))
}

pub async fn list_stations(
    state: web::Data<AppState>,
    _: Access,
) -> Result<HttpResponse, ApiError> {
    let all = stations::list(state.records.store().as_ref()).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({ "stations": all })))
}
