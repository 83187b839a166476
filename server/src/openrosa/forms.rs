//! The form list and the forms themselves, as Collect downloads them: the
//! latest version of every form this instance holds, as an XForm whose bytes
//! depend only on the form version, so the list's `md5:` hash changes only
//! when the form does and Collect downloads it again only then.

use super::caller::Caller;
use super::reply::{reply, OpenRosaError};
use crate::error::ApiError;
use crate::links::urlencode;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use md5::{Digest, Md5};
use serde::Deserialize;
use std::fmt::Write;
use tideline_schemas::xform::escape as esc;

#[derive(Deserialize)]
pub struct ListQuery {
    /// Collect asks for one form when it checks that form for updates.
    #[serde(rename = "formID")]
    form_id: Option<String>,
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `GET .../formList`: `<xforms xmlns="http://openrosa.org/xforms/xformsList">`.
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, OpenRosaError> {
    let caller = Caller::of(&state, &req).await?;
    let forms = state.records.forms();
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xforms xmlns=\"http://openrosa.org/xforms/xformsList\">\n",
    );
    for form in forms.list_latest() {
        if query.form_id.as_deref().is_some_and(|id| id != form.id) {
            continue;
        }
        let xml = tideline_schemas::xform::xform(form);
        let _ = writeln!(
            out,
            "<xform><formID>{}</formID><name>{}</name><version>{}</version>\
             <hash>md5:{}</hash><downloadUrl>{}/forms/{}.xml</downloadUrl></xform>",
            esc(&form.id),
            esc(&form.title),
            form.version,
            md5_hex(xml.as_bytes()),
            esc(&caller.base),
            urlencode(&form.id),
        );
    }
    out.push_str("</xforms>\n");
    Ok(reply(StatusCode::OK).body(out))
}

/// `GET .../forms/{id}.xml`: the XForm of the form's latest version.
pub async fn download(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, OpenRosaError> {
    Caller::of(&state, &req).await?;
    // The phone's prefix has parameters of its own, so these are read by name.
    let file = req.match_info().get("file").unwrap_or_default();
    let id = file.strip_suffix(".xml").unwrap_or(file);
    let forms = state.records.forms();
    let form = forms.latest(id).ok_or_else(|| no_form(id))?;
    Ok(reply(StatusCode::OK).body(tideline_schemas::xform::xform(form)))
}

/// `GET .../forms/{id}/manifest`: a form's media files, of which Tideline's
/// forms have none.
pub async fn manifest(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, OpenRosaError> {
    Caller::of(&state, &req).await?;
    let id = req.match_info().get("id").unwrap_or_default();
    if state.records.forms().latest(id).is_none() {
        return Err(no_form(id));
    }
    Ok(reply(StatusCode::OK).body(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<manifest xmlns=\"http://openrosa.org/xforms/xformsManifest\"/>\n",
    ))
}

fn no_form(id: &str) -> OpenRosaError {
    ApiError::not_found(
        "unknown_form",
        format!("This server has no form {id:?}. Refresh the list of blank forms in Collect."),
    )
    .into()
}
