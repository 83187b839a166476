//! Records as they travel between the two sides: what one side sends of a
//! record, and how what arrives is checked before anything is applied.

use crate::engine::error::SyncError;
use crate::integrity::claimed_change_checksum;
use crate::plan::{frontier, peer_has_all};
use crate::protocol::DocChanges;
use crate::records::{Records, RemoteDoc};
use crate::store::{DocStore, Summary};
use automerge::{ActorId, Change, ChangeHash};
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tideline_schemas::RecordId;

/// A record id from the wire; None for anything that is not one.
pub fn record_id(text: &str) -> Option<RecordId> {
    text.parse().ok()
}

pub fn hashes_and_deps(changes: &[Change]) -> Vec<(ChangeHash, Vec<ChangeHash>)> {
    changes
        .iter()
        .map(|c| (c.hash(), c.deps().to_vec()))
        .collect()
}

/// One record's part of a page: its changes, their size, the heads both sides
/// will share once they arrive, and who wrote them.
pub struct Outgoing {
    pub size: u64,
    pub doc: DocChanges,
    pub shared: Vec<ChangeHash>,
    pub authors: Vec<ActorId>,
}

/// What one side sends of a record: its changes not covered by the heads the
/// other side is known to have. None when there is nothing to send.
pub fn outgoing<S: DocStore>(
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
        size: changes.iter().map(|c| c.raw_bytes().len() as u64).sum(),
        doc: DocChanges {
            id: id.to_string(),
            changes: changes.iter().map(|c| c.raw_bytes().to_vec()).collect(),
        },
        shared: frontier(known, &hashes_and_deps(&changes)),
        authors,
    }))
}

/// Records received from the other side, decoded, and the ids of those that
/// were refused (not a record id, or changes that do not decode).
pub struct Received {
    pub docs: Vec<RemoteDoc>,
    pub refused: Vec<String>,
}

/// Decode the records of a push or a pull page; `what` names it in the log.
pub fn receive(incoming: Vec<DocChanges>, what: &str) -> Received {
    let mut docs = Vec::with_capacity(incoming.len());
    let mut refused = Vec::new();
    for dc in incoming {
        match record_id(&dc.id).zip(decode_changes(dc.changes)) {
            Some((id, changes)) => docs.push(RemoteDoc { id, changes }),
            None => refused.push(dc.id),
        }
    }
    let (docs, folded) = merge_copies(docs);
    if folded > 0 {
        tracing::warn!(
            copies = folded,
            "{what} named records more than once; merged them"
        );
    }
    Received { docs, refused }
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
