//! The sync engine: both ends of one exchange of the sync protocol (docs/SYNC.md),
//! over a [`Records`] service and without any network code. The server moves
//! the bytes; tests call these functions directly.
//!
//! Downstream (a boat, or a station towards HQ): [`Downstream::prepare`] builds
//! a request from the local change feed, [`Downstream::absorb`] stores the
//! response. Upstream: [`Upstream::handle`] applies a request and answers it.
//!
//! Bookkeeping, in the store's state space:
//! - `ds/checkpoint`: the downstream's push and pull checkpoints and the
//!   upstream's epoch;
//! - `ds/acked/<record>`: heads the upstream is known to have, per record;
//! - `ds/repair/<record>`: records to repair with Automerge's sync protocol,
//!   kept until the repair completes so a cut sync resumes it;
//! - `ds/file/<sha256>`: attachment files the upstream has accepted (written
//!   by the server's file transfer);
//! - `us/known/<peer><record>`: heads a downstream is known to have;
//! - `us/pending/<peer>`: the last pull page sent, until the peer confirms it;
//! - `us/served/<peer>`: the highest pull checkpoint handed to the peer.

use crate::feed::feed_page;
use crate::integrity::{claimed_change_checksum, sync_message_intact};
use crate::plan::{
    check_checkpoint, frontier, page_budget, page_confirmed, peer_has_all, CheckpointVerdict,
};
pub use crate::plan::{DEFAULT_PAGE_BYTES, MAX_PAGE_BYTES};
use crate::protocol::{DocChanges, DocSyncMessage, Rejected, Rejection, SyncRequest, SyncResponse};
use crate::record::RecordMeta;
use crate::records::{Records, RecordsError, RemoteDoc, RemoteResult};
use crate::store::{Commit, DocStore, StateWrite, StoreError, Summary};
use automerge::{sync, ActorId, Change, ChangeHash};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tideline_schemas::RecordId;

/// Exchanges one repair may take within one sync before it waits for the next.
const MAX_REPAIR_ROUNDS: u32 = 16;
/// An upstream forgets a repair nobody has continued for this long.
const REPAIR_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

const CHECKPOINT_KEY: &[u8] = b"ds/checkpoint";
const ACKED: &[u8] = b"ds/acked/";
const REPAIR: &[u8] = b"ds/repair/";
const FILE_SENT: &[u8] = b"ds/file/";
const KNOWN: &[u8] = b"us/known/";
const PENDING: &[u8] = b"us/pending/";
const SERVED: &[u8] = b"us/served/";
const EPOCH_KEY: &str = "epoch";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Records(#[from] RecordsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sync bookkeeping is corrupt: {0}")]
    Corrupt(String),
    /// A pushed change names an author the sender may not write as; nothing
    /// of the request was applied.
    #[error("record {record} holds a change by {actor}, who the sender may not write as")]
    ForgedAuthor { record: String, actor: String },
}

/// The downstream's checkpoints towards its upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Local seq up to which every change has been pushed and acknowledged.
    pub push_seq: u64,
    /// Upstream seq up to which every change has been pulled and stored.
    pub pull_seq: u64,
    pub epoch: Option<[u8; 16]>,
    pub upstream: Option<[u8; 16]>,
}

fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn decode_heads(bytes: &[u8]) -> Result<Vec<ChangeHash>, SyncError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(SyncError::Corrupt("heads".into()));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            ChangeHash(h)
        })
        .collect())
}

