//! The upstream side of sync: answering a downstream's request. One
//! exchange confirms (or drops) the previous pull page, applies the pushed
//! records, continues repairs, and builds the next pull page; its
//! bookkeeping is committed once, after the pushed records are durable.

use crate::engine::error::SyncError;
use crate::engine::ledger::{encode_heads, Ledger, PeerId, PendingPage};
use crate::engine::signatures::{Peer, Pushed, Signing, Verified};
use crate::engine::transfer::{outgoing, receive, record_id};
use crate::evidence::{nodes, unsigned};
use crate::feed::feed_page;
use crate::integrity::sync_message_intact;
use crate::plan::{check_checkpoint, frontier, page_budget, page_confirmed, CheckpointVerdict};
use crate::protocol::{DocChanges, DocSyncMessage, Rejected, Rejection, SyncRequest, SyncResponse};
use crate::record::RecordMeta;
use crate::records::{document_changes, Payload, Records, RecordsError, RemoteDoc, RemoteResult};
use crate::store::DocStore;
use automerge::{sync, Change, ChangeHash};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tideline_schemas::RecordId;

/// An upstream forgets a repair nobody has continued for this long.
const REPAIR_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

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

/// Who a request comes from, and what they may do.
struct Sender<'a> {
    peer: PeerId,
    station: &'a str,
}

impl Sender<'_> {
    /// Whether the sender may read and write this record.
    fn in_scope(&self, meta: &RecordMeta) -> bool {
        station_owns(self.station, meta)
    }
}

/// A downstream reads and writes its own station's records only.
fn station_owns(station: &str, meta: &RecordMeta) -> bool {
    meta.station == station
}

impl Upstream {
    pub fn new() -> Self {
        Self::default()
    }

    /// This store's epoch, made on first use (see [`Ledger::epoch`]).
    pub fn epoch<S: DocStore>(records: &Records<S>) -> Result<[u8; 16], SyncError> {
        Ledger::new(records.store()).epoch()
    }

