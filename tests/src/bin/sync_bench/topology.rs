//! The shapes a run can take: which nodes there are, who is whose upstream,
//! how each is enrolled, and what each must hold once sync has converged.
//! Every other module names nodes by their index in [`Topology::nodes`].

/// One node: its name, station code, upstream (index, None for HQ) and the
/// kind of device it is enrolled as there.
pub struct Node {
    pub name: &'static str,
    pub station: &'static str,
    pub upstream: Option<usize>,
    /// `station` or `boat`: what the enrolment code issued upstream says.
    pub kind: &'static str,
}

/// A run's nodes. Order matters: every upstream comes before its
/// downstreams, so each can be started knowing its upstream's address.
pub struct Topology {
    pub name: &'static str,
    pub nodes: &'static [Node],
    /// The nodes that create records; they sync first.
    pub boats: &'static [usize],
    /// The nodes in between, which only relay.
    pub stations: &'static [usize],
    /// Links every record crosses on its way to everyone who should hold it.
    pub hops: u64,
}

/// Index of HQ in every topology.
pub const HQ: usize = 0;

const fn node(
    name: &'static str,
    station: &'static str,
    upstream: Option<usize>,
    kind: &'static str,
) -> Node {
    Node {
        name,
        station,
        upstream,
        kind,
    }
}

/// HQ, two stations and two boats under each (station codes in brackets):
///
/// ```text
/// hq [HQ] ── station-bb [BB-01] ── boat-1, boat-2 [BB-01]
///         └─ station-lc [LC-01] ── boat-3, boat-4 [LC-01]
/// ```
///
/// Every record crosses three links: boat → station, station → HQ, station
/// → the sibling boat.
pub static FLEET: Topology = Topology {
    name: "fleet",
    nodes: &[
        node("hq", "HQ", None, ""),
        node("station-bb", "BB-01", Some(HQ), "station"),
        node("station-lc", "LC-01", Some(HQ), "station"),
        node("boat-1", "BB-01", Some(1), "boat"),
        node("boat-2", "BB-01", Some(1), "boat"),
        node("boat-3", "LC-01", Some(2), "boat"),
        node("boat-4", "LC-01", Some(2), "boat"),
    ],
    boats: &[3, 4, 5, 6],
    stations: &[1, 2],
    hops: 3,
};

/// One boat of station BB-01 enrolled directly with HQ, as a boat: HQ issues
/// boat codes for any station it knows, and a boat's pushes are accepted for
/// its own changes whoever its upstream is. Every record crosses one link.
///
/// ```text
/// hq [HQ] ── boat-1 [BB-01]
/// ```
pub static ONE_LINK: Topology = Topology {
    name: "one-link",
    nodes: &[
        node("hq", "HQ", None, ""),
        node("boat-1", "BB-01", Some(HQ), "boat"),
    ],
    boats: &[1],
    stations: &[],
    hops: 1,
};

impl Topology {
    /// Who must hold a record created on `boat`: HQ, and every node of the
    /// boat's station (the boat, its station if it has one, its siblings).
    pub fn holders(&self, boat: usize) -> Vec<usize> {
        let station = self.nodes[boat].station;
        (0..self.nodes.len())
            .filter(|&i| i == HQ || self.nodes[i].station == station)
            .collect()
    }

    /// Records `node` must hold once every boat's `n` have reached it.
    pub fn expected_total(&self, node: usize, n: usize) -> u64 {
        let boats = self
            .boats
            .iter()
            .filter(|&&b| self.holders(b).contains(&node))
            .count();
        (boats * n) as u64
    }

    /// The nodes' names, for progress lines.
    pub fn names(&self, nodes: &[usize]) -> String {
        nodes
            .iter()
            .map(|&n| self.nodes[n].name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn name_of(&self, node: usize) -> &'static str {
        self.nodes[node].name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_holders_and_totals_are_the_station_and_its_boats_plus_hq() {
        let mut h = FLEET.holders(3);
        h.sort();
        assert_eq!(h, vec![HQ, 1, 3, 4]);
        let mut h = FLEET.holders(6);
        h.sort();
        assert_eq!(h, vec![HQ, 2, 5, 6]);
        assert_eq!(FLEET.expected_total(HQ, 10), 40);
        for node in 1..FLEET.nodes.len() {
            assert_eq!(
                FLEET.expected_total(node, 10),
                20,
                "{}",
                FLEET.name_of(node)
            );
        }
    }

    #[test]
    fn one_link_is_the_boat_and_hq() {
        assert_eq!(ONE_LINK.holders(1), vec![HQ, 1]);
        assert_eq!(ONE_LINK.expected_total(HQ, 10), 10);
        assert_eq!(ONE_LINK.expected_total(1, 10), 10);
        assert_eq!(ONE_LINK.nodes[1].upstream, Some(HQ));
    }

    #[test]
    fn every_upstream_comes_first() {
        for topo in [&FLEET, &ONE_LINK] {
            for (i, n) in topo.nodes.iter().enumerate() {
                assert!(n.upstream.is_none_or(|u| u < i), "{}", n.name);
            }
        }
    }
}