fn key(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn heads_at(store: &dyn DocStore, k: &[u8]) -> Result<Vec<ChangeHash>, SyncError> {
    match store.get_state(k)? {
        Some(bytes) => decode_heads(&bytes),
        None => Ok(Vec::new()),
    }
}

fn hashes_and_deps(changes: &[Change]) -> Vec<(ChangeHash, Vec<ChangeHash>)> {
    changes
        .iter()
        .map(|c| (c.hash(), c.deps().to_vec()))
        .collect()
}

/// Decode peer changes, refusing (not panicking on) anything malformed, and
/// anything damaged: a change whose checksum does not match its contents
/// would otherwise be merged as whatever it decodes to.
fn decode_changes(raw: Vec<Vec<u8>>) -> Option<Vec<Change>> {
    catch_unwind(AssertUnwindSafe(|| {
        raw.into_iter()
            .map(|bytes| {
                // Only plain change chunks (a compressed one would be
                // inflated without a bound), whose hash, computed while
                // decoding, matches the checksum they carry.
                let claimed = claimed_change_checksum(&bytes)?;
                let change = Change::from_bytes(bytes).ok()?;
                (change.hash().0[..4] == claimed).then_some(change)
            })
            .collect::<Option<Vec<_>>>()
    }))
    .ok()
    .flatten()
}

/// Join the copies of a record that one message names more than once (a
/// sender whose feed changed while it built the page, or an older peer):
/// every change of every copy, once, in the order received, so Automerge
/// sees dependencies before what depends on them. Returns how many copies
/// were folded in.
fn merge_copies(docs: Vec<RemoteDoc>) -> (Vec<RemoteDoc>, usize) {
    let mut merged: Vec<RemoteDoc> = Vec::with_capacity(docs.len());
    let mut at: HashMap<RecordId, usize> = HashMap::with_capacity(docs.len());
    let mut folded = 0;
    for doc in docs {
        match at.get(&doc.id) {
            Some(&i) => {
                folded += 1;
                let have: HashSet<ChangeHash> =
                    merged[i].changes.iter().map(Change::hash).collect();
                let new = doc
                    .changes
                    .into_iter()
                    .filter(|c| !have.contains(&c.hash()));
                merged[i].changes.extend(new);
            }
            None => {
                at.insert(doc.id, merged.len());
                merged.push(doc);
            }
        }
    }
    (merged, folded)
}

fn raw_changes(changes: &[Change]) -> Vec<Vec<u8>> {
    changes.iter().map(|c| c.raw_bytes().to_vec()).collect()
}

fn changes_size(changes: &[Change]) -> u64 {
    changes.iter().map(|c| c.raw_bytes().len() as u64).sum()
}

/// A record id from the wire; None for anything that is not one.
fn record_id(text: &str) -> Option<RecordId> {
    text.parse().ok()
}

/// What one side sends of a record: its changes not covered by the heads the
/// other side is known to have. None when there is nothing to send.
fn outgoing<S: DocStore>(
    records: &Records<S>,
    id: &RecordId,
    summary: &Summary,
    known: &[ChangeHash],
) -> Result<Option<Outgoing>, SyncError> {
    // Most feed entries on a relay are records its peer sent it or was sent
    // already; the summary's heads settle those without loading the document.
    if peer_has_all(known, &summary.change_hashes()) {
        return Ok(None);
    }
    let changes = records.changes_since(id, known)?.unwrap_or_default();
    if changes.is_empty() {
        return Ok(None);
    }
    let mut authors: Vec<ActorId> = Vec::new();
    for c in &changes {
        if !authors.contains(c.actor_id()) {
            authors.push(c.actor_id().clone());
        }
    }
    Ok(Some(Outgoing {
        size: changes_size(&changes),
        doc: DocChanges {
            id: id.to_string(),
            changes: raw_changes(&changes),
        },
        shared: frontier(known, &hashes_and_deps(&changes)),
        authors,
    }))
}

/// One record's part of a page: its changes, their size, the heads both sides
/// will share once they arrive, and who wrote them.
struct Outgoing {
    size: u64,
    doc: DocChanges,
    shared: Vec<ChangeHash>,
    authors: Vec<ActorId>,
}

/// Who a request comes from, and what they may do, for the repair path.
struct Sender<'a> {
    peer: PeerId,
    in_scope: &'a dyn Fn(&RecordMeta) -> bool,
    may_author: &'a dyn Fn(&ActorId) -> bool,
}

/// Counts of one exchange, for progress reporting and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    pub pushed: usize,
    pub pulled: usize,
    pub rejected: usize,
    /// More exchanges are needed to finish (paging, repairs or a reset).
    pub more: bool,
    /// The upstream did not recognise our checkpoint; bookkeeping was reset.
    pub reset: bool,
}

/// What `prepare` promised, kept until the response arrives.
pub struct Pending {
    push_upto: u64,
    more_push: bool,
    acked_after: Vec<(RecordId, Vec<ChangeHash>)>,
}

/// One record under repair with Automerge's sync protocol.
struct Repair {
    state: sync::State,
    outgoing: Option<Vec<u8>>,
    rounds: u32,
}

