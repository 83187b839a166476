//! Who may do what, to which records: the one place the HTTP API checks roles
//! and station scope (docs/SECURITY.md).
//!
//! The authentication middleware ([`authenticate`]) lets nothing but the
//! public endpoints through without a live session; it puts the caller in the
//! request. Handlers take an [`Access`] (the caller plus their scope) and reach
//! records only through its methods, which refuse actions the caller's role
//! does not allow and answer "not found" for records outside their station.

use crate::auth::devices::{self, Refusal};
use crate::auth::sessions::SessionUser;
use crate::auth::users::{Role, HQ};
use crate::auth::Event;
use crate::error::ApiError;
use crate::{data_dir::SharedRecords, state::AppState};
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};
use std::future::{ready, Ready};
use tideline_schemas::RecordId;
use tideline_sync::blobs::BlobHash;
use tideline_sync::records::{Attachment, Submission};
use tideline_sync::{Author, DocStore, Filter, Page, Patch, RecordsError, Status, Written};

/// The session cookie the web interface uses (the API takes the same token
/// as `Authorization: Bearer`).
pub const SESSION_COOKIE: &str = "tideline_session";

/// Paths anyone may call: liveness, and the ways to obtain credentials.
const PUBLIC: [&str; 6] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/v1/login",
    "/api/v1/setup",
    "/api/v1/enroll",
];

/// Paths anyone may open: [`PUBLIC`], and the sign-in page, what it is
/// drawn with, and the tablet set-up pages.
pub fn is_public(path: &str) -> bool {
    PUBLIC.contains(&path)
        || matches!(path, "/login" | "/favicon.ico" | "/tablet" | "/ca.pem")
        || path.starts_with("/assets/")
}

/// Whether a path is a page of the web interface (a browser is sent to the
/// sign-in page without a session, where an API client gets a 401).
pub fn is_page(path: &str) -> bool {
    !(path.starts_with("/api/") || path.starts_with("/sync/v1") || path == "/healthz")
}

/// Whether a path is an entry form (a new record, or editing one): the
/// pages a sign-in after an ended session goes back to.
pub fn is_entry(path: &str) -> bool {
    path == "/records/new"
        || path
            .strip_prefix("/records/")
            .and_then(|rest| rest.strip_suffix("/edit"))
            .is_some_and(|id| !id.contains('/'))
}

/// Whether a path is ODK Collect's (OpenRosa): it authenticates by the
/// phone token in the path, or Basic over HTTPS (docs/ODK.md).
pub fn is_openrosa(path: &str) -> bool {
    path.starts_with("/v1/key/") || matches!(path, "/formList" | "/submission")
}

/// The one path for devices (downstream instances) rather than people.
const DEVICE_PATH: &str = "/sync/v1";
/// ...and the file uploads that follow it.
const DEVICE_PREFIX: &str = "/sync/v1/";

/// What a caller may do. Record actions are further limited to the caller's station.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ReadRecords,
    WriteRecords,
    /// Move a record past `submitted`, resolve conflicts.
    Review,
    Export,
    ManageUsers,
    /// Enrol and revoke downstream instances.
    ManageDevices,
    ReadAudit,
    /// Start a sync now.
    Sync,
    /// Take a backup of the whole instance.
    Backup,
    /// Publish a new form version (at HQ).
    PublishForms,
}

impl Action {
    fn allowed_for(self, role: Role) -> bool {
        use Action::*;
        use Role::*;
        match self {
            ReadRecords => matches!(role, Officer | Supervisor | Analyst),
            WriteRecords => matches!(role, Officer | Supervisor),
            Review => role == Supervisor,
            Export => matches!(role, Supervisor | Analyst),
            ManageUsers | ManageDevices | ReadAudit | Backup | PublishForms => role == Admin,
            Sync => matches!(role, Officer | Supervisor | Admin),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Action::ReadRecords => "read records",
            Action::WriteRecords => "create or edit records",
            Action::Review => "review records",
            Action::Export => "export records",
            Action::ManageUsers => "manage users",
            Action::ManageDevices => "manage devices",
            Action::ReadAudit => "read the audit log",
            Action::Sync => "start a sync",
            Action::Backup => "take a backup",
            Action::PublishForms => "publish forms",
        }
    }
}

/// Find the session token: `Authorization: Bearer`, else the session cookie.
pub fn presented_token(req: &HttpRequest) -> Option<String> {
    if let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let text = value.to_str().ok()?;
        return text.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    req.cookie(SESSION_COOKIE).map(|c| c.value().to_string())
}

