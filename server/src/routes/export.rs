//! Exports over HTTP; the formats themselves live in [`crate::export`].

use super::records::FilterQuery;
use crate::access::Access;
use crate::auth::Event;
use crate::error::ApiError;
use crate::export::{Exporter, Format};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: String,
    form: Option<String>,
    station: Option<String>,
    status: Option<String>,
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// CSV only: a repeat's table (`crew`, `seizures`) instead of the records table.
    table: Option<String>,
}

impl ExportQuery {
    fn filter(&self) -> Result<tideline_sync::Filter, ApiError> {
        FilterQuery {
            form: self.form.clone(),
            station: self.station.clone(),
            status: self.status.clone(),
            q: self.q.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
        }
        .filter()
    }
}

pub async fn export(
    state: web::Data<AppState>,
    access: Access,
    query: web::Query<ExportQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if q.format == "zip" {
        return archive(state, access, q, req).await;
    }
    let format: Format = q
        .format
        .parse()
        .map_err(|m: String| ApiError::bad_request("invalid_format", format!("{m}, or zip")))?;
    if q.table.is_some() && format != Format::Csv {
        return Err(ApiError::bad_request(
            "invalid_query",
            "table applies to CSV exports only.",
        ));
    }
    let filter = q.filter()?;
    let st = state.clone();
    let (chunks, body) = tokio::sync::mpsc::channel(STREAM_CHUNKS);
    let (ready, started) = tokio::sync::oneshot::channel();
    // The export is written as it is read, a chunk at a time, so HQ's memory
    // does not grow with the number of records exported. What can be refused
    // (the role, the query) is refused before the first byte.
    actix_web::rt::task::spawn_blocking(move || {
        let forms = st.records.forms();
        let setup = access
            .require(crate::access::Action::Export)
            .and_then(|()| {
                let out = ChunkWriter::new(chunks.clone());
                Ok(Exporter::new(
                    out,
                    format,
                    &forms,
                    q.form.as_deref(),
                    q.table.as_deref(),
                )?)
            });
        let mut exporter = match setup {
            Ok(exporter) => {
                let _ = ready.send(Ok(()));
                exporter
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        // A panic must cut the body too: a stream that simply ended would
        // look like a complete export.
        let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let count = access.records(&st).export(filter, |view| {
                exporter.record(view.get()).map_err(ApiError::internal)
            })?;
            exporter.finish().map_err(ApiError::internal)?.flush_all()?;
            Ok(count)
        }))
        .unwrap_or_else(|_| Err(ApiError::internal("the export failed")));
        let event = Event::new(access.actor(), "export");
        let format = format!("{format:?}").to_lowercase();
        let details = match &finished {
            Ok(count) => json!({ "format": format, "records": count }),
            Err(_) => json!({ "format": format, "complete": false }),
        };
        if let Err(e) = access.audit(&st, event.details(details)) {
            tracing::error!(error = %e, "an export was sent but not recorded in the audit log");
        }
        if let Err(e) = finished {
            // Headers are gone: cutting the body is how the client learns.
            tracing::warn!(error = %e, "an export stopped before its end");
            let _ = chunks.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    started.await.map_err(ApiError::internal)??;
    let stream = futures_util::stream::unfold(body, |mut body| async move {
        body.recv().await.map(|chunk| (chunk, body))
    });
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .streaming(stream))
}

/// Chunks an export may have in flight between the thread writing it and
/// the connection; with [`CHUNK_BYTES`] each, this bounds its memory.
const STREAM_CHUNKS: usize = 4;
const CHUNK_BYTES: usize = 64 * 1024;

type Chunk = Result<web::Bytes, std::io::Error>;

/// A `Write` that hands its bytes to a streamed answer in chunks, waiting
/// while the client has not taken the previous ones.
struct ChunkWriter {
    buf: Vec<u8>,
    out: tokio::sync::mpsc::Sender<Chunk>,
}

impl ChunkWriter {
    fn new(out: tokio::sync::mpsc::Sender<Chunk>) -> Self {
        ChunkWriter {
            buf: Vec::with_capacity(CHUNK_BYTES),
            out,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.out
            .blocking_send(Ok(web::Bytes::from(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }

    /// Send what is still buffered.
    fn flush_all(mut self) -> Result<(), ApiError> {
        self.send().map_err(ApiError::internal)
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `format=zip`: the records in scope and the files they reference, as the
/// archive `tideline export --format zip` writes, built in an anonymous
/// temporary file (gone when the answer is sent) rather than in memory.
async fn archive(
    state: web::Data<AppState>,
    access: Access,
    q: ExportQuery,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if q.table.is_some() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "table applies to CSV exports only.",
        ));
    }
    let filter = q.filter()?;
    let st = state.clone();
    let file = web::block(move || -> Result<std::fs::File, ApiError> {
        let mut views = Vec::new();
        access.records(&st).export(filter, |view| {
            views.push(view);
            Ok(())
        })?;
        let mut file = tempfile::tempfile().map_err(ApiError::internal)?;
        let summary =
            crate::export::write_archive(std::io::BufWriter::new(&mut file), views, |sha| {
                sha.parse().ok().and_then(|h| st.blobs.path(&h))
            })
            .map_err(ApiError::internal)?;
        access.audit(
            &st,
            Event::new(access.actor(), "export").details(json!({
                "format": "zip",
                "records": summary.records,
                "files": summary.files,
            })),
        )?;
        std::io::Seek::rewind(&mut file).map_err(ApiError::internal)?;
        Ok(file)
    })
    .await??;
    let named = actix_files::NamedFile::from_file(file, "tideline-export.zip")
        .map_err(ApiError::internal)?
        .set_content_type("application/zip".parse().map_err(ApiError::internal)?)
        .set_content_disposition(actix_web::http::header::ContentDisposition::attachment(
            "tideline-export.zip",
        ))
        .use_etag(false)
        .use_last_modified(false);
    Ok(named.into_response(&req))
}
