//! Records as they travel between the two sides: what one side sends of a
//! record, and how what arrives is checked before anything is applied.

use crate::engine::error::SyncError;
use crate::evidence::tips_of;
use crate::integrity::{claimed_change_checksum, plain_document};
use crate::plan::{frontier, peer_has_all};
use crate::protocol::DocChanges;
use crate::records::{change_authors, change_graph, Payload, Records, RemoteDoc};
use crate::store::{DocStore, Summary};
use automerge::{ActorId, Change, ChangeHash};
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tideline_schemas::RecordId;

/// A record id from the wire; None for anything that is not one.
pub fn record_id(text: &str) -> Option<RecordId> {
    text.parse().ok()
}

/// One record's part of a page: its changes, their size, the heads both sides
/// will share once they arrive, who wrote them, and the tips of what is
/// sent (what the sender's signature covers, docs/EVIDENCE.md).
pub struct Outgoing {
    pub size: u64,
    pub doc: DocChanges,
    pub shared: Vec<ChangeHash>,
    pub authors: Vec<ActorId>,
    pub tips: Vec<ChangeHash>,
}

/// What one side sends of a record: its changes not covered by the heads the
/// other side is known to have, or the whole stored document when the other
/// side is known to have none of it. None when there is nothing to send.
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
    if known.is_empty() {
        if let Some(whole) = whole_document(records, id, summary)? {
            return Ok(Some(whole));
        }
    }
    let changes = records.changes_since(id, known)?.unwrap_or_default();
    if changes.is_empty() {
        return Ok(None);
    }
    let graph = change_graph(&changes);
    Ok(Some(Outgoing {
        size: changes.iter().map(|c| c.raw_bytes().len() as u64).sum(),
        tips: tips_of(&graph),
        doc: DocChanges {
            id: id.to_string(),
            changes: changes.iter().map(|c| c.raw_bytes().to_vec()).collect(),
            document: Vec::new(),
        },
        shared: frontier(known, &graph),
        authors: change_authors(&changes),
    }))
}

/// A record the other side has none of: the stored bytes as they are, no
/// Automerge work at all. None when they are not a plain document (a data
/// directory compacted by an older binary, say): its changes go instead.
fn whole_document<S: DocStore>(
    records: &Records<S>,
    id: &RecordId,
    summary: &Summary,
) -> Result<Option<Outgoing>, SyncError> {
    let Some(stored) = records.store().load(id)? else {
        return Ok(None);
    };
    let bytes = stored.into_bytes();
    let Some(read) = plain_document(&bytes) else {
        return Ok(None);
    };
    Ok(Some(Outgoing {
        size: bytes.len() as u64,
        tips: tips_of(&read.change_graph()),
        shared: summary.change_hashes(),
        authors: read.authors(),
        doc: DocChanges {
            id: id.to_string(),
            changes: Vec::new(),
            document: bytes,
        },
    }))
}

/// Records received from the other side, decoded, and the ids of those that
/// were refused (not a record id, or changes that do not decode).
pub struct Received {
    pub docs: Vec<RemoteDoc>,
    pub refused: Vec<String>,
    /// The tips of every record's part as it came (before copies of one
    /// record are merged), what the sender signed.
    pub tips: Vec<ChangeHash>,
}

/// Decode the records of a push or a pull page; `what` names it in the log.
pub fn receive(incoming: Vec<DocChanges>, what: &str) -> Received {
    let mut docs = Vec::with_capacity(incoming.len());
    let mut refused = Vec::new();
    let mut tips = Vec::new();
    for dc in incoming {
        let payload = if dc.document.is_empty() {
            decode_changes(dc.changes).map(Payload::Changes)
        } else if dc.changes.is_empty() {
            plain_document(&dc.document).map(|read| Payload::Document {
                bytes: dc.document,
                read,
            })
        } else {
            // Changes and a document both: not something a peer sends.
            None
        };
        match record_id(&dc.id).zip(payload) {
            Some((id, payload)) => {
                let doc = RemoteDoc { id, payload };
                tips.extend(tips_of(&doc.graph()));
                docs.push(doc);
            }
            None => refused.push(dc.id),
        }
    }
    tips.sort_unstable();
    tips.dedup();
    let (docs, folded) = merge_copies(docs);
    if folded > 0 {
        tracing::warn!(
            copies = folded,
            "{what} named records more than once; merged them"
        );
    }
    Received {
        docs,
        refused,
        tips,
    }
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
/// sees dependencies before what depends on them; a whole document among
/// them is taken apart into its changes. Returns how many copies were
/// folded in.
fn merge_copies(docs: Vec<RemoteDoc>) -> (Vec<RemoteDoc>, usize) {
    let mut merged: Vec<Option<RemoteDoc>> = Vec::with_capacity(docs.len());
    let mut at: HashMap<RecordId, usize> = HashMap::with_capacity(docs.len());
    let mut folded = 0;
    for doc in docs {
        let Some(&i) = at.get(&doc.id) else {
            at.insert(doc.id, merged.len());
            merged.push(Some(doc));
            continue;
        };
        folded += 1;
        // A copy that does not load spoils the lot: the record is left out.
        let joined = merged[i]
            .take()
            .and_then(RemoteDoc::into_changes)
            .zip(doc.into_changes())
            .map(|((id, mut have), (_, more))| {
                let known: HashSet<ChangeHash> = have.iter().map(Change::hash).collect();
                have.extend(more.into_iter().filter(|c| !known.contains(&c.hash())));
                RemoteDoc::changes(id, have)
            });
        merged[i] = joined;
    }
    (merged.into_iter().flatten().collect(), folded)
}
