//! What every handler shares: [`AppState`], built once by
//! `Application` (startup.rs) and handed to each worker.

use crate::auth::sessions::{Limiter, Sessions};
use crate::auth::AuditLog;
use crate::config::AttachmentPolicy;
use crate::data_dir::SharedRecords;
use crate::upstream::SyncAgent;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tideline_sync::blobs::BlobStore;
use tideline_sync::engine::Upstream;

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub records: SharedRecords,
    pub max_body_bytes: usize,
    /// This instance as an upstream for others.
    pub upstream: Arc<Upstream>,
    /// This instance's link to its own upstream, if it has one.
    pub agent: Option<Arc<SyncAgent>>,
    pub sessions: Sessions,
    pub audit: AuditLog,
    /// Failed logins per account...
    pub account_limits: Limiter,
    /// ...and per client address (more: an office may share one address).
    pub address_limits: Limiter,
    /// The one-time code for creating the first admin, while there are no users.
    pub setup: Mutex<Option<SetupCode>>,
    /// Whether clients reach this instance over TLS (cookies are then `Secure`).
    pub tls: bool,
    pub blobs: Arc<BlobStore>,
    /// Photos on their way from the entry page (`crate::uploads`).
    pub uploads: crate::uploads::Uploads,
    pub attachments: AttachmentPolicy,
    /// Tile URL template for the web map, if any.
    pub map_tiles: Option<String>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub data_dir: std::path::PathBuf,
    /// The instance key pair: it signs what this instance sends upstream
    /// and the evidence it exports (docs/EVIDENCE.md).
    pub key: Arc<crate::auth::InstanceKey>,
}

/// A one-time code, valid until `expires`, for creating the first admin.
pub struct SetupCode {
    pub code: String,
    pub expires: Instant,
}

impl AppState {
    /// A record changed here: let the sync loop know.
    pub fn local_change(&self) {
        if let Some(agent) = &self.agent {
            agent.local_change();
        }
    }
}