impl Repair {
    fn new() -> Self {
        Repair {
            state: sync::State::new(),
            outgoing: None,
            rounds: 0,
        }
    }
}

fn repair_key(id: &RecordId) -> Vec<u8> {
    key(REPAIR, &[id.as_bytes()])
}

/// The downstream side of sync for one sync run (a series of exchanges).
pub struct Downstream<'a, S: DocStore> {
    records: &'a Records<S>,
    page_bytes: u64,
    repairs: HashMap<RecordId, Repair>,
    /// Repairs set aside in this run (no progress, or refused); they stay
    /// recorded in the store and are tried again by the next run.
    parked: Vec<RecordId>,
    /// Which other authors this instance vouches for to its upstream (the
    /// devices enrolled here); none unless set.
    vouch: Option<&'a dyn Fn(&ActorId) -> bool>,
}

impl<'a, S: DocStore> Downstream<'a, S> {
    /// Start a sync run, resuming any repair an earlier run left unfinished.
    pub fn new(records: &'a Records<S>) -> Self {
        let mut repairs = HashMap::new();
        match records.store().scan_state(REPAIR) {
            Ok(entries) => {
                for (k, _) in entries {
                    if let Ok(bytes) = <[u8; 16]>::try_from(&k[REPAIR.len()..]) {
                        repairs.insert(RecordId::from_bytes(bytes), Repair::new());
                    }
                }
            }
            // Unreadable repair bookkeeping delays repairs; it must not stop sync.
            Err(e) => tracing::warn!(error = %e, "could not read pending repairs"),
        }
        Downstream {
            records,
            page_bytes: DEFAULT_PAGE_BYTES,
            vouch: None,
            repairs,
            parked: Vec::new(),
        }
    }

    /// Vouch to the upstream for the authors `vouch` accepts (a station, for
    /// the boats enrolled at it) when their changes are pushed.
    pub fn with_vouching(mut self, vouch: &'a dyn Fn(&ActorId) -> bool) -> Self {
        self.vouch = Some(vouch);
        self
    }

    pub fn with_page_bytes(mut self, bytes: u64) -> Self {
        self.page_bytes = bytes.clamp(1, MAX_PAGE_BYTES);
        self
    }

    pub fn checkpoint(records: &Records<S>) -> Result<Checkpoint, SyncError> {
        match records.store().get_state(CHECKPOINT_KEY)? {
            Some(bytes) => {
                postcard::from_bytes(&bytes).map_err(|e| SyncError::Corrupt(e.to_string()))
            }
            None => Ok(Checkpoint::default()),
        }
    }

    /// Local changes not yet acknowledged by the upstream (an upper bound:
    /// records touched only by pulls count until the next push passes them),
    /// plus records waiting for a repair.
    pub fn pending_changes(records: &Records<S>) -> Result<usize, SyncError> {
        let cp = Self::checkpoint(records)?;
        let store = records.store();
        let mut pending = 0;
        // A record written by a pull (a merge) is in the feed too, but the
        // upstream has it all: count only what a sync would really send.
        for entry in store.changes_since(cp.push_seq, usize::MAX)? {
            let Some(summary) = store.summary(&entry.id)? else {
                continue;
            };
            let acked = heads_at(store, &key(ACKED, &[entry.id.as_bytes()]))?;
            if !peer_has_all(&acked, &summary.change_hashes()) {
                pending += 1;
            }
        }
        Ok(pending + store.scan_state(REPAIR)?.len())
    }