/// The middleware: public paths pass; sync needs an enrolled device's
/// credential; anything else needs a live session.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<
    ServiceResponse<actix_web::body::EitherBody<impl MessageBody, actix_web::body::BoxBody>>,
    actix_web::Error,
> {
    if is_public(req.path()) || is_openrosa(req.path()) {
        return next.call(req).await.map(|r| r.map_into_left_body());
    }
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("no application state"))?;
    let token = presented_token(req.request());
    if req.path() == DEVICE_PATH || req.path().starts_with(DEVICE_PREFIX) {
        let token = token.ok_or_else(ApiError::unenrolled)?;
        let checked = devices::authenticate(state.records.store().as_ref(), &token)
            .map_err(ApiError::internal)?;
        match checked {
            Ok(device) => req.extensions_mut().insert(device),
            Err(Refusal::Revoked(id)) => return Err(ApiError::revoked(id).into()),
            Err(Refusal::Invalid) => return Err(ApiError::unenrolled().into()),
        };
    } else {
        match token.and_then(|token| state.sessions.check(&token)) {
            Some(user) => {
                req.extensions_mut().insert(user);
            }
            // A browser without a session goes to the sign-in page, and back after.
            None if is_page(req.path()) && req.method() == actix_web::http::Method::GET => {
                let next = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let to = format!("/login?next={}", crate::links::urlencode(&next));
                let resp = crate::links::see_other(&to);
                return Ok(req.into_response(resp).map_into_right_body());
            }
            // A form posted after the session ended: what it carried is
            // kept by the page's script in the browser, and the page comes
            // back with it after sign-in (docs/SECURITY.md, sessions).
            None if is_page(req.path()) => {
                let back = is_entry(req.path())
                    .then(|| req.uri().path_and_query().map(|p| p.as_str().to_string()))
                    .flatten()
                    .unwrap_or_else(|| "/".to_string());
                let to = format!("/login?expired=1&next={}", crate::links::urlencode(&back));
                let resp = crate::links::see_other(&to);
                return Ok(req.into_response(resp).map_into_right_body());
            }
            None => return Err(ApiError::unauthenticated().into()),
        }
    }
    next.call(req).await.map(|r| r.map_into_left_body())
}

/// The caller of a request and the records they can see.
#[derive(Clone)]
pub struct Access {
    pub user: SessionUser,
    /// The phone the person is using (`phone Kestrel 2`), when it is one.
    pub phone: Option<String>,
}

impl FromRequest for Access {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<SessionUser>()
                .cloned()
                .map(|user| Access { user, phone: None })
                .ok_or_else(ApiError::unauthenticated),
        )
    }
}

fn not_found(id: &RecordId) -> ApiError {
    ApiError::from(RecordsError::NotFound(*id))
}

impl Access {
    /// `user:<name>`, as the audit log and records' histories name people,
    /// followed by the phone when they use one (`user:ann (phone Kestrel)`).
    pub fn actor(&self) -> String {
        match &self.phone {
            Some(phone) => format!("user:{} ({phone})", self.user.username),
            None => format!("user:{}", self.user.username),
        }
    }

    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if action.allowed_for(self.user.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "Your role ({}) may not {}.",
                self.user.role,
                action.describe()
            )))
        }
    }

    /// Refuse what reaches every station (a form version) unless the caller
    /// is one of HQ's own people: a station's admin, even one with an
    /// account on the HQ instance, speaks for one station only.
    pub fn require_hq(&self, action: Action) -> Result<(), ApiError> {
        self.require(action)?;
        match self.station() {
            None => Ok(()),
            Some(station) => Err(ApiError::forbidden(format!(
                "Only HQ's own admins may {}: it reaches every station, and your account belongs to {station}.",
                action.describe()
            ))),
        }
    }

    /// The one station the caller works with, or None for HQ (every station).
    pub fn station(&self) -> Option<&str> {
        (self.user.station != HQ).then_some(self.user.station.as_str())
    }

    fn sees(&self, station: &str) -> bool {
        self.station().is_none_or(|s| s == station)
    }

    /// Records of `records` as this caller may use them.
    pub fn records<'a>(&'a self, state: &'a AppState) -> Scoped<'a> {
        Scoped {
            access: self,
            state,
            records: &state.records,
        }
    }

    /// Append to the audit log; a failure to audit is an error of the request.
    pub fn audit(&self, state: &AppState, event: Event) -> Result<(), ApiError> {
        state
            .audit
            .append(state.records.store().as_ref(), event, false)
            .map(|_| ())
            .map_err(ApiError::internal)
    }
}

