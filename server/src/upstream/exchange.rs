//! One sync of records: `POST /sync/v1` exchanges, driven by the engine's
//! `Downstream`, until nothing is left to send or receive.

use super::failure::{not_tideline, refusal};
use super::failure::{Outcome, SyncFailure};
use super::files::{pull_files, push_files, FileFetch, FileLink};
use crate::auth::attest::InstanceAttestor;
use crate::auth::{devices, InstanceKey};
use crate::data_dir::SharedRecords;
use std::time::Instant;
use tideline_sync::blobs::BlobStore;
use tideline_sync::engine::Downstream;
use tideline_sync::protocol::{self, Limits};

/// Exchanges one sync may take before it stops and reports; a sync resumes from
/// its checkpoints, so stopping loses nothing.
pub(super) const MAX_EXCHANGES: usize = 10_000;
/// Largest compressed answer accepted from an upstream.
pub(super) const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// Sync with `upstream` now, until neither side has anything left to send.
/// `progress` sees the running totals after every exchange.
#[allow(clippy::too_many_arguments)]
pub fn sync_once(
    records: &SharedRecords,
    key: &InstanceKey,
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
    // Every request is signed with the instance key; a station passes on
    // its boats' signatures with their certificates (docs/EVIDENCE.md).
    let attestor = InstanceAttestor::new(key, store);
    let mut downstream = Downstream::new(records.as_ref(), &attestor).with_page_bytes(page_bytes);
    let mut outcome = Outcome::default();
    for _ in 0..MAX_EXCHANGES {
        let (request, pending) = downstream.prepare()?;
        let body =
            protocol::encode_request(&request).map_err(|e| SyncFailure::Local(e.to_string()))?;
        outcome.bytes_sent += body.len();
        let response = http
            .post(&url)
            .header("content-type", protocol::CONTENT_TYPE)
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
