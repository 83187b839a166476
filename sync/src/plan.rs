//! Pure sync planning: no storage, no network, no clocks. The engine feeds it
//! facts (heads, sizes, checkpoints) and carries out what it decides, which keeps
//! the decisions unit-testable and the I/O boring.

use automerge::ChangeHash;
use std::collections::BTreeSet;

/// The heads of what two sides share, after one side learns `added` changes
/// (each given as its hash and dependencies) on top of the shared `known` heads.
///
/// Both sides had `known`; the side that received `added` now has those too, so
/// the shared history is the union, and its heads are every hash of that union
/// that no change in `added` depends on.
pub fn frontier(known: &[ChangeHash], added: &[(ChangeHash, Vec<ChangeHash>)]) -> Vec<ChangeHash> {
    let depended: BTreeSet<&ChangeHash> = added.iter().flat_map(|(_, deps)| deps).collect();
    let mut heads: BTreeSet<ChangeHash> = known
        .iter()
        .chain(added.iter().map(|(h, _)| h))
        .filter(|h| !depended.contains(h))
        .copied()
        .collect();
    // An empty change list leaves the shared heads as they were.
    if added.is_empty() {
        heads = known.iter().copied().collect();
    }
    heads.into_iter().collect()
}

/// Whether a peer known to have `known` already has every change of a record
/// whose heads are `heads`: each head is one the peer has (a head's ancestors
/// come with it). Lets sync skip a record without loading its document.
pub fn peer_has_all(known: &[ChangeHash], heads: &[ChangeHash]) -> bool {
    !heads.is_empty() && heads.iter().all(|h| known.contains(h))
}

/// Take items in order while their sizes fit `budget`, always at least one (so
/// an item larger than the budget still moves, alone).
pub fn take_within(sizes: impl IntoIterator<Item = usize>, budget: usize) -> usize {
    let mut used = 0usize;
    let mut n = 0usize;
    for size in sizes {
        if n > 0 && used + size > budget {
            break;
        }
        used += size;
        n += 1;
    }
    n
}

/// What the upstream concludes from a request's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointVerdict {
    /// The checkpoint belongs to this store: serve from it.
    Valid,
    /// The checkpoint cannot belong to this store (another store, or one restored
    /// from an older backup): the downstream must start over.
    Reset,
}

/// `served` is the highest checkpoint this store remembers giving the peer. A
/// request from further on means the store forgot what it served — it was
/// restored from a backup — even when its seqs have since grown past the
/// peer's checkpoint, which comparing with the last seq alone would miss.
pub fn check_checkpoint(
    request_epoch: Option<[u8; 16]>,
    my_epoch: [u8; 16],
    pull_since: u64,
    served: u64,
) -> CheckpointVerdict {
    match request_epoch {
        Some(e) if e != my_epoch => CheckpointVerdict::Reset,
        _ if pull_since > served => CheckpointVerdict::Reset,
        _ => CheckpointVerdict::Valid,
    }
}

/// Whether the previous pull page reached the downstream: it asks from a seq at
/// or past the page's end only if it stored the page.
pub fn page_confirmed(pending_upto: u64, pull_since: u64) -> bool {
    pull_since >= pending_upto
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> ChangeHash {
        ChangeHash([n; 32])
    }

    #[test]
    fn a_peer_has_a_record_only_when_it_has_every_head() {
        assert!(peer_has_all(&[h(1), h(2)], &[h(2), h(1)]));
        assert!(peer_has_all(&[h(1), h(2), h(3)], &[h(2)]));
        assert!(!peer_has_all(&[h(1)], &[h(1), h(2)]));
        assert!(!peer_has_all(&[], &[h(1)]));
        // A record with no heads is not a record anyone has seen yet.
        assert!(!peer_has_all(&[h(1)], &[]));
    }

    #[test]
    fn frontier_of_a_linear_extension_is_its_tip() {
        let known = [h(1)];
        let added = [(h(2), vec![h(1)]), (h(3), vec![h(2)])];
        assert_eq!(frontier(&known, &added), vec![h(3)]);
    }

    #[test]
    fn frontier_keeps_a_known_head_nothing_builds_on() {
        // Upstream had a concurrent branch h(5); the downstream learns h(2) on h(1).
        let known = [h(1), h(5)];
        let added = [(h(2), vec![h(1)])];
        assert_eq!(frontier(&known, &added), vec![h(2), h(5)]);
    }

    #[test]
    fn frontier_of_a_merge_is_the_merge() {
        let known = [h(2), h(5)];
        let added = [(h(6), vec![h(2), h(5)])];
        assert_eq!(frontier(&known, &added), vec![h(6)]);
    }

    #[test]
    fn frontier_without_news_is_unchanged() {
        assert_eq!(frontier(&[h(1), h(2)], &[]), vec![h(1), h(2)]);
        assert_eq!(frontier(&[], &[(h(1), vec![])]), vec![h(1)]);
    }

    #[test]
    fn pages_respect_the_budget_but_always_move() {
        assert_eq!(take_within([10, 10, 10], 25), 2);
        assert_eq!(take_within([100, 1], 25), 1, "an oversized item goes alone");
        assert_eq!(take_within([], 25), 0);
        assert_eq!(take_within([5, 5, 5], 100), 3);
    }

    #[test]
    fn checkpoints_from_elsewhere_or_the_future_reset() {
        let mine = [1; 16];
        assert_eq!(check_checkpoint(None, mine, 0, 0), CheckpointVerdict::Valid);
        assert_eq!(
            check_checkpoint(Some(mine), mine, 10, 10),
            CheckpointVerdict::Valid
        );
        assert_eq!(
            check_checkpoint(Some([2; 16]), mine, 0, 10),
            CheckpointVerdict::Reset
        );
        assert_eq!(
            check_checkpoint(Some(mine), mine, 11, 10),
            CheckpointVerdict::Reset
        );
    }

    #[test]
    fn a_page_is_confirmed_only_by_asking_past_it() {
        assert!(page_confirmed(40, 40));
        assert!(page_confirmed(40, 55));
        assert!(!page_confirmed(40, 39));
    }
}
