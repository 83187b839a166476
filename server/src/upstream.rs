//! Talking to the upstream: one sync (a loop of `POST /sync/v1` exchanges until
//! nothing is left), its outcome and status, and the background loop that runs
//! it soon after local changes, periodically otherwise, and backs off with
//! jitter while the upstream is unreachable. Local entry never waits on any of it.
//!
//! An exchange runs on a blocking thread with a blocking HTTP client: the sync
//! engine is synchronous (it fsyncs), and keeping the whole loop on one thread
//! keeps repair state simple.

use crate::auth::devices::{self, UpstreamCredential};
use crate::auth::InstanceKey;
use crate::startup::SharedRecords;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tideline_sync::blobs::{BlobHash, BlobStore};
use tideline_sync::engine::{Downstream, SyncError};
use tideline_sync::protocol::{self, Limits};
use tideline_sync::DocStore;

/// Content type of sync messages.
pub const SYNC_CONTENT_TYPE: &str = "application/vnd.tideline.sync.v1";
/// Exchanges one sync may take before it stops and reports; a sync resumes from
/// its checkpoints, so stopping loses nothing.
const MAX_EXCHANGES: usize = 10_000;
/// Largest compressed answer accepted from an upstream.
const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub pushed: usize,
    pub pulled: usize,
    pub rejected: usize,
    pub round_trips: usize,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    pub duration_ms: u64,
    /// Attachment files the upstream accepted in this sync.
    #[serde(default)]
    pub files_sent: usize,
    /// Bytes of attachment files sent (chunk bodies).
    #[serde(default)]
    pub file_bytes_sent: u64,
    /// Attachment files fetched from the upstream in this sync.
    #[serde(default)]
    pub files_received: usize,
    #[serde(default)]
    pub file_bytes_received: u64,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SyncFailure {
    #[error("the upstream {url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("the upstream refused the sync ({status}): {message}")]
    Refused {
        status: u16,
        /// The upstream's error code (`device_revoked`, `wrong_station`...).
        code: String,
        message: String,
    },
    /// Something answers at the address, but not as Tideline (a captive
    /// portal, a web server, a wrong port).
    #[error("{url} answers, but not as a Tideline instance (HTTP {status}{what}); check the upstream address")]
    NotTideline {
        url: String,
        status: u16,
        what: String,
    },
    #[error("the upstream's answer could not be read: {0}")]
    Protocol(String),
    #[error("local storage failed during sync: {0}")]
    Local(String),
    #[error(
        "this instance is not enrolled with an upstream: run `tideline enroll --upstream URL \
         --code CODE` with a code from the upstream's admin"
    )]
    NotEnrolled,
}

impl SyncFailure {
    /// A short name for metrics, logs and the sync bar: what went wrong,
    /// which decides what a person can do about it ([`Self::advice`]).
    pub fn kind(&self) -> &'static str {
        match self {
            SyncFailure::Unreachable { .. } => "unreachable",
            SyncFailure::Refused { code, .. } if code == "device_revoked" => "revoked",
            SyncFailure::Refused { code, .. }
                if code == "not_enrolled" || code == "unauthenticated" =>
            {
                "not_enrolled"
            }
            SyncFailure::Refused { code, .. } if code == "wrong_station" => "wrong_station",
            SyncFailure::Refused { code, .. } if code == "unsupported_protocol" => "incompatible",
            SyncFailure::Refused { status, .. } if *status >= 500 => "upstream_error",
            SyncFailure::Refused { .. } => "refused",
            SyncFailure::NotTideline { .. } => "not_tideline",
            SyncFailure::Protocol(_) => "protocol",
            SyncFailure::Local(_) => "local",
            SyncFailure::NotEnrolled => "not_enrolled",
        }
    }

    /// A failure of this kind in a few words, for the sync bar; None where
    /// only the message itself says enough.
    pub fn headline(kind: &str) -> Option<&'static str> {
        Some(match kind {
            "unreachable" => "Offline: the upstream cannot be reached.",
            "revoked" => "Sync refused: the upstream's admin revoked this device.",
            "not_enrolled" => "Sync refused: the upstream does not know this device.",
            "wrong_station" => "Sync refused: this device is enrolled for another station.",
            "incompatible" => {
                "Sync refused: this instance and its upstream speak different sync versions."
            }
            "upstream_error" => "Sync failed: the upstream had an error.",
            "not_tideline" => {
                "Sync failed: something other than Tideline answers at the upstream address."
            }
            _ => return None,
        })
    }

    /// What to do about a failure of this kind, for the person looking at it.
    pub fn advice(kind: &str) -> &'static str {
        match kind {
            "unreachable" => "Work goes on here; it syncs by itself when the link is back.",
            "revoked" => "Its records stay here and usable. Ask the upstream's admin to enrol it again (docs/OPERATIONS.md).",
            "not_enrolled" => "The upstream does not know this device. Ask its admin for an enrolment code and run `tideline enroll` with it.",
            "wrong_station" => "This device is enrolled for another station than this instance's. Ask the upstream's admin for a code for this station.",
            "incompatible" => "This instance and its upstream run incompatible versions of Tideline; upgrade the older one.",
            "upstream_error" => "The upstream had a problem of its own; it is retried by itself. If it goes on, tell the upstream's admin.",
            "not_tideline" => "Check the upstream address this instance was started with.",
            "local" => "This instance could not use its own storage; see its log.",
            _ => "See the message; it is retried by itself.",
        }
    }
}