    /// Build the next request: a page of local changes, the pull checkpoint and
    /// the next message of each repair.
    pub fn prepare(&mut self) -> Result<(SyncRequest, Pending), SyncError> {
        let store = self.records.store();
        // The checkpoint sent below tells the upstream what we have stored; it
        // must be on disk, even if the commit that wrote it failed to flush.
        store.ensure_durable()?;
        let cp = Self::checkpoint(self.records)?;
        let (repairs, parked, records) = (&self.repairs, &self.parked, self.records);
        let page = feed_page::<_, SyncError>(store, cp.push_seq, self.page_bytes, |entry| {
            // A record under repair travels by the repair, not by the feed.
            if repairs.contains_key(&entry.id) || parked.contains(&entry.id) {
                return Ok(None);
            }
            let Some(summary) = store.summary(&entry.id)? else {
                return Ok(None);
            };
            let acked = heads_at(store, &key(ACKED, &[entry.id.as_bytes()]))?;
            let Some(out) = outgoing(records, &entry.id, &summary, &acked)? else {
                return Ok(None);
            };
            Ok(Some((
                out.size,
                (out.doc, (entry.id, out.shared), out.authors),
            )))
        })?;
        let own = &self.records.identity().actor;
        let mut vouched: Vec<[u8; 16]> = Vec::new();
        let mut push = Vec::with_capacity(page.items.len());
        let mut acked_after = Vec::with_capacity(page.items.len());
        for (doc, acked, authors) in page.items {
            for actor in authors.iter().filter(|a| *a != own) {
                let Ok(bytes) = <[u8; 16]>::try_from(actor.to_bytes()) else {
                    continue;
                };
                if !vouched.contains(&bytes) && self.vouch.is_some_and(|v| v(actor)) {
                    vouched.push(bytes);
                }
            }
            push.push(doc);
            acked_after.push(acked);
        }
        let mut fallback = Vec::new();
        for (id, repair) in self.repairs.iter_mut() {
            let message = match repair.outgoing.take() {
                Some(m) => Some(m),
                None => {
                    self.records
                        .fallback_step(id, &mut repair.state, None, |_| true, &|_| true)?
                }
            };
            if let Some(message) = message {
                repair.rounds += 1;
                fallback.push(DocSyncMessage {
                    id: id.to_string(),
                    message,
                });
            }
        }
        let identity = self.records.identity();
        let request = SyncRequest {
            instance: *identity.device_id.as_bytes(),
            station: self.records.station().to_string(),
            epoch: cp.epoch,
            pull_since: cp.pull_seq,
            max_pull_bytes: self.page_bytes,
            push,
            fallback,
            vouched,
            forms: self.records.form_versions(),
        };
        Ok((
            request,
            Pending {
                push_upto: page.upto,
                more_push: page.more,
                acked_after,
            },
        ))
    }

