//! `GET /api/v1/backup`: a backup of the running instance, for admins — the
//! same file `tideline backup` writes on a stopped one.

use crate::access::{Access, Action};
use crate::auth::Event;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

pub async fn backup(
    state: web::Data<AppState>,
    access: Access,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    access.require(Action::Backup)?;
    let st = state.clone();
    let file = web::block(move || -> Result<std::fs::File, ApiError> {
        // Built beside the data (same disk), unnamed: gone once sent.
        let mut file = tempfile::tempfile_in(&st.data_dir).map_err(ApiError::internal)?;
        let contents = crate::backup::write(
            st.records.store().as_ref(),
            &st.data_dir,
            std::io::BufWriter::new(&mut file),
        )
        .map_err(ApiError::internal)?;
        access.audit(
            &st,
            Event::new(access.actor(), "backup")
                .details(json!({ "entries": contents.entries, "files": contents.files })),
        )?;
        std::io::Seek::rewind(&mut file).map_err(ApiError::internal)?;
        Ok(file)
    })
    .await??;
    let named = actix_files::NamedFile::from_file(file, "tideline.backup")
        .map_err(ApiError::internal)?
        .set_content_type(actix_web::mime::APPLICATION_OCTET_STREAM)
        .set_content_disposition(actix_web::http::header::ContentDisposition::attachment(
            "tideline.backup",
        ))
        .use_etag(false)
        .use_last_modified(false);
    Ok(named.into_response(&req))
}