/// What answered at `upstream` instead of Tideline: its status and the kind
/// of content it sent (`text/html`), never the content itself.
fn not_tideline(upstream: &str, status: u16, headers: &reqwest::header::HeaderMap) -> SyncFailure {
    let what = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| format!(", {}", t.split(';').next().unwrap_or(t).trim()))
        .unwrap_or_default();
    SyncFailure::NotTideline {
        url: upstream.to_string(),
        status,
        what,
    }
}

/// A refusal from `upstream`: Tideline's JSON error, or else what answered
/// instead of Tideline (an HTML page is not worth showing a person).
fn refusal(
    upstream: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> SyncFailure {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    match parsed
        .as_ref()
        .and_then(|v| Some((v["error"].as_str()?, v["message"].as_str()?)))
    {
        Some((code, message)) => SyncFailure::Refused {
            status,
            code: code.to_string(),
            message: message.to_string(),
        },
        None => not_tideline(upstream, status, headers),
    }
}

impl From<SyncError> for SyncFailure {
    fn from(e: SyncError) -> Self {
        SyncFailure::Local(e.to_string())
    }
}

/// Sync with `upstream` now, until neither side has anything left to send.
/// `progress` sees the running totals after every exchange.
pub fn sync_once(
    records: &SharedRecords,
    blobs: &BlobStore,
    upstream: &str,
    http: &reqwest::blocking::Client,
    page_bytes: u64,
    fetch: &FileFetch,
    mut progress: impl FnMut(&Outcome),
) -> Result<Outcome, SyncFailure> {
    let started = Instant::now();
    let url = format!("{}/sync/v1", upstream.trim_end_matches('/'));
    let store = records.store().as_ref();
    let credential = devices::credential(store)
        .map_err(|e| SyncFailure::Local(e.to_string()))?
        .ok_or(SyncFailure::NotEnrolled)?;
    let bearer = devices::bearer(&records.identity().device_id, &credential.secret);
    // A station vouches to its upstream for the boats enrolled at it.
    let enrolled_here = |actor: &tideline_sync::ActorId| {
        uuid::Uuid::from_slice(actor.to_bytes())
            .ok()
            .and_then(|id| devices::get(store, &id).ok().flatten())
            .is_some_and(|d| !d.revoked)
    };
    let mut downstream = Downstream::new(records.as_ref())
        .with_page_bytes(page_bytes)
        .with_vouching(&enrolled_here);
    let mut outcome = Outcome::default();
    for _ in 0..MAX_EXCHANGES {
        let (request, pending) = downstream.prepare()?;
        let body =
            protocol::encode_request(&request).map_err(|e| SyncFailure::Local(e.to_string()))?;
        outcome.bytes_sent += body.len();
        let response = http
            .post(&url)
            .header("content-type", SYNC_CONTENT_TYPE)
            .bearer_auth(&bearer)
            .body(body)
            .send()
            .map_err(|e| SyncFailure::Unreachable {
                url: upstream.to_string(),
                message: e.to_string(),
            })?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut bytes = Vec::new();
        // Bounded like everything read from a peer.
        std::io::Read::read_to_end(
            &mut std::io::Read::take(response, MAX_RESPONSE_BYTES + 1),
            &mut bytes,
        )
        .map_err(|e| SyncFailure::Unreachable {
            url: upstream.to_string(),
            message: e.to_string(),
        })?;
        if bytes.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(SyncFailure::Protocol(format!(
                "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        outcome.bytes_received += bytes.len();
        outcome.round_trips += 1;
        if !status.is_success() {
            return Err(refusal(upstream, status.as_u16(), &headers, &bytes));
        }
        let response =
            protocol::decode_response(&bytes, &Limits::default()).map_err(|e| match e {
                protocol::CodecError::BadMagic => not_tideline(upstream, status.as_u16(), &headers),
                e => SyncFailure::Protocol(e.to_string()),
            })?;
        let exchange = downstream.absorb(pending, response)?;
        outcome.pushed += exchange.pushed;
        outcome.pulled += exchange.pulled;
        outcome.rejected += exchange.rejected;
        outcome.duration_ms = started.elapsed().as_millis() as u64;
        progress(&outcome);
        if !exchange.more {
            break;
        }
    }
    // Files after the records that reference them: the upstream accepts only
    // files a record it holds refers to. Files someone here is waiting for
    // come first.
    let link = FileLink {
        records,
        blobs,
        upstream,
        http,
        bearer: &bearer,
        base: format!("{}/sync/v1/blobs", upstream.trim_end_matches('/')),
    };
    pull_files(&link, fetch, false, &mut outcome, &mut progress)?;
    push_files(&link, &mut outcome, &mut progress)?;
    pull_files(&link, fetch, true, &mut outcome, &mut progress)?;
    outcome.duration_ms = started.elapsed().as_millis() as u64;
    Ok(outcome)
}

/// Bytes per file upload request: a cut costs at most this much again.
pub const FILE_CHUNK: usize = 256 * 1024;
/// Bytes of a download written (and fsynced) at a time.
const RECEIVE_BUFFER: usize = 256 * 1024;
/// Bytes asked for per download request: about a minute at 256 kbit/s,
/// well inside the client's request timeout.
const DOWNLOAD_SPAN: u64 = 2 * 1024 * 1024;
/// Attempts in a row that move a file no further before a sync gives up on
/// the link; attempts that make progress are retried at once, so one sync
/// gets a file through a link that keeps dropping.
const STALLED_ATTEMPTS: u32 = 3;

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
struct FileLink<'a> {
    records: &'a SharedRecords,
    blobs: &'a BlobStore,
    upstream: &'a str,
    http: &'a reqwest::blocking::Client,
    bearer: &'a str,
    base: String,
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
fn push_files(
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
fn upload(
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
fn pull_files(
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
fn download(
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

/// One JSON request to the upstream; a non-2xx answer is a refusal with its message.
fn call(
    request: reqwest::blocking::RequestBuilder,
    upstream: &str,
) -> Result<serde_json::Value, SyncFailure> {
    let response = request.send().map_err(|e| SyncFailure::Unreachable {
        url: upstream.to_string(),
        message: e.to_string(),
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().unwrap_or_default();
    if !status.is_success() {
        return Err(refusal(upstream, status.as_u16(), &headers, &bytes));
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// The blocking HTTP client sync uses: bounded waits, so a dead link fails
/// instead of hanging a sync forever; `ca` is trusted besides the public roots.
pub fn http_client(ca: Option<&reqwest::Certificate>) -> reqwest::blocking::Client {
    let mut builder = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120));
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(ca.clone());
    }
    builder
        .build()
        .unwrap_or_else(|_| reqwest::blocking::Client::new())
}

/// Read the CA (or pinned certificate) to trust for the upstream.
pub fn load_ca(path: &std::path::Path) -> anyhow::Result<reqwest::Certificate> {
    let pem = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read the upstream CA {}: {e}", path.display()))?;
    reqwest::Certificate::from_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{} is not a PEM certificate: {e}", path.display()))
}

/// What the last syncs did, as `GET /api/v1/sync/status` and `tideline sync
/// status` report it. Kept in the store's metadata so it survives restarts and
/// is readable offline.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncRecord {
    pub last_attempt: Option<String>,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    /// [`SyncFailure::kind`] of the last error.
    #[serde(default)]
    pub last_error_kind: Option<String>,
    pub last_outcome: Option<Outcome>,
}

const STATUS_KEY: &str = "sync_status";

pub fn load_record(records: &SharedRecords) -> SyncRecord {
    records
        .store()
        .get_meta(STATUS_KEY)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_record(records: &SharedRecords, record: &SyncRecord) {
    if let Ok(bytes) = serde_json::to_vec(record) {
        if let Err(e) = records.store().put_meta(STATUS_KEY, &bytes) {
            tracing::warn!(error = %e, "could not store sync status");
        }
    }
}

/// The full status: the stored record plus what the store says now.
pub fn status_json(
    records: &SharedRecords,
    upstream: Option<&str>,
    running: bool,
) -> serde_json::Value {
    let record = load_record(records);
    let checkpoint = Downstream::checkpoint(records.as_ref()).unwrap_or_default();
    let pending = Downstream::pending_changes(records.as_ref()).ok();
    serde_json::json!({
        "upstream": upstream,
        "running": running,
        "last_attempt": record.last_attempt,
        "last_success": record.last_success,
        "last_error": record.last_error,
        "last_error_kind": record.last_error_kind,
        "headline": record.last_error_kind.as_deref().and_then(SyncFailure::headline),
        "advice": record.last_error_kind.as_deref().map(SyncFailure::advice),
        "last_outcome": record.last_outcome,
        "pending_local_changes": pending,
        "upstream_seq": checkpoint.pull_seq,
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Run one sync and record its result in the status.
pub fn sync_and_record(
    records: &SharedRecords,
    blobs: &BlobStore,
    upstream: &str,
    http: &reqwest::blocking::Client,
    page_bytes: u64,
    fetch: &FileFetch,
    progress: impl FnMut(&Outcome),
) -> Result<Outcome, SyncFailure> {
    let mut record = load_record(records);
    record.last_attempt = Some(now());
    let result = sync_once(records, blobs, upstream, http, page_bytes, fetch, progress);
    match &result {
        Ok(outcome) => {
            record.last_success = record.last_attempt.clone();
            record.last_error = None;
            record.last_error_kind = None;
            record.last_outcome = Some(outcome.clone());
        }
        Err(e) => {
            record.last_error = Some(e.to_string());
            record.last_error_kind = Some(e.kind().to_string());
        }
    }
    save_record(records, &record);
    result
}

/// Timing of the background loop.
#[derive(Debug, Clone)]
pub struct LoopTiming {
    pub interval: Duration,
    pub debounce: Duration,
    pub max_backoff: Duration,
}

impl Default for LoopTiming {
    fn default() -> Self {
        LoopTiming {
            interval: Duration::from_secs(60),
            debounce: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// The instance's link to its upstream, shared by the background loop and the
/// `sync/now` endpoint; one sync runs at a time.
pub struct SyncAgent {
    pub records: SharedRecords,
    blobs: Arc<BlobStore>,
    pub upstream: String,
    page_bytes: u64,
    ca: Option<reqwest::Certificate>,
    /// Eager forms and size limit; `requested` is filled in per sync.
    fetch: FileFetch,
    /// Files people here have opened and the upstream has not sent yet.
    requested: Mutex<std::collections::BTreeSet<BlobHash>>,
    metrics: Arc<crate::metrics::Metrics>,
    running: Mutex<bool>,
    gate: tokio::sync::Mutex<()>,
    changed: tokio::sync::Notify,
}

impl SyncAgent {
    pub fn new(
        records: SharedRecords,
        blobs: Arc<BlobStore>,
        upstream: String,
        page_bytes: u64,
        ca: Option<reqwest::Certificate>,
        fetch: FileFetch,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Self> {
        Arc::new(SyncAgent {
            metrics,
            records,
            blobs,
            upstream,
            page_bytes,
            ca,
            fetch,
            requested: Mutex::default(),
            running: Mutex::new(false),
            gate: tokio::sync::Mutex::new(()),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// A local record changed: sync soon.
    pub fn local_change(&self) {
        self.changed.notify_one();
    }

    /// Someone here opened a file that has not arrived: fetch it at the next
    /// sync, before anything else.
    pub fn request_file(&self, hash: BlobHash) {
        self.requested
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash);
    }

    pub fn is_running(&self) -> bool {
        *self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run one sync now (waiting for one already under way to finish first).
    pub async fn sync_now(self: &Arc<Self>) -> Result<Outcome, SyncFailure> {
        let _gate = self.gate.lock().await;
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = true;
        let agent = self.clone();
        let fetch = FileFetch {
            requested: self
                .requested
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .copied()
                .collect(),
            ..self.fetch.clone()
        };
        // The blocking client owns a runtime of its own, which must be made and
        // dropped off the async threads: so one per sync, on the blocking thread.
        let result = tokio::task::spawn_blocking(move || {
            sync_and_record(
                &agent.records,
                &agent.blobs,
                &agent.upstream,
                &http_client(agent.ca.as_ref()),
                agent.page_bytes,
                &fetch,
                |_| {},
            )
        })
        .await
        .unwrap_or_else(|e| Err(SyncFailure::Local(e.to_string())));
        self.requested
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|h| !self.blobs.has(h));
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = false;
        match &result {
            Ok(o) => {
                self.metrics.sync_flow(
                    "downstream",
                    (o.pulled as u64, o.pushed as u64),
                    (o.bytes_received as u64, o.bytes_sent as u64),
                );
                let files = |direction| crate::metrics::FlowLabels {
                    side: "downstream",
                    direction,
                };
                self.metrics
                    .sync_file_bytes
                    .get_or_create(&files("in"))
                    .inc_by(o.file_bytes_received);
                self.metrics
                    .sync_file_bytes
                    .get_or_create(&files("out"))
                    .inc_by(o.file_bytes_sent);
            }
            Err(e) => self.metrics.sync_failed("downstream", e.kind()),
        }
        match &result {
            Ok(o) => tracing::info!(
                pushed = o.pushed,
                pulled = o.pulled,
                round_trips = o.round_trips,
                bytes_sent = o.bytes_sent,
                bytes_received = o.bytes_received,
                files_sent = o.files_sent,
                files_received = o.files_received,
                "sync done"
            ),
            Err(e) => tracing::warn!(error = %e, "sync failed"),
        }
        result
    }

    /// Sync after local changes (debounced) and every `interval`; while the
    /// upstream is unreachable, back off exponentially with jitter.
    pub async fn run(self: Arc<Self>, timing: LoopTiming) {
        let mut failures: u32 = 0;
        // The first sync comes seconds after start, not an interval later: a
        // boat switched on in harbour should not show "never synced" for a minute.
        let mut first = true;
        loop {
            let wait = if first {
                first = false;
                timing.debounce
            } else if failures == 0 {
                timing.interval
            } else {
                backoff(failures, timing.max_backoff)
            };
            tokio::select! {
                _ = self.changed.notified(), if failures == 0 => {
                    tokio::time::sleep(timing.debounce).await;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            match self.sync_now().await {
                Ok(_) => failures = 0,
                Err(_) => failures = failures.saturating_add(1),
            }
        }
    }
}

/// 1 s, 2 s, 4 s … up to `max`, each scaled by a random factor in [0.5, 1.0) so
/// a fleet of boats coming back into range does not retry in lockstep.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(16)).min(max);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.5 + f64::from(nanos % 1000) / 2000.0;
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_went_wrong_and_what_is_not_tideline() {
        let headers = |t: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::CONTENT_TYPE, t.parse().unwrap());
            h
        };
        let json = br#"{"error": "device_revoked", "message": "Device x was revoked."}"#;
        let e = refusal("http://hq", 403, &headers("application/json"), json);
        assert_eq!(e.kind(), "revoked");
        assert!(SyncFailure::headline(e.kind()).unwrap().contains("revoked"));
        let html = b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>";
        let e = refusal("http://hq", 404, &headers("text/html; charset=utf-8"), html);
        assert_eq!(e.kind(), "not_tideline");
        let said = e.to_string();
        assert_eq!(
            said,
            "http://hq answers, but not as a Tideline instance (HTTP 404, text/html); check the upstream address"
        );
        assert!(!said.contains("nginx"));
        for (code, status, kind) in [
            ("wrong_station", 403, "wrong_station"),
            ("not_enrolled", 401, "not_enrolled"),
            ("unsupported_protocol", 400, "incompatible"),
            ("internal", 500, "upstream_error"),
            ("forbidden", 403, "refused"),
        ] {
            let body = format!(r#"{{"error": "{code}", "message": "m"}}"#);
            let none = reqwest::header::HeaderMap::new();
            assert_eq!(
                refusal("u", status, &none, body.as_bytes()).kind(),
                kind,
                "{code}"
            );
        }
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let max = Duration::from_secs(300);
        for failures in 1..30 {
            let b = backoff(failures, max);
            let base = Duration::from_secs(1u64 << (failures - 1).min(16)).min(max);
            assert!(b >= base / 2 && b <= base, "{failures}: {b:?} vs {base:?}");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("the upstream {url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("the upstream refused the enrollment ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error(
        "the code enrols a device of station {code}, but this data directory belongs to \
         station {local}. The code was not used up: enrol a new data directory with it \
         (`tideline --data NEW_DIR enroll --upstream URL --code CODE`, which takes station {code})"
    )]
    WrongStation { code: String, local: String },
    #[error("the upstream's answer could not be read: {0}")]
    Protocol(String),
    #[error(transparent)]
    Identity(#[from] crate::auth::identity::IdentityError),
    #[error(transparent)]
    Store(#[from] tideline_sync::StoreError),
}

/// Enrol this instance with `upstream` using a one-time `code`, and keep the
/// credential it hands back for every later sync.
///
/// With `adopt`, the data directory has no station of its own yet (it was
/// never given one): the upstream enrols it for the code's station, which
/// the caller then makes the directory's ([`crate::startup::adopt_station`]).
pub fn enroll(
    records: &SharedRecords,
    data_dir: &std::path::Path,
    upstream: &str,
    code: &str,
    http: &reqwest::blocking::Client,
    adopt: bool,
    name: Option<&str>,
) -> Result<UpstreamCredential, EnrollError> {
    let key = InstanceKey::load(data_dir)?;
    let url = format!("{}/api/v1/enroll", upstream.trim_end_matches('/'));
    let response = http
        .post(&url)
        .json(&serde_json::json!({
            "code": code,
            "instance": key.instance,
            "public_key": key.public_key_base64(),
            "station": (!adopt).then(|| records.station()),
            "name": name,
        }))
        .send()
        .map_err(|e| EnrollError::Unreachable {
            url: upstream.to_string(),
            message: e.to_string(),
        })?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .map_err(|e| EnrollError::Protocol(e.to_string()))?;
    if !status.is_success() {
        return Err(EnrollError::Refused {
            status: status.as_u16(),
            message: body["message"]
                .as_str()
                .unwrap_or("no reason given")
                .to_string(),
        });
    }
    let field = |name: &str| {
        body[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| EnrollError::Protocol(format!("no {name} in the answer")))
    };
    let station = field("station")?;
    if !adopt && station != records.station() {
        return Err(EnrollError::WrongStation {
            code: station,
            local: records.station().to_string(),
        });
    }
    let credential = UpstreamCredential {
        upstream: upstream.to_string(),
        station,
        secret: field("credential")?,
        upstream_instance: field("upstream_instance")?
            .parse()
            .map_err(|_| EnrollError::Protocol("bad upstream_instance".into()))?,
    };
    devices::save_credential(records.store().as_ref(), &credential)?;
    Ok(credential)
}