    /// Store a response: acknowledgements, pulled records, new repairs and the
    /// new checkpoints, in one durable commit; then continue repairs.
    pub fn absorb(
        &mut self,
        pending: Pending,
        response: SyncResponse,
    ) -> Result<Exchange, SyncError> {
        let store = self.records.store();
        let cp = Self::checkpoint(self.records)?;
        if response.reset || cp.epoch.is_some_and(|e| e != response.epoch) {
            self.reset(response.epoch)?;
            return Ok(Exchange {
                more: true,
                reset: true,
                ..Default::default()
            });
        }

        // Forms first: the pulled records may use them.
        for json in &response.forms {
            match self.records.publish_form(json) {
                Ok((form, true)) => {
                    tracing::info!(form = %form.id, version = form.version, "form version received")
                }
                Ok((_, false)) => {}
                Err(e) => tracing::warn!(error = %e, "a form from the upstream was not taken"),
            }
        }
        let mut rejected: HashMap<RecordId, Rejection> = HashMap::new();
        for r in &response.rejected {
            let Some(id) = record_id(&r.id) else { continue };
            rejected.insert(id, r.reason);
        }
        let mut state_writes = Vec::new();
        let mut new_repairs = Vec::new();
        for (id, reason) in &rejected {
            match reason {
                Rejection::MissingDeps => new_repairs.push(*id),
                other => {
                    tracing::warn!(record = %id, reason = ?other, "upstream refused a record");
                    // A refused repair will not succeed by repeating it.
                    if self.repairs.remove(id).is_some() {
                        state_writes.push(StateWrite {
                            key: repair_key(id),
                            value: None,
                        });
                    }
                }
            }
        }
        let mut acked: HashMap<RecordId, Vec<ChangeHash>> = pending
            .acked_after
            .into_iter()
            .filter(|(id, _)| !rejected.contains_key(id))
            .collect();
        let pushed = acked.len();

        let mut received = Vec::with_capacity(response.pull.len());
        for dc in response.pull {
            let Some(id) = record_id(&dc.id) else {
                tracing::warn!("upstream sent a record with an invalid id");
                continue;
            };
            let Some(changes) = decode_changes(dc.changes) else {
                tracing::warn!(record = %id, "upstream sent changes that do not decode or are damaged");
                continue;
            };
            received.push(RemoteDoc { id, changes });
        }
        let (docs, folded) = merge_copies(received);
        if folded > 0 {
            tracing::warn!(
                copies = folded,
                "a pull page named records more than once; merged them"
            );
        }
        let mut pulled_heads = HashMap::new();
        for doc in &docs {
            let base = match acked.get(&doc.id) {
                Some(h) => h.clone(),
                None => heads_at(store, &key(ACKED, &[doc.id.as_bytes()]))?,
            };
            pulled_heads.insert(doc.id, frontier(&base, &hashes_and_deps(&doc.changes)));
        }
        let next = Checkpoint {
            push_seq: pending.push_upto,
            pull_seq: response.pull_seq,
            epoch: Some(response.epoch),
            upstream: Some(response.instance),
        };
        let next_bytes =
            postcard::to_stdvec(&next).map_err(|e| SyncError::Corrupt(e.to_string()))?;
        let results = self.records.apply_remote(
            docs,
            |_| true,
            |results| {
                for (id, result) in results {
                    match result {
                        RemoteResult::Applied | RemoteResult::Unchanged => {
                            if let Some(h) = pulled_heads.remove(id) {
                                acked.insert(*id, h);
                            }
                        }
                        RemoteResult::MissingDeps => new_repairs.push(*id),
                        _ => {}
                    }
                }
                // Repairs are recorded with the checkpoint that skips past them,
                // so a cut here cannot lose them.
                for id in &new_repairs {
                    state_writes.push(StateWrite {
                        key: repair_key(id),
                        value: Some(Vec::new()),
                    });
                }
                state_writes.extend(acked.iter().map(|(id, heads)| StateWrite {
                    key: key(ACKED, &[id.as_bytes()]),
                    value: Some(encode_heads(heads)),
                }));
                state_writes.push(StateWrite {
                    key: CHECKPOINT_KEY.to_vec(),
                    value: Some(next_bytes),
                });
                std::mem::take(&mut state_writes)
            },
        )?;
        for id in new_repairs {
            if !self.parked.contains(&id) {
                self.repairs.entry(id).or_insert_with(Repair::new);
            }
        }
        let pulled = results
            .iter()
            .filter(|(_, r)| *r == RemoteResult::Applied)
            .count();

        for msg in response.fallback {
            let Some(id) = record_id(&msg.id) else {
                continue;
            };
            let Some(repair) = self.repairs.get_mut(&id) else {
                continue;
            };
            if !sync_message_intact(&msg.message) {
                tracing::warn!(record = %id, "repair message is damaged; retrying next sync");
                self.repairs.remove(&id);
                self.parked.push(id);
                continue;
            }
            match self.records.fallback_step(
                &id,
                &mut repair.state,
                Some(&msg.message),
                |_| true,
                &|_| true,
            ) {
                Ok(reply) => repair.outgoing = reply,
                Err(RecordsError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(record = %id, error = %e, "repair message refused; retrying next sync");
                    self.repairs.remove(&id);
                    self.parked.push(id);
                }
            }
        }
        self.finish_repairs()?;

        Ok(Exchange {
            pushed,
            pulled,
            rejected: rejected.len(),
            more: pending.more_push || response.more || !self.repairs.is_empty(),
            reset: false,
        })
    }

    /// A repair is done when neither side has anything left to say; the heads
    /// both sides then share become the record's acknowledged heads. A repair
    /// that has gone on too long waits for the next sync run.
    fn finish_repairs(&mut self) -> Result<(), SyncError> {
        let mut done = Vec::new();
        let mut stalled = Vec::new();
        for (id, repair) in self.repairs.iter_mut() {
            if repair.outgoing.is_none() {
                repair.outgoing =
                    self.records
                        .fallback_step(id, &mut repair.state, None, |_| true, &|_| true)?;
                if repair.outgoing.is_none() && repair.state.their_heads.is_some() {
                    done.push((*id, repair.state.shared_heads.clone()));
                    continue;
                }
            }
            if repair.rounds >= MAX_REPAIR_ROUNDS {
                stalled.push(*id);
            }
        }
        let mut writes = Vec::new();
        for (id, heads) in &done {
            writes.push(StateWrite {
                key: key(ACKED, &[id.as_bytes()]),
                value: Some(encode_heads(heads)),
            });
            writes.push(StateWrite {
                key: repair_key(id),
                value: None,
            });
        }
        if !writes.is_empty() {
            self.records.store().commit(Commit {
                records: Vec::new(),
                state: writes,
            })?;
        }
        for (id, _) in done {
            self.repairs.remove(&id);
        }
        for id in stalled {
            tracing::warn!(record = %id, "repair made no progress; retrying next sync");
            self.repairs.remove(&id);
            self.parked.push(id);
        }
        Ok(())
    }