    fn peer_lock(&self, peer: PeerId) -> Arc<Mutex<()>> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.entry(peer).or_default().clone()
    }

    /// Apply one request and build its response. Pushed records are durable
    /// before this returns, and so are the signatures that cover them.
    ///
    /// `peer` is the authenticated sender. Its signature must cover what it
    /// pushes, and every new change must be covered by a signature of its
    /// own author (docs/EVIDENCE.md); otherwise the whole request is refused
    /// before anything is applied.
    pub fn handle<S: DocStore>(
        &self,
        records: &Records<S>,
        mut request: SyncRequest,
        peer: &Peer<'_>,
    ) -> Result<SyncResponse, SyncError> {
        let signing = Signing::take(&mut request);
        let lock = self.peer_lock(request.instance);
        let _serial = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut ledger = Ledger::new(records.store());
        let epoch = ledger.epoch()?;
        let mut response = SyncResponse {
            instance: *records.identity().device_id.as_bytes(),
            epoch,
            ..Default::default()
        };
        let sender = Sender {
            peer: request.instance,
            station: &request.station,
        };
        let served = ledger.served(&sender.peer)?;
        if check_checkpoint(request.epoch, epoch, request.pull_since, served)
            == CheckpointVerdict::Reset
        {
            self.forget(&mut ledger, &sender.peer)?;
            ledger.commit_lazy()?;
            response.reset = true;
            return Ok(response);
        }
        confirm_page(&mut ledger, &sender.peer, request.pull_since)?;
        let (rejected, verified) =
            apply_push(records, &mut ledger, &sender, request.push, signing, peer)?;
        response.rejected = rejected;
        response.fallback = self.repair(
            records,
            &mut ledger,
            &sender,
            &verified,
            request.fallback,
            &mut response.rejected,
        )?;
        let (pull, upto, more) = pull_page(
            records,
            &mut ledger,
            &sender,
            request.pull_since,
            request.max_pull_bytes,
        )?;
        if upto > served {
            ledger.set_served(&sender.peer, upto);
        }
        (response.pull, response.pull_seq, response.more) = (pull, upto, more);
        response.forms = missing_forms(records, &request.forms)?;
        // Advisory: losing it costs a resend or a reset, never a record, and
        // the records it speaks of were made durable above.
        ledger.commit_lazy()?;
        Ok(response)
    }

    /// Start `peer` afresh: what we thought it had no longer counts.
    fn forget(&self, ledger: &mut Ledger<'_>, peer: &PeerId) -> Result<(), SyncError> {
        ledger.forget_peer(peer)?;
        self.repairs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(p, _), _| p != peer);
        Ok(())
    }

    /// Continue repairs with Automerge's sync protocol: one reply per message.
    fn repair<S: DocStore>(
        &self,
        records: &Records<S>,
        ledger: &mut Ledger<'_>,
        sender: &Sender<'_>,
        verified: &Verified,
        messages: Vec<DocSyncMessage>,
        rejected: &mut Vec<Rejected>,
    ) -> Result<Vec<DocSyncMessage>, SyncError> {
        let store = records.store();
        // A repair brings changes as Automerge's sync protocol sends them:
        // each must be under a signature of its author, like a push.
        let any_unsigned = |changes: &[Change]| {
            let graph = nodes(changes);
            !unsigned(&graph, |h, a| verified.signed(store, h, a).unwrap_or(false)).is_empty()
        };
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
            let step = records.fallback_step(
                &id,
                &mut state,
                Some(&msg.message),
                |meta| sender.in_scope(meta),
                &any_unsigned,
            );
            match step {
                Ok(Some(reply)) => {
                    repairs.insert((sender.peer, id), (state.encode(), Instant::now()));
                    replies.push(DocSyncMessage {
                        id: msg.id,
                        message: reply,
                    });
                }
                Ok(None) => ledger.set_known(&sender.peer, &id, &state.shared_heads),
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

/// Confirm (or drop) the previous pull page: the peer asks from past its
/// end only once it has stored it.
fn confirm_page(ledger: &mut Ledger<'_>, peer: &PeerId, pull_since: u64) -> Result<(), SyncError> {
    if let Some(page) = ledger.pending_page(peer)? {
        if page_confirmed(page.upto, pull_since) {
            ledger.confirm_pending_page(peer, page);
        }
        ledger.set_pending_page(peer, &PendingPage::default())?;
    }
    Ok(())
}

/// Apply the pushed records, durably, with the signatures that cover them,
/// and remember that the peer has what it sent. Returns the records
/// refused, and the request's signatures for its repairs.
fn apply_push<S: DocStore>(
    records: &Records<S>,
    ledger: &mut Ledger<'_>,
    sender: &Sender<'_>,
    push: Vec<DocChanges>,
    signing: Signing,
    peer: &Peer<'_>,
) -> Result<(Vec<Rejected>, Verified), SyncError> {
    let received = receive(push, "a push");
    let graphs: Vec<Pushed> = received
        .docs
        .iter()
        .map(|d| Pushed {
            id: d.id,
            hashes: d.graph().into_iter().map(|(h, _)| h).collect(),
            authors: d.authors(),
        })
        .collect();
    let verified = Verified::check(
        records.store(),
        peer,
        sender.peer,
        signing,
        &received.tips,
        &graphs,
    )?;
    let mut rejected: Vec<Rejected> = received
        .refused
        .into_iter()
        .map(|id| Rejected {
            id,
            reason: Rejection::Invalid,
        })
        .collect();
    let mut sent_heads = HashMap::new();
    let mut docs = Vec::with_capacity(received.docs.len());
    for doc in received.docs {
        let doc = check_signed(records, doc, &verified)?;
        sent_heads.insert(doc.id, doc.graph());
        docs.push(doc);
    }
    let station = sender.station;
    let signatures = verified.writes()?;
    let results = records.apply_remote(docs, |meta| station_owns(station, meta), |_| signatures)?;
    for (id, result) in results {
        let reason = match result {
            RemoteResult::Applied | RemoteResult::Unchanged => {
                // The peer has what it sent: remember it, so pulls do not echo it back.
                let known = ledger.known(&sender.peer, &id)?;
                let sent = sent_heads.remove(&id).unwrap_or_default();
                ledger.set_known(&sender.peer, &id, &frontier(&known, &sent));
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
    Ok((rejected, verified))
}

/// A new change is accepted only under a signature of its own author, on
/// it or on a change after it; one that is not is a forgery unless it is
/// already here (a downstream resending history after a reset), and then
/// nothing of the request is applied. The sender's changes are always
/// under its signature of the request's tips; a whole document whose
/// other authors each signed all its tips is settled without loading it;
/// anything else is taken apart and checked change by change.
fn check_signed<S: DocStore>(
    records: &Records<S>,
    doc: RemoteDoc,
    verified: &Verified,
) -> Result<RemoteDoc, SyncError> {
    let store = records.store();
    let sender = automerge::ActorId::from(&verified.sender()[..]);
    let others: Vec<_> = doc.authors().into_iter().filter(|a| *a != sender).collect();
    if others.is_empty() {
        return Ok(doc);
    }
    let id = doc.id;
    let changes = match &doc.payload {
        Payload::Changes(changes) => changes.clone(),
        Payload::Document { read, bytes } => {
            let tips = crate::evidence::tips_of(&read.change_graph());
            let mut all_signed = true;
            'authors: for actor in &others {
                for tip in &tips {
                    if !verified.signed(store, tip, actor)? {
                        all_signed = false;
                        break 'authors;
                    }
                }
            }
            if all_signed {
                return Ok(doc);
            }
            match document_changes(bytes) {
                // Every change it brings loaded: a change whose dependencies
                // are missing is not among those Automerge hands back.
                Some(changes)
                    if read
                        .graph
                        .iter()
                        .all(|(h, _)| changes.iter().any(|c| c.hash().0 == *h)) =>
                {
                    changes
                }
                // It does not load, or not all of it: applying it refuses
                // it, so nothing of it is stored and it cannot introduce
                // anyone's change.
                _ => return Ok(doc),
            }
        }
    };
    let graph = nodes(&changes);
    let mut failed = None;
    let open: Vec<usize> = unsigned(&graph, |h, a| match verified.signed(store, h, a) {
        Ok(yes) => yes,
        Err(e) => {
            failed.get_or_insert(e);
            false
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let hashes: Vec<ChangeHash> = open.iter().map(|&i| graph[i].hash).collect();
    if hashes.is_empty() || records.has_changes(&id, &hashes)? {
        return Ok(doc);
    }
    Err(SyncError::ForgedAuthor {
        record: id.to_string(),
        actor: graph[open[0]].actor.to_hex_string(),
    })
}

/// The pull page: records in the peer's scope changed since its checkpoint,
/// within the byte budget it asked for. Remembered until the peer confirms it.
fn pull_page<S: DocStore>(
    records: &Records<S>,
    ledger: &mut Ledger<'_>,
    sender: &Sender<'_>,
    pull_since: u64,
    asked_bytes: u64,
) -> Result<(Vec<DocChanges>, u64, bool), SyncError> {
    let store = records.store();
    let reader = &*ledger;
    let page = feed_page::<_, SyncError>(store, pull_since, page_budget(asked_bytes), |entry| {
        let Some(summary) = store.summary(&entry.id)? else {
            return Ok(None);
        };
        if summary.station != sender.station {
            return Ok(None);
        }
        let known = reader.known(&sender.peer, &entry.id)?;
        let Some(out) = outgoing(records, &entry.id, &summary, &known)? else {
            return Ok(None);
        };
        Ok(Some((
            out.size,
            (out.doc, (*entry.id.as_bytes(), encode_heads(&out.shared))),
        )))
    })?;
    let (pull, entries): (Vec<_>, Vec<_>) = page.items.into_iter().unzip();
    ledger.set_pending_page(
        &sender.peer,
        &PendingPage {
            upto: page.upto,
            entries,
        },
    )?;
    Ok((pull, page.upto, page.more))
}

/// Form versions the downstream lacks go with every answer; they are few
/// and small, and a boat must have a form before its records.
fn missing_forms<S: DocStore>(
    records: &Records<S>,
    theirs: &[(String, u32)],
) -> Result<Vec<String>, SyncError> {
    let known: HashSet<&(String, u32)> = theirs.iter().collect();
    let registry = records.forms();
    let mut forms = Vec::new();
    for latest in registry.list_latest() {
        for form in registry.versions(&latest.id) {
            if !known.contains(&(form.id.clone(), form.version)) {
                forms.push(
                    serde_json::to_string(form).map_err(|e| SyncError::Corrupt(e.to_string()))?,
                );
            }
        }
    }
    Ok(forms)
}
