//! Files follow their records: after the records, each attachment the
//! upstream lacks is uploaded in resumable chunks (`push_files`), and the
//! files this instance wants are downloaded by ranges (`pull_files`), so a
//! link that keeps dropping still gets a file through.

use super::failure::refusal;
use super::failure::{Outcome, SyncFailure};
use super::http::call;
use crate::data_dir::SharedRecords;
use tideline_sync::blobs::{BlobHash, BlobStore};
use tideline_sync::engine::Downstream;

/// Bytes per file upload request: a cut costs at most this much again.
pub const FILE_CHUNK: usize = 256 * 1024;
/// Bytes of a download written (and fsynced) at a time.
pub(super) const RECEIVE_BUFFER: usize = 256 * 1024;
/// Bytes asked for per download request: about a minute at 256 kbit/s,
/// well inside the client's request timeout.
pub(super) const DOWNLOAD_SPAN: u64 = 2 * 1024 * 1024;
/// Attempts in a row that move a file no further before a sync gives up on
/// the link; attempts that make progress are retried at once, so one sync
/// gets a file through a link that keeps dropping.
pub(super) const STALLED_ATTEMPTS: u32 = 3;

/// Which of the upstream's files a sync fetches.
#[derive(Debug, Clone, Default)]
pub struct FileFetch {
    /// Files of records of these forms, at every sync.
    pub eager_forms: Vec<String>,
    /// Files someone here has opened; they come first.
    pub requested: Vec<BlobHash>,
    /// The largest file accepted.
    pub max_bytes: u64,
}

/// The link to the upstream as the file transfers use it.
pub(super) struct FileLink<'a> {
    pub(super) records: &'a SharedRecords,
    pub(super) blobs: &'a BlobStore,
    pub(super) upstream: &'a str,
    pub(super) http: &'a reqwest::blocking::Client,
    pub(super) bearer: &'a str,
    pub(super) base: String,
}

impl FileLink<'_> {
    fn url(&self, hash: &BlobHash) -> String {
        format!("{}/{hash}", self.base)
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> SyncFailure {
        SyncFailure::Unreachable {
            url: self.upstream.to_string(),
            message: e.to_string(),
        }
    }

    /// Remember that the upstream has `hash`, so it is never offered again.
    fn mark_sent(&self, hash: &BlobHash) -> Result<(), SyncFailure> {
        Downstream::mark_file_sent(self.records.as_ref(), hash)
            .map_err(|e| SyncFailure::Local(e.to_string()))
    }

    fn is_sent(&self, hash: &BlobHash) -> Result<bool, SyncFailure> {
        Downstream::file_sent(self.records.as_ref(), hash)
            .map_err(|e| SyncFailure::Local(e.to_string()))
    }
}

/// Upload every file local records reference that the upstream has not
/// accepted yet, each resuming from what the upstream already holds.
pub(super) fn push_files(
    link: &FileLink,
    outcome: &mut Outcome,
    progress: &mut impl FnMut(&Outcome),
) -> Result<(), SyncFailure> {
    let wanted = link
        .records
        .referenced_files(None)
        .map_err(|e| SyncFailure::Local(e.to_string()))?;
    for hash in wanted {
        if !link.blobs.has(&hash) || link.is_sent(&hash)? {
            continue;
        }
        upload(link, &hash, outcome, progress)?;
        link.mark_sent(&hash)?;
        outcome.files_sent += 1;
        progress(outcome);
    }
    Ok(())
}

/// Send one file: ask what the upstream holds, append the rest chunk by
/// chunk, and have it verified. A cut link is retried from what the upstream
/// then holds, for as long as attempts make progress.
pub(super) fn upload(
    link: &FileLink,
    hash: &BlobHash,
    outcome: &mut Outcome,
    progress: &mut impl FnMut(&Outcome),
) -> Result<(), SyncFailure> {
    let url = link.url(hash);
    let path = link
        .blobs
        .path(hash)
        .ok_or_else(|| SyncFailure::Local(format!("file {hash} vanished")))?;
    let data = std::fs::read(&path).map_err(|e| SyncFailure::Local(e.to_string()))?;
    let mut stalled = 0;
    let mut best = None;
    loop {
        let attempt = (|| -> Result<(), SyncFailure> {
            let answer = call(link.http.get(&url).bearer_auth(link.bearer), link.upstream)?;
            let mut held = answer["held"].as_u64().unwrap_or(0);
            best = best.max(Some(held));
            if answer["complete"].as_bool().unwrap_or(false) {
                return Ok(());
            }
            while (held as usize) < data.len() {
                let end = (held as usize + FILE_CHUNK).min(data.len());
                let chunk = data[held as usize..end].to_vec();
                let sent = chunk.len() as u64;
                outcome.file_bytes_sent += sent;
                let answer = call(
                    link.http
                        .put(format!("{url}?offset={held}"))
                        .bearer_auth(link.bearer)
                        .body(chunk),
                    link.upstream,
                )?;
                held = answer["held"].as_u64().unwrap_or(end as u64);
                best = best.max(Some(held));
                stalled = 0;
                progress(outcome);
            }
            call(
                link.http
                    .post(format!("{url}/finish"))
                    .bearer_auth(link.bearer),
                link.upstream,
            )?;
            Ok(())
        })();
        match attempt {
            Ok(()) => return Ok(()),
            Err(e @ SyncFailure::Unreachable { .. }) => {
                stalled += 1;
                if stalled >= STALLED_ATTEMPTS {
                    return Err(e);
                }
                tracing::debug!(file = %hash, held = ?best, "file upload cut; resuming");
            }
            Err(e) => return Err(e),
        }
    }
}

