//! The background loop: a sync soon after local changes, periodically
//! otherwise, one at a time, backing off with jitter while the upstream is
//! unreachable. Local entry never waits on it.

use super::failure::{Outcome, SyncFailure};
use super::files::FileFetch;
use super::http::http_client;
use super::status::sync_and_record;
use crate::data_dir::SharedRecords;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tideline_sync::blobs::{BlobHash, BlobStore};

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
    key: Arc<crate::auth::InstanceKey>,
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
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        records: SharedRecords,
        key: Arc<crate::auth::InstanceKey>,
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
            key,
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
                &agent.key,
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
    fn backoff_grows_to_its_cap_with_jitter() {
        let max = Duration::from_secs(300);
        for failures in 1..30 {
            let b = backoff(failures, max);
            let base = Duration::from_secs(1u64 << (failures - 1).min(16)).min(max);
            assert!(b >= base / 2 && b <= base, "{failures}: {b:?} vs {base:?}");
        }
    }
}