/// Record operations limited to one caller's role and scope. These run on the
/// blocking pool (they may fsync); call them inside `web::block`.
pub struct Scoped<'a> {
    access: &'a Access,
    state: &'a AppState,
    records: &'a SharedRecords,
}

impl Scoped<'_> {
    fn check(&self, id: &RecordId) -> Result<(), ApiError> {
        match self
            .records
            .store()
            .summary(id)
            .map_err(RecordsError::from)?
        {
            Some(s) if self.access.sees(&s.station) => Ok(()),
            _ => Err(not_found(id)),
        }
    }

    fn audit(&self, action: &'static str, id: &RecordId) -> Result<(), ApiError> {
        self.access.audit(
            self.state,
            Event::new(self.access.actor(), action).target(id.to_string()),
        )
    }

    pub fn create(&self, form: &str, fields: &Map<String, Json>) -> Result<Written, ApiError> {
        self.check_creatable()?;
        let written = self.records.create(
            Author::person(&self.access.actor(), self.access.station()),
            form,
            fields,
        )?;
        self.audit("record.create", &written.id)?;
        self.state.local_change();
        Ok(written)
    }

    /// Fail unless the caller may make records on this instance: records
    /// made here carry its station. A phone's submission checks this before
    /// its files are kept.
    pub fn check_creatable(&self) -> Result<(), ApiError> {
        self.access.require(Action::WriteRecords)?;
        if !self.access.sees(self.records.station()) {
            return Err(ApiError::forbidden(format!(
                "Records made on this instance belong to station {}, which is not yours.",
                self.records.station()
            )));
        }
        Ok(())
    }

    /// Store a phone's submission as a new record of this instance.
    pub fn submit(&self, submission: Submission<'_>) -> Result<Written, ApiError> {
        self.check_creatable()?;
        let actor = self.access.actor();
        let written = self
            .records
            .submit(Author::person(&actor, self.access.station()), submission)?;
        self.audit("record.create", &written.id)?;
        self.state.local_change();
        Ok(written)
    }

    /// Apply a phone's edit of a record it submitted (see `Records::revise`).
    pub fn revise(
        &self,
        id: &RecordId,
        base: &[tideline_sync::ChangeHash],
        fields: &Map<String, Json>,
        attachments: &[Attachment],
    ) -> Result<Written, ApiError> {
        self.check_writable(id)?;
        let actor = self.access.actor();
        let written = self.records.revise(
            Author::person(&actor, self.access.station()),
            id,
            base,
            fields,
            attachments,
        )?;
        self.audit("record.edit", id)?;
        self.state.local_change();
        Ok(written)
    }

    pub fn get(&self, id: &RecordId) -> Result<Box<RawValue>, ApiError> {
        self.access.require(Action::ReadRecords)?;
        self.check(id)?;
        let view = self.with_pending(self.records.get(id)?)?;
        self.audit("record.view", id)?;
        Ok(view)
    }

    /// Fail unless the caller may change this record.
    pub fn check_writable(&self, id: &RecordId) -> Result<(), ApiError> {
        self.access.require(Action::WriteRecords)?;
        self.check(id)
    }

    /// Mark each attachment whose file has not arrived here yet as
    /// `"pending": true` (and the others `false`); the stored view cannot know.
    fn with_pending(&self, view: Box<RawValue>) -> Result<Box<RawValue>, ApiError> {
        if !view.get().contains("\"sha256\"") {
            return Ok(view);
        }
        let mut value: Json = serde_json::from_str(view.get()).map_err(ApiError::internal)?;
        if let Some(list) = value["attachments"].as_array_mut() {
            for a in list {
                let here = a["sha256"]
                    .as_str()
                    .and_then(|h| h.parse::<tideline_sync::blobs::BlobHash>().ok())
                    .is_some_and(|h| self.state.blobs.has(&h));
                a["pending"] = Json::Bool(!here);
            }
        }
        RawValue::from_string(value.to_string()).map_err(ApiError::internal)
    }

    pub fn automerge_bytes(&self, id: &RecordId) -> Result<Vec<u8>, ApiError> {
        self.access.require(Action::ReadRecords)?;
        self.check(id)?;
        let bytes = self.records.automerge_bytes(id)?;
        self.audit("record.view", id)?;
        Ok(bytes)
    }

    pub fn patch(&self, id: &RecordId, patch: &Patch) -> Result<Box<RawValue>, ApiError> {
        self.access.require(Action::WriteRecords)?;
        // Officers submit; moving a record on from there is review.
        if patch
            .status
            .is_some_and(|s| !matches!(s, Status::Draft | Status::Submitted))
        {
            self.access.require(Action::Review)?;
        }
        self.check(id)?;
        let view = self
            .records
            .patch(
                Author::person(&self.access.actor(), self.access.station()),
                id,
                patch,
            )?
            .view;
        self.audit("record.edit", id)?;
        self.state.local_change();
        Ok(view)
    }

    pub fn resolve(
        &self,
        id: &RecordId,
        path: &str,
        value: &Json,
    ) -> Result<Box<RawValue>, ApiError> {
        self.access.require(Action::Review)?;
        self.check(id)?;
        let view = self
            .records
            .resolve(
                Author::person(&self.access.actor(), self.access.station()),
                id,
                path,
                value,
            )?
            .view;
        self.audit("record.resolve", id)?;
        self.state.local_change();
        Ok(view)
    }

    /// Add a review comment (supervisors).
    pub fn comment(&self, id: &RecordId, comment: &str) -> Result<Box<RawValue>, ApiError> {
        self.access.require(Action::Review)?;
        self.check(id)?;
        let view = self
            .records
            .review(
                Author::person(&self.access.actor(), self.access.station()),
                id,
                comment,
            )?
            .view;
        self.audit("record.comment", id)?;
        self.state.local_change();
        Ok(view)
    }

    /// The record's change history (read with the record, so not audited again).
    pub fn history(
        &self,
        id: &RecordId,
    ) -> Result<Vec<tideline_sync::record::HistoryEntry>, ApiError> {
        self.access.require(Action::ReadRecords)?;
        self.check(id)?;
        Ok(self.records.history(id)?)
    }

    /// The caller's filter narrowed to their scope; None when it asks for a
    /// station they cannot see (the answer is then empty).
    fn scoped_filter(&self, mut filter: Filter) -> Option<Filter> {
        if let Some(own) = self.access.station() {
            match &filter.station {
                Some(asked) if asked != own => return None,
                _ => filter.station = Some(own.to_string()),
            }
        }
        Some(filter)
    }

    pub fn list(&self, filter: Filter, limit: usize, offset: usize) -> Result<Page, ApiError> {
        self.access.require(Action::ReadRecords)?;
        match self.scoped_filter(filter) {
            Some(f) => Ok(self.records.list(&f, limit, offset)?),
            None => Ok(Page {
                records: Vec::new(),
                total: 0,
            }),
        }
    }

    /// Every record in scope matching `filter`, one view at a time, for an
    /// export (which the caller's role must allow); returns how many.
    pub fn export(
        &self,
        filter: Filter,
        mut each: impl FnMut(Box<RawValue>) -> Result<(), ApiError>,
    ) -> Result<usize, ApiError> {
        self.access.require(Action::Export)?;
        let mut count = 0;
        if let Some(filter) = self.scoped_filter(filter) {
            self.records.for_each(&filter, |view| {
                count += 1;
                each(view)
            })?;
        }
        Ok(count)
    }

    /// Fail unless the caller may attach a file to this record, in `field`
    /// (if any) as one of its image fields: checked before the file is kept.
    pub fn check_attachable(&self, id: &RecordId, field: Option<&str>) -> Result<(), ApiError> {
        self.check_writable(id)?;
        Ok(self.records.check_image_field(id, field)?)
    }

    /// Attach a stored file to a record (and to image field `field`).
    pub fn attach(
        &self,
        id: &RecordId,
        attachment: &Attachment,
        field: Option<&str>,
    ) -> Result<Box<RawValue>, ApiError> {
        self.check_writable(id)?;
        let view = self
            .records
            .attach(
                Author::person(&self.access.actor(), self.access.station()),
                id,
                attachment,
                field,
            )?
            .view;
        self.access.audit(
            self.state,
            Event::new(self.access.actor(), "record.attach")
                .target(id.to_string())
                .details(serde_json::json!({
                    "sha256": attachment.sha256, "mime": attachment.mime, "size": attachment.size
                })),
        )?;
        self.state.local_change();
        Ok(view)
    }

    /// Whether a record in the caller's scope references file `hash` (who
    /// may read such a record may read the file).
    pub fn references_file(&self, hash: &BlobHash) -> Result<bool, ApiError> {
        self.access.require(Action::ReadRecords)?;
        Ok(self.records.references(hash, self.access.station())?)
    }
}