    /// Forget everything known about the upstream: the next exchanges push
    /// every record in full and pull everything in scope, and every file is
    /// offered again (a restored upstream may have lost any of them).
    fn reset(&mut self, epoch: [u8; 16]) -> Result<(), SyncError> {
        let store = self.records.store();
        let mut writes: Vec<StateWrite> = store
            .scan_state(ACKED)?
            .into_iter()
            .chain(store.scan_state(REPAIR)?)
            .chain(store.scan_state(FILE_SENT)?)
            .map(|(key, _)| StateWrite { key, value: None })
            .collect();
        let fresh = Checkpoint {
            epoch: Some(epoch),
            ..Default::default()
        };
        writes.push(StateWrite {
            key: CHECKPOINT_KEY.to_vec(),
            value: Some(
                postcard::to_stdvec(&fresh).map_err(|e| SyncError::Corrupt(e.to_string()))?,
            ),
        });
        store.commit(Commit {
            records: Vec::new(),
            state: writes,
        })?;
        self.repairs.clear();
        self.parked.clear();
        tracing::warn!("upstream did not recognise our checkpoint; resending everything");
        Ok(())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PendingPage {
    upto: u64,
    entries: Vec<([u8; 16], Vec<u8>)>,
}

type PeerId = [u8; 16];
/// A repair's persisted sync state and when it was last continued.
type SavedRepair = (Vec<u8>, Instant);

/// The upstream side of sync. Serialises exchanges per peer (a retry racing
/// its timed-out original would interleave bookkeeping) and keeps, per record
/// being repaired with a peer, the Automerge sync state in its persisted form.
///
/// Only the persisted form survives between requests: a live `sync::State`
/// remembers which changes it sent, and Automerge will not send them again,
/// so a reply lost on a cut link would never be repeated. The persisted form
/// keeps only the heads both sides are known to share.
#[derive(Default)]
pub struct Upstream {
    peers: Mutex<HashMap<PeerId, Arc<Mutex<()>>>>,
    repairs: Mutex<HashMap<(PeerId, RecordId), SavedRepair>>,
}

impl Upstream {
    pub fn new() -> Self {
        Self::default()
    }

    /// This store's epoch, made on first use. A restore that knows it is one
    /// should give the store a new epoch; a copy put back by hand is caught by
    /// the per-peer served marker instead (see docs/SYNC.md).
    pub fn epoch<S: DocStore>(records: &Records<S>) -> Result<[u8; 16], SyncError> {
        let store = records.store();
        if let Some(bytes) = store.get_meta(EPOCH_KEY)? {
            return bytes
                .try_into()
                .map_err(|_| SyncError::Corrupt("epoch".into()));
        }
        let epoch = *uuid::Uuid::new_v4().as_bytes();
        store.put_meta(EPOCH_KEY, &epoch)?;
        Ok(epoch)
    }

    fn peer_lock(&self, peer: PeerId) -> Arc<Mutex<()>> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.entry(peer).or_default().clone()
    }

    /// Apply one request and build its response. Pushed records are durable
    /// before this returns.
    ///
    /// `may_author` says which Automerge actors the authenticated sender may
    /// push changes of (docs/SECURITY.md); one change by anyone else refuses
    /// the whole request before anything is applied.
    pub fn handle<S: DocStore>(
        &self,
        records: &Records<S>,
        request: SyncRequest,
        may_author: &dyn Fn(&ActorId) -> bool,
    ) -> Result<SyncResponse, SyncError> {
        let peer = request.instance;
        let lock = self.peer_lock(peer);
        let _serial = lock.lock().unwrap_or_else(|p| p.into_inner());
        let store = records.store();
        let epoch = Self::epoch(records)?;
        let instance = *records.identity().device_id.as_bytes();
        let served_key = key(SERVED, &[&peer]);
        let served = match store.get_state(&served_key)? {
            Some(b) => u64::from_be_bytes(
                b.try_into()
                    .map_err(|_| SyncError::Corrupt("served".into()))?,
            ),
            None => 0,
        };
        if check_checkpoint(request.epoch, epoch, request.pull_since, served)
            == CheckpointVerdict::Reset
        {
            // Start this peer afresh: what we thought it had no longer counts.
            let mut forget: Vec<StateWrite> = store
                .scan_state(&key(KNOWN, &[&peer]))?
                .into_iter()
                .map(|(key, _)| StateWrite { key, value: None })
                .collect();
            forget.push(StateWrite {
                key: served_key,
                value: None,
            });
            forget.push(StateWrite {
                key: key(PENDING, &[&peer]),
                value: None,
            });
            store.put_state_lazy(forget)?;
            self.repairs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(p, _), _| *p != peer);
            return Ok(SyncResponse {
                instance,
                epoch,
                reset: true,
                pull_seq: 0,
                ..Default::default()
            });
        }
        let station = request.station.clone();
        let in_scope = |meta: &RecordMeta| meta.station == station;

        // Confirm (or drop) the previous pull page.
        let pending_key = key(PENDING, &[&peer]);
        let mut lazy = Vec::new();
        if let Some(bytes) = store.get_state(&pending_key)? {
            let page: PendingPage =
                postcard::from_bytes(&bytes).map_err(|e| SyncError::Corrupt(e.to_string()))?;
            if page_confirmed(page.upto, request.pull_since) {
                for (id, heads) in page.entries {
                    lazy.push(StateWrite {
                        key: key(KNOWN, &[&peer, &id]),
                        value: Some(heads),
                    });
                }
            }
            lazy.push(StateWrite {
                key: pending_key.clone(),
                value: None,
            });
        }
        if !lazy.is_empty() {
            store.put_state_lazy(std::mem::take(&mut lazy))?;
        }

        // Apply pushes.
        let mut rejected = Vec::new();
        let mut received = Vec::with_capacity(request.push.len());
        for dc in request.push {
            match record_id(&dc.id).zip(decode_changes(dc.changes)) {
                Some((id, changes)) => received.push(RemoteDoc { id, changes }),
                None => rejected.push(Rejected {
                    id: dc.id,
                    reason: Rejection::Invalid,
                }),
            }
        }
        let (docs, folded) = merge_copies(received);
        if folded > 0 {
            tracing::warn!(
                copies = folded,
                "a push named records more than once; merged them"
            );
        }
        let mut sent_heads = HashMap::new();
        for doc in &docs {
            // Changes by others are fine only if they are already here (a
            // downstream resending history after a reset); a new one is a
            // forgery, and nothing of the request is applied.
            let foreign: Vec<&Change> = doc
                .changes
                .iter()
                .filter(|c| !may_author(c.actor_id()))
                .collect();
            if !foreign.is_empty() {
                let hashes: Vec<ChangeHash> = foreign.iter().map(|c| c.hash()).collect();
                if !records.has_changes(&doc.id, &hashes)? {
                    return Err(SyncError::ForgedAuthor {
                        record: doc.id.to_string(),
                        actor: foreign[0].actor_id().to_hex_string(),
                    });
                }
            }
            sent_heads.insert(doc.id, hashes_and_deps(&doc.changes));
        }
        let results = records.apply_remote(docs, in_scope, |_| Vec::new())?;
        for (id, result) in &results {
            let reason = match result {
                RemoteResult::Applied | RemoteResult::Unchanged => {
                    // The peer has what it sent: remember it, so pulls do not echo it back.
                    let known_key = key(KNOWN, &[&peer, id.as_bytes()]);
                    let known = heads_at(store, &known_key)?;
                    let sent = sent_heads.remove(id).unwrap_or_default();
                    lazy.push(StateWrite {
                        key: known_key,
                        value: Some(encode_heads(&frontier(&known, &sent))),
                    });
                    continue;
                }
                RemoteResult::MissingDeps => Rejection::MissingDeps,
                RemoteResult::Forbidden => Rejection::Forbidden,
                RemoteResult::Invalid(_) => Rejection::Invalid,
            };
            rejected.push(Rejected {
                id: id.to_string(),
                reason,
            });
        }
        if !lazy.is_empty() {
            store.put_state_lazy(std::mem::take(&mut lazy))?;
        }

        let sender = Sender {
            peer,
            in_scope: &in_scope,
            may_author,
        };
        let fallback = self.repair(records, &sender, request.fallback, &mut rejected, &mut lazy)?;

        // The pull page: records in the peer's scope changed since its checkpoint.
        let budget = page_budget(request.max_pull_bytes);
        let page = feed_page::<_, SyncError>(store, request.pull_since, budget, |entry| {
            let Some(summary) = store.summary(&entry.id)? else {
                return Ok(None);
            };
            if summary.station != request.station {
                return Ok(None);
            }
            let known = heads_at(store, &key(KNOWN, &[&peer, entry.id.as_bytes()]))?;
            let Some(out) = outgoing(records, &entry.id, &summary, &known)? else {
                return Ok(None);
            };
            Ok(Some((
                out.size,
                (out.doc, (*entry.id.as_bytes(), encode_heads(&out.shared))),
            )))
        })?;
        let (upto, more) = (page.upto, page.more);
        let (pull, entries): (Vec<_>, Vec<_>) = page.items.into_iter().unzip();
        let sent = PendingPage { upto, entries };
        if upto > served {
            lazy.push(StateWrite {
                key: served_key,
                value: Some(upto.to_be_bytes().to_vec()),
            });
        }
        if !sent.entries.is_empty() {
            lazy.push(StateWrite {
                key: pending_key,
                value: Some(
                    postcard::to_stdvec(&sent).map_err(|e| SyncError::Corrupt(e.to_string()))?,
                ),
            });
        }
        if !lazy.is_empty() {
            store.put_state_lazy(lazy)?;
        }
        // Form versions the downstream lacks go with every answer; they are
        // few and small, and a boat must have a form before its records.
        let known: HashSet<(String, u32)> = request.forms.iter().cloned().collect();
        let registry = records.forms();
        let mut forms = Vec::new();
        for latest in registry.list_latest() {
            for form in registry.versions(&latest.id) {
                if !known.contains(&(form.id.clone(), form.version)) {
                    forms.push(
                        serde_json::to_string(form)
                            .map_err(|e| SyncError::Corrupt(e.to_string()))?,
                    );
                }
            }
        }
        Ok(SyncResponse {
            instance,
            epoch,
            reset: false,
            rejected,
            pull,
            pull_seq: upto,
            more,
            fallback,
            forms,
        })
    }

