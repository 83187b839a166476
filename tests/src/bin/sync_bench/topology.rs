//! The fleet's shape: which nodes there are, who is whose upstream, and what
//! each must hold once sync has converged. Every other module names nodes by
//! their index here.

/// The fleet: name, station code, index of the upstream (None for HQ).
/// Order matters: every upstream comes before its downstreams, so each can be
/// started knowing its upstream's address.
pub const NODES: [(&str, &str, Option<usize>); 7] = [
    ("hq", "HQ", None),
    ("station-bb", "BB-01", Some(0)),
    ("station-lc", "LC-01", Some(0)),
    ("boat-1", "BB-01", Some(1)),
    ("boat-2", "BB-01", Some(1)),
    ("boat-3", "LC-01", Some(2)),
    ("boat-4", "LC-01", Some(2)),
];
pub const HQ: usize = 0;
pub const STATIONS: [usize; 2] = [1, 2];
pub const BOATS: [usize; 4] = [3, 4, 5, 6];
/// Every record crosses three links on its way to everyone who should hold it:
/// boat → station, station → HQ, station → the sibling boat.
pub const HOPS: u64 = 3;

fn sibling(boat: usize) -> usize {
    // Boats come in pairs under one station: 3/4 and 5/6.
    if (boat - BOATS[0]).is_multiple_of(2) {
        boat + 1
    } else {
        boat - 1
    }
}

/// Who must hold a record created on `boat`.
pub fn holders(boat: usize) -> [usize; 4] {
    let station = NODES[boat].2.expect("a boat has an upstream");
    [boat, sibling(boat), station, HQ]
}

pub fn expected_total(node: usize, n: usize) -> u64 {
    if node == HQ {
        (BOATS.len() * n) as u64
    } else {
        // A station and each of its boats: that station's two boats' records.
        (2 * n) as u64
    }
}

/// The nodes' names, for progress lines.
pub fn names(nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|&n| NODES[n].0)
        .collect::<Vec<_>>()
        .join(", ")
}
