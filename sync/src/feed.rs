//! Pages of the change feed, as both ends of sync build them: walk the feed
//! from a checkpoint, turn entries into items until a byte budget is spent,
//! and say how far the walk got.
//!
//! The walk is not a snapshot: it reads the feed in chunks while writers go
//! on, and a record rewritten during the walk moves to a new, higher seq,
//! where the walk would meet it again. An item is built from the record as
//! it is when the walk reaches it, so a second meeting would name the record
//! twice in one page, and — worse — moving the checkpoint past the new seq
//! would claim a write that the first item may not hold. So a page ends just
//! before the first record it meets again: the checkpoint covers only
//! entries whose records were read after their write, and the rewritten
//! record starts the next page (docs/SYNC.md §4, "Feed consistency").

use crate::plan::fits;
use crate::store::{DocStore, FeedEntry, StoreError};
use std::collections::HashSet;

/// Feed entries one page may examine, so a page's time is bounded even when
/// most entries are out of scope or unchanged.
pub const MAX_SCAN: usize = 20_000;
/// Entries read from the store at a time.
const CHUNK: usize = 512;

/// One page of the change feed: the items `take` chose, in feed order, the
/// seq up to which the feed was examined, and whether entries remain.
#[derive(Debug)]
pub struct FeedPage<T> {
    pub items: Vec<T>,
    pub upto: u64,
    pub more: bool,
}

/// Walk the feed after `after`, letting `take` turn each entry into an item
/// and its size in change bytes (or skip it with None), until the byte budget
/// or the scan limit is reached, or a record comes round again. What fits is
/// [`fits`]'s decision: a record larger than the budget still moves, alone.
pub fn feed_page<T, E: From<StoreError>>(
    store: &dyn DocStore,
    after: u64,
    budget: u64,
    mut take: impl FnMut(&FeedEntry) -> Result<Option<(u64, T)>, E>,
) -> Result<FeedPage<T>, E> {
    let mut page = FeedPage {
        items: Vec::new(),
        upto: after,
        more: false,
    };
    let mut bytes = 0u64;
    let mut met = HashSet::new();
    loop {
        let entries = store.changes_since(page.upto, CHUNK)?;
        if entries.is_empty() {
            return Ok(page);
        }
        for entry in entries {
            // Rewritten since the walk read it: whatever the earlier item
            // holds, this write is the next page's.
            if met.len() >= MAX_SCAN || !met.insert(entry.id) {
                page.more = true;
                return Ok(page);
            }
            if let Some((size, item)) = take(&entry)? {
                if !fits(page.items.len(), bytes, size, budget) {
                    page.more = true;
                    return Ok(page);
                }
                bytes += size;
                page.items.push(item);
            }
            page.upto = entry.seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DocWrite, MemoryStore, RecordWrite, Summary};
    use tideline_schemas::RecordId;

    fn write(store: &MemoryStore, id: RecordId) -> u64 {
        store
            .write(RecordWrite {
                id,
                doc: DocWrite::Replace(Vec::new()),
                view: b"{}".to_vec(),
                summary: Summary {
                    form: "f".into(),
                    station: "S".into(),
                    status: "draft".into(),
                    heads: Vec::new(),
                    attachments: Vec::new(),
                },
            })
            .unwrap()
    }

    fn store_with(n: usize) -> (MemoryStore, Vec<RecordId>) {
        let store = MemoryStore::new();
        let ids: Vec<RecordId> = (0..n).map(|_| RecordId::new()).collect();
        for id in &ids {
            write(&store, *id);
        }
        (store, ids)
    }

    #[test]
    fn a_record_rewritten_during_the_walk_ends_the_page_before_its_new_seq() {
        // More entries than one chunk, so the walk reads the feed again after
        // the rewrite and meets the record at its new seq.
        let (store, ids) = store_with(CHUNK + 100);
        let rewritten = ids[10];
        let mut new_seq = None;
        let page = feed_page::<_, StoreError>(&store, 0, u64::MAX, |entry| {
            if entry.id == ids[20] && new_seq.is_none() {
                new_seq = Some(write(&store, rewritten));
            }
            Ok(Some((1, entry.id)))
        })
        .unwrap();
        let new_seq = new_seq.unwrap();
        let mut unique = page.items.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), page.items.len(), "a record named twice");
        assert!(page.more, "the rewrite waits for the next page");
        assert!(page.upto < new_seq, "the checkpoint passed the rewrite");
        // The next page starts with it and holds everything else.
        let next = feed_page::<_, StoreError>(&store, page.upto, u64::MAX, |entry| {
            Ok(Some((1, entry.id)))
        })
        .unwrap();
        assert_eq!(next.items, vec![rewritten]);
        assert_eq!(next.upto, new_seq);
        assert!(!next.more);
        assert_eq!(page.items.len() + next.items.len(), ids.len() + 1);
    }

    #[test]
    fn pages_respect_the_budget_but_always_move_one_item() {
        let (store, ids) = store_with(10);
        let page = feed_page::<_, StoreError>(&store, 0, 25, |e| Ok(Some((10, e.id)))).unwrap();
        assert_eq!(page.items, ids[..2].to_vec());
        assert!(page.more);
        let big = feed_page::<_, StoreError>(&store, 0, 5, |e| Ok(Some((100, e.id)))).unwrap();
        assert_eq!(big.items, ids[..1].to_vec());
        let skipped = feed_page::<(), StoreError>(&store, 0, 5, |_| Ok(None)).unwrap();
        assert!(skipped.items.is_empty() && !skipped.more);
        assert_eq!(skipped.upto, store.last_seq().unwrap());
    }
}