/// Fetch the upstream files this instance wants and lacks: those someone
/// opened first, then those of the eager forms.
pub(super) fn pull_files(
    link: &FileLink,
    fetch: &FileFetch,
    eager: bool,
    outcome: &mut Outcome,
    progress: &mut impl FnMut(&Outcome),
) -> Result<(), SyncFailure> {
    let wanted: Vec<BlobHash> = if eager {
        if fetch.eager_forms.is_empty() {
            return Ok(());
        }
        link.records
            .referenced_files(Some(&fetch.eager_forms))
            .map_err(|e| SyncFailure::Local(e.to_string()))?
            .into_iter()
            .collect()
    } else {
        fetch.requested.clone()
    };
    for hash in wanted {
        if link.blobs.has(&hash) {
            continue;
        }
        if download(link, &hash, fetch.max_bytes, outcome, progress)? {
            // The upstream has it: never offer it back.
            link.mark_sent(&hash)?;
            outcome.files_received += 1;
            progress(outcome);
        }
    }
    Ok(())
}

/// Fetch one file with ranged requests from the bytes held here, appending
/// what arrives as it arrives, and keep it once its SHA-256 matches. False
/// when the upstream does not have the file yet either.
pub(super) fn download(
    link: &FileLink,
    hash: &BlobHash,
    max_bytes: u64,
    outcome: &mut Outcome,
    progress: &mut impl FnMut(&Outcome),
) -> Result<bool, SyncFailure> {
    let url = format!("{}/content", link.url(hash));
    let local = |e: tideline_sync::blobs::BlobError| SyncFailure::Local(e.to_string());
    let mut stalled = 0;
    loop {
        let held = link.blobs.partial_len(hash).map_err(local)?;
        let last = held + DOWNLOAD_SPAN - 1;
        let sent = link
            .http
            .get(&url)
            .bearer_auth(link.bearer)
            .header(reqwest::header::RANGE, format!("bytes={held}-{last}"))
            .send();
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                stalled += 1;
                if stalled >= STALLED_ATTEMPTS {
                    return Err(link.unreachable(e));
                }
                continue;
            }
        };
        let status = response.status();
        // The file's full size, from `Content-Range: bytes a-b/size`.
        let size = match status.as_u16() {
            206 => response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit('/').next())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    SyncFailure::Protocol(format!("no file size in the answer for {hash}"))
                })?,
            // A whole file, when a range was not honoured.
            200 if held == 0 => response.content_length().unwrap_or(u64::MAX),
            // Everything is here already: only the check is left.
            416 => break,
            404 => return Ok(false),
            _ => {
                let headers = response.headers().clone();
                let body = response.bytes().unwrap_or_default();
                return Err(refusal(link.upstream, status.as_u16(), &headers, &body));
            }
        };
        if size > max_bytes {
            return Err(SyncFailure::Protocol(format!(
                "file {hash} is larger than the limit of {max_bytes} bytes"
            )));
        }
        let mut at = held;
        let mut buffer = Vec::with_capacity(RECEIVE_BUFFER);
        let mut chunk = vec![0u8; 64 * 1024];
        let cut = loop {
            match std::io::Read::read(&mut response, &mut chunk) {
                Ok(0) => break None,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                Err(e) => break Some(e),
            }
            if at + buffer.len() as u64 > size {
                return Err(SyncFailure::Protocol(format!(
                    "the upstream sent more of {hash} than its size"
                )));
            }
            if buffer.len() >= RECEIVE_BUFFER {
                at = link.blobs.append(hash, at, &buffer).map_err(local)?;
                outcome.file_bytes_received += buffer.len() as u64;
                buffer.clear();
                stalled = 0;
                progress(outcome);
            }
        };
        // What arrived before a cut is a true prefix of the file: keep it.
        if !buffer.is_empty() {
            at = link.blobs.append(hash, at, &buffer).map_err(local)?;
            outcome.file_bytes_received += buffer.len() as u64;
            stalled = 0;
        }
        if let Some(e) = cut {
            stalled += 1;
            if stalled >= STALLED_ATTEMPTS {
                return Err(link.unreachable(e));
            }
            tracing::debug!(file = %hash, "file download cut; resuming");
        } else if at >= size || status.as_u16() == 200 {
            break;
        }
    }
    match link.blobs.finish(hash) {
        Ok(_) => Ok(true),
        Err(e @ tideline_sync::blobs::BlobError::Mismatch(_)) => {
            Err(SyncFailure::Protocol(e.to_string()))
        }
        Err(e) => Err(local(e)),
    }
}
