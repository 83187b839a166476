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

/// Default bound on the change bytes of one push or pull page. Large enough that
/// steady-state syncs take one round trip (1,000 single-field edits are about
/// 130 KB), small enough that a cut link loses little and a page is a bounded
/// amount of memory on both sides. Measured on the fleet bench
/// (docs/PERFORMANCE.md): against 4 MiB pages, 1 MiB pages cut the upstream's
/// peak RSS from 198 to 111 MB and the first sync from 34 to 25 s (sled works
/// harder on large batches), for 54 round trips instead of 20.
pub const DEFAULT_PAGE_BYTES: u64 = 1024 * 1024;
/// The most an upstream puts in one pull page, whatever the request asks.
pub const MAX_PAGE_BYTES: u64 = 16 * 1024 * 1024;

/// The byte budget of a pull page a downstream asked for: its own bound
/// within ours, the default when it names none (0).
pub fn page_budget(asked: u64) -> u64 {
    match asked {
        0 => DEFAULT_PAGE_BYTES,
        n => n.min(MAX_PAGE_BYTES),
    }
}

/// Whether an item of `size` bytes still goes into a page that holds `taken`
/// items of `used` bytes: while it fits the budget, and always as the first
/// (so an item larger than the budget still moves, alone).
pub fn fits(taken: usize, used: u64, size: u64, budget: u64) -> bool {
    taken == 0 || used + size <= budget
}

/// How many items, taken in order, one page holds (see [`fits`]).
pub fn take_within(sizes: impl IntoIterator<Item = u64>, budget: u64) -> usize {
    let mut used = 0;
    let mut n = 0;
    for size in sizes {
        if !fits(n, used, size, budget) {
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
    fn a_pull_page_gets_what_was_asked_within_the_cap() {
        assert_eq!(page_budget(0), DEFAULT_PAGE_BYTES);
        assert_eq!(page_budget(1000), 1000);
        assert_eq!(page_budget(u64::MAX), MAX_PAGE_BYTES);
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
