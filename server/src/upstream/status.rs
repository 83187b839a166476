//! One sync run and recorded: the records, then the files, then what
//! happened kept in the store, so the sync bar and `tideline sync status`
//! can tell it after a restart.

use super::exchange::sync_once;
use super::failure::{Outcome, SyncFailure};
use super::files::FileFetch;
use crate::data_dir::SharedRecords;
use serde::{Deserialize, Serialize};
use tideline_sync::blobs::BlobStore;
use tideline_sync::engine::Downstream;
use tideline_sync::DocStore;

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

pub(super) const STATUS_KEY: &str = "sync_status";

pub fn load_record(records: &SharedRecords) -> SyncRecord {
    records
        .store()
        .get_meta(STATUS_KEY)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub(super) fn save_record(records: &SharedRecords, record: &SyncRecord) {
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

pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Run one sync and record its result in the status.
#[allow(clippy::too_many_arguments)]
pub fn sync_and_record(
    records: &SharedRecords,
    key: &crate::auth::InstanceKey,
    blobs: &BlobStore,
    upstream: &str,
    http: &reqwest::blocking::Client,
    page_bytes: u64,
    fetch: &FileFetch,
    progress: impl FnMut(&Outcome),
) -> Result<Outcome, SyncFailure> {
    let mut record = load_record(records);
    record.last_attempt = Some(now());
    let result = sync_once(
        records, key, blobs, upstream, http, page_bytes, fetch, progress,
    );
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