    /// Continue repairs with Automerge's sync protocol: one reply per message.
    fn repair<S: DocStore>(
        &self,
        records: &Records<S>,
        sender: &Sender<'_>,
        messages: Vec<DocSyncMessage>,
        rejected: &mut Vec<Rejected>,
        lazy: &mut Vec<StateWrite>,
    ) -> Result<Vec<DocSyncMessage>, SyncError> {
        let mut repairs = self.repairs.lock().unwrap_or_else(|p| p.into_inner());
        repairs.retain(|_, (_, touched)| touched.elapsed() < REPAIR_IDLE);
        let mut replies = Vec::new();
        for msg in messages {
            let intact = sync_message_intact(&msg.message);
            let Some(id) = record_id(&msg.id).filter(|_| intact) else {
                rejected.push(Rejected {
                    id: msg.id,
                    reason: Rejection::Invalid,
                });
                continue;
            };
            let saved = repairs.remove(&(sender.peer, id)).map(|(bytes, _)| bytes);
            let mut state = saved
                .and_then(|bytes| sync::State::decode(&bytes).ok())
                .unwrap_or_default();
            match records.fallback_step(
                &id,
                &mut state,
                Some(&msg.message),
                sender.in_scope,
                sender.may_author,
            ) {
                Ok(Some(reply)) => {
                    repairs.insert((sender.peer, id), (state.encode(), Instant::now()));
                    replies.push(DocSyncMessage {
                        id: msg.id,
                        message: reply,
                    });
                }
                Ok(None) => lazy.push(StateWrite {
                    key: key(KNOWN, &[&sender.peer, id.as_bytes()]),
                    value: Some(encode_heads(&state.shared_heads)),
                }),
                Err(RecordsError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(record = %id, error = %e, "repair refused");
                    let reason = match e {
                        RecordsError::Forbidden(_) => Rejection::Forbidden,
                        _ => Rejection::Invalid,
                    };
                    rejected.push(Rejected { id: msg.id, reason });
                }
            }
        }
        Ok(replies)
    }
}
